"""GPU memory planning on paper: will a profile fit on a given GPU?

The estimate adds up what a run holds at its peak: the (quantised) weights, the trainable parameters with
their gradients and AdamW state, the reference model (none with LoRA), the KV cache while generating,
the logits of one minibatch, and activations (with or without gradient checkpointing). It is a plan,
not a measurement: it errs high on activations and adds a fixed CUDA context and allocator margin.

Activation formula: Korthikanti et al. 2022 (https://arxiv.org/abs/2205.05198), ``s*b*h*(34 + 5*a*s/h)``
bytes per transformer layer in 16-bit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rlhf.config import Profile

GIB = 1024**3
CUDA_CONTEXT_GIB = 1.0  # CUDA context, cuBLAS workspaces and allocator fragmentation
_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass(frozen=True)
class Architecture:
    """The shapes that decide memory; ``mlp_gated`` is True for Llama-style (gate, up, down) MLPs."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    tie_embeddings: bool
    mlp_gated: bool
    learned_positions: int = 0  # GPT-2's learned position embeddings (rotary models have none)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    def linear_shapes(self) -> list[tuple[int, int]]:
        """(in, out) of every linear layer in one transformer block."""
        h, kv = self.hidden_size, self.num_kv_heads * self.head_dim
        attention = [(h, h), (h, kv), (h, kv), (h, h)]
        mlp = [(h, self.intermediate_size)] * (2 if self.mlp_gated else 1) + [(self.intermediate_size, h)]
        return attention + mlp

    @property
    def linear_params(self) -> int:
        return self.num_layers * sum(i * o for i, o in self.linear_shapes())

    @property
    def embedding_params(self) -> int:
        tokens = self.vocab_size * (1 if self.tie_embeddings else 2) + self.learned_positions
        return tokens * self.hidden_size


LLAMA_3_8B = Architecture(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_layers=32,
                          num_heads=32, num_kv_heads=8, tie_embeddings=False, mlp_gated=True)
KNOWN = {  # so the big profiles can be planned offline
    "meta-llama/Meta-Llama-3-8B-Instruct": LLAMA_3_8B,
    "meta-llama/Meta-Llama-3-8B": LLAMA_3_8B,
    "gpt2": Architecture(50257, 768, 3072, 12, 12, 12, True, False, learned_positions=1024),
}


def architecture_from_config(config: dict) -> Architecture:
    """From a transformers ``config.json`` (Llama-style or GPT-2-style key names)."""
    get = lambda *keys: next(config[k] for k in keys if config.get(k) is not None)  # noqa: E731
    hidden = get("hidden_size", "n_embd")
    heads = get("num_attention_heads", "n_head")
    gated = "intermediate_size" in config and config.get("model_type") != "gpt2"
    return Architecture(
        vocab_size=get("vocab_size"), hidden_size=hidden,
        intermediate_size=config.get("intermediate_size") or config.get("n_inner") or 4 * hidden,
        num_layers=get("num_hidden_layers", "n_layer"), num_heads=heads,
        num_kv_heads=config.get("num_key_value_heads") or heads,
        tie_embeddings=config.get("tie_word_embeddings", True), mlp_gated=gated,
        learned_positions=config.get("n_positions") or 0 if config.get("model_type") == "gpt2" else 0,
    )


def resolve_architecture(profile: Profile) -> Architecture:
    """The policy's architecture: known hub models, a local folder's config.json, or the random-init spec."""
    model = profile.model
    if model.random_init is not None:
        from rlhf.models.factory import _architecture_config
        from rlhf.models.tokenizer import load_tokenizer

        config = _architecture_config(model.random_init, load_tokenizer(model.tokenizer), "causal-lm", 2)
        return architecture_from_config(config.to_dict())
    if model.name_or_path in KNOWN:
        return KNOWN[model.name_or_path]
    path = Path(model.name_or_path) / "config.json"
    if path.exists():
        return architecture_from_config(json.loads(path.read_text()))
    from transformers import AutoConfig

    try:
        return architecture_from_config(AutoConfig.from_pretrained(model.name_or_path).to_dict())
    except OSError as exc:
        raise ValueError(f"cannot read the config of model.name_or_path={model.name_or_path!r}: {exc}") from exc


