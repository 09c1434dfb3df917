"""GPU memory and time planning on paper: will a profile fit on a given GPU, and how long will a step take?

The estimate adds up what a run holds at its peak: the (quantised) weights, the trainable parameters with
their gradients and AdamW state, the reference model (none with LoRA), the KV cache while generating,
the logits of one minibatch, and activations (with or without gradient checkpointing). It is a plan,
not a measurement: it errs high on activations and adds a fixed CUDA context and allocator margin.

Activation formula: Korthikanti et al. 2022 (https://arxiv.org/abs/2205.05198), ``s*b*h*(34 + 5*a*s/h)``
bytes per transformer layer in 16-bit.

Time (:func:`estimate_step_time`) is a roofline estimate of one RL step: generation is one decode step per
new token, each bound by reading every weight or by ``2 * params`` FLOPs per sequence, whichever is slower;
scoring is a policy and a reference forward; the update is ``epochs`` passes of forward + backward
(``2 * params`` FLOPs per token per forward; the backward costs two forwards, checkpointing one more).
The device figures in :data:`A100_40GB` and :func:`cpu_device` are sustained rates, not peaks.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from rlhf.config import Profile

GIB = 1024**3
CUDA_CONTEXT_GIB = 1.0  # CUDA context, cuBLAS workspaces and allocator fragmentation
_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
_UNGATED_MLP = ("gpt2", "bert", "roberta", "xlm-roberta", "electra", "deberta", "deberta-v2")  # up + down only


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
LLAMA_3_70B = Architecture(vocab_size=128256, hidden_size=8192, intermediate_size=28672, num_layers=80,
                           num_heads=64, num_kv_heads=8, tie_embeddings=False, mlp_gated=True)
KNOWN = {  # so the big profiles can be planned offline
    "meta-llama/Meta-Llama-3-8B-Instruct": LLAMA_3_8B,
    "meta-llama/Meta-Llama-3-8B": LLAMA_3_8B,
    "meta-llama/Meta-Llama-3-70B-Instruct": LLAMA_3_70B,
    "meta-llama/Meta-Llama-3-70B": LLAMA_3_70B,
    "gpt2": Architecture(50257, 768, 3072, 12, 12, 12, True, False, learned_positions=1024),
    "distilbert/distilroberta-base": Architecture(50265, 768, 3072, 6, 12, 12, True, False),
}


def architecture_from_config(config: dict) -> Architecture:
    """From a transformers ``config.json`` (Llama-style or GPT-2-style key names)."""
    get = lambda *keys: next(config[k] for k in keys if config.get(k) is not None)  # noqa: E731
    hidden = get("hidden_size", "n_embd")
    heads = get("num_attention_heads", "n_head")
    gated = "intermediate_size" in config and config.get("model_type") not in _UNGATED_MLP
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


def reward_model_rows(profile: Profile) -> list[tuple[str, str, float, str]]:
    """The weights of the rewards' models (classifier, judge), resident on the device for the whole run.

    Sized from the known table or a local config.json; the reward-model stage's output is sized by its base
    model. Counted in fp32 unless the config says 16-bit (the classifier reward loads the saved dtype).
    """
    rows = []
    stage = profile.reward_model
    for index, spec in enumerate(profile.rewards):
        model = spec.options.get("model")
        if not isinstance(model, str):
            continue
        produced = stage is not None and Path(model).resolve() == Path(stage.output_dir).resolve()
        source = (stage.name_or_path or model) if produced else model
        config = _local_config(source)
        if source in KNOWN:
            arch, width = KNOWN[source], 4
        elif config is not None:
            try:
                arch = architecture_from_config(config)
            except (KeyError, StopIteration, TypeError):
                arch = None
            width = _BYTES.get(str(config.get("dtype") or config.get("torch_dtype")), 4)
        else:
            arch = None
        what = f"reward {index} model ({spec.name})"
        if arch is None:
            rows.append(("all", what, 0.0, f"{source}: size unknown (no config.json yet)"))
            continue
        params = arch.linear_params + arch.embedding_params
        rows.append(("all", what, params * width / GIB, f"{source}: {params / 1e6:.0f} M params x {width} bytes"))
    return rows


def _local_config(source: str) -> dict | None:
    path = Path(source).expanduser() / "config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, ValueError):
        return None


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


def plan_memory(profile: Profile, arch: Architecture, gpu_gib: float = 40.0, prompt_tokens: int = 64,
                gpus: int = 1) -> MemoryPlan:
    """Peak memory of one GPU in an RL run of ``profile`` on ``gpus`` GPUs, line by line.

    With ``trainer.strategy: fsdp`` the weights, gradients, optimizer states and a frozen reference are
    divided by ``gpus`` (zero on the GPU with ``cpu_offload``); what a GPU gathers to compute is not: the
    whole model during the rollout (``gather_for_generation``) or two blocks and the root at a time, and
    the KV cache, logits and activations of its own share of the batch. With ``ddp`` nothing is divided.
    """
    model, rollout, algo = profile.model, profile.rollout, profile.algo
    dtype_bytes = _BYTES[model.dtype]
    policy_forward, reference_forward = profile.rollout_forwards
    fsdp = profile.trainer.fsdp_options if profile.trainer.strategy == "fsdp" else None
    shards = gpus if fsdp is not None else 1
    offload = fsdp is not None and fsdp.cpu_offload
    where = "in CPU memory (cpu_offload)" if offload else (f"/ {shards} GPUs" if shards > 1 else "")
    held = 0.0 if offload else 1.0 / shards

    def row(what: str, gib: float, note: str) -> tuple[str, str, float, str]:
        return ("all", what, gib * held, f"{note} {where}".strip())

    seq = prompt_tokens + rollout.max_new_tokens
    weight_bytes = arch.linear_params * _weight_bytes_per_param(profile) + arch.embedding_params * dtype_bytes
    rows = [row("weights (linear layers)", arch.linear_params * _weight_bytes_per_param(profile) / GIB,
                f"{arch.linear_params / 1e9:.2f} B params"),
            row("weights (embeddings, lm_head)", arch.embedding_params * dtype_bytes / GIB, "kept in model.dtype")]
    if model.lora is not None:
        trainable = lora_params(arch, model.lora.r)
        rows.append(row("LoRA + grads + AdamW", trainable * 16 / GIB, f"{trainable / 1e6:.1f} M params x 16 bytes"))
        rows.append(("all", "reference model", 0.0, "adapters disabled: no copy"))
    else:
        trainable = arch.linear_params + arch.embedding_params
        rows.append(row("grads + AdamW", trainable * (dtype_bytes + 8) / GIB, "all weights trainable"))
        if reference_forward:
            rows.append(row("reference model", trainable * dtype_bytes / GIB, "frozen copy"))
        else:
            rows.append(("all", "reference model", 0.0, "KL coefficient 0: never loaded"))
    rows += reward_model_rows(profile)  # not sharded: each process scores its own completions
    rows.append(("all", "CUDA context + allocator margin", CUDA_CONTEXT_GIB, "fixed"))
    if fsdp is not None and shards > 1:
        rows += _gathered_rows(profile, arch, fsdp, shards, weight_bytes)
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


def _gathered_rows(profile: Profile, arch: Architecture, fsdp, shards: int, weight_bytes: float) -> list:
    """What FSDP all-gathers on each GPU: not divided by the GPU count."""
    model = profile.model
    gathered_bytes = weight_bytes
    if fsdp.param_dtype is not None:  # gathered in the compute dtype
        gathered_bytes = (arch.linear_params + arch.embedding_params) * _BYTES[fsdp.param_dtype]
    block = (gathered_bytes - arch.embedding_params * (_BYTES[fsdp.param_dtype or model.dtype])) / arch.num_layers
    root = gathered_bytes - block * arch.num_layers
    others = (shards - 1) / shards  # this GPU's own shard is already counted
    if fsdp.gather_for_generation:
        rollout = ("whole model gathered", gathered_bytes * others / GIB, "gather_for_generation: all blocks + root")
    else:
        rollout = ("blocks gathered", (2 * block + root) * others / GIB, "2 blocks (prefetch) + root, per token")
    rows = [(phase, *rollout) for phase in ("generate", "score")]
    rows.append(("update", "blocks gathered", (2 * block + root) * others / GIB, "2 blocks (prefetch) + root"))
    return rows


def gpus_needed(profile: Profile, arch: Architecture, gpu_gib: float, prompt_tokens: int = 64,
                counts: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)) -> int | None:
    """The fewest GPUs of ``gpu_gib`` the profile fits on (only FSDP divides memory), or None."""
    for n in counts if profile.trainer.strategy == "fsdp" else (1,):
        if plan_memory(profile, arch, gpu_gib, prompt_tokens, n).fits:
            return n
    return None


# ------------------------------------------------------------------------------------------------ time


@dataclass(frozen=True)
class Device:
    """Sustained throughput: matmul FLOP/s (16-bit on GPUs, fp32 on CPUs) and memory bytes/s."""

    name: str
    flops: float
    bandwidth: float


# 312 TFLOP/s bf16 peak at 35% utilisation (a typical training MFU); 1.55 TB/s HBM2 (40 GB model).
A100_40GB = Device("one A100-40GB", flops=312e12 * 0.35, bandwidth=1.555e12)
# bitsandbytes dequantises 4/8-bit weights to compute_dtype in every matmul: decoding runs several times
# slower than with 16-bit weights (the QLoRA paper's inference caveat); a factor, not a measurement.
QUANTISED_DECODE_SLOWDOWN = 3.0


def cpu_device() -> Device:
    """This machine's CPU: about 30 GFLOP/s fp32 per core (AVX2 FMA at ~1/3 of peak) and 10 GB/s of RAM."""
    cores = os.cpu_count() or 1
    return Device(f"this CPU ({cores} cores)", flops=cores * 30e9, bandwidth=10e9)


