"""The bench report's arithmetic: per-round paired ratios, medians, ranges, tokens/s, phase medians."""

import pytest

from rlhf.bench.compare import BenchReport, report_table


def steps(seconds, tokens=100, **phases):
    return [{"step_s": s, "phases": {k: v[i] for k, v in phases.items()}, "tokens": tokens, "sequences": 4,
             "peak_memory_mb": 10.0 + i} for i, s in enumerate(seconds)]


def test_ratios_are_paired_by_round_then_summarised():
    report = BenchReport("p", threads=1, rounds=3, warmup=1, steps={
        "rlhf": steps([1.0, 2.0, 1.0], generate=[0.5, 0.6, 0.7]),
        "floor": steps([0.5, 1.0, 1.0]),
        "trl": steps([2.0, 3.0, 4.0]),
    })
    # per round TRL / rlhf = 2, 1.5, 4: median 2 (the ratio of medians, 3 / 1 = 3, would differ)
    assert report.ratio("trl", "rlhf") == {"median": 2.0, "min": 1.5, "max": 4.0}
    assert report.ratio("rlhf", "floor") == {"median": 2.0, "min": 1.0, "max": 2.0}
    assert report.step_seconds("trl") == {"median": 3.0, "min": 2.0, "max": 4.0}
    assert report.phase_seconds("rlhf") == {"generate": pytest.approx(0.6)}
    assert report.tokens_per_s("rlhf") == 100.0  # per-round 100, 50, 100 tokens/s
    assert report.peak_memory_mb("floor") == 12.0
    data = report.to_dict()
    assert data["speedup_vs_trl"]["median"] == 2.0 and data["rlhf_over_floor"]["median"] == 2.0
    table, lines = report_table(report)
    assert table.row_count == 4 and lines[0].startswith("speedup vs TRL") and "2.00" in lines[0]
