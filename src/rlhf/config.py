"""The typed profile: schema, loading with ``extends:``, ``--set`` overrides and readable errors.

A profile is YAML in ``profiles/`` (or any path) validated into one frozen :class:`Profile`. Every field
has a type, a default and a description. Errors raise :class:`ProfileError` naming the file, the key path,
the bad value and what was expected, with the nearest valid key for typos.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Dtype = Literal["float32", "bfloat16", "float16"]


class ProfileError(ValueError):
    """A profile that cannot be loaded: the message names the file, the key and the fix."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RandomInit(_Section):
    """Build the architecture from a config with random weights (tiny test and demo models)."""

    arch: Literal["gpt2", "llama", "bert"] = Field("gpt2", description="model family to build (bert: encoders)")
    n_layer: int = Field(2, ge=1, description="transformer blocks")
    n_head: int = Field(4, ge=1, description="attention heads")
    n_embd: int = Field(64, ge=8, description="hidden size")
    n_positions: int = Field(256, ge=16, description="maximum sequence length")
    n_kv_head: int | None = Field(None, ge=1, description="llama: key/value heads (default: n_head)")
    intermediate_size: int | None = Field(None, ge=8, description="llama: MLP width (default: 4 * n_embd)")

    @model_validator(mode="after")
    def _heads_divide(self) -> RandomInit:
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        return self


class Quantization(_Section):
    """bitsandbytes weight quantisation of the policy (QLoRA when combined with ``lora``)."""

    bits: Literal[4, 8] = Field(4, description="4 (NF4/FP4) or 8 (LLM.int8)")
    quant_type: Literal["nf4", "fp4"] = Field("nf4", description="4-bit data type")
    double_quant: bool = Field(True, description="also quantise the quantisation constants")
    compute_dtype: Dtype = Field("bfloat16", description="dtype of the matmuls on dequantised weights")


class Lora(_Section):
    """peft LoRA adapters; with LoRA the reference model is the policy with adapters disabled."""

    r: int = Field(16, ge=1, description="adapter rank")
    alpha: int = Field(32, ge=1, description="scaling numerator (scale = alpha / r)")
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="dropout on the adapter input")
    target_modules: Literal["all-linear"] | list[str] = Field("all-linear", description="modules to adapt")


class ModelConfig(_Section):
    """The policy model and its tokenizer."""

    name_or_path: str | None = Field(None, description="hub name or local folder (exclusive with random_init)")
    random_init: RandomInit | None = Field(None, description="build a random model from this config instead")
    tokenizer: str = Field("builtin-bpe", description="'builtin-bpe', a hub name or a local folder")
    dtype: Dtype = Field("float32", description="dtype of the non-quantised weights")
    quantization: Quantization | None = Field(None, description="bitsandbytes 4/8-bit loading")
    lora: Lora | None = Field(None, description="train LoRA adapters instead of all weights")
    gradient_checkpointing: bool = Field(False, description="recompute activations to save memory")
    trust_remote_code: bool = Field(False, description="allow custom model code from the hub")

    @model_validator(mode="after")
    def _one_source(self) -> ModelConfig:
        if (self.name_or_path is None) == (self.random_init is None):
            raise ValueError(
                "set exactly one of model.name_or_path and model.random_init "
                f"(got name_or_path={self.name_or_path!r}, random_init={self.random_init!r}); "
                "a profile that extends another can clear one with `null`"
            )
        return self

    @property
    def display_name(self) -> str:
        """A short filesystem-safe name for run folders, e.g. ``meta-llama_Meta-Llama-3-8B-Instruct``."""
        if self.random_init is not None:
            return f"random-{self.random_init.arch}"
        if Path(self.name_or_path).is_dir():  # a local folder: its own name, not the whole path
            return Path(self.name_or_path).resolve().name
        return self.name_or_path.strip("/").replace("/", "_")