def system_memory_gib() -> float:
    """Physical RAM of this machine in GiB."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / GIB


@dataclass(frozen=True)
class StepTime:
    """Seconds per RL step by phase, on ``device``."""

    device: str
    generate_s: float
    score_s: float
    update_s: float

    @property
    def step_s(self) -> float:
        return self.generate_s + self.score_s + self.update_s

    def run_s(self, steps: int) -> float:
        return self.step_s * steps


def estimate_step_time(profile: Profile, arch: Architecture, device: Device, prompt_tokens: int = 64) -> StepTime:
    """Roofline seconds of one RL step of ``profile`` (see the module docstring for the model)."""
    rollout, algo = profile.rollout, profile.algo
    params = arch.linear_params + arch.embedding_params
    sequences = rollout.completions_per_step
    tokens = sequences * (prompt_tokens + rollout.max_new_tokens)
    weight_bytes = (arch.linear_params * _weight_bytes_per_param(profile)
                    + arch.embedding_params * _BYTES[profile.model.dtype])
    micro = rollout.micro_batch_size or sequences
    per_decode = max(weight_bytes / device.bandwidth, 2 * params * micro / device.flops)
    if profile.model.quantization is not None:
        per_decode *= QUANTISED_DECODE_SLOWDOWN
    generate = math.ceil(sequences / micro) * rollout.max_new_tokens * per_decode
    score = 2 * (2 * params * tokens) / device.flops  # policy (+ values) and reference forwards
    passes = 4 if profile.model.gradient_checkpointing else 3  # forward, backward = 2 forwards, recompute
    update = algo.epochs * passes * 2 * params * tokens / device.flops
    return StepTime(device.name, generate, score, update)


def format_duration(seconds: float) -> str:
    """``42 s``, ``3.5 min``, ``5.1 h`` or ``12 days``.

    >>> format_duration(42.0), format_duration(210.0), format_duration(18360.0), format_duration(1.1e6)
    ('42 s', '3.5 min', '5.1 h', '13 days')
    """
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


def time_summary(profile: Profile, arch: Architecture, prompt_tokens: int = 64, device: Device = A100_40GB) -> str:
    """One line: the estimated seconds per RL step by phase and the whole run's wall time on ``device``."""
    t = estimate_step_time(profile, arch, device, prompt_tokens)
    steps = profile.trainer.steps
    return (f"time (estimate) on {t.device}: about {format_duration(t.step_s)} per RL step (generate "
            f"{format_duration(t.generate_s)}, score {format_duration(t.score_s)}, update "
            f"{format_duration(t.update_s)}); {format_duration(t.run_s(steps))} for {steps} steps")
