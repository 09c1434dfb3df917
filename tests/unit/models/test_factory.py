import bitsandbytes as bnb
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from rlhf.algos import logprobs_from_logits
from rlhf.config import ModelConfig, load_profile
from rlhf.models.factory import build_policy
from rlhf.models.policy import VALUE_HEAD_FILE
from rlhf.models.tokenizer import load_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("builtin-bpe")


@pytest.fixture(scope="module")
def batch(tokenizer):
    return tokenizer(["The movie was", "I think the acting is really"], return_tensors="pt", padding=True)


def response_logprobs(logits, input_ids, k):
    # logits of the last k+1 positions predict the last k tokens
    return logprobs_from_logits(logits[:, :-1], input_ids[:, -k:])


def trainable_names(policy):
    return {name for name, p in policy.named_parameters() if p.requires_grad}


LORA_GPT2 = ["model.lora={r: 4, alpha: 8}", "model.gradient_checkpointing=true"]


@pytest.mark.parametrize(("profile_name", "overrides"), [("tiny-gpt2", []), ("tiny-gpt2", LORA_GPT2),
                                                         ("tiny-llama-4bit", [])])
def test_policy_generates_and_only_trainable_parameters_get_gradients(profile_name, overrides, tokenizer, batch):
    torch.manual_seed(0)
    cfg = load_profile(profile_name, overrides).model
    policy = build_policy(cfg, with_value_head=True)
    out = policy.model.generate(**batch, max_new_tokens=5, do_sample=True, pad_token_id=tokenizer.pad_token_id)
    assert out.shape == (2, batch.input_ids.shape[1] + 5)

    result = policy(batch.input_ids, batch.attention_mask)
    (result.logits.float().logsumexp(-1).mean() + result.values.mean()).backward()
    with_grad = {name for name, p in policy.named_parameters() if p.grad is not None}
    assert with_grad == trainable_names(policy)
    assert any("value_head" in name for name in with_grad)
    if cfg.lora is not None:
        assert all("lora_" in name or "value_head" in name for name in with_grad)
        assert policy.uses_lora
    if cfg.quantization is not None:
        linear = policy.model.base_model.model.model.layers[0].self_attn.q_proj.base_layer
        assert isinstance(linear, bnb.nn.Linear4bit)
    if cfg.lora is None:
        assert len(with_grad) == len(list(policy.parameters()))
    if cfg.gradient_checkpointing:
        base = policy.model.get_base_model()
        assert getattr(base, "is_activation_checkpointing", None) or base.is_gradient_checkpointing


@pytest.mark.parametrize("profile_name", ["tiny-gpt2", "tiny-llama-4bit"])
def test_reference_equals_policy_at_init(profile_name, batch):
    policy = build_policy(load_profile(profile_name).model, with_value_head=False)
    with torch.no_grad():
        logits = policy(batch.input_ids, batch.attention_mask, logits_to_keep=4).logits
    ref_logits = policy.reference_logits(batch.input_ids, batch.attention_mask, logits_to_keep=4)
    ids = batch.input_ids
    torch.testing.assert_close(response_logprobs(logits, ids, 3), response_logprobs(ref_logits, ids, 3))


def test_reference_stays_put_when_policy_changes(batch):
    policy = build_policy(load_profile("tiny-llama-4bit").model, with_value_head=False)
    before = policy.reference_logits(batch.input_ids, batch.attention_mask)
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.add_(0.5)
        after_policy = policy(batch.input_ids, batch.attention_mask).logits
    torch.testing.assert_close(policy.reference_logits(batch.input_ids, batch.attention_mask), before)
    assert not torch.allclose(after_policy, before)


def test_left_padding_does_not_change_logits(tokenizer):
    policy = build_policy(load_profile("tiny-gpt2").model, with_value_head=False)
    alone = tokenizer(["The movie was"], return_tensors="pt")
    padded = tokenizer(["The movie was", "I think the acting is really good"], return_tensors="pt", padding=True)
    with torch.no_grad():
        a = policy(alone.input_ids, alone.attention_mask, logits_to_keep=1).logits[0]
        b = policy(padded.input_ids, padded.attention_mask, logits_to_keep=1).logits[0]
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_adapter_and_value_head_save_and_reload_identically(tmp_path, batch):
    cfg = load_profile("tiny-llama-4bit").model
    torch.manual_seed(1)
    policy = build_policy(cfg, with_value_head=True)
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.1)
    policy.save(tmp_path)
    assert (tmp_path / "adapter_config.json").exists() and (tmp_path / VALUE_HEAD_FILE).exists()
    reloaded = build_policy(cfg, with_value_head=True, adapter_dir=tmp_path)
    policy.eval(), reloaded.eval()
    with torch.no_grad():
        a = policy(batch.input_ids, batch.attention_mask)
        b = reloaded(batch.input_ids, batch.attention_mask)
    torch.testing.assert_close(a.logits, b.logits)
    torch.testing.assert_close(a.values, b.values)


def test_local_folder_loads_through_the_hub_path(tmp_path, tokenizer, batch):
    config = GPT2Config(n_layer=1, n_head=2, n_embd=32, vocab_size=len(tokenizer),
                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    GPT2LMHeadModel(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    cfg = ModelConfig(name_or_path=str(tmp_path), tokenizer=str(tmp_path))
    policy = build_policy(cfg, with_value_head=False)
    loaded_tokenizer = load_tokenizer(cfg.tokenizer)
    assert policy.model.config.n_embd == 32 and loaded_tokenizer.get_vocab() == tokenizer.get_vocab()
    out = policy.model.generate(**batch, max_new_tokens=3, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert out.shape[1] == batch.input_ids.shape[1] + 3


def test_missing_local_model_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="could not load model.name_or_path"):
        build_policy(ModelConfig(name_or_path=str(tmp_path / "missing")), with_value_head=False)


def test_quantization_without_lora_is_refused():
    cfg = load_profile("tiny-llama-4bit", ["model.lora=null"]).model
    with pytest.raises(ValueError, match="model.quantization needs model.lora"):
        build_policy(cfg, with_value_head=False)