class DataConfig(_Section):
    """Where prompts come from and how they are cut."""

    prompts: str | list[str] = Field(
        "builtin:review-openers",
        description="builtin:NAME, hf:NAME:SPLIT:COLUMN, or a local .jsonl/.csv/.parquet/.txt path (or a list)",
    )
    column: str | None = Field(None, description="column holding the prompt text in local files")
    query_tokens: tuple[int, int] | None = Field(None, description="keep the first lo..hi tokens (sampled)")
    min_prompt_tokens: int = Field(1, ge=1, description="drop prompts shorter than this")
    max_prompts: int | None = Field(None, ge=1, description="use at most this many prompts")
    token_limit: int | None = Field(None, ge=1, description="stop adding prompts past this many tokens")
    chat_template: bool = Field(False, description="wrap prompts with the tokenizer's chat template")
    system_prompt: str | None = Field(None, description="system message for chat templates")

    @field_validator("query_tokens")
    @classmethod
    def _ordered(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and not 1 <= value[0] <= value[1]:
            raise ValueError(f"query_tokens must be [lo, hi] with 1 <= lo <= hi, got {list(value)}")
        return value


class RolloutConfig(_Section):
    """Sampling of completions."""

    batch_size: int = Field(8, ge=1, description="prompts per step (completions = batch_size * num_generations)")
    num_generations: int = Field(1, ge=1, description="completions per prompt (the group size of GRPO/RLOO)")
    max_new_tokens: int = Field(16, ge=1, description="completion length cap")
    min_new_tokens: int = Field(0, ge=0, description="suppress EOS before this many tokens")
    temperature: float = Field(1.0, gt=0.0, description="sampling temperature")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="nucleus sampling mass")
    top_k: int = Field(0, ge=0, description="keep the k most likely tokens (0: off)")
    micro_batch_size: int | None = Field(None, ge=1, description="sequences per forward pass when scoring")
    sampler: Literal["generate", "lean"] = Field(
        "generate", description="'generate' (transformers) or 'lean' (our KV-cache loop: the same tokens, "
        "less per-token overhead on small models)")

    @property
    def completions_per_step(self) -> int:
        return self.batch_size * self.num_generations


class KLConfig(_Section):
    """KL regularisation toward the reference model."""

    estimator: str = Field("k1", description="k1, k2, k3 (sampled, from the chosen token) or full (exact, "
                                             "over the vocabulary; costs the reference's full logits)")
    direction: Literal["reverse", "forward"] = Field(
        "reverse", description="reverse KL(policy||ref) or forward KL(ref||policy); forward needs estimator full")
    coef: float = Field(0.05, ge=0.0, description="initial KL coefficient (beta)")
    target: float | None = Field(None, gt=0.0, description="target KL; set => adaptive controller")
    horizon: int = Field(10000, ge=1, description="adaptive controller horizon")

    @field_validator("estimator")
    @classmethod
    def _known_estimator(cls, value: str) -> str:
        from rlhf.algos import KL_ESTIMATORS

        if value.lower() != "full" and value not in KL_ESTIMATORS:
            raise ValueError(f"unknown KL estimator {value!r}; expected one of {[*KL_ESTIMATORS.names(), 'full']}")
        return value.lower()

    @model_validator(mode="after")
    def _forward_needs_full(self) -> KLConfig:
        if self.direction == "forward" and self.estimator != "full":
            raise ValueError(f"direction 'forward' needs estimator 'full' (got {self.estimator!r}): k1/k2/k3 "
                             "estimate the reverse KL from the sampled token; set algo.kl.estimator: full")
        return self

    @property
    def is_full(self) -> bool:
        return self.estimator == "full"


