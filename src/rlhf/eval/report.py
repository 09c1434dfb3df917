"""The evaluation folder: ``report.json``, ``report.md`` (tables, flags, figures, examples), PNGs, ``examples.csv``.

The folder is new for every evaluation (``RUN/evaluations/<date>__<time>/`` by default), so an earlier
evaluation is never overwritten; an explicit ``--out`` must be a new or empty folder.
"""

from __future__ import annotations

import csv
import json
import math
from datetime import datetime
from pathlib import Path

from rlhf.eval.evaluate import Evaluation
from rlhf.eval.figures import reward_histogram, training_curves

# report.json keys shown in the markdown metric table, in order.
TABLE_KEYS = ("reward_mean", "reward_std", "distinct_1", "distinct_2", "distinct_3", "repetition_rate",
              "mean_length", "perplexity", "top_ngram", "top_ngram_share")
MAX_EXAMPLES = 50  # side-by-side examples in report.md (every one is in examples.csv)


def check_new_folder(out: str | Path | None) -> None:
    """``ValueError`` unless ``out`` is None, missing or an empty folder."""
    if out is not None and Path(out).exists() and (not Path(out).is_dir() or any(Path(out).iterdir())):
        raise ValueError(f"--out {str(out)!r} already exists and is not an empty folder; an evaluation never "
                         "overwrites another: choose a new folder")


def new_report_dir(out: str | Path | None, run_dir: Path | None, name: str) -> Path:
    """``out`` (must be new or empty) or a fresh ``<run>/evaluations/<stamp>`` (``outputs/evaluations/`` without a run)."""
    if out is not None:
        check_new_folder(out)
        Path(out).mkdir(parents=True, exist_ok=True)
        return Path(out)
    parent = run_dir / "evaluations" if run_dir is not None else Path("outputs") / "evaluations"
    stamp = datetime.now().strftime("%Y-%m-%d__%H-%M-%S")
    base = parent / (stamp if run_dir is not None else f"{name}__{stamp}")
    folder, count = base, 1
    while folder.exists():
        count += 1
        folder = base.with_name(f"{base.name}-{count}")
    folder.mkdir(parents=True)
    return folder


def write_report(evaluation: Evaluation, folder: Path, meta: dict, stats_csv: Path | None = None) -> dict:
    """Write every file of the report into ``folder``; returns the report (``report.json``'s content)."""
    figures = {"reward_histogram": reward_histogram(
        {name: m.rewards for name, m in evaluation.models.items()}, folder / "reward_histogram.png")}
    curves = training_curves(stats_csv, folder / "training_curves.png") if stats_csv is not None else None
    if curves is not None:
        figures["training_curves"] = curves
    report = {**meta, "samples": len(evaluation.prompts), **evaluation.stats,
              "figures": {name: path.name for name, path in figures.items()}}
    (folder / "report.json").write_text(json.dumps(_finite(report), indent=2), encoding="utf-8")
    _write_examples_csv(evaluation, folder / "examples.csv")
    (folder / "report.md").write_text(markdown(report, evaluation), encoding="utf-8")
    return report


def _finite(value):
    """NaN/inf as ``null`` (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _write_examples_csv(evaluation: Evaluation, path: Path) -> None:
    columns = {"prompt": evaluation.prompts}
    for name, model in evaluation.models.items():
        columns[name] = model.completions
        columns[f"{name}_reward"] = model.rewards
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows(zip(*columns.values()))


def _cell(value) -> str:
    if isinstance(value, float):
        return "n/a" if not math.isfinite(value) else f"{value:.4g}"
    text = " ".join(str(value).split()).replace("|", "\\|")  # one table row: no line breaks of any kind
    return text if len(text) <= 200 else text[:200] + "..."


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]


def markdown(report: dict, evaluation: Evaluation) -> str:
    names = list(evaluation.models)
    lines = [f"# Evaluation: {report.get('model', '')}", "",
             f"Base: {report.get('base_model', '')}. {report['samples']} prompts, seed {report.get('seed', '')}; "
             "perplexity is of the completions under the base model.", "", "## Metrics", ""]
    rows = [[key, *(report[n].get(key, math.nan) for n in names)] for key in TABLE_KEYS]
    for q in report["base"]["reward_quantiles"]:
        rows.append([f"reward {q}", *(report[n]["reward_quantiles"].get(q, math.nan) for n in names)])
    for key in report["base"]["rewards"]:
        rows.append([f"reward/{key} (mean)", *(report[n]["rewards"].get(key, math.nan) for n in names)])
    for key in report["base"]["compliance"]:
        rows.append([f"compliance {key}", *(report[n]["compliance"].get(key, math.nan) for n in names)])
    lines += _table(["metric", *names], rows) + ["", "## Reward-hacking flags", ""]
    flags = [(n, f) for n in names for f in report[n]["hacking_flags"]]
    lines += [f"- **{f['flag']}** ({n}): {f['evidence']}" for n, f in flags] or ["None fired."]
    lines += ["", "## Figures", ""]
    lines += [f"![{name}]({file})" for name, file in report["figures"].items()]
    if "training_curves" not in report["figures"]:
        lines.append("(no training curves: the model has no `meta_data/training_stats.csv`)")
    count = min(len(evaluation.prompts), MAX_EXAMPLES)
    lines += ["", f"## Examples ({count} of {len(evaluation.prompts)}; all in examples.csv)", ""]
    header = ["prompt", *names, *(f"{n} reward" for n in names)]
    examples = [[evaluation.prompts[i], *(evaluation.models[n].completions[i] for n in names),
                 *(evaluation.models[n].rewards[i] for n in names)] for i in range(count)]
    return "\n".join(lines + _table(header, examples)) + "\n"
