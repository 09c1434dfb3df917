"""Runs that go wrong mid-way: the user sees one clear line and keeps every finished step.

Covers issue 8's trust items: same-second run folders, divergence, a stuck reward and a second signal,
exceptions from a user's reward (``SystemExit`` included), damaged checkpoints and ``final/``.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import rewards_for_tests
from faults.harness import TESTS, Fault, assert_clean_failure, check_fault, invoke
from rlhf.config import load_profile
from rlhf.rl import trainer as trainer_module
from rlhf.rl.checkpoint import POLICY_DIR, latest_checkpoint, validate_checkpoint
from rlhf.tracking import read_csv

FAST = ["--set", "trainer.log_with=[csv]", "--set", "trainer.checkpoint_every=1"]


def only_run(tmp: Path) -> Path:
    (run,) = [p for p in tmp.iterdir() if p.is_dir()]
    return run


def steps_logged(run: Path) -> list[int]:
    return [int(r["step"]) for r in read_csv(run / "meta_data" / "training_stats.csv")]


def reset_calls(tmp: Path) -> None:
    rewards_for_tests._calls["n"] = 0


def keeps_two_finished_steps(tmp: Path) -> None:
    run = only_run(tmp)
    checkpoint = latest_checkpoint(run)
    assert checkpoint is not None and checkpoint.name == "step-000002"
    validate_checkpoint(checkpoint)
    assert steps_logged(run) == [1, 2]


def reward_run(reward: str) -> list[str]:
    return ["run", "--output-dir", "{tmp}", "--set", f"rewards=[{{name: 'rewards_for_tests:{reward}'}}]",
            "--set", "trainer.steps=5", *FAST]


FAULTS = [
    Fault("reward-raises-keyerror", reward_run("key_error_on_third_call"),
          ("reward 'key_error_on_third_call' raised KeyError", "'missing'"),
          setup=reset_calls, keeps=keeps_two_finished_steps),
    Fault("reward-calls-sys-exit", reward_run("exit_on_third_call"),
          ("reward 'exit_on_third_call' raised SystemExit",),
          setup=reset_calls, keeps=keeps_two_finished_steps),
]


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.id)
def test_fault(fault: Fault, tmp_path: Path) -> None:
    check_fault(fault, tmp_path)


def test_debug_shows_the_rewards_traceback(tmp_path):
    rewards_for_tests._calls["n"] = 0
    args = [a.replace("{tmp}", str(tmp_path)) for a in reward_run("key_error_on_third_call")]
    outcome = invoke(["--debug", *args])
    assert outcome.exit_code == 2
    assert "Traceback" in outcome.output and "key_error_on_third_call" in outcome.output
    assert 'return [{"score": 1.0}["missing"]]' in outcome.output  # the user's own line


def test_check_reward_fails_a_reward_that_exits():
    outcome = invoke(["check-reward", "rewards_for_tests:exits", "--max-examples", "5"])
    assert outcome.exit_code == 1 and "SystemExit" in outcome.output, outcome.output


# ------------------------------------------------------------------------------------------ divergence

DIVERGING = ["run", "--output-dir", "{tmp}", *FAST, "--set", "trainer.learning_rate=1e4",
             "--set", "trainer.max_grad_norm=null", "--set", "trainer.warmup_steps=2", "--set", "algo.epochs=1",
             "--set", "algo.mini_batch_size=8",
             "--set", "trainer.steps=20"]


def test_divergence_stops_before_a_nonfinite_step_and_the_last_checkpoint_resumes(tmp_path):
    outcome = invoke([a.replace("{tmp}", str(tmp_path)) for a in DIVERGING])
    line = assert_clean_failure(outcome, 3, ["training diverged at step", "is not finite",
                                             "trainer.learning_rate=10000 is very high", "gradient clipping is off",
                                             "--resume"])
    assert "diverged" in line
    run = only_run(tmp_path)
    last = latest_checkpoint(run)
    assert last is not None
    # lr is 0, then 5000: step 2's weights blow up step 3's forward, so step 2's checkpoint is set aside
    assert last.name == "step-000001" and (run / "checkpoints" / "diverged-step-000002").is_dir()
    assert "diverged at step 3" in line
    weights = load_file(str(last / POLICY_DIR / "model.safetensors"))
    assert all(bool(torch.isfinite(w).all()) for w in weights.values())
    done = int(last.name.removeprefix("step-"))
    resumed = invoke(["run", "--resume", str(run), "--set", "trainer.learning_rate=1e-3",
                      "--set", "trainer.max_grad_norm=1.0", "--set", f"trainer.steps={done + 2}"])
    assert resumed.exit_code == 0, resumed.output
    assert steps_logged(run) == list(range(1, done + 3))
    rows = read_csv(run / "meta_data" / "training_stats.csv")
    assert float(rows[-1]["lr"]) < 1e-2  # the lower learning rate was applied, not the checkpoint's


# ------------------------------------------------------------------------------------ run folders


def test_two_runs_in_the_same_second_get_their_own_folders(tmp_path, monkeypatch):
    monkeypatch.setattr(trainer_module, "run_dir_name", lambda profile: "same-second")
    for _ in range(2):
        outcome = invoke(["run", "--output-dir", str(tmp_path), "--set", "trainer.steps=1", *FAST])
        assert outcome.exit_code == 0, outcome.output
    runs = sorted(p.name for p in tmp_path.iterdir())
    assert runs == ["same-second", "same-second_2"]
    for name in runs:
        assert steps_logged(tmp_path / name) == [1] and (tmp_path / name / "final").is_dir()


def test_a_run_that_fails_before_its_first_step_leaves_no_folder(tmp_path):
    outcome = invoke(["run", "--output-dir", str(tmp_path), "--set", "rewards=[{name: 'rewards_for_tests:exits'}]"])
    assert_clean_failure(outcome, 2, ["SystemExit"])
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------- checkpoints


def test_resume_skips_a_damaged_checkpoint_and_cleans_leftovers(tmp_path):
    assert invoke(["run", "--output-dir", str(tmp_path), "--set", "trainer.steps=3", *FAST]).exit_code == 0
    run = only_run(tmp_path)
    weights = run / "checkpoints" / "step-000003" / POLICY_DIR / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated, as by a full disk
    leftover = run / "checkpoints" / ".tmp-step-000004-killed"
    leftover.mkdir()
    outcome = invoke(["run", "--resume", str(run), "--set", "trainer.steps=4"])
    assert outcome.exit_code == 0, outcome.output
    flat = " ".join(outcome.output.split())
    assert "skipping damaged checkpoint" in flat and "model.safetensors is truncated" in flat
    assert "resuming from step-000002" in flat
    assert not leftover.exists()
    assert steps_logged(run) == [1, 2, 3, 4]


def test_a_failed_final_save_leaves_no_half_final_folder(tmp_path, monkeypatch):
    from rlhf.models.policy import Policy

    original = Policy.save

    def failing_save(self, folder, tokenizer=None):
        if Path(folder).name.startswith(".tmp-final"):
            original(self, folder, tokenizer)  # write part of it, then fail like a full disk
            raise OSError(28, "No space left on device")
        return original(self, folder, tokenizer)

    monkeypatch.setattr(Policy, "save", failing_save)
    outcome = invoke(["run", "--output-dir", str(tmp_path), "--set", "trainer.steps=2", *FAST])
    assert outcome.exit_code == 2 and "No space left" in outcome.output
    run = only_run(tmp_path)
    assert not (run / "final").exists() and not list(run.glob(".tmp-final*"))
    assert latest_checkpoint(run).name == "step-000002"  # the finished work is kept


# ------------------------------------------------------------------------------------------ signals


def test_a_second_signal_stops_a_stuck_reward_at_once(tmp_path):
    path = os.pathsep.join([str(TESTS), str(TESTS / "integration"), os.environ.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "rlhf", "run", "--output-dir", str(tmp_path), "--set", "trainer.steps=50",
           "--set", "rewards=[{name: 'rewards_for_tests:hang_on_third_call'}]", *FAST]
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": path}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:  # wait until the reward is stuck
        lines.append(line)
        if "REWARD HANGS" in line:
            break
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert proc.poll() is None  # the first signal only asks to finish the step: the reward still hangs
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    output = "".join(lines) + output
    assert proc.returncode == 128 + signal.SIGTERM, output
    assert "Traceback" not in output and "stopped at once" in output
    run = only_run(tmp_path)
    checkpoint = latest_checkpoint(run)
    assert checkpoint.name == "step-000002"
    validate_checkpoint(checkpoint)
    assert f"--resume {run}" in " ".join(output.split())
