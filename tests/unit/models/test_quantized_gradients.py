"""The 4-bit NF4 + LoRA path trains with the gradients a GPU would compute, before and after a rollout.

bitsandbytes repacks ``Linear4bit`` weights for CPU inference at the first eval-mode forward on CPUs with
AVX512-BF16; the repacked kernel has no backward, so LoRA gradients through frozen base layers vanished
after the first rollout (10 of 14 ``lora_B`` grads exactly zero, cosine 0.59 to the true gradient).
"""

import bitsandbytes as bnb
import bitsandbytes.nn.modules as bnb_modules
import pytest
import torch
from bitsandbytes.functional import dequantize_4bit

from rlhf.config import load_profile
from rlhf.models.factory import build_policy
from rlhf.models.tokenizer import load_tokenizer
from rlhf.rl.rollout import generate_rollouts

PROFILE = load_profile("tiny-llama-4bit")


@pytest.fixture(scope="module")
def batch():
    tokenizer = load_tokenizer(PROFILE.model.tokenizer)
    return tokenizer(["The movie was", "I think the acting is really"], return_tensors="pt", padding=True)


def lora_grads(policy, batch) -> dict[str, torch.Tensor]:
    """Gradients of every LoRA parameter for one fixed loss on ``batch``."""
    policy.zero_grad(set_to_none=True)
    policy.train()
    out = policy(batch.input_ids, batch.attention_mask, with_values=False)
    out.logits.float().log_softmax(-1).mean().backward()
    return {name: p.grad.detach().clone() for name, p in policy.named_parameters() if "lora_" in name}


def cosine(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    x = torch.cat([a[k].flatten() for k in sorted(a)])
    y = torch.cat([b[k].flatten() for k in sorted(a)])
    return float(torch.nn.functional.cosine_similarity(x, y, dim=0))


def build(seed: int = 0, **update):
    torch.manual_seed(seed)
    model = PROFILE.model.model_copy(update=update)
    return build_policy(model, with_value_head=False, seed=PROFILE.seed)


def test_repack_is_off_even_where_the_cpu_supports_it(monkeypatch):
    # Pretend this CPU has AVX512-BF16: every Linear4bit would then opt into the repack at construction.
    monkeypatch.setattr(bnb_modules, "has_avx512bf16", lambda: True)
    policy = build()
    layers = [m for m in policy.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(layers) == 14  # 2 layers x (q, k, v, o, gate, up, down)
    assert not any(layer.support_avx512bf16_for_cpu for layer in layers)


def test_lora_gradients_are_the_same_after_a_rollout(batch, monkeypatch):
    # Force the repack bitsandbytes would do on an AVX512-BF16 CPU, so the test bites on any machine
    # (without the fix: cosine 0.30 to the true gradient here).
    monkeypatch.setattr(bnb_modules, "has_avx512bf16", lambda: True)
    policy = build()
    with torch.no_grad():  # non-zero lora_B, so gradients reach lora_A and the base layers matter
        for name, p in policy.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    before = lora_grads(policy, batch)
    tokenizer = load_tokenizer(PROFILE.model.tokenizer)
    generate_rollouts(policy, tokenizer, ["The movie was", "A good film"], PROFILE.rollout, with_values=False)
    after = lora_grads(policy, batch)
    assert not any(getattr(m.weight.quant_state, "packing_format_for_cpu", False)
                   for m in policy.modules() if isinstance(m, bnb.nn.Linear4bit))
    for name in before:
        assert before[name].abs().sum() > 0, f"{name} has no gradient"
        torch.testing.assert_close(after[name], before[name], rtol=0, atol=0)


def test_lora_gradients_match_the_unquantised_model(batch):
    quantised = build()
    full = build(quantization=None)
    # The same LoRA weights in both, and the full model's base weights set to the dequantised 4-bit ones:
    # the only difference left is the kernel, so the gradients must agree to float precision.
    lora = {k: v for k, v in quantised.state_dict().items() if "lora_" in k}
    with torch.no_grad():
        for name, p in lora.items():
            p.normal_(0, 0.1)
    full.load_state_dict(lora, strict=False)
    fp32_grads = lora_grads(full, batch)  # against the original float weights
    q_layers = {n: m for n, m in quantised.named_modules() if isinstance(m, bnb.nn.Linear4bit)}
    f_layers = dict(full.named_modules())
    with torch.no_grad():
        for name, layer in q_layers.items():
            weight = dequantize_4bit(layer.weight.data, layer.weight.quant_state).float()
            f_layers[name].weight.copy_(weight)
    q_grads, deq_grads = lora_grads(quantised, batch), lora_grads(full, batch)
    for name in q_grads:
        torch.testing.assert_close(q_grads[name], deq_grads[name], rtol=1e-3, atol=1e-5)
    # NF4 rounding itself moves the gradient only a little from the float model's.
    assert cosine(q_grads, fp32_grads) > 0.9
