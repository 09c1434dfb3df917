"""Stage 1: train a reward model (``rlhf train-reward``), pairwise (Bradley-Terry) or as a classifier.

- ``pairwise``: chosen/rejected texts trained with TRL's ``RewardTrainer``. If the data has no chosen and
  rejected columns, pairs are sampled from labelled text (a text with ``chosen_label`` against one with
  another label), as the reviews notebook does, but ``num_pairs`` are drawn at random instead of
  materialising every pair. The texts are split into train and held-out sets *before* pairing, so no
  held-out text is ever trained on.
- ``classifier``: text/label data trained as sequence classification with transformers' ``Trainer``.

Texts are tokenized as TRL's ``RewardTrainer`` and the ``classifier`` reward (``append_eos: true``, its
default) do: EOS appended, then the tokenizer's own call truncated to ``max_length``, right padding. So
the saved model scores RL completions the way it was trained; GPT-style models score the EOS position.
The output folder loads with plain ``AutoModelForSequenceClassification`` and ``AutoTokenizer`` (LoRA
adapters are merged before saving) and holds ``eval.json`` with the metrics and TensorBoard events in
``tensorboard/``.

Inside ``rlhf run`` (:func:`run_reward_model_stage`) the stage runs when a reward's ``model`` is the
section's ``output_dir``: once, keyed by the section's settings and the seed, as pretraining is.
"""

from __future__ import annotations

import difflib
import gc
import json
import math
import random
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from rlhf.config import Lora, Profile, RewardModelConfig
from rlhf.data import check_columns, load_records
from rlhf.fsutil import atomic_directory
from rlhf.models.factory import materialize_random_model
from rlhf.models.tokenizer import load_tokenizer
from rlhf.tracking import tensorboard_callback

EVAL_FILE = "eval.json"


@dataclass
class RewardModelResult:
    output_dir: Path
    metrics: dict[str, float | int | None]


