"""PNG figures of an evaluation (matplotlib, no display needed): reward histograms and training curves."""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

# Curves of training_stats.csv, in panel order: (column, panel title).
TRAINING_CURVES = (("objective/scores", "reward (objective/scores)"), ("objective/kl", "KL to the reference"),
                   ("text/distinct_2", "distinct-2 of the step's completions"))


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def reward_histogram(rewards: Mapping[str, Sequence[float]], path: str | Path, title: str = "reward") -> Path:
    """Overlaid histograms of each model's rewards (e.g. base vs tuned) on shared bins."""
    figure = _figure(7, 4)
    axes = figure.add_subplot()
    finite = {name: [v for v in values if math.isfinite(v)] for name, values in rewards.items()}
    everything = [v for values in finite.values() for v in values]
    low, high = (min(everything), max(everything)) if everything else (0.0, 1.0)
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    for name, values in finite.items():
        mean = sum(values) / len(values) if values else math.nan
        axes.hist(values, bins=20, range=(low, high), alpha=0.5, label=f"{name} (mean {mean:+.3f}, n={len(values)})")
    axes.set_xlabel(title)
    axes.set_ylabel("completions")
    axes.set_title(f"{title}: " + " vs ".join(rewards))
    axes.legend()
    figure.savefig(path)
    return Path(path)


def training_curves(stats_csv: str | Path, path: str | Path) -> Path | None:
    """Reward, KL (and distinct-2 when logged) per step from ``training_stats.csv``; None without the file."""
    stats_csv = Path(stats_csv)
    if not stats_csv.is_file():
        return None
    with stats_csv.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    panels = [(column, title) for column, title in TRAINING_CURVES if rows and column in rows[0]]
    if not panels:
        return None
    from matplotlib.ticker import MaxNLocator

    figure = _figure(4 * len(panels), 3.5)
    steps = [int(row["step"]) for row in rows]
    for index, (column, title) in enumerate(panels, start=1):
        axes = figure.add_subplot(1, len(panels), index)
        axes.plot(steps, [float(row[column]) if row[column] else math.nan for row in rows], marker=".")
        axes.set_xlabel("step")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_title(title)
        axes.grid(alpha=0.3)
    figure.savefig(path)
    return Path(path)
