"""`rlhf check-reward` through the CLI: exit 0 on a sound reward, non-zero with a counterexample otherwise."""

import pytest
from typer.testing import CliRunner

from rlhf.cli import app

runner = CliRunner()


def check(spec, *extra):
    return runner.invoke(app, ["check-reward", spec, "--max-examples", "20", *extra])


def test_sound_reward_passes():
    result = check("rewards_for_tests:letter_e_fraction", "--low", "0", "--high", "10")
    assert result.exit_code == 0, result.output
    assert "all 6 properties hold" in result.output


@pytest.mark.parametrize(("spec", "failing"), [
    ("rewards_for_tests:nan_on_third_call", "FAIL"),
    ("rewards_for_tests:wrong_length", "FAIL"),
    ("rewards_for_tests:depends_on_batch_order", "batch order"),
])
def test_broken_rewards_fail_with_a_counterexample(spec, failing):
    result = check(spec)
    assert result.exit_code == 1, result.output
    assert failing in result.output and "completions=" in result.output


def test_declared_range_is_checked():
    result = check("rewards_for_tests:letter_e_fraction", "--low", "0", "--high", "1")
    assert result.exit_code == 1 and "declared range" in result.output


def test_unloadable_reward_exits_2():
    assert check("rewards_for_tests:no_such_function").exit_code == 2
