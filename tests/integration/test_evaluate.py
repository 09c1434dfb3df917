"""Base vs tuned (and base best-of-N) through `rlhf evaluate` on a finished run."""

import csv
import json

import pytest
from rewards_for_tests import letter_e_fraction
from typer.testing import CliRunner

from rlhf.cli import app
from rlhf.eval.compare import best_of_n

runner = CliRunner()


def test_best_of_n_picks_the_highest_reward_per_prompt():
    completions = ["a1", "a2", "a3", "b1", "b2", "b3"]
    rewards = [0.0, 2.0, 1.0, -1.0, -3.0, -2.0]
    assert best_of_n(completions, rewards, 3) == (["a2", "b1"], [2.0, -1.0])


def test_evaluate_command_compares_base_tuned_and_best_of(tmp_path):
    reward = "rewards=[{name: 'rewards_for_tests:letter_e_fraction'}]"
    trained = runner.invoke(app, ["run", "--output-dir", str(tmp_path), "--set", reward, "--set", "trainer.steps=3"])
    assert trained.exit_code == 0, trained.output
    (run_dir,) = tmp_path.iterdir()
    result = runner.invoke(app, ["evaluate", str(run_dir), "--samples", "6", "--best-of", "4"])
    assert result.exit_code == 0, result.output
    assert "base vs tuned" in result.output and "best-of-4" in result.output
    summary = json.loads((run_dir / "meta_data" / "evaluation.json").read_text())
    with (run_dir / "meta_data" / "evaluation.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert summary["samples"] == len(rows) == 6 and {"base", "tuned", "base_best_of_4"} <= set(rows[0])
    for column in ("base", "tuned", "base_best_of_4"):  # every stored reward is the reward of that text
        stored = [float(r[f"{column}_reward"]) for r in rows]
        assert stored == pytest.approx(letter_e_fraction(None, [r[column] for r in rows]), abs=1e-5)
    means = [sum(float(r[f"{c}_reward"]) for r in rows) / 6 for c in ("base", "tuned", "base_best_of_4")]
    assert [summary["base_reward_mean"], summary["tuned_reward_mean"],
            summary["base_best_of_4_reward_mean"]] == pytest.approx(means)


def test_evaluate_refuses_an_unfinished_run(tmp_path):
    result = runner.invoke(app, ["evaluate", str(tmp_path)])
    assert result.exit_code == 2 and "not a finished run folder" in result.output
