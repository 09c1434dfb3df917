"""Preference optimisation without RL (``rlhf train-dpo``): TRL's ``DPOTrainer`` on the profile's model.

The model comes from the same factory as the RL policy (``model``: random init or hub/local folder, dtype,
4/8-bit, LoRA, gradient checkpointing). With LoRA the reference is the policy with its adapters disabled
(TRL does this when it wraps the model itself, given ``peft_config``); without LoRA it is a frozen copy,
loaded like the policy. Any loss TRL offers is a ``dpo.loss_type`` (``sigmoid`` = DPO, ``ipo`` = IPO, ...).

The pairs are the reward model's kind of data (``prompt``/``chosen``/``rejected``; without a prompt column
TRL takes the shared prefix as the prompt), shuffled with the profile seed and split into train and
held-out pairs. The held-out split gives the implicit reward's accuracy (share of pairs whose chosen
completion gains more log-probability over the reference than the rejected one) and margins.

Output: a run folder like an RL run's, so ``rlhf evaluate`` and ``generate`` take it unchanged:
``profile.yaml``, ``final/`` (adapter or full model + tokenizer + model card), ``meta_data/``
(``training_stats.csv``, ``dpo_metrics.json``) and ``tensorboard/``.
"""

from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import torch

from rlhf.config import DpoConfig, Profile
from rlhf.data import check_columns, load_records
from rlhf.fsutil import atomic_directory
from rlhf.models.factory import load_causal_lm, lora_config, model_source, prepare_for_adapters
from rlhf.models.tokenizer import load_tokenizer
from rlhf.stages.pretrain import with_pretrained_policy
from rlhf.stages.reward_model import quiet_progress, quiet_trainer
from rlhf.tracking import STATS_FILE, tensorboard_callback

METRICS_FILE = "dpo_metrics.json"


@dataclass
class DpoResult:
    run_dir: Path
    final_dir: Path
    metrics: dict[str, float | int]


def train_dpo(profile: Profile, output_dir: str | Path | None = None, console=None) -> DpoResult:
    """Train ``profile.model`` with DPO (or another TRL preference loss) on ``profile.dpo.data``.

    Metrics (held out): ``eval_accuracy``, ``eval_margin`` (mean chosen minus rejected implicit reward,
    ``beta * log(pi / pi_ref)``), ``eval_chosen_reward``, ``eval_rejected_reward``, ``eval_loss``; and
    ``train_loss``, ``num_train``, ``num_eval``, ``tokens`` (tokens seen in training), ``steps``,
    ``train_seconds``.
    """
    cfg = profile.dpo
    if cfg is None:
        raise ValueError("the profile has no `dpo:` section; add one, e.g. `dpo: {data: builtin:review-pairs}` "
                         "(see profiles/dpo-tiny.yaml)")
    if profile.model.quantization is not None and profile.model.lora is None:
        raise ValueError("model.quantization needs model.lora: quantised weights cannot be trained directly")
    profile = with_pretrained_policy(profile, console)
    train_rows, eval_rows = preference_pairs(cfg, profile.seed)
    from datasets import Dataset
    from trl import DPOTrainer  # after the data checks: importing trl takes seconds

    run_dir = _claim_run_dir(Path(output_dir or cfg.output_dir), profile)
    try:
        with quiet_progress(console is None):
            tokenizer = load_tokenizer(profile.model.tokenizer)
            model, ref_model, peft_config = _models(profile)
            trainer = DPOTrainer(model=model, ref_model=ref_model, args=_dpo_args(cfg, profile, run_dir, console),
                                 train_dataset=Dataset.from_list(train_rows), eval_dataset=Dataset.from_list(eval_rows),
                                 processing_class=tokenizer, peft_config=peft_config,
                                 callbacks=[tensorboard_callback(run_dir / "tensorboard")])
            _keep_adapter_dtype(trainer.model, profile)
            output = quiet_trainer(trainer, console).train()
            held_out = trainer.evaluate()  # TRL's log() adds its rewards/* metrics to this dict, prefixed eval_
            metrics = {"eval_accuracy": held_out["eval_rewards/accuracies"],
                       "eval_margin": held_out["eval_rewards/margins"],
                       "eval_chosen_reward": held_out["eval_rewards/chosen"],
                       "eval_rejected_reward": held_out["eval_rewards/rejected"],
                       "eval_loss": held_out["eval_loss"], "train_loss": output.training_loss,
                       "num_train": len(train_rows), "num_eval": len(eval_rows),
                       "tokens": int(trainer.state.num_input_tokens_seen),
                       "steps": trainer.state.global_step, "train_seconds": output.metrics["train_runtime"]}
            _save(trainer, tokenizer, profile, run_dir, metrics)
    except BaseException:
        if not (run_dir / "final").exists():
            import shutil

            shutil.rmtree(run_dir, ignore_errors=True)  # nothing finished to keep
        raise
    return DpoResult(run_dir, run_dir / "final", metrics)


