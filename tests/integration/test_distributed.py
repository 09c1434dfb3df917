"""Data parallel through accelerate on 2 CPU processes (gloo): parameters stay identical across ranks."""

import os
import subprocess
import sys
from pathlib import Path

from helpers import stats

from rlhf.rl.checkpoint import latest_checkpoint

HERE = Path(__file__).parent


def test_two_process_run_keeps_ranks_in_sync(tmp_path):
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           str(HERE / "ddp_train.py"), str(tmp_path)]
    env = {**os.environ, "PYTHONPATH": str(HERE), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rank0 = (tmp_path / "rank0.txt").read_text().split()
    rank1 = (tmp_path / "rank1.txt").read_text().split()
    assert rank0[0] == rank1[0] == "2"  # really two processes
    assert rank0[1] == rank1[1]  # identical parameters after the updates
    rows = stats(tmp_path / "run")  # only rank 0 writes: one row per step
    assert [r["step"] for r in rows] == ["1", "2"]
    assert latest_checkpoint(tmp_path / "run").name == "step-000002"
