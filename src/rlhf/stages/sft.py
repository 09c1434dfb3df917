"""Chat-format supervised fine-tuning (``rlhf sft``): TRL's ``SFTTrainer`` on conversations.

Data follow TRL's conversational convention: a ``messages`` column holding ``[{role, content}, ...]``
turns (``system``/``user``/``assistant``). The loss covers the assistant turns only (TRL's
``assistant_only_loss``, read from the chat template's ``{% generation %}`` markers). The chat template is
``sft.chat_template``, else the tokenizer's own, else :data:`PLAIN_CHAT_TEMPLATE` (role-prefixed lines;
the assistant turn ends with EOS, inside the loss, so the model learns to stop). The template is saved
with the tokenizer, so the RL stage's ``data.chat_template: true`` formats prompts the same way.

A profile with a ``pretrain:`` section is pretrained first (cached), so one profile runs pretrain -> SFT;
the saved folder is a full model (LoRA adapters are merged into an unquantised base) that a later
profile names as ``model.name_or_path`` for the reward-model and RL stages.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from rlhf.config import Profile, SftConfig
from rlhf.data import check_columns, load_records
from rlhf.models.factory import load_causal_lm, lora_config, merge_lora, model_source, prepare_for_adapters
from rlhf.models.tokenizer import load_tokenizer
from rlhf.stages.pretrain import with_pretrained_policy
from rlhf.stages.reward_model import quiet_progress, quiet_trainer
from rlhf.tracking import tensorboard_callback

METRICS_FILE = "sft_metrics.json"
ROLES = ("system", "user", "assistant", "tool")
PLAIN_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{ 'Assistant: ' }}{% generation %}{{ message['content'] + eos_token }}{% endgeneration %}{{ '\n' }}"
    "{%- else -%}"
    "{{ message['role'] | capitalize + ': ' + message['content'] + '\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ 'Assistant: ' }}{%- endif -%}"
)


@dataclass
class SftResult:
    output_dir: Path
    metrics: dict[str, float | int]


def train_sft(profile: Profile, console=None) -> SftResult:
    """Fine-tune ``profile.model`` on ``profile.sft.data`` and save model + tokenizer to ``sft.output_dir``.

    Metrics: ``eval_loss_before`` and ``eval_loss_after`` (assistant tokens of the held-out conversations),
    ``train_loss``, ``num_train``, ``num_eval``, ``tokens`` (tokens seen in training), ``train_seconds``.
    """
    cfg = profile.sft
    if cfg is None:
        raise ValueError("the profile has no `sft:` section; add one, e.g. `sft: {data: builtin:chat-reviews}` "
                         "(see profiles/sft-tiny.yaml)")
    if profile.model.quantization is not None and profile.model.lora is None:
        raise ValueError("model.quantization needs model.lora: quantised weights cannot be trained directly")
    profile = with_pretrained_policy(profile, console)
    train_rows, eval_rows = conversations(cfg, profile.seed)
    from datasets import Dataset
    from trl import SFTTrainer  # after the data checks: importing trl takes seconds

    output_dir = Path(cfg.output_dir)
    with quiet_progress(console is None):
        tokenizer = load_tokenizer(profile.model.tokenizer, padding_side="right")
        tokenizer.chat_template = cfg.chat_template or tokenizer.chat_template or PLAIN_CHAT_TEMPLATE
        source = model_source(profile.model, profile.seed)
        model = load_causal_lm(source, profile.model)
        peft_config = None
        if profile.model.lora is not None:
            model, peft_config = prepare_for_adapters(model, profile.model), lora_config(profile.model, model)
        trainer = SFTTrainer(model=model, args=_sft_args(cfg, profile, console), processing_class=tokenizer,
                             train_dataset=Dataset.from_list(train_rows), eval_dataset=Dataset.from_list(eval_rows),
                             peft_config=peft_config, callbacks=[tensorboard_callback(output_dir / "tensorboard")])
        quiet_trainer(trainer, console)
        eval_loss_before = trainer.evaluate()["eval_loss"]
        output = trainer.train()
        metrics = {"eval_loss_before": eval_loss_before, "eval_loss_after": trainer.evaluate()["eval_loss"],
                   "train_loss": output.training_loss, "num_train": len(train_rows), "num_eval": len(eval_rows),
                   "tokens": int(trainer.state.num_input_tokens_seen), "train_seconds": output.metrics["train_runtime"]}
        _save(trainer, tokenizer, profile, output_dir)
    report = {"metrics": metrics, "model_source": str(source), "seed": profile.seed,
              "config": cfg.model_dump(mode="json")}
    (output_dir / METRICS_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return SftResult(output_dir, metrics)


def conversations(cfg: SftConfig, seed: int) -> tuple[list[dict], list[dict]]:
    """``(train, held_out)`` rows ``{messages: [...]}`` from ``cfg.data``, checked, shuffled and split."""
    records = load_records(cfg.data)
    check_columns(records, [cfg.messages_column], cfg.data)
    rows = [{"messages": _checked_messages(r[cfg.messages_column], cfg, i)} for i, r in enumerate(records)]
    random.Random(seed).shuffle(rows)
    if len(rows) < 2:
        raise ValueError(f"sft.data={cfg.data!r} holds {len(rows)} conversation(s); at least 2 are needed "
                         "for a held-out split")
    n_eval = min(len(rows) - 1, max(1, round(cfg.eval_fraction * len(rows))))
    return rows[n_eval:], rows[:n_eval]


def _checked_messages(messages, cfg: SftConfig, index: int) -> list[dict]:
    """The turns of one conversation; ``ValueError`` naming the record when they are not TRL's format."""
    where = f"sft.data={cfg.data!r}, record {index}, column {cfg.messages_column!r}"
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"{where}: expected a non-empty list of {{role, content}} turns, got {messages!r:.80}")
    for turn in messages:
        if not isinstance(turn, dict) or turn.get("role") not in ROLES or not isinstance(turn.get("content"), str):
            raise ValueError(f"{where}: each turn needs a role in {list(ROLES)} and a text content, "
                             f"got {turn!r:.80}")
    if not any(turn["role"] == "assistant" for turn in messages):
        raise ValueError(f"{where}: no assistant turn, so nothing to learn (the loss covers assistant turns only)")
    return [{"role": turn["role"], "content": turn["content"]} for turn in messages]


