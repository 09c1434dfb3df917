"""Metric sinks for a run: CSV (``meta_data/training_stats.csv``), TensorBoard, optional W&B; samples.

Only the main process writes. On resume the CSV files are cut back to the checkpoint's step and
TensorBoard purges later events, so a resumed run's logs read as if it had never stopped.
"""

from __future__ import annotations

import csv
from pathlib import Path

from rlhf.fsutil import names_path

STATS_FILE = "training_stats.csv"
SAMPLES_FILE = "generated_outputs.csv"
SAMPLE_COLUMNS = ["step", "prompt", "completion", "reward"]


def truncate_csv(path: Path, last_step: int) -> None:
    """Keep the header and the rows whose ``step`` is at most ``last_step``."""
    if not path.exists():
        return
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    step_col = rows[0].index("step")
    kept = [rows[0]] + [r for r in rows[1:] if r and int(r[step_col]) <= last_step]
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(kept)


def read_csv(path: Path) -> list[dict[str, str]]:
    with Path(path).open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def wandb_names(config: dict, run_dir: Path) -> tuple[str, str]:
    """``(project, run name)`` from the profile's ``trainer.wandb_project``/``wandb_run_name`` (a dumped
    profile); the run name defaults to the run folder's name.

    >>> wandb_names({"trainer": {"wandb_project": "reviews", "wandb_run_name": None}}, Path("out/run-1"))
    ('reviews', 'run-1')
    """
    trainer = config.get("trainer", {})
    return trainer.get("wandb_project") or "rlhf", trainer.get("wandb_run_name") or Path(run_dir).name


def samples_markdown(prompts: list[str], completions: list[str], rewards: list[float], count: int = 8) -> str:
    """The first ``count`` samples as a Markdown table (TensorBoard's text tab renders it)."""

    def cell(text: str) -> str:
        return " ".join(text.split()).replace("|", "\\|")[:300]

    rows = [f"| {cell(p)} | {cell(c)} | {r:+.3f} |" for p, c, r in list(zip(prompts, completions, rewards))[:count]]
    return "\n".join(["| prompt | completion | reward |", "|---|---|---|", *rows])


class Tracker:
    """Writes per-step metrics and samples to the sinks named in ``trainer.log_with``."""

    def __init__(self, run_dir: Path, sinks: list[str], *, resume_step: int | None = None,
                 config: dict | None = None, enabled: bool = True) -> None:
        self.enabled = enabled
        self.meta = run_dir / "meta_data"
        self.sinks = set(sinks)
        self._columns: list[str] | None = None
        self._tb = self._wandb = None
        if not enabled:
            return
        self.meta.mkdir(parents=True, exist_ok=True)
        if resume_step is not None:
            truncate_csv(self.meta / STATS_FILE, resume_step)
            truncate_csv(self.meta / SAMPLES_FILE, resume_step)
        if (self.meta / STATS_FILE).exists():
            with (self.meta / STATS_FILE).open(newline="", encoding="utf-8") as f:
                self._columns = next(csv.reader(f), None)
        if "tensorboard" in self.sinks:
            from torch.utils.tensorboard import SummaryWriter

            purge = resume_step + 1 if resume_step is not None else None
            self._tb = SummaryWriter(log_dir=str(run_dir / "tensorboard"), purge_step=purge)
        if "wandb" in self.sinks:
            try:
                import wandb
            except ImportError as exc:
                raise ImportError("trainer.log_with includes 'wandb': pip install 'rlhf[wandb]'") from exc
            project, name = wandb_names(config or {}, run_dir)
            self._wandb = wandb.init(project=project, name=name, dir=str(run_dir), config=config, resume="allow")

    def log(self, step: int, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        row = {"step": step, **metrics}
        if "csv" in self.sinks:
            path = self.meta / STATS_FILE
            if self._columns is None:
                self._columns = list(row)
            new = not path.exists()
            with names_path(path), path.open("a", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, fieldnames=self._columns, extrasaction="ignore")
                if new:
                    writer.writeheader()
                writer.writerow(row)
        if self._tb is not None:
            for key, value in metrics.items():
                self._tb.add_scalar(key, value, step)
            self._tb.flush()
        if self._wandb is not None:
            self._wandb.log(metrics, step=step)

    def log_samples(self, step: int, prompts: list[str], completions: list[str], rewards: list[float]) -> None:
        if not self.enabled:
            return
        path = self.meta / SAMPLES_FILE
        new = not path.exists()
        with names_path(path), path.open("a", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(SAMPLE_COLUMNS)
            writer.writerows([step, p, c, r] for p, c, r in zip(prompts, completions, rewards))
        if self._tb is not None:
            self._tb.add_text("samples", samples_markdown(prompts, completions, rewards), step)
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


def tensorboard_callback(log_dir: str | Path):
    """A transformers ``TrainerCallback`` writing TensorBoard events to ``log_dir`` (the TRL-backed stages).

    transformers 5 dropped ``TrainingArguments.logging_dir``: without this, events would go to
    ``<output_dir>/runs/<date>_<host>`` (or the process's working directory after training ended).
    """
    from transformers.integrations import TensorBoardCallback

    callback = TensorBoardCallback()
    callback.logging_dir = str(log_dir)
    return callback