class AlgoConfig(_Section):
    """The policy-optimisation algorithm."""

    name: str = Field("ppo", description="advantage estimator: ppo, grpo or rloo")
    epochs: int = Field(4, ge=1, description="optimisation passes over each rollout batch")
    mini_batch_size: int = Field(8, ge=1, description="completions per optimiser step")
    clip_range: float = Field(0.2, gt=0.0, description="PPO ratio clip epsilon")
    clip_range_low: float | None = Field(None, gt=0.0, description="lower ratio clip (1 - low); default clip_range")
    clip_range_high: float | None = Field(
        None, gt=0.0, description="upper ratio clip (1 + high), DAPO's clip-higher e.g. 0.28; default clip_range")
    loss_type: str = Field("dapo", description="loss aggregation: grpo (per-sequence mean), bnpo (minibatch "
                                               "token mean), dapo (token mean over the accumulated batch), "
                                               "dr_grpo (sum / max_new_tokens)")
    scale_rewards: Literal["group", "batch", "none"] | None = Field(
        None, description="std normalisation of group advantages; default: grpo 'group', rloo 'none'")
    reward_scaling: Literal["none", "scale", "normalize"] = Field(
        "scale", description="divide scores by their running std (scale) and centre them (normalize) before "
                             "the advantage; TRL 0.7's use_score_scaling / use_score_norm")
    reward_clip: float | None = Field(None, gt=0.0, description="clip (scaled) scores to [-x, x]")
    whiten_rewards: bool = Field(False, description="PPO: per-token rewards to unit variance before GAE")
    clip_range_value: float = Field(0.2, gt=0.0, description="value clip epsilon (PPO)")
    vf_coef: float = Field(0.1, ge=0.0, description="value-loss weight (PPO)")
    entropy_coef: float = Field(0.0, ge=0.0, description="entropy bonus weight")
    gamma: float = Field(1.0, ge=0.0, le=1.0, description="discount")
    lam: float = Field(0.95, ge=0.0, le=1.0, description="GAE lambda")
    kl: KLConfig = Field(default_factory=KLConfig, description="KL regularisation")

    @field_validator("name")
    @classmethod
    def _known_algo(cls, value: str) -> str:
        from rlhf.algos import ADVANTAGE_ESTIMATORS

        if value not in ADVANTAGE_ESTIMATORS:
            raise ValueError(f"unknown algorithm {value!r}; expected one of {ADVANTAGE_ESTIMATORS.names()}")
        return value.lower()

    @field_validator("loss_type")
    @classmethod
    def _known_loss_type(cls, value: str) -> str:
        from rlhf.algos import LOSS_TYPES

        if value.lower() not in LOSS_TYPES:
            raise ValueError(f"unknown loss type {value!r}; expected one of {LOSS_TYPES.names()}")
        return value.lower()

    @property
    def needs_value_head(self) -> bool:
        from rlhf.algos import ADVANTAGE_ESTIMATORS

        return ADVANTAGE_ESTIMATORS.get(self.name).needs_value_head

    @property
    def clip_bounds(self) -> tuple[float, float]:
        """(low, high): the ratio is clipped to [1 - low, 1 + high]."""
        return (self.clip_range_low or self.clip_range, self.clip_range_high or self.clip_range)


