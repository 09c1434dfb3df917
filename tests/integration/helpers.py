"""Reading a run's outputs in tests."""

from pathlib import Path

from rlhf.tracking import read_csv


def stats(run_dir: Path) -> list[dict[str, str]]:
    return read_csv(Path(run_dir) / "meta_data" / "training_stats.csv")


def column(rows: list[dict[str, str]], key: str) -> list[float]:
    return [float(r[key]) for r in rows]


def first_last_mean(values: list[float], k: int) -> tuple[float, float]:
    return sum(values[:k]) / k, sum(values[-k:]) / k
