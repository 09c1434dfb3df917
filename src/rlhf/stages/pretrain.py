"""Causal-LM pretraining / SFT of the policy before RL (``rlhf pretrain``).

The architecture is the profile's ``model`` section (a random init or a hub/local model); the corpus is
``pretrain.corpus``, one or several sources read with :func:`rlhf.data.load_records`. Documents are
shuffled with the profile seed, cut to ``dataset_fraction``, and split into train and held-out
*documents* (``eval_fraction``) before packing, so no held-out text leaks into training blocks.

Packing: each document is tokenized with EOS appended, the documents are concatenated and cut into
blocks of exactly ``max_length`` tokens (the remainder is dropped), GPT-style. There is no padding, so
every token counts in the loss. Training uses transformers' ``Trainer`` with float32 master weights
(bf16 autocast only when ``pretrain.bf16``); all weights are trained, so ``model.lora`` and
``model.dtype`` only apply to the later RL stage. The output folder (model, tokenizer and
``pretrain_metrics.json``, TensorBoard events in ``tensorboard/``) works as a later profile's
``model.name_or_path`` and ``model.tokenizer``.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path

import torch

from rlhf.config import PretrainConfig, Profile
from rlhf.data import load_records, parse_source
from rlhf.models.factory import model_source
from rlhf.stages.reward_model import quiet_progress, quiet_trainer
from rlhf.fsutil import atomic_directory
from rlhf.models.tokenizer import cache_dir, load_tokenizer
from rlhf.tracking import tensorboard_callback

METRICS_FILE = "pretrain_metrics.json"


@dataclass
class PretrainResult:
    output_dir: Path
    metrics: dict[str, float | int]


def pretrain(profile: Profile, console=None) -> PretrainResult:
    """Train ``profile.model`` on ``profile.pretrain.corpus`` and save it to ``pretrain.output_dir``.

    Metrics: ``eval_loss_before``, ``eval_loss_after`` (mean token cross-entropy on the held-out blocks),
    ``train_loss``, ``tokens`` (tokens in the packed training set, one epoch) and ``train_seconds``.
    """
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments, default_data_collator

    cfg = profile.pretrain
    if cfg is None:
        raise ValueError("the profile has no `pretrain:` section; add one, e.g. `pretrain: {corpus: builtin:reviews}`")
    _check_supported(profile)
    with quiet_progress(console is None):
        tokenizer = load_tokenizer(profile.model.tokenizer, padding_side="right")
        source = model_source(profile.model, profile.seed)
        model = AutoModelForCausalLM.from_pretrained(str(source), dtype=torch.float32,
                                                     trust_remote_code=profile.model.trust_remote_code)
        _check_length(cfg, model)
        train_texts, eval_texts = _load_corpus(cfg, profile.seed)
        train_blocks = pack_blocks(_token_ids(tokenizer, train_texts), cfg.max_length)
        eval_blocks = pack_blocks(_token_ids(tokenizer, eval_texts), cfg.max_length)
        _check_blocks(cfg, train_blocks, eval_blocks)
        args = TrainingArguments(
            output_dir=str(cfg.output_dir), num_train_epochs=cfg.epochs, per_device_train_batch_size=cfg.batch_size,
            per_device_eval_batch_size=cfg.batch_size, gradient_accumulation_steps=cfg.grad_accum,
            learning_rate=cfg.learning_rate, bf16=cfg.bf16, use_cpu=not torch.cuda.is_available(),
            seed=profile.seed, data_seed=profile.seed, report_to=[], save_strategy="no", eval_strategy="no",
            logging_strategy="steps", logging_steps=10, disable_tqdm=console is None,
        )
        model.config.use_cache = False
        trainer = quiet_trainer(Trainer(model=model, args=args, train_dataset=_dataset(train_blocks),
                                        eval_dataset=_dataset(eval_blocks), data_collator=default_data_collator,
                                        callbacks=[tensorboard_callback(Path(cfg.output_dir) / "tensorboard")]),
                                console)
        eval_loss_before = trainer.evaluate()["eval_loss"]
        output = trainer.train()
        eval_loss_after = trainer.evaluate()["eval_loss"]
        metrics = {"eval_loss_before": eval_loss_before, "eval_loss_after": eval_loss_after,
                   "train_loss": output.training_loss, "tokens": len(train_blocks) * cfg.max_length,
                   "train_seconds": output.metrics["train_runtime"]}
        model.config.use_cache = True
        output_dir = Path(cfg.output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(output_dir)
        tokenizer.save_pretrained(output_dir)
    report = {"metrics": metrics, "model_source": str(source), "seed": profile.seed,
              "config": cfg.model_dump(mode="json")}
    (output_dir / METRICS_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return PretrainResult(output_dir, metrics)


def pack_blocks(token_ids: list[list[int]], block_length: int) -> list[list[int]]:
    """Concatenate the documents and cut ``block_length`` blocks; the incomplete tail is dropped.

    >>> pack_blocks([[1, 2, 3], [4, 5], [6, 7, 8]], 3)
    [[1, 2, 3], [4, 5, 6]]
    """
    stream = [token for ids in token_ids for token in ids]
    return [stream[i:i + block_length] for i in range(0, len(stream) - block_length + 1, block_length)]


def _token_ids(tokenizer, texts: list[str]) -> list[list[int]]:
    """Each text's ids with EOS appended, so the model learns where a document ends."""
    eos = tokenizer.eos_token_id
    return [ids if ids[-1:] == [eos] else ids + [eos] for ids in tokenizer(texts)["input_ids"]]


