"""The Python API: callables as rewards (lambdas, notebook functions), specs, live callbacks, CLI parity."""

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import rewards_for_tests
import rlhf
from rlhf.cli import app

QUICK = {"trainer.steps": 2, "trainer.log_with": ["csv"], "trainer.checkpoint_every": 1}


def recorded_rewards(result) -> list[str]:
    profile = yaml.safe_load((result.run_dir / "profile.yaml").read_text())
    return [entry["name"] for entry in profile["rewards"]]


def test_a_lambda_reward_and_a_live_callback(tmp_path):
    seen = []
    result = rlhf.run("tiny-gpt2", overrides=QUICK, output_dir=tmp_path, quiet=True,
                      rewards=[lambda prompts, completions, **kw: [len(c) / 10 for c in completions]],
                      on_step=lambda metrics, samples: seen.append((metrics, samples)))
    assert isinstance(result.stats, pd.DataFrame) and list(result.stats["step"]) == [1, 2]
    assert [m["objective/scores"] for m, _ in seen] == pytest.approx(list(result.stats["objective/scores"]))
    (_, samples), = seen[-1:]
    assert len(samples) == 8 and samples[0]["reward"] == pytest.approx(len(samples[0]["completion"]) / 10)
    assert recorded_rewards(result) == ["python:<lambda>"]
    assert {"final", "training_stats", "samples", "profile"} <= set(result.paths)
    assert len(result.samples) == 16


def notebook_reward(prompts, completions, **kwargs):
    return [c.count(" ") / 10 for c in completions]


notebook_reward.__module__ = "__main__"  # as if defined in a notebook cell


def test_a_notebook_function_is_asked_for_again_on_resume(tmp_path):
    result = rlhf.run("tiny-gpt2", overrides=QUICK, output_dir=tmp_path, quiet=True, rewards=[notebook_reward])
    assert recorded_rewards(result) == ["python:notebook_reward"]
    resumed = CliRunner().invoke(app, ["run", "--resume", str(result.run_dir), "--set", "trainer.steps=3"])
    assert resumed.exit_code == 2
    assert "rewards=[notebook_reward]" in " ".join(resumed.output.split())
    again = rlhf.run(resume=result.run_dir, overrides={"trainer.steps": 3}, rewards=[notebook_reward], quiet=True)
    assert list(again.stats["step"]) == [1, 2, 3]


def test_spec_strings_and_importable_functions_are_recorded_for_the_cli(tmp_path):
    by_name = rlhf.run("tiny-gpt2", overrides=QUICK, output_dir=tmp_path / "a", quiet=True,
                       rewards=["rewards_for_tests:letter_e_fraction", {"name": "length", "target": 5}])
    assert recorded_rewards(by_name) == ["rewards_for_tests:letter_e_fraction", "length"]
    by_object = rlhf.run("tiny-gpt2", overrides=QUICK, output_dir=tmp_path / "b", quiet=True,
                         rewards=[rewards_for_tests.letter_e_fraction])
    assert recorded_rewards(by_object) == ["rewards_for_tests:letter_e_fraction"]


def test_the_cli_and_the_api_make_the_same_run(tmp_path):
    settings = ["trainer.steps=2", "trainer.log_with=[csv]", "rewards=[{name: 'rewards_for_tests:letter_e_fraction'}]"]
    cli = CliRunner().invoke(app, ["run", "--output-dir", str(tmp_path / "cli"), *sum((["--set", s] for s in settings), [])])
    assert cli.exit_code == 0, cli.output
    api = rlhf.run("tiny-gpt2", overrides=settings, output_dir=tmp_path / "api", quiet=True)
    (cli_dir,) = (tmp_path / "cli").iterdir()
    cli_stats = pd.read_csv(cli_dir / "meta_data" / "training_stats.csv")
    columns = [c for c in cli_stats.columns if not c.startswith("timing/") and c not in ("step_s", "tokens_per_s")]
    pd.testing.assert_frame_equal(cli_stats[columns], api.stats[columns])


def test_plan_check_reward_and_profile_overrides_from_python():
    profile = rlhf.load_profile("tiny-gpt2", {"trainer.steps": 3, "rewards.0.weight": 2})
    assert profile.trainer.steps == 3 and profile.rewards[0].weight == 2
    assert rlhf.plan("a100-8b", gpu_memory=40).fits
    results = rlhf.check_reward(lambda p, c, **kw: [1.0] * len(c), max_examples=5)
    assert all(r.passed for r in results)
