"""Signals and bad rewards stop a run cleanly, with a loadable checkpoint and a message that helps."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from rlhf.rl.checkpoint import POLICY_DIR, latest_checkpoint
from rlhf.cli import app
from rlhf.config import load_profile
from rlhf.models.factory import build_policy

HERE = Path(__file__).parent
runner = CliRunner()


def run_cli(*args):
    return runner.invoke(app, ["run", *args])


def only_run_dir(parent: Path) -> Path:
    (run_dir,) = [p for p in parent.iterdir() if p.is_dir()]
    return run_dir


def test_nan_reward_stops_with_message_and_keeps_checkpoint(tmp_path):
    import rewards_for_tests

    rewards_for_tests._calls["n"] = 0
    result = run_cli("--output-dir", str(tmp_path), "--set", "rewards=[{name: 'rewards_for_tests:nan_on_third_call'}]",
                     "--set", "trainer.checkpoint_every=100", "--set", "trainer.steps=5")
    assert result.exit_code == 2, result.output
    assert "nan_on_third_call" in result.output and "index 1" in result.output
    checkpoint = latest_checkpoint(only_run_dir(tmp_path))
    assert checkpoint is not None and checkpoint.name == "step-000002"  # the two finished steps are kept


def test_nan_rewards_can_be_dropped_instead(tmp_path):
    import rewards_for_tests

    rewards_for_tests._calls["n"] = 0
    result = run_cli("--output-dir", str(tmp_path), "--set", "rewards=[{name: 'rewards_for_tests:nan_on_third_call'}]",
                     "--set", "trainer.nonfinite_rewards=drop", "--set", "trainer.steps=4")
    assert result.exit_code == 0, result.output
    from helpers import column, stats

    assert column(stats(only_run_dir(tmp_path)), "rewards/invalid")[2:] == [1.0, 1.0]


def test_wrong_length_reward_is_a_clear_error(tmp_path):
    result = run_cli("--output-dir", str(tmp_path), "--set", "rewards=[{name: 'rewards_for_tests:wrong_length'}]")
    assert result.exit_code == 2
    assert "wrong_length" in result.output and "7" in result.output and "8" in result.output


def test_unknown_reward_is_a_clear_error(tmp_path):
    result = run_cli("--output-dir", str(tmp_path), "--set", "rewards=[{name: lenght}]")
    assert result.exit_code == 2 and "length" in result.output


def test_sigterm_checkpoints_and_exits_nonzero(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "rlhf", "run", "--output-dir", str(tmp_path), "--set", "trainer.steps=500",
           "--set", "trainer.checkpoint_every=1000", "--set", "trainer.log_with=[csv]"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        runs = [p for p in tmp_path.iterdir() if p.is_dir()]
        if runs and (runs[0] / "meta_data" / "training_stats.csv").exists():
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, output
    assert "interrupted" in output and "--resume" in output
    run_dir = only_run_dir(tmp_path)
    checkpoint = latest_checkpoint(run_dir)
    assert checkpoint is not None
    profile = load_profile(run_dir / "profile.yaml")
    policy = build_policy(profile.model, with_value_head=True, adapter_dir=checkpoint / POLICY_DIR)
    assert policy.value_head is not None

    done = int(checkpoint.name.removeprefix("step-"))
    resumed = run_cli("--resume", str(run_dir), "--set", f"trainer.steps={done + 1}")
    assert resumed.exit_code == 0, resumed.output
    from helpers import stats

    assert [int(r["step"]) for r in stats(run_dir)] == list(range(1, done + 2))
    assert (run_dir / "final" / "value_head.safetensors").exists()