def _dataset(blocks: list[list[int]]):
    from datasets import Dataset

    # Packed blocks have no padding: the labels are the inputs (the model shifts them).
    return Dataset.from_dict({"input_ids": blocks, "attention_mask": [[1] * len(b) for b in blocks],
                              "labels": blocks})


def _load_corpus(cfg: PretrainConfig, seed: int) -> tuple[list[str], list[str]]:
    """``(train_texts, eval_texts)``: all sources, shuffled, cut to ``dataset_fraction``, then split."""
    sources = [cfg.corpus] if isinstance(cfg.corpus, str) else list(cfg.corpus)
    texts = []
    for source in sources:
        column = parse_source(source).column or cfg.text_column
        texts += [str(r[column]) for r in load_records(source, [column]) if str(r[column]).strip()]
    random.Random(seed).shuffle(texts)
    texts = texts[:max(1, math.ceil(cfg.dataset_fraction * len(texts)))]
    if len(texts) < 2:
        raise ValueError(f"pretrain.corpus={cfg.corpus!r} (with dataset_fraction={cfg.dataset_fraction}) "
                         f"gives {len(texts)} non-empty text(s); at least 2 are needed for a held-out split")
    n_eval = min(len(texts) - 1, max(1, math.ceil(cfg.eval_fraction * len(texts))))
    return texts[n_eval:], texts[:n_eval]


def _check_supported(profile: Profile) -> None:
    if profile.pretrain.bf16 and not (torch.cuda.is_available() and torch.cuda.is_bf16_supported()):
        raise ValueError(
            "pretrain.bf16=true needs a GPU with bfloat16 support (e.g. Ampere or newer), and this machine has "
            "none; set pretrain.bf16=false (--set pretrain.bf16=false)"
        )
    if profile.model.quantization is not None:
        raise ValueError("pretraining trains every weight, which quantised weights do not allow: "
                         "remove model.quantization for `rlhf pretrain` (--set model.quantization=null)")


def _check_length(cfg: PretrainConfig, model) -> None:
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit is not None and cfg.max_length > limit:
        raise ValueError(f"pretrain.max_length={cfg.max_length} exceeds the model's {limit} positions; "
                         f"set pretrain.max_length <= {limit}")