@dataclass(frozen=True)
class MemoryPlan:
    """Rows of ``(phase, what, GiB, note)``; phase ``all`` is held throughout, the others one at a time."""

    rows: list[tuple[str, str, float, str]]
    gpu_gib: float

    def phase_gib(self, phase: str) -> float:
        return sum(gib for p, _, gib, _ in self.rows if p == phase)

    @property
    def peak_phase(self) -> str:
        return max(("generate", "score", "update"), key=self.phase_gib)

    @property
    def total_gib(self) -> float:
        """Peak: what is always held plus the largest phase."""
        return self.phase_gib("all") + self.phase_gib(self.peak_phase)

    @property
    def fits(self) -> bool:
        return self.total_gib <= self.gpu_gib


def _weight_bytes_per_param(profile: Profile) -> float:
    q = profile.model.quantization
    if q is None:
        return _BYTES[profile.model.dtype]
    if q.bits == 8:
        return 1.0 + 4 / 4096  # int8 weights + one fp32 scale per row (rows ~4096 wide)
    # NF4/FP4: 4 bits + one absmax per block of 64, fp32, or 8-bit with fp32 per 256 blocks (double quant)
    constants = (1 + 4 / 256) / 64 if q.double_quant else 4 / 64
    return 0.5 + constants


def lora_params(arch: Architecture, r: int) -> int:
    """LoRA A and B matrices on every linear layer of every block (``target_modules: all-linear``)."""
    return arch.num_layers * sum(r * (i + o) for i, o in arch.linear_shapes())


def plan_memory(profile: Profile, arch: Architecture, gpu_gib: float = 40.0, prompt_tokens: int = 64) -> MemoryPlan:
    """Peak GPU memory of an RL run of ``profile`` on one GPU, line by line."""
    model, rollout, algo = profile.model, profile.rollout, profile.algo
    dtype_bytes = _BYTES[model.dtype]
    policy_forward, reference_forward = profile.rollout_forwards
    seq = prompt_tokens + rollout.max_new_tokens
    rows = [("all", "weights (linear layers)", arch.linear_params * _weight_bytes_per_param(profile) / GIB,
             f"{arch.linear_params / 1e9:.2f} B params"),
            ("all", "weights (embeddings, lm_head)", arch.embedding_params * dtype_bytes / GIB, "kept in model.dtype")]
    if model.lora is not None:
        trainable = lora_params(arch, model.lora.r)
        rows.append(("all", "LoRA + grads + AdamW", trainable * 16 / GIB, f"{trainable / 1e6:.1f} M params x 16 bytes"))
        rows.append(("all", "reference model", 0.0, "adapters disabled: no copy"))
    else:
        trainable = arch.linear_params + arch.embedding_params
        rows.append(("all", "grads + AdamW", trainable * (dtype_bytes + 8) / GIB, "all weights trainable"))
        if reference_forward:
            rows.append(("all", "reference model", trainable * dtype_bytes / GIB, "frozen copy"))
        else:
            rows.append(("all", "reference model", 0.0, "KL coefficient 0: never loaded"))
    rows.append(("all", "CUDA context + allocator margin", CUDA_CONTEXT_GIB, "fixed"))
    micro = rollout.micro_batch_size or rollout.completions_per_step
    kv = 2 * arch.num_layers * arch.num_kv_heads * arch.head_dim * seq * micro * 2
    rows.append(("generate", "KV cache", kv / GIB, f"{micro} sequences x {seq} tokens"))
    logits = (rollout.max_new_tokens + 1) * arch.vocab_size * 4
    scored = [name for name, runs in zip(("policy", "reference"), (policy_forward, reference_forward)) if runs]
    rows.append(("score", f"logits ({', '.join(scored) or 'no forward: skipped'})", len(scored) * micro * logits / GIB,
                 f"{micro} sequences, fp32 + log-softmax"))
    mini = algo.mini_batch_size
    rows.append(("update", "logits", 3 * mini * logits / GIB, f"{mini} sequences, fp32 + log-softmax + grad"))
    per_layer = seq * mini * arch.hidden_size * (34 + 5 * arch.num_heads * seq / arch.hidden_size)
    if model.gradient_checkpointing:
        activations = arch.num_layers * seq * mini * arch.hidden_size * 2 + per_layer
        note = "checkpointed block inputs + one block"
    else:
        activations, note = arch.num_layers * per_layer, "every block's activations"
    rows.append(("update", "activations", activations / GIB, note))
    return MemoryPlan(rows, gpu_gib)
