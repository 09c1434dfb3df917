"""The lean sampling loop draws what `generate` draws: the same tokens under greedy decoding, and under
sampling the same tokens from the same RNG state (so the same distribution), for every architecture the
profiles use: GPT-2, Llama, Llama in 4-bit NF4 with LoRA, GPT-2 with LoRA."""

import pytest
import torch

from rlhf.config import RolloutConfig, load_profile
from rlhf.models.factory import build_policy
from rlhf.models.tokenizer import load_tokenizer
from rlhf.rl.rollout import sample_responses
from rlhf.rl.sampling import sample_with_cache

LORA = "model.lora={r: 4, alpha: 8, dropout: 0.0}"
ARCHITECTURES = {
    "gpt2": ("tiny-gpt2", []),
    "gpt2-lora": ("tiny-gpt2", [LORA]),
    "llama": ("tiny-llama-4bit", ["model.quantization=null", "model.lora=null", "model.gradient_checkpointing=false"]),
    "llama-4bit-lora": ("tiny-llama-4bit", []),
}
PROMPTS = ["The movie was", "I", "An absolutely wonderful and touching story about", "Bad"]  # ragged: left padding


@pytest.fixture(scope="module", params=sorted(ARCHITECTURES))
def model_and_tokenizer(request):
    name, overrides = ARCHITECTURES[request.param]
    profile = load_profile(name, overrides)
    policy = build_policy(profile.model, with_value_head=False)
    for lora in [m for n, m in policy.model.named_modules() if n.endswith("lora_B.default")]:
        torch.nn.init.normal_(lora.weight, std=0.5)  # adapters that change the output, so they are exercised
    return policy.model.eval(), load_tokenizer(profile.model.tokenizer)


def encode(tokenizer):
    return tokenizer(PROMPTS, return_tensors="pt", padding=True, add_special_tokens=False)


def generate(model, tokenizer, cfg, do_sample):
    enc = encode(tokenizer)
    out = model.generate(**enc, do_sample=do_sample, max_new_tokens=cfg.max_new_tokens,
                         min_new_tokens=cfg.min_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
                         top_k=cfg.top_k, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                         use_cache=True)
    response = out[:, enc.input_ids.shape[1]:]
    return torch.nn.functional.pad(response, (0, cfg.max_new_tokens - response.shape[1]), value=tokenizer.pad_token_id)


def lean(model, tokenizer, cfg, greedy):
    enc = encode(tokenizer)
    return sample_with_cache(model, enc.input_ids, enc.attention_mask, cfg, tokenizer.eos_token_id,
                             tokenizer.pad_token_id, greedy=greedy)


def test_greedy_tokens_are_identical(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    cfg = RolloutConfig(max_new_tokens=12)
    with torch.no_grad():
        assert torch.equal(lean(model, tokenizer, cfg, greedy=True), generate(model, tokenizer, cfg, do_sample=False))


@pytest.mark.parametrize("settings", [{}, {"temperature": 0.7, "top_k": 20, "top_p": 0.9, "min_new_tokens": 4}])
def test_sampled_tokens_are_identical_from_the_same_seed(model_and_tokenizer, settings):
    model, tokenizer = model_and_tokenizer
    cfg = RolloutConfig(max_new_tokens=12, **settings)
    for seed in range(3):
        torch.manual_seed(seed)
        expected = generate(model, tokenizer, cfg, do_sample=True)
        torch.manual_seed(seed)
        got = lean(model, tokenizer, cfg, greedy=False)
        assert torch.equal(got, expected), seed


def test_rollouts_with_the_lean_sampler_match_generate(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    outputs = []
    for sampler in ("generate", "lean"):
        torch.manual_seed(0)
        cfg = RolloutConfig(max_new_tokens=10, micro_batch_size=3, sampler=sampler)
        outputs.append(sample_responses(model, tokenizer, PROMPTS, cfg))
    for a, b in zip(*outputs):
        assert torch.equal(a, b)