def train_reward_model(cfg: RewardModelConfig, seed: int = 0, console=None,
                       final_dir: str | Path | None = None) -> RewardModelResult:
    """Train, evaluate on the held-out split and save the reward model to ``cfg.output_dir``.

    Metrics: ``pairwise_accuracy`` (held-out), ``train_pairwise_accuracy`` and ``reward_margin`` (mean
    chosen minus rejected score, held out) (pairwise) or ``accuracy`` and ``roc_auc`` (classifier), plus
    ``train_loss``, ``num_train``, ``num_eval`` and ``train_seconds``. ``final_dir``: where the folder will
    be moved to afterwards (for the printed summary; default ``cfg.output_dir``).
    """
    check_data_columns(load_records(cfg.data), cfg)  # before the model loads: a wrong column fails fast
    with quiet_progress(console is None):
        # Texts are tokenized here (EOS appended when the tokenizer has one), so encoders without an EOS
        # token (BERT, distilbert: ``[CLS] ... [SEP]``) train in both kinds.
        tokenizer = load_tokenizer(cfg.tokenizer, padding_side="right", require_eos=False)
        num_labels = 1 if cfg.kind == "pairwise" else cfg.num_labels
        model = _load_model(cfg, tokenizer, num_labels=num_labels, seed=seed)
        if cfg.lora is not None:
            model = _apply_lora(model, cfg.lora)
        train = _train_pairwise if cfg.kind == "pairwise" else _train_classifier
        metrics = train(cfg, model, tokenizer, seed, console)
        if cfg.lora is not None:
            model = model.merge_and_unload()
        output_dir = Path(cfg.output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(output_dir)
        tokenizer.save_pretrained(output_dir)
    report = {"kind": cfg.kind, "seed": seed, "metrics": metrics, "config": cfg.model_dump(mode="json")}
    (output_dir / EVAL_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if console is not None:
        _print_summary(console, cfg, metrics, Path(final_dir or output_dir))
    return RewardModelResult(output_dir, metrics)


@contextmanager
def quiet_progress(enabled: bool = True):
    """Hide transformers' loading/saving and datasets' map progress bars for the block (restored afterwards)."""
    import datasets
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    datasets_enabled = datasets.is_progress_bar_enabled()  # TRL's dataset preparation (map/filter) bars
    if enabled:
        hf_logging.disable_progress_bar()
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
        if datasets_enabled:
            datasets.enable_progress_bars()


def quiet_trainer(trainer, console):
    """The trainer, without its printed log dicts when there is no console to show progress on."""
    from transformers.trainer_callback import PrinterCallback

    if console is None:
        trainer.remove_callback(PrinterCallback)
    return trainer


# ------------------------------------------------------------------------------------------ model


def _load_model(cfg: RewardModelConfig, tokenizer, num_labels: int, seed: int):
    from transformers import AutoModelForSequenceClassification

    if cfg.random_init is not None:
        source = materialize_random_model(cfg.random_init, cfg.tokenizer, seed=seed, task="seq-cls",
                                          num_labels=num_labels)
    else:
        source = cfg.name_or_path
    try:
        # A hub classifier with another number of labels gets a fresh head of the right size.
        model = AutoModelForSequenceClassification.from_pretrained(
            str(source), num_labels=num_labels, ignore_mismatched_sizes=True)
    except OSError as exc:
        raise ValueError(f"could not load reward_model.name_or_path={str(source)!r}: {exc}") from exc
    vocab = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > vocab:
        raise ValueError(
            f"reward_model.tokenizer={cfg.tokenizer!r} has {len(tokenizer)} tokens but the model's embedding "
            f"has {vocab}: set reward_model.tokenizer to the model's own tokenizer (e.g. {str(source)!r})"
        )
    # Sequence classifiers such as GPT-2 score the last non-pad token, so they need the pad id.
    model.config.pad_token_id = tokenizer.pad_token_id
    return model


def _apply_lora(model, lora: Lora):
    from peft import LoraConfig, get_peft_model

    heads = [name for name in ("score", "classifier") if hasattr(model, name)]
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, task_type="SEQ_CLS",
                        target_modules=lora.target_modules, modules_to_save=heads or None, bias="none",
                        fan_in_fan_out=model.config.model_type == "gpt2")  # GPT-2's Conv1D stores W transposed
    return get_peft_model(model, config)


def _training_args(args_class, cfg: RewardModelConfig, seed: int, console, **extra):
    """Arguments shared by the pairwise (``RewardConfig``) and classifier (``TrainingArguments``) runs."""
    return args_class(
        output_dir=str(cfg.output_dir), num_train_epochs=cfg.epochs, per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate, seed=seed, data_seed=seed, bf16=False, fp16=False,
        use_cpu=not torch.cuda.is_available(), report_to=[], save_strategy="no",
        logging_strategy="steps", logging_steps=10, disable_tqdm=console is None, **extra,
    )


def encode(tokenizer, texts: list[str], max_length: int, **kwargs):
    """Tokenize with EOS appended, then truncate (as TRL's ``RewardTrainer`` and the classifier reward do).

    Encoders without an EOS token (BERT: ``[CLS] ... [SEP]``) are tokenized as they are.
    """
    eos = tokenizer.eos_token or ""
    return tokenizer([t + eos for t in texts], truncation=True, max_length=max_length, **kwargs)


@torch.no_grad()
def score_texts(model, tokenizer, texts: list[str], max_length: int, batch_size: int = 64) -> torch.Tensor:
    """The model's logits for each text, tokenized as in training: ``(N, num_labels)``."""
    model.eval()
    device = next(model.parameters()).device
    outputs = []
    for start in range(0, len(texts), batch_size):
        batch = encode(tokenizer, texts[start:start + batch_size], max_length, padding=True,
                       return_tensors="pt").to(device)
        outputs.append(model(**batch).logits.float().cpu())  # (b, num_labels)
    return torch.cat(outputs)


# ------------------------------------------------------------------------------------------ pairwise


def _train_pairwise(cfg: RewardModelConfig, model, tokenizer, seed: int, console) -> dict:
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    train_pairs, eval_chosen, eval_rejected, paired = _pairwise_data(cfg, seed)
    dataset = Dataset.from_dict({
        "chosen_ids": encode(tokenizer, [c for c, _ in train_pairs], cfg.max_length)["input_ids"],
        "rejected_ids": encode(tokenizer, [r for _, r in train_pairs], cfg.max_length)["input_ids"]})
    # Already tokenized and truncated: max_length=None stops TRL from *dropping* longer pairs.
    args = _training_args(RewardConfig, cfg, seed, console, max_length=None, activation_checkpointing=False)
    trainer = RewardTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                            callbacks=[tensorboard_callback(Path(cfg.output_dir) / "tensorboard")])
    output = quiet_trainer(trainer, console).train()
    chosen = score_texts(model, tokenizer, eval_chosen, cfg.max_length).squeeze(-1)  # (Nc,)
    rejected = score_texts(model, tokenizer, eval_rejected, cfg.max_length).squeeze(-1)  # (Nr,)
    margins = chosen - rejected if paired else chosen.mean() - rejected.mean()
    return {"pairwise_accuracy": pairwise_accuracy(chosen, rejected, paired),
            "train_pairwise_accuracy": _train_accuracy(model, tokenizer, train_pairs, cfg.max_length),
            "reward_margin": margins.mean().item(), "train_loss": output.training_loss,
            "num_train": len(train_pairs), "num_eval": len(chosen) if paired else len(chosen) * len(rejected),
            "train_seconds": output.metrics["train_runtime"]}