class RewardSpec(BaseModel):
    """One reward term: a registry name or ``module:function``, a weight, and the reward's own options."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str = Field(description="registry name or module:function")
    weight: float = Field(1.0, description="weight in the sum of rewards")

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class FSDPConfig(_Section):
    """Options of ``trainer.strategy: fsdp`` (PyTorch FSDP2, ``fully_shard`` per transformer block)."""

    param_dtype: Literal["bfloat16", "float16"] | None = Field(
        None, description="FSDP mixed precision: all-gather and compute in this dtype, keep float32 shards and "
                          "reduce gradients in float32 (null: off; not with 4/8-bit weights)")
    cpu_offload: bool = Field(False, description="keep parameter shards, gradients and optimizer states in CPU "
                                                 "memory; the optimizer step runs on the CPU")
    reshard_after_forward: bool = Field(True, description="free each block's gathered weights after its forward "
                                                          "(ZeRO-3); false keeps them until backward (ZeRO-2)")
    gather_for_generation: bool = Field(
        True, description="gather the whole policy once per rollout for generate (fast; needs the full model's "
                          "memory); false: each block is gathered per forward, at every generated token")


class TrainerConfig(_Section):
    """The optimisation loop, checkpoints and logging."""

    steps: int = Field(20, ge=1, description="RL steps (one rollout batch each)")
    learning_rate: float = Field(1.41e-5, gt=0.0, description="AdamW learning rate")
    lr_scheduler: Literal["constant", "linear", "cosine"] = Field("constant", description="LR schedule")
    warmup_steps: int = Field(0, ge=0, description="linear warm-up optimiser steps")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay")
    grad_accum: int = Field(1, ge=1, description="minibatches accumulated per optimiser step")
    max_grad_norm: float | None = Field(1.0, gt=0.0, description="gradient clipping norm (null: off)")
    mixed_precision: Literal["no", "bf16", "fp16"] = Field("no", description="accelerate mixed precision")
    strategy: Literal["ddp", "fsdp"] = Field(
        "ddp", description="ddp: every process holds the whole model (accelerate); fsdp: parameters, gradients "
                           "and optimizer states sharded across processes (FSDP2)")
    fsdp: FSDPConfig | None = Field(None, description="options of strategy fsdp (defaults when null)")
    checkpoint_every: int = Field(100, ge=1, description="checkpoint every N steps (and at the end)")
    checkpoint_every_tokens: int | None = Field(
        None, ge=1, description="also checkpoint each time the generated tokens pass a multiple of N")
    keep_checkpoints: int = Field(2, ge=1, description="how many recent checkpoints to keep")
    sample_every: int = Field(50, ge=1, description="print sample completions every N steps")
    log_with: list[Literal["csv", "tensorboard", "wandb"]] = Field(
        default_factory=lambda: ["csv", "tensorboard"], description="metric sinks"
    )
    output_dir: str = Field("outputs", description="parent folder of run folders")
    eval_samples: int = Field(0, ge=0, description="prompts for the base-vs-tuned comparison at the end (0: off)")
    eval_best_of: int = Field(1, ge=1, description="also compare with the base model's best of N samples")
    nonfinite_rewards: Literal["error", "drop"] = Field(
        "error", description="a NaN/inf reward stops the run, or drops the sample and is counted"
    )
    wandb_project: str = Field("rlhf", description="W&B project when log_with includes wandb")
    wandb_run_name: str | None = Field(None, description="W&B run name (default: the run folder's name)")

    @model_validator(mode="after")
    def _fsdp_options_need_fsdp(self) -> TrainerConfig:
        if self.fsdp is not None and self.strategy != "fsdp":
            raise ValueError(f"trainer.fsdp is set but trainer.strategy is {self.strategy!r}: set "
                             "trainer.strategy: fsdp, or remove trainer.fsdp")
        return self

    @property
    def fsdp_options(self) -> FSDPConfig:
        return self.fsdp or FSDPConfig()


class RewardModelConfig(_Section):
    """Stage 1: train a reward model (``rlhf train-reward``)."""

    kind: Literal["pairwise", "classifier"] = Field("pairwise", description="Bradley-Terry pairs or a classifier")
    name_or_path: str | None = Field(None, description="base encoder: hub name or local folder")
    random_init: RandomInit | None = Field(None, description="or a random encoder built from this config")
    tokenizer: str = Field("builtin-bpe", description="the reward model's own tokenizer")
    data: str = Field("builtin:reviews-labelled", description="builtin:NAME, hf:NAME:SPLIT, or a local file")
    text_column: str = Field("text", description="text column (classifier data, or pairs built from labels)")
    label_column: str = Field("label", description="label column")
    chosen_column: str = Field("chosen", description="pairwise data: preferred text column")
    rejected_column: str = Field("rejected", description="pairwise data: dispreferred text column")
    prompt_column: str = Field("prompt", description="pairwise data: optional shared prompt, scored with each text")
    chosen_label: int = Field(1, description="pairs from labelled data: texts with this label are chosen")
    num_pairs: int = Field(2000, ge=1, description="pairs sampled from labelled data")
    num_labels: int = Field(2, ge=2, description="classifier: number of classes")
    eval_fraction: float = Field(0.1, gt=0.0, lt=1.0, description="held-out share for evaluation")
    epochs: float = Field(1.0, gt=0.0, description="training epochs")
    batch_size: int = Field(16, ge=1, description="per-device batch size")
    learning_rate: float = Field(1e-3, gt=0.0, description="learning rate (tiny random encoders need ~1e-3)")
    max_length: int = Field(64, ge=4, description="truncate texts to this many tokens")
    lora: Lora | None = Field(None, description="train LoRA adapters (task SEQ_CLS)")
    output_dir: str = Field("outputs/reward-model", description="where the trained model is saved")

    @model_validator(mode="after")
    def _one_source(self) -> RewardModelConfig:
        if (self.name_or_path is None) == (self.random_init is None):
            raise ValueError("set exactly one of reward_model.name_or_path and reward_model.random_init")
        return self


class PretrainConfig(_Section):
    """Causal-LM pretraining / SFT of the policy before RL (``rlhf pretrain``)."""

    corpus: str | list[str] = Field("builtin:reviews", description="builtin:NAME, hf:NAME:SPLIT:COLUMN or local files")
    text_column: str = Field("text", description="text column in local or hf data")
    dataset_fraction: float = Field(1.0, gt=0.0, le=1.0, description="use this share of the corpus")
    epochs: float = Field(1.0, gt=0.0, description="training epochs")
    batch_size: int = Field(32, ge=1, description="per-device batch size")
    grad_accum: int = Field(1, ge=1, description="gradient accumulation steps")
    learning_rate: float = Field(5e-4, gt=0.0, description="learning rate")
    max_length: int = Field(64, ge=4, description="block length in tokens")
    bf16: bool = Field(False, description="bfloat16 mixed precision (GPU)")
    eval_fraction: float = Field(0.1, gt=0.0, lt=1.0, description="held-out share for the eval loss")
    output_dir: str = Field("outputs/pretrained", description="where the model is saved")


DpoLoss = Literal["sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
                  "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm"]


class DpoConfig(_Section):
    """Preference optimisation without RL (``rlhf train-dpo``): TRL's DPOTrainer on the profile's model."""

    data: str = Field("builtin:review-pairs", description="pairwise data: builtin:NAME, hf:NAME:SPLIT or a local file")
    prompt_column: str = Field("prompt", description="prompt column (absent: TRL extracts the shared prefix)")
    chosen_column: str = Field("chosen", description="preferred completion column")
    rejected_column: str = Field("rejected", description="dispreferred completion column")
    max_pairs: int | None = Field(None, ge=2, description="use at most this many pairs (after shuffling)")
    eval_fraction: float = Field(0.1, gt=0.0, lt=1.0, description="held-out share for accuracy and margins")
    loss_type: list[DpoLoss] = Field(default_factory=lambda: ["sigmoid"], min_length=1,
                                     description="TRL loss(es): sigmoid = DPO, ipo = IPO, hinge = SLiC, ...")
    loss_weights: list[float] | None = Field(None, description="weights when combining several loss types")
    beta: float = Field(0.1, gt=0.0, description="deviation from the reference (IPO: the regulariser tau)")
    label_smoothing: float = Field(0.0, ge=0.0, lt=0.5, description="robust DPO / EXO label smoothing")
    epochs: float = Field(1.0, gt=0.0, description="training epochs")
    batch_size: int = Field(16, ge=1, description="pairs per device batch")
    grad_accum: int = Field(1, ge=1, description="gradient accumulation steps")
    learning_rate: float = Field(5e-6, gt=0.0, description="learning rate")
    max_length: int | None = Field(128, ge=4, description="truncate prompt + completion to this many tokens")
    output_dir: str = Field("outputs", description="parent folder of the run folder")

    @model_validator(mode="after")
    def _weights_match(self) -> DpoConfig:
        if self.loss_weights is not None and len(self.loss_weights) != len(self.loss_type):
            raise ValueError(f"dpo.loss_weights has {len(self.loss_weights)} entries but dpo.loss_type has "
                             f"{len(self.loss_type)}: give one weight per loss type")
        return self


class SftConfig(_Section):
    """Chat-format supervised fine-tuning (``rlhf sft``): TRL's SFTTrainer, loss on assistant turns only."""

    data: str = Field("builtin:chat-reviews", description="conversations (a `messages` column with roles)")
    messages_column: str = Field("messages", description="column holding the list of {role, content} turns")
    chat_template: str | None = Field(None, description="Jinja chat template (default: the tokenizer's, "
                                      "else a plain one with generation markers)")
    eval_fraction: float = Field(0.1, gt=0.0, lt=1.0, description="held-out share for the eval loss")
    epochs: float = Field(1.0, gt=0.0, description="training epochs")
    batch_size: int = Field(16, ge=1, description="per-device batch size")
    grad_accum: int = Field(1, ge=1, description="gradient accumulation steps")
    learning_rate: float = Field(2e-5, gt=0.0, description="learning rate")
    max_length: int = Field(128, ge=8, description="truncate conversations to this many tokens")
    output_dir: str = Field("outputs/sft", description="where the model and tokenizer are saved")


