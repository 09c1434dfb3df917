"""The model factory: policy (+ value head) and reference from a profile, for every profile.

A tiny ``random_init`` model is built from a config, saved to the cache folder and loaded back through
``from_pretrained``, so tiny and hub models share one loading path: dtype, bitsandbytes 4/8-bit,
``prepare_model_for_kbit_training``, peft LoRA and gradient checkpointing.

With LoRA the reference model is the policy with its adapters disabled (no second copy in memory);
without LoRA it is a frozen copy, loaded on first use. :meth:`Policy.reference_logits` hides which.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from rlhf.config import ModelConfig, RandomInit
from rlhf.fsutil import atomic_directory
from rlhf.models.layers import check_model_options
from rlhf.models.policy import VALUE_HEAD_FILE, Policy, ValueHead
from rlhf.models.tokenizer import cache_dir, load_tokenizer

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
Task = Literal["causal-lm", "seq-cls"]


# ------------------------------------------------------------------------------------ random-init models


def _architecture_config(spec: RandomInit, tokenizer, task: Task, num_labels: int):
    from transformers import BertConfig, GPT2Config, LlamaConfig

    ids = dict(bos_token_id=tokenizer.bos_token_id or tokenizer.eos_token_id,
               eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    common = dict(vocab_size=len(tokenizer), num_labels=num_labels, **ids)
    if spec.arch == "gpt2":
        return GPT2Config(n_layer=spec.n_layer, n_head=spec.n_head, n_embd=spec.n_embd,
                          n_positions=spec.n_positions, **common)
    if spec.arch == "llama":
        return LlamaConfig(
            num_hidden_layers=spec.n_layer, num_attention_heads=spec.n_head, hidden_size=spec.n_embd,
            num_key_value_heads=spec.n_kv_head or spec.n_head, max_position_embeddings=spec.n_positions,
            intermediate_size=spec.intermediate_size or 4 * spec.n_embd, tie_word_embeddings=False, **common,
        )
    if task == "causal-lm":
        raise ValueError("random_init.arch 'bert' is an encoder: use it for reward models, not policies")
    return BertConfig(num_hidden_layers=spec.n_layer, num_attention_heads=spec.n_head, hidden_size=spec.n_embd,
                      intermediate_size=spec.intermediate_size or 4 * spec.n_embd,
                      max_position_embeddings=spec.n_positions, **common)


def materialize_random_model(spec: RandomInit, tokenizer_name: str, *, seed: int = 0,
                             task: Task = "causal-lm", num_labels: int = 2) -> Path:
    """Build a random model from ``spec`` once, save it (with its tokenizer) to the cache; return the folder.

    The folder is keyed by everything that changes the weights, so the same profile always loads the same
    model, through the same ``from_pretrained`` path a hub model takes.
    """
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    tokenizer = load_tokenizer(tokenizer_name, require_eos=task == "causal-lm")  # encoders may have no EOS
    key = json.dumps([spec.model_dump(), tokenizer_name, len(tokenizer), seed, task, num_labels], sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    target = cache_dir() / "models" / f"random-{spec.arch}-{task}-{digest}"
    if (target / "config.json").exists():
        return target
    config = _architecture_config(spec, tokenizer, task, num_labels)
    auto = AutoModelForCausalLM if task == "causal-lm" else AutoModelForSequenceClassification
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = auto.from_config(config)
    with atomic_directory(target) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return target


# --------------------------------------------------------------------------------------------- factory


def _quantization_config(cfg: ModelConfig, quant_storage: torch.dtype | None = None):
    from transformers import BitsAndBytesConfig

    q = cfg.quantization
    if q.bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    storage = {"bnb_4bit_quant_storage": quant_storage} if quant_storage is not None else {}
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=q.quant_type,
                              bnb_4bit_use_double_quant=q.double_quant,
                              bnb_4bit_compute_dtype=_DTYPES[q.compute_dtype], **storage)


def load_causal_lm(path: str | Path, cfg: ModelConfig, device: torch.device | None = None,
                   quant_storage: torch.dtype | None = None) -> nn.Module:
    """``AutoModelForCausalLM.from_pretrained`` with the profile's dtype and quantisation.

    ``quant_storage``: the dtype the packed 4-bit weights are stored in (default uint8). FSDP shards every
    block's parameters as one flat group of a single dtype, so a sharded QLoRA stores them as float32
    (the dtype of LoRA and the norms after ``prepare_model_for_kbit_training``): FSDP-QLoRA.
    """
    from transformers import AutoModelForCausalLM

    kwargs: dict = {"dtype": _DTYPES[cfg.dtype], "trust_remote_code": cfg.trust_remote_code}
    if cfg.quantization is not None:
        kwargs["quantization_config"] = _quantization_config(cfg, quant_storage)
        # Quantised weights are placed at load time; a later .to(device) is not allowed for them.
        kwargs["device_map"] = {"": device if device is not None else "cpu"}
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
    except OSError as exc:
        raise ValueError(
            f"could not load model.name_or_path={str(path)!r}: {exc}. Give a local folder with config.json "
            "and weights, or a hub name (needs network access and, for gated models, `hf auth login`)."
        ) from exc
    if cfg.quantization is not None:
        keep_4bit_trainable_on_cpu(model)
    return model


def keep_4bit_trainable_on_cpu(model: nn.Module) -> int:
    """Stop bitsandbytes repacking 4-bit weights for CPU inference; returns the number of layers touched.

    On CPUs with AVX512-BF16, ``Linear4bit`` repacks its weight into a CPU-only layout (absmax in bf16) at
    its first eval-mode forward without grad, e.g. the rollout's ``generate``. From then on every call,
    training included, goes to ``gemv_4bit``, which has no backward: LoRA gradients flowing through the
    frozen base layers are silently dropped, and the bf16 absmax changes the numbers a GPU would compute.
    With the repack off, CPU computes what the GPU kernels compute, gradients included (tested).
    """
    import bitsandbytes as bnb

    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    for layer in layers:
        layer.support_avx512bf16_for_cpu = False
    return len(layers)


def prepare_for_adapters(model: nn.Module, cfg: ModelConfig) -> nn.Module:
    """Get a loaded base model ready for LoRA training: k-bit preparation or input grads for checkpointing."""
    from peft import prepare_model_for_kbit_training

    if cfg.quantization is not None:  # fp32 norms, input grads and checkpointing for k-bit training
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=cfg.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    elif cfg.gradient_checkpointing:
        model.enable_input_require_grads()  # LoRA on frozen embeddings: checkpointed blocks need grad inputs
    return model


def lora_config(cfg: ModelConfig, model: nn.Module):
    """The peft ``LoraConfig`` of the profile's ``model.lora`` (causal LM) for ``model``."""
    from peft import LoraConfig

    from transformers.pytorch_utils import Conv1D

    lora = cfg.lora
    # GPT-2 stores its linear layers as Conv1D (weight transposed): tell LoRA so, rather than let peft guess.
    conv1d = any(isinstance(m, Conv1D) for m in model.modules())
    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, fan_in_fan_out=conv1d,
                      target_modules=lora.target_modules, task_type="CAUSAL_LM", bias="none")