def _sft_args(cfg: SftConfig, profile: Profile, console):
    from trl import SFTConfig as TrlSFTConfig

    return TrlSFTConfig(
        output_dir=str(Path(cfg.output_dir) / "checkpoints"), num_train_epochs=cfg.epochs,
        per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum, learning_rate=cfg.learning_rate, max_length=cfg.max_length,
        assistant_only_loss=True, packing=False, seed=profile.seed, data_seed=profile.seed, bf16=False, fp16=False,
        use_cpu=not torch.cuda.is_available(), gradient_checkpointing=profile.model.gradient_checkpointing,
        report_to=[], save_strategy="no", eval_strategy="no", logging_strategy="steps", logging_steps=5,
        disable_tqdm=console is None, include_num_input_tokens_seen="all",
    )


def _save(trainer, tokenizer, profile: Profile, output_dir: Path) -> None:
    """A full model + tokenizer (with the chat template) in ``output_dir``; LoRA is merged first."""
    output_dir.mkdir(parents=True, exist_ok=True)
    if profile.model.lora is not None:
        adapter_dir = output_dir / "adapter"
        trainer.model.save_pretrained(adapter_dir)
        merge_lora(profile.model, adapter_dir, profile.seed).save_pretrained(output_dir)
    else:
        trainer.model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    shutil.rmtree(output_dir / "checkpoints", ignore_errors=True)  # the Trainer's output_dir; nothing saved there