class _ProfileDumper(yaml.SafeDumper):
    """Strings holding a Unicode line break (NEL, LS, PS) are double-quoted, where YAML escapes them:
    written raw, the reader takes them for line breaks and the profile would not read back equal."""


def _represent_str(dumper: yaml.SafeDumper, value: str):
    style = '"' if any(c in value for c in "\x85\u2028\u2029") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_ProfileDumper.add_representer(str, _represent_str)


class Profile(_Section):
    """A complete, resolved run configuration."""

    description: str = Field("", description="one line shown by `rlhf profiles list`")
    seed: int = Field(0, description="seed for torch, python and sampling")
    model: ModelConfig = Field(description="policy model")
    data: DataConfig = Field(default_factory=DataConfig, description="prompts")
    rollout: RolloutConfig = Field(default_factory=RolloutConfig, description="sampling")
    algo: AlgoConfig = Field(default_factory=AlgoConfig, description="algorithm")
    rewards: list[RewardSpec] = Field(default_factory=list, description="reward terms (weighted sum)")
    trainer: TrainerConfig = Field(default_factory=TrainerConfig, description="loop, checkpoints, logging")
    reward_model: RewardModelConfig | None = Field(None, description="reward-model training (train-reward)")
    pretrain: PretrainConfig | None = Field(None, description="causal-LM pretraining (pretrain)")
    dpo: DpoConfig | None = Field(None, description="preference optimisation without RL (train-dpo)")
    sft: SftConfig | None = Field(None, description="chat-format supervised fine-tuning (sft)")

    @model_validator(mode="after")
    def _consistent(self) -> Profile:
        completions = self.rollout.completions_per_step
        if completions % self.algo.mini_batch_size:
            raise ValueError(
                f"algo.mini_batch_size ({self.algo.mini_batch_size}) must divide the completions per step "
                f"(rollout.batch_size * rollout.num_generations = {completions})"
            )
        if self.algo.name in ("grpo", "rloo") and self.rollout.num_generations < 2:
            raise ValueError(
                f"algo.name={self.algo.name!r} compares completions of the same prompt: "
                f"set rollout.num_generations >= 2 (got {self.rollout.num_generations})"
            )
        if self.trainer.fsdp_options.param_dtype and self.model.quantization is not None:
            raise ValueError(
                f"trainer.fsdp.param_dtype={self.trainer.fsdp_options.param_dtype} would cast the packed "
                f"{self.model.quantization.bits}-bit weights: remove it and use trainer.mixed_precision (autocast) "
                "with quantised models"
            )
        return self

    @property
    def optimizer_steps_per_step(self) -> int:
        """AdamW steps per RL step: ``epochs`` passes of ``grad_accum``-minibatch groups."""
        minibatches = math.ceil(self.rollout.completions_per_step / self.algo.mini_batch_size)
        return self.algo.epochs * math.ceil(minibatches / self.trainer.grad_accum)

    @property
    def rollout_forwards(self) -> tuple[bool, bool]:
        """Whether a rollout runs the policy forward and the reference forward (trainer and planner agree).

        With one optimiser step per batch every update forward sees the sampling-time weights, so its own
        detached log-probs are the old log-probs: the rollout's policy forward is only needed for values,
        a KL penalty in the reward or the exact (full-vocabulary) KL. A KL coefficient of 0 (which an
        adaptive controller keeps at 0) needs no reference forward, nor the frozen copy.
        """
        from rlhf.algos import ADVANTAGE_ESTIMATORS

        estimator = ADVANTAGE_ESTIMATORS.get(self.algo.name)
        reference = self.algo.kl.coef > 0
        policy = (self.optimizer_steps_per_step > 1 or estimator.needs_value_head
                  or (reference and (estimator.kl_in_reward or self.algo.kl.is_full)))
        return policy, reference

    def to_yaml(self) -> str:
        """The resolved profile as YAML that :func:`load_profile` reads back to an equal Profile."""
        return yaml.dump(self.model_dump(mode="json"), Dumper=_ProfileDumper, sort_keys=False, allow_unicode=True)