def _train_accuracy(model, tokenizer, train_pairs: list[tuple[str, str]], max_length: int,
                    limit: int = 512) -> float:
    """Pairwise accuracy on (up to ``limit``) training pairs, beside the held-out one as the notebook reports:
    a large gap between the two means the model memorised its pairs."""
    pairs = train_pairs[:limit]
    chosen = score_texts(model, tokenizer, [c for c, _ in pairs], max_length).squeeze(-1)  # (N,)
    rejected = score_texts(model, tokenizer, [r for _, r in pairs], max_length).squeeze(-1)  # (N,)
    return pairwise_accuracy(chosen, rejected, paired=True)


def pairwise_accuracy(chosen: torch.Tensor, rejected: torch.Tensor, paired: bool) -> float:
    """Share of pairs whose chosen score is strictly higher.

    ``paired``: element-wise pairs ``(N,)``, ``(N,)``. Otherwise every chosen against every rejected
    score, counted by sorting in O(N log N) rather than building the ``(Nc, Nr)`` matrix.

    >>> pairwise_accuracy(torch.tensor([1.0, 3.0]), torch.tensor([2.0, 0.0]), paired=False)
    0.75
    """
    if paired:
        return (chosen > rejected).float().mean().item()
    below = torch.searchsorted(rejected.sort().values, chosen, side="left")  # (Nc,) rejected scores < chosen
    return (below.sum() / (len(chosen) * len(rejected))).item()