def preference_pairs(cfg: DpoConfig, seed: int) -> tuple[list[dict], list[dict]]:
    """``(train, held_out)`` rows ``{prompt?, chosen, rejected}`` from ``cfg.data``, shuffled and split."""
    records = load_records(cfg.data)
    check_columns(records, [cfg.chosen_column, cfg.rejected_column], cfg.data)
    with_prompt = cfg.prompt_column in records[0]
    rows = []
    for record in records:
        row = {"chosen": str(record[cfg.chosen_column]), "rejected": str(record[cfg.rejected_column])}
        if with_prompt:
            row = {"prompt": str(record[cfg.prompt_column]), **row}
        rows.append(row)
    random.Random(seed).shuffle(rows)
    rows = rows[:cfg.max_pairs]
    n_eval = max(1, round(cfg.eval_fraction * len(rows)))
    if len(rows) - n_eval < 1:
        raise ValueError(f"dpo.data={cfg.data!r} gives {len(rows)} pair(s) (dpo.max_pairs={cfg.max_pairs}): "
                         "at least 2 are needed to hold some out; give more pairs")
    return rows[n_eval:], rows[:n_eval]


def _models(profile: Profile):
    """``(model, ref_model, peft_config)`` for ``DPOTrainer`` from the profile's model section.

    With LoRA the base model goes in with a ``peft_config``: TRL then wraps it and computes the reference
    with adapters disabled. (Handing TRL a ready ``PeftModel`` instead makes it copy the adapter as a
    second "ref" adapter.) Without LoRA the reference is a frozen copy, loaded like the policy.
    """
    cfg = profile.model
    source = model_source(cfg, profile.seed)
    model = load_causal_lm(source, cfg)
    if cfg.lora is not None:
        return prepare_for_adapters(model, cfg), None, lora_config(cfg, model)
    return model, load_causal_lm(source, cfg).eval().requires_grad_(False), None


def _keep_adapter_dtype(model, profile: Profile) -> None:
    """Undo TRL's cast of LoRA weights to bfloat16 on quantised models when the profile computes in float32.

    TRL follows the QLoRA paper's bf16 adapters; the RL loop trains adapters in float32. With a float32
    ``compute_dtype`` (the CPU profiles) bf16 adapters would silently round every update, and the same
    profile would train differently under ``train-dpo`` and ``run``.
    """
    quantization = profile.model.quantization
    if quantization is None or quantization.compute_dtype != "float32":
        return
    for param in model.parameters():
        if param.requires_grad and param.dtype == torch.bfloat16:
            param.data = param.data.float()


def _dpo_args(cfg: DpoConfig, profile: Profile, run_dir: Path, console):
    from trl import DPOConfig as TrlDPOConfig

    return TrlDPOConfig(
        output_dir=str(run_dir / "checkpoints"), num_train_epochs=cfg.epochs,
        per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.batch_size, gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate, loss_type=list(cfg.loss_type), loss_weights=cfg.loss_weights,
        beta=cfg.beta, label_smoothing=cfg.label_smoothing, max_length=cfg.max_length, seed=profile.seed,
        data_seed=profile.seed, bf16=False, fp16=False, use_cpu=not torch.cuda.is_available(),
        gradient_checkpointing=profile.model.gradient_checkpointing, report_to=[], save_strategy="no",
        eval_strategy="no", logging_strategy="steps", logging_steps=5, disable_tqdm=console is None,
        include_num_input_tokens_seen="all",
    )


def _claim_run_dir(parent: Path, profile: Profile) -> Path:
    """A new run folder ``<model>_dpo__<YYYY-MM-DD__HH-MM-SS>`` (``_2``, ``_3``... if taken)."""
    name = f"{profile.model.display_name}_dpo__{datetime.now().strftime('%Y-%m-%d__%H-%M-%S')}"
    parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, 10_000):
        candidate = parent / (name if attempt == 1 else f"{name}_{attempt}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise FileExistsError(f"no free run folder name under {parent}")


def _save(trainer, tokenizer, profile: Profile, run_dir: Path, metrics: dict) -> None:
    """``profile.yaml``, ``meta_data/`` (per-step stats and metrics) and ``final/`` (complete or absent)."""
    from rlhf.publish import write_model_card

    (run_dir / "profile.yaml").write_text(profile.to_yaml(), encoding="utf-8")
    meta = run_dir / "meta_data"
    meta.mkdir(exist_ok=True)
    rows = [{"step": r["step"], **{k: v for k, v in r.items() if k != "step"}}
            for r in trainer.state.log_history if "loss" in r]
    if rows:
        columns = list(dict.fromkeys(key for row in rows for key in row))
        with (meta / STATS_FILE).open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
    (meta / METRICS_FILE).write_text(json.dumps({"algorithm": "dpo", "metrics": metrics}, indent=2) + "\n",
                                     encoding="utf-8")
    with atomic_directory(run_dir / "final", replace=True) as tmp:
        trainer.model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_model_card(tmp, profile, algorithm=f"dpo ({', '.join(profile.dpo.loss_type)} loss)",
                         metrics=metrics, steps=metrics["steps"], tokens=metrics["tokens"], run_dir=run_dir)
    if (run_dir / "checkpoints").is_dir() and not any((run_dir / "checkpoints").iterdir()):
        (run_dir / "checkpoints").rmdir()  # the Trainer's output_dir; nothing is checkpointed mid-run
