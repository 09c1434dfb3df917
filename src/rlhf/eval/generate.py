"""``rlhf generate``: N completions per prompt, scored by the profile's rewards, streamed to a CSV.

Rows are prompt-major (a prompt's N samples are consecutive) with the columns ``prompt``, the source's
other columns (e.g. ``occupation``), ``sample``, ``completion``, ``reward`` (the weighted total) and
``reward/<name>`` per configured reward. With ``best_of`` K > 1 each row is the highest-reward of K
samples (reward-guided inference, the reviews notebook's best-of-N) and adds ``best_of_mean`` and
``best_of_max`` of the K totals. Rows are written and flushed batch by batch, so a stopped command keeps
what it wrote; the same seed (and batch size) gives the same file.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from rlhf.config import RolloutConfig
from rlhf.data import apply_chat_template, load_records, parse_source
from rlhf.data.prompts import TEXT_COLUMNS
from rlhf.eval.loading import LoadedModel
from rlhf.rl.rollout import sample_responses

FIXED_COLUMNS = ("prompt", "sample", "completion", "reward")


@dataclass(frozen=True)
class PromptRecord:
    """A prompt as written in its source (``text``), as the model sees it, and the source's other columns."""

    text: str
    model_input: str
    metadata: dict


def read_prompt_records(sources: str | Sequence[str], tokenizer, *, column: str | None = None,
                        chat_template: bool = False, system_prompt: str | None = None) -> list[PromptRecord]:
    """Every record of ``sources`` (no filtering or truncation): its text column and the other columns.

    The text column is ``hf:...:COLUMN``, else ``column``, else the first of prompt/query/text present.
    """
    records: list[PromptRecord] = []
    for source in [sources] if isinstance(sources, str) else list(sources):
        rows = load_records(source)
        present = list(dict.fromkeys(key for row in rows for key in row))
        name = parse_source(source).column or column or next((c for c in TEXT_COLUMNS if c in present), None)
        if name is None or name not in present:
            raise ValueError(f"prompt source {source!r} has no column {name or ' or '.join(TEXT_COLUMNS)!r}; "
                             f"its columns are {present}")
        for index, row in enumerate(rows):
            if not isinstance(row.get(name), str):
                raise ValueError(f"prompt source {source!r}, column {name!r}: record {index} holds {row.get(name)!r}, "
                                 "expected text")
            metadata = {(k if k not in FIXED_COLUMNS else f"source_{k}"): v for k, v in row.items() if k != name}
            records.append(PromptRecord(row[name], row[name], metadata))
    if chat_template:
        wrapped = apply_chat_template([r.text for r in records], tokenizer, system_prompt)
        records = [PromptRecord(r.text, w, r.metadata) for r, w in zip(records, wrapped)]
    return records


def prompt_records_for(loaded: LoadedModel, source: str | None) -> list[PromptRecord]:
    """``source`` (default: the profile's ``data.prompts``) read for ``loaded``'s tokenizer and template."""
    data = loaded.profile.data
    return read_prompt_records(source or data.prompts, loaded.tokenizer, column=None if source else data.column,
                               chat_template=data.chat_template, system_prompt=data.system_prompt)


def complete(model, tokenizer, prompts: list[str], cfg: RolloutConfig, max_prompt_tokens: int | None) -> list[str]:
    """One sampled completion per prompt (the rollout's sampler: left padding, KV cache, stop at EOS)."""
    *_, response, _ = sample_responses(model, tokenizer, prompts, cfg, max_prompt_tokens)
    return tokenizer.batch_decode(response, skip_special_tokens=True)


@dataclass
class GenerateResult:
    path: Path
    rows: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / max(self.seconds, 1e-9)


def generate_rows(loaded: LoadedModel, reward, records: list[PromptRecord], n: int, *, seed: int,
                  best_of: int = 1, batch_size: int = 64) -> Iterator[list[dict]]:
    """Batches of finished rows (see the module docstring), ``batch_size`` completions per generate call."""
    if n < 1 or best_of < 1 or batch_size < 1:
        raise ValueError(f"--n ({n}), --best-of ({best_of}) and --batch-size ({batch_size}) must be at least 1")
    items = [(record, sample) for record in records for sample in range(n)]
    rows_per_batch = max(1, batch_size // best_of)
    cfg = loaded.profile.rollout
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for start in range(0, len(items), rows_per_batch):
            chunk = items[start:start + rows_per_batch]
            inputs = [record.model_input for record, _ in chunk for _ in range(best_of)]
            completions = complete(loaded.model, loaded.tokenizer, inputs, cfg, loaded.max_prompt_tokens)
            scores = reward(inputs, completions)
            totals = scores.total.view(len(chunk), best_of)  # (rows, K)
            best = totals.argmax(dim=1)  # (rows,)
            batch = []
            for row, (record, sample) in enumerate(chunk):
                kept = row * best_of + int(best[row])
                values = {"prompt": record.text, **record.metadata, "sample": sample, "completion": completions[kept],
                          "reward": float(scores.total[kept])}
                values.update({f"reward/{name}": float(v[kept]) for name, v in scores.components.items()})
                if best_of > 1:
                    values.update(best_of_mean=float(totals[row].mean()), best_of_max=float(totals[row].max()))
                batch.append(values)
            yield batch


def generate_csv(loaded: LoadedModel, reward, records: list[PromptRecord], n: int, out: str | Path, *, seed: int,
                 best_of: int = 1, batch_size: int = 64, console: Console | None = None) -> GenerateResult:
    """Write ``len(records) * n`` rows to ``out`` (flushed per batch) with a progress bar and an ETA."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    metadata = list(dict.fromkeys(key for record in records for key in record.metadata))
    columns = ["prompt", *metadata, "sample", "completion", "reward", *(f"reward/{name}" for name in reward.names)]
    columns += ["best_of_mean", "best_of_max"] if best_of > 1 else []
    total, written, start = len(records) * n, 0, time.perf_counter()
    with out.open("w", newline="", encoding="utf-8") as f, _RowProgress(console, total) as advance:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for batch in generate_rows(loaded, reward, records, n, seed=seed, best_of=best_of, batch_size=batch_size):
            writer.writerows(batch)
            f.flush()
            written += len(batch)
            advance(written, written / (time.perf_counter() - start))
    return GenerateResult(out, written, time.perf_counter() - start)


class _RowProgress:
    """A rich progress bar of rows (rate and ETA); silent without a console."""

    def __init__(self, console: Console | None, total: int) -> None:
        self.progress = None
        if console is not None and not console.quiet:
            self.progress = Progress(TextColumn("[bold]generate"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                     console=console)
            self.task = self.progress.add_task("", total=total, rate="")

    def __enter__(self):
        if self.progress is None:
            return lambda done, rate: None
        self.progress.start()
        return lambda done, rate: self.progress.update(self.task, completed=done, rate=f"{rate:.1f} rows/s")

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()