def _pairwise_data(cfg: RewardModelConfig, seed: int):
    """``(train_pairs, eval_chosen, eval_rejected, paired)`` from pair columns or from labelled texts."""
    rng = random.Random(seed)
    records = load_records(cfg.data)
    if check_data_columns(records, cfg):
        # A shared prompt (DPO-style data) is scored with each completion, as TRL's RewardTrainer does.
        prompts = [str(r[cfg.prompt_column]) if cfg.prompt_column in r else "" for r in records]
        pairs = [(p + str(r[cfg.chosen_column]), p + str(r[cfg.rejected_column])) for p, r in zip(prompts, records)]
        rng.shuffle(pairs)
        train, held_out = _split_group(pairs, cfg.eval_fraction, f"pairs in {cfg.data!r}")
        return train, [c for c, _ in held_out], [r for _, r in held_out], True
    labels = [_int_label(r[cfg.label_column], cfg.label_column, i) for i, r in enumerate(records)]
    chosen = [str(r[cfg.text_column]) for r, label in zip(records, labels) if label == cfg.chosen_label]
    rejected = [str(r[cfg.text_column]) for r, label in zip(records, labels) if label != cfg.chosen_label]
    if not chosen or not rejected:
        raise ValueError(
            f"reward_model.kind='pairwise' builds pairs from label column {cfg.label_column!r} of {cfg.data!r}, "
            f"which holds only the labels {sorted(set(labels))}: it needs texts with "
            f"reward_model.chosen_label={cfg.chosen_label} and texts with another label. Fix chosen_label, or "
            f"give data with {cfg.chosen_column!r}/{cfg.rejected_column!r} columns."
        )
    rng.shuffle(chosen)
    rng.shuffle(rejected)
    train_chosen, eval_chosen = _split_group(chosen, cfg.eval_fraction, f"label {cfg.chosen_label} texts")
    train_rejected, eval_rejected = _split_group(rejected, cfg.eval_fraction, "other-label texts")
    # Sampled with replacement: cheap for any data size, and never materialises all pairs.
    train_pairs = [(rng.choice(train_chosen), rng.choice(train_rejected)) for _ in range(cfg.num_pairs)]
    return train_pairs, eval_chosen, eval_rejected, False


def check_data_columns(records: list[dict], cfg: RewardModelConfig) -> bool:
    """``ValueError`` naming the profile key of a missing column; True when the data holds chosen/rejected pairs."""
    present = list(dict.fromkeys(key for record in records for key in record))
    has_chosen, has_rejected = cfg.chosen_column in present, cfg.rejected_column in present
    if cfg.kind == "pairwise" and has_chosen != has_rejected:
        found, missing = ("chosen", "rejected") if has_chosen else ("rejected", "chosen")
        raise ValueError(
            f"reward_model.data {cfg.data!r} has the {found} column {getattr(cfg, found + '_column')!r} but no "
            f"{missing} column {getattr(cfg, missing + '_column')!r} (its columns are {present}): pairwise data "
            f"needs both. Set reward_model.{missing}_column{_closest(getattr(cfg, missing + '_column'), present)}."
        )
    if cfg.kind == "pairwise" and has_chosen:
        check_columns(records, [cfg.chosen_column, cfg.rejected_column], cfg.data)
        return True
    require_columns(records, cfg, ("text_column", "label_column"))
    return False


def require_columns(records: list[dict], cfg: RewardModelConfig, keys: tuple[str, ...]) -> None:
    """``ValueError`` naming the ``reward_model.<key>`` whose column is missing and the closest real column."""
    present = list(dict.fromkeys(key for record in records for key in record))
    for key in keys:
        column = getattr(cfg, key)
        if column not in present:
            raise ValueError(
                f"reward_model.{key}={column!r} is not a column of {cfg.data!r}; its columns are {present}. "
                f"Set reward_model.{key}{_closest(column, present)}"
                + (" (or give chosen/rejected columns for pairwise data)" if cfg.kind == "pairwise" else "")
            )
    check_columns(records, [getattr(cfg, key) for key in keys], cfg.data)


def _closest(column: str, present: list[str]) -> str:
    """`` to 'labels'`` for the nearest present column name, or an empty string."""
    close = difflib.get_close_matches(column, [str(p) for p in present], n=1, cutoff=0.5)
    return f" to {close[0]!r}" if close else ""


def _split_group(items: list, eval_fraction: float, what: str) -> tuple[list, list]:
    """``(train, held_out)`` of already shuffled ``items``; both non-empty."""
    if len(items) < 2:
        raise ValueError(f"need at least 2 {what} to hold some out for evaluation, got {len(items)}")
    n_eval = min(len(items) - 1, max(1, math.ceil(eval_fraction * len(items))))
    return items[n_eval:], items[:n_eval]


