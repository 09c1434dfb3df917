"""Which layers a model has, read before its weights load: LoRA targets and what bitsandbytes can quantise.

The model is built from its config on the ``meta`` device (no memory, no weights), so a wrong
``model.lora.target_modules`` or an architecture bitsandbytes cannot quantise is reported up front, with
the names the user can choose from, instead of peft's or the quantiser's message minutes later.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from rlhf.config import ModelConfig


@dataclass(frozen=True)
class Layers:
    """Qualified names of the model's ``nn.Linear`` and transformers ``Conv1D`` layers (output head excluded)."""

    linear: list[str]
    conv1d: list[str]

    @property
    def adaptable(self) -> list[str]:
        """Short names LoRA can target (peft adapts both kinds), e.g. ``['q_proj', 'k_proj', ...]``."""
        return list(dict.fromkeys(name.rsplit(".", 1)[-1] for name in self.linear + self.conv1d))


def model_layers(config) -> Layers:
    """The :class:`Layers` of the causal LM that ``config`` (a transformers config) describes."""
    from transformers import AutoModelForCausalLM
    from transformers.pytorch_utils import Conv1D

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    head = model.get_output_embeddings()
    linear, conv1d = [], []
    for name, module in model.named_modules():
        if module is head:
            continue  # peft's all-linear skips the output layer too
        if isinstance(module, nn.Linear):
            linear.append(name)
        elif isinstance(module, Conv1D):
            conv1d.append(name)
    return Layers(linear, conv1d)


def context_length(config) -> int | None:
    """Positions the model can attend to (``max_position_embeddings`` or GPT-2's ``n_positions``)."""
    for key in ("max_position_embeddings", "n_positions"):
        if isinstance(getattr(config, key, None), int):
            return getattr(config, key)
    return None


def lora_target_matches(target: str, name: str) -> bool:
    """peft's rule for a list entry: the module's full name or its last dotted parts equal ``target``."""
    return name == target or name.endswith(f".{target}")


def check_model_options(cfg: ModelConfig, source) -> None:
    """``ValueError`` for quantisation bitsandbytes cannot apply or LoRA targets that match no layer.

    ``source`` is the folder or hub name the model loads from; only its config is read.
    """
    if cfg.quantization is None and (cfg.lora is None or cfg.lora.target_modules == "all-linear"):
        return
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(str(source), trust_remote_code=cfg.trust_remote_code)
    except OSError:
        return  # unreadable source: loading the model reports it with the fix
    layers = model_layers(config)
    kind = getattr(config, "model_type", type(config).__name__)
    if cfg.quantization is not None and not layers.linear:
        raise ValueError(
            f"model.quantization (bits: {cfg.quantization.bits}) cannot apply to this {kind} model: bitsandbytes "
            f"quantises torch.nn.Linear layers only, and its layers ({', '.join(layers.adaptable)}) are "
            "transformers Conv1D, so nothing would be quantised. Remove model.quantization, or use a model "
            "built from nn.Linear layers (e.g. model.random_init.arch: llama)."
        )
    if cfg.lora is None or cfg.lora.target_modules == "all-linear":
        return
    targets = cfg.lora.target_modules
    names = layers.linear + layers.conv1d
    unmatched = [t for t in targets if not any(lora_target_matches(t, name) for name in names)]
    if not targets or unmatched:
        what = "is empty" if not targets else f"names {unmatched}, which match no layer"
        raise ValueError(
            f"model.lora.target_modules {what}; this {kind} model's linear layers are "
            f"{layers.adaptable}. Name some of them, or use target_modules: all-linear."
        )