# ----------------------------------------------------------------------------------------------- loading


def profile_dirs() -> list[Path]:
    """Where profile names are looked up: ``$RLHF_PROFILES``, ``./profiles``, then the shipped folder."""
    dirs = [Path(p) for p in os.environ.get("RLHF_PROFILES", "").split(os.pathsep) if p]
    dirs.append(Path.cwd() / "profiles")
    dirs.append(Path(__file__).resolve().parents[2] / "profiles")  # the repository's, for editable installs
    seen, unique = set(), []
    for d in dirs:
        if d.resolve() not in seen and d.is_dir():
            seen.add(d.resolve())
            unique.append(d)
    return unique


def available_profiles() -> dict[str, Path]:
    """Profile name -> file, first directory wins."""
    found: dict[str, Path] = {}
    for d in profile_dirs():
        for path in sorted(d.glob("*.yaml")):
            found.setdefault(path.stem, path)
    return found


def resolve_profile_path(name_or_path: str | Path, relative_to: Path | None = None) -> Path:
    """A profile file from a name in ``profiles/`` or a path (relative paths also tried beside ``relative_to``)."""
    text = str(name_or_path)
    candidates = [Path(text)]
    if relative_to is not None:
        candidates.insert(0, relative_to.parent / text)
    if text.endswith((".yaml", ".yml")) or os.sep in text:
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        raise ProfileError(f"profile file not found: {text}")
    profiles = available_profiles()
    if text in profiles:
        return profiles[text]
    close = difflib.get_close_matches(text, profiles, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ProfileError(f"unknown profile {text!r}; available: {', '.join(profiles) or 'none'}.{hint}")


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ProfileError(f"{path}: invalid YAML: {exc}") from exc
    if data is None:
        raise ProfileError(f"{path}: the profile file is empty; a profile is a mapping of sections, e.g. "
                           "`extends: tiny-gpt2` followed by the keys it changes")
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: a profile must be a mapping of sections, got {type(data).__name__}")
    return data


def _merge(base: dict, child: dict, source: str, origins: dict[tuple, str], prefix: tuple = ()) -> dict:
    """Deep-merge ``child`` into a copy of ``base``; lists and scalars replace; record who set each key."""
    merged = dict(base)
    for key, value in child.items():
        path = (*prefix, key)
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value, source, origins, path)
        else:
            merged[key] = value
            origins[path] = source
    return merged