def _add_adapters(model: nn.Module, cfg: ModelConfig, adapter_dir: str | Path | None) -> nn.Module:
    """Wrap ``model`` with new LoRA adapters, or with the ones saved in ``adapter_dir`` (trainable)."""
    from peft import PeftModel, get_peft_model

    model = prepare_for_adapters(model, cfg)
    if adapter_dir is not None:
        return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=True)
    return get_peft_model(model, lora_config(cfg, model))


def model_source(cfg: ModelConfig, seed: int = 0) -> Path | str:
    """The folder or hub name the policy is loaded from (materialising a random model if needed)."""
    if cfg.random_init is not None:
        return materialize_random_model(cfg.random_init, cfg.tokenizer, seed=seed)
    return cfg.name_or_path


def build_policy(cfg: ModelConfig, *, with_value_head: bool, seed: int = 0,
                 device: torch.device | None = None, adapter_dir: str | Path | None = None,
                 quant_storage: torch.dtype | None = None) -> Policy:
    """The policy for a profile's ``model`` section; ``adapter_dir`` restores saved LoRA/value-head weights."""
    if cfg.quantization is not None and cfg.lora is None:
        raise ValueError("model.quantization needs model.lora: quantised weights cannot be trained directly")
    source = model_source(cfg, seed)
    check_model_options(cfg, source)  # before the weights load: a wrong LoRA target or quantisation fails fast
    if adapter_dir is not None and cfg.lora is None:
        source = adapter_dir  # a full fine-tuned model was saved there
    model = load_causal_lm(source, cfg, device, quant_storage)
    model.config.use_cache = False
    if cfg.gradient_checkpointing and cfg.quantization is None:
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5 name
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    ref_model = None
    if cfg.lora is not None:
        model = _add_adapters(model, cfg, adapter_dir)
    else:
        def ref_model() -> nn.Module:  # loaded on first use: never, when the KL coefficient is 0
            ref = load_causal_lm(model_source(cfg, seed), cfg, device).eval().requires_grad_(False)
            return ref.to(device) if device is not None and cfg.quantization is None else ref
    value_head = None
    if with_value_head:
        value_head = ValueHead(model.config.hidden_size if hasattr(model.config, "hidden_size")
                               else model.get_output_embeddings().in_features)
        if adapter_dir is not None and (Path(adapter_dir) / VALUE_HEAD_FILE).exists():
            from safetensors.torch import load_file

            value_head.load_state_dict(load_file(str(Path(adapter_dir) / VALUE_HEAD_FILE)))
        if device is not None:
            value_head.to(device)
    if device is not None and cfg.quantization is None:
        model.to(device)
    return Policy(model, value_head, ref_model, uses_lora=cfg.lora is not None)


def merge_lora(cfg: ModelConfig, adapter_dir: str | Path, seed: int = 0) -> nn.Module:
    """The base model in ``cfg.dtype`` (never quantised) with the saved LoRA adapter merged into its weights.

    Merging into 4-bit weights would round the adapter away, so the base is reloaded unquantised, as
    QLoRA users do before publishing a merged model.
    """
    from peft import PeftModel

    base = load_causal_lm(model_source(cfg, seed), cfg.model_copy(update={"quantization": None}))
    return PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