def _check_blocks(cfg: PretrainConfig, train_blocks: list, eval_blocks: list) -> None:
    for name, blocks in (("training", train_blocks), ("held-out", eval_blocks)):
        if not blocks:
            raise ValueError(
                f"the {name} split of pretrain.corpus={cfg.corpus!r} has fewer tokens than one block of "
                f"pretrain.max_length={cfg.max_length}: lower max_length, raise eval_fraction or use more data"
            )


# Keys of `model:` that only the later stages use, with the values pretraining runs with.
RL_ONLY_MODEL_KEYS = {"quantization": None, "lora": None, "gradient_checkpointing": False}


def pretrained_dir(profile: Profile) -> Path:
    """The cache folder of ``profile``'s pretrained model, keyed by what the pretraining depends on only.

    The key covers the architecture (random init or starting folder), the tokenizer, the pretraining
    settings except ``output_dir`` and the seed; not LoRA, quantisation, ``dtype`` (pretraining runs in
    float32), gradient checkpointing or any RL section, so toggling those reuses the cached model.
    """
    model = profile.model
    depends_on = {"name_or_path": model.name_or_path, "tokenizer": model.tokenizer,
                  "random_init": model.random_init.model_dump(mode="json") if model.random_init else None,
                  "trust_remote_code": model.trust_remote_code,
                  "pretrain": profile.pretrain.model_dump(mode="json", exclude={"output_dir"}), "seed": profile.seed}
    digest = hashlib.sha256(json.dumps(depends_on, sort_keys=True).encode()).hexdigest()[:12]
    arch = model.random_init.arch if model.random_init else Path(model.name_or_path).name
    return cache_dir() / "pretrained" / f"{arch}-pretrained-{digest}"


def with_pretrained_policy(profile: Profile, console=None) -> Profile:
    """For a profile with a ``pretrain:`` section: pretrain once (cached), then point ``model`` at the result.

    The cache folder (:func:`pretrained_dir`) is keyed by what pretraining depends on, so the demo pays
    for pretraining on its first run only, whatever LoRA or RL settings change. The returned profile keeps
    its own LoRA/quantisation for the next stage. Profiles without ``pretrain:`` are returned unchanged.
    """
    if profile.pretrain is None:
        return profile
    target = pretrained_dir(profile)
    if not is_pretrained(profile):
        with atomic_directory(target, replace=True) as tmp:
            # Pretraining trains every weight in float32: quantisation, LoRA and checkpointing are the RL stage's.
            model = profile.model.model_copy(update=RL_ONLY_MODEL_KEYS)
            staged = profile.model_copy(update={"model": model, "pretrain": profile.pretrain.model_copy(
                update={"output_dir": str(tmp)})})
            result = pretrain(staged, console)
        if console is not None:
            console.print(f"pretrain: {summary(result.metrics)}; cached in {target}", soft_wrap=True)
    elif console is not None:
        console.print(f"pretrain: using the cached model in {target}")
    return pointed_at_pretrained(profile)


def is_pretrained(profile: Profile) -> bool:
    """Whether the pretraining stage of ``profile`` already ran (its cache folder is complete)."""
    return (pretrained_dir(profile) / METRICS_FILE).exists()


def pointed_at_pretrained(profile: Profile) -> Profile:
    """``profile`` with ``model`` (and tokenizer) pointed at its pretrained folder, trained or not yet."""
    target = str(pretrained_dir(profile))
    model = profile.model.model_copy(update={"name_or_path": target, "random_init": None, "tokenizer": target})
    return profile.model_copy(update={"model": model})


def summary(metrics: dict) -> str:
    """One line of pretraining results for the console."""
    return (f"held-out loss {metrics['eval_loss_before']:.3f} -> {metrics['eval_loss_after']:.3f} "
            f"(train loss {metrics['train_loss']:.3f}, {metrics['tokens']} tokens/epoch)")