def _load_raw(path: Path, origins: dict[tuple, str], chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    resolved = path.resolve()
    if resolved in chain:
        cycle = " -> ".join(str(p) for p in (*chain, resolved))
        raise ProfileError(f"{path}: `extends` cycle: {cycle}")
    data = _read_yaml(path)
    parent_name = data.pop("extends", None)
    if parent_name is None:
        return _merge({}, data, str(path), origins)
    if not isinstance(parent_name, str):
        raise ProfileError(f"{path}: `extends` must be a profile name or path, got {parent_name!r}")
    try:
        parent_path = resolve_profile_path(parent_name, relative_to=path)
    except ProfileError as exc:
        raise ProfileError(f"{path}: extends {parent_name!r}: {exc}") from None
    parent = _load_raw(parent_path, origins, (*chain, resolved))
    return _merge(parent, data, str(path), origins)


def parse_override(text: str) -> tuple[tuple[str, ...], Any]:
    """``'algo.kl.coef=0.1'`` -> ``(('algo', 'kl', 'coef'), 0.1)``; the value is parsed as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip() or any(not part for part in key.strip().split(".")):
        raise ProfileError(f"--set {text!r}: expected section.key=value, e.g. --set trainer.steps=10")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ProfileError(f"--set {text!r}: value is not valid YAML: {exc}") from None
    return tuple(key.strip().split(".")), value


def _apply_override(data: dict, path: tuple[str, ...], value: Any, text: str) -> None:
    node: Any = data
    for depth, part in enumerate(path[:-1]):
        if isinstance(node, list):
            node = node[_list_index(node, part, text)]
            continue
        if not isinstance(node.get(part, {}), (dict, list)):
            raise ProfileError(f"--set {text!r}: {'.'.join(path[:depth + 1])} is not a section")
        node = node.setdefault(part, {})
    last = path[-1]
    if isinstance(node, list):
        node[_list_index(node, last, text)] = value
    else:
        node[last] = value


def _list_index(node: list, part: str, text: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ProfileError(f"--set {text!r}: {part!r} is not an index of a list of {len(node)} entries")
    return int(part)


def _schema_fields(loc: tuple) -> list[str]:
    """The valid field names of the section at ``loc`` (for typo suggestions)."""
    model: Any = Profile
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(part)
        if field is None:
            return []
        annotation = field.annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if model is None:  # e.g. list[RewardSpec]
            inner = [a for c in candidates for a in getattr(c, "__args__", ())]
            model = next((c for c in inner if isinstance(c, type) and issubclass(c, BaseModel)), None)
    return list(model.model_fields) if model is not None else []


def _origin(loc: tuple, origins: dict[tuple, str]) -> str:
    for n in range(len(loc), 0, -1):
        if loc[:n] in origins:
            return origins[loc[:n]]
    below = sorted({source for key, source in origins.items() if key[:len(loc)] == loc and len(key) > len(loc)})
    return " and ".join(below) if loc and below else "defaults"


_KEY_IN_MESSAGE = re.compile(r"\b([a-z_]+(?:\.[a-z_0-9]+)+)\b")


def _cross_field_origin(loc: tuple, message: str, origins: dict[tuple, str]) -> str:
    """Who set the keys a cross-field rule names (``algo.mini_batch_size (3) must divide ...``).

    A rule on a whole section has no single key, so the keys it names in its message say which files or
    ``--set`` overrides to blame; keys left at their defaults are not listed.
    """
    named = [tuple(key.split(".")) for key in _KEY_IN_MESSAGE.findall(message)]
    named = [key if key[0] in Profile.model_fields else (*loc, *key[1:]) for key in named]
    blamed = [f"{'.'.join(key)} from {where}" for key in dict.fromkeys(named)
              if (where := _origin(key, origins)) != "defaults"]
    return "; ".join(blamed) or _origin(loc, origins)


def _explain(exc: ValidationError, origins: dict[tuple, str]) -> str:
    lines = []
    for error in exc.errors():
        loc = tuple(str(p) if not isinstance(p, int) else p for p in error["loc"])
        loc = tuple(p for p in loc if p not in ("function-after", "tagged-union") and "[" not in str(p))
        key = ".".join(str(p) for p in loc) or "(profile)"
        where = _origin(loc, origins)
        if error["type"] == "extra_forbidden":
            valid = _schema_fields(loc[:-1])
            close = difflib.get_close_matches(str(loc[-1]), valid, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            lines.append(f"{where}: unknown key {key!r}.{hint} Valid keys here: {', '.join(valid)}")
        else:
            message = error["msg"].removeprefix("Value error, ")
            value = error.get("input")
            shown = "" if isinstance(value, dict) else f" (got {value!r})"
            if isinstance(value, dict) and error["type"] == "value_error":  # a rule across keys
                where = _cross_field_origin(loc, message, origins)
            lines.append(f"{where}: {key}: {message}{shown}")
    return "invalid profile:\n  " + "\n  ".join(lines)


# What `rlhf run --resume` may change: how long to go on, the learning rate and clipping (the usual fix for
# a diverged run; the trainer applies them on resume), logging and checkpoint cadence, reward handling.
# Everything else shapes the model, optimizer state, schedule or prompt stream saved in the checkpoint.
RESUMABLE_KEYS = (
    "description", "trainer.steps", "trainer.learning_rate", "trainer.max_grad_norm", "trainer.checkpoint_every",
    "trainer.checkpoint_every_tokens", "trainer.keep_checkpoints", "trainer.sample_every", "trainer.log_with",
    "trainer.eval_samples", "trainer.eval_best_of", "trainer.nonfinite_rewards",
)


def check_resume_overrides(overrides: list[str] | tuple[str, ...]) -> None:
    """``ProfileError`` for a ``--set`` that a resumed run cannot honour (it names what may change)."""
    for text in overrides:
        key = ".".join(parse_override(text)[0])
        if key not in RESUMABLE_KEYS:
            raise ProfileError(
                f"--resume with --set {text}: {key} is fixed by the checkpoint (model, optimizer, scheduler, "
                f"prompts and rewards are restored as saved); on resume only these may change: "
                f"{', '.join(RESUMABLE_KEYS)}. Start a new run to change {key}."
            )


def load_profile(name_or_path: str | Path = "tiny-gpt2", overrides: list[str] | tuple[str, ...] = ()) -> Profile:
    """Resolve ``extends``, apply ``--set`` overrides and validate into a :class:`Profile`."""
    path = resolve_profile_path(name_or_path)
    origins: dict[tuple, str] = {}
    data = _load_raw(path, origins)
    for text in overrides:
        key_path, value = parse_override(text)
        _apply_override(data, key_path, value, text)
        origins[key_path] = f"--set {text}"
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        raise ProfileError(_explain(exc, origins)) from None


def profile_description(path: Path) -> str:
    """The ``description:`` of a profile file, or its first comment line."""
    try:
        return str(_read_yaml(path).get("description", "")).strip()
    except ProfileError as exc:
        return f"(invalid: {exc})"