def _int_label(value, column: str, index: int) -> int:
    try:
        label = int(value)
        if label != value and str(label) != str(value).strip():
            raise ValueError
    except (TypeError, ValueError):
        raise ValueError(
            f"label column {column!r} must hold integer class ids, got {value!r} in record {index}; "
            "map the labels to 0..num_labels-1"
        ) from None
    return label


# ------------------------------------------------------------------------------------------ classifier


def _train_classifier(cfg: RewardModelConfig, model, tokenizer, seed: int, console) -> dict:
    from datasets import Dataset
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    records = load_records(cfg.data)
    check_data_columns(records, cfg)
    rows = [(str(r[cfg.text_column]), _int_label(r[cfg.label_column], cfg.label_column, i))
            for i, r in enumerate(records)]
    found = sorted({label for _, label in rows})
    if found[0] < 0 or found[-1] >= cfg.num_labels:
        raise ValueError(f"label column {cfg.label_column!r} of {cfg.data!r} holds the labels {found}, but "
                         f"reward_model.num_labels={cfg.num_labels} allows 0..{cfg.num_labels - 1}")
    random.Random(seed).shuffle(rows)
    train, held_out = [], []
    for label in found:  # stratified: every class appears in both splits
        group = [row for row in rows if row[1] == label]
        part_train, part_eval = _split_group(group, cfg.eval_fraction, f"texts with label {label}")
        train, held_out = train + part_train, held_out + part_eval
    encoded = encode(tokenizer, [text for text, _ in train], cfg.max_length)
    dataset = Dataset.from_dict({"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"],
                                 "labels": [label for _, label in train]})
    args = _training_args(TrainingArguments, cfg, seed, console)
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=DataCollatorWithPadding(tokenizer),
                      callbacks=[tensorboard_callback(Path(cfg.output_dir) / "tensorboard")])
    output = quiet_trainer(trainer, console).train()
    logits = score_texts(model, tokenizer, [text for text, _ in held_out], cfg.max_length)  # (N, num_labels)
    labels = torch.tensor([label for _, label in held_out])
    return {"accuracy": (logits.argmax(-1) == labels).float().mean().item(),
            "roc_auc": _roc_auc(labels, logits.softmax(-1), cfg.num_labels), "train_loss": output.training_loss,
            "num_train": len(train), "num_eval": len(held_out), "train_seconds": output.metrics["train_runtime"]}


def _roc_auc(labels: torch.Tensor, probs: torch.Tensor, num_labels: int) -> float | None:
    """Binary: AUC of P(class 1); multi-class: one-vs-rest. ``None`` if a class is missing from ``labels``."""
    from sklearn.metrics import roc_auc_score

    if len(set(labels.tolist())) < num_labels:
        return None
    scores = probs[:, 1] if num_labels == 2 else probs  # multi_class only applies to 2-D scores
    return float(roc_auc_score(labels.numpy(), scores.numpy(), multi_class="ovr"))


def _print_summary(console, cfg: RewardModelConfig, metrics: dict, output_dir: Path) -> None:
    from rich.table import Table

    table = Table("metric", "value", title=f"reward model ({cfg.kind}): held-out and train-split metrics")
    for key, value in metrics.items():
        table.add_row(key, "n/a" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value))
    console.print(table)
    console.print(f"saved to [bold]{output_dir}[/bold] (metrics in {EVAL_FILE})")


# ------------------------------------------------------------------------ the stage inside `rlhf run`

StageState = Literal["trained", "missing", "stale", "foreign", "unused"]


def stage_users(profile: Profile) -> list[int]:
    """Indices of ``profile.rewards`` whose ``model`` is the folder the ``reward_model:`` section writes."""
    if profile.reward_model is None:
        return []
    target = _resolved(profile.reward_model.output_dir)
    return [i for i, spec in enumerate(profile.rewards)
            if isinstance(spec.options.get("model"), str) and _resolved(spec.options["model"]) == target]


def stage_state(profile: Profile) -> StageState:
    """What ``rlhf run`` will do about the reward model the profile's rewards need.

    ``trained``: ``output_dir`` holds a model trained with these exact settings and seed (its ``eval.json``
    says so); ``missing``: no model there yet; ``stale``: trained with other settings, will be retrained;
    ``foreign``: a model not made by this stage (no ``eval.json``), used as it is; ``unused``: no reward
    names the stage's output (or there is no ``reward_model:`` section).
    """
    if not stage_users(profile):
        return "unused"
    folder = Path(profile.reward_model.output_dir)
    if not (folder / "config.json").exists():
        return "missing"
    report = folder / EVAL_FILE
    if not report.exists():
        return "foreign"
    try:
        saved = json.loads(report.read_text(encoding="utf-8"))
        return "trained" if _stage_key(saved["config"], saved["seed"]) == _key_of(profile) else "stale"
    except (ValueError, KeyError, TypeError):
        return "stale"


def run_reward_model_stage(profile: Profile, console=None) -> StageState:
    """Train the reward model the profile's rewards name, unless it is already there (``rlhf run``'s stage 1).

    Like pretraining, the stage runs once: the result is keyed by the ``reward_model:`` settings and the
    seed (recorded in ``eval.json``), reused while they match and retrained (replaced atomically) when they
    change. A folder the stage did not make is used as it is. Returns the state found before training.
    """
    state = stage_state(profile)
    if state == "unused":
        return state
    cfg = profile.reward_model
    if state == "foreign":
        _say(console, f"reward model: using {cfg.output_dir} as it is (no {EVAL_FILE}: not made by "
                      "the reward_model: section, so it is not retrained)")
        return state
    if state == "trained":
        metrics = json.loads((Path(cfg.output_dir) / EVAL_FILE).read_text(encoding="utf-8"))["metrics"]
        _say(console, f"reward model: using the trained model in {cfg.output_dir} ({stage_summary(metrics)})")
        return state
    reason = "trained with other settings; retraining" if state == "stale" else "not trained yet"
    _say(console, f"reward model: {cfg.output_dir} is {reason}: training a {cfg.kind} on {cfg.data} "
                  f"(base {cfg.name_or_path or 'random ' + cfg.random_init.arch})")
    start = time.perf_counter()
    with atomic_directory(cfg.output_dir, replace=True) as tmp:
        result = train_reward_model(cfg.model_copy(update={"output_dir": str(tmp)}), seed=profile.seed,
                                    console=console, final_dir=cfg.output_dir)
        report = json.loads((tmp / EVAL_FILE).read_text(encoding="utf-8"))
        report["config"]["output_dir"] = cfg.output_dir  # where it lives, not the staging folder
        (tmp / EVAL_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if torch.cuda.is_available():  # the policy loads next: give it the training run's memory back
        gc.collect()
        torch.cuda.empty_cache()
    _say(console, f"reward model: {stage_summary(result.metrics)}; trained in {time.perf_counter() - start:.0f} s")
    return state


def stage_summary(metrics: dict) -> str:
    """One line of held-out results: accuracy (classifier) or pairwise accuracy."""
    shown = [f"{name} {metrics[name]:.3f}" for name in ("accuracy", "roc_auc", "pairwise_accuracy")
             if isinstance(metrics.get(name), float)]
    return f"held-out {', '.join(shown) or 'metrics n/a'} ({metrics.get('num_train', '?')} training examples)"


def _key_of(profile: Profile) -> str:
    return _stage_key(profile.reward_model.model_dump(mode="json"), profile.seed)


def _stage_key(config: dict, seed: int) -> str:
    settings = {k: v for k, v in config.items() if k != "output_dir"}
    return json.dumps([settings, seed], sort_keys=True)


def _resolved(path: str) -> Path:
    return Path(path).expanduser().resolve()


def _say(console, text: str) -> None:
    if console is not None:
        console.print(text, soft_wrap=True, highlight=False, markup=False)
