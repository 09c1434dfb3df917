"""Seeded reference trajectories: a change that alters what the loop computes shows up here.

Each algorithm runs 10 seeded steps of the tiny profile; the per-step reward, KL and policy loss are compared
with the committed `reference/<algo>.json` within a tolerance. Sampling makes trajectories sensitive to
float differences between CPUs, so this lives in benchmarks/ (not the test command).
Refresh after an intended change: RLHF_UPDATE_REFERENCE=1 python -m pytest benchmarks/test_reference_trajectory.py
"""

import json
import os
from pathlib import Path

import pytest
import torch

from rlhf.config import load_profile
from rlhf.tracking import read_csv
from rlhf.rl.trainer import run

REFERENCE = Path(__file__).parent / "reference"
KEYS = ["objective/scores", "objective/kl", "loss/policy_avg"]
ALGOS = {"ppo": [], "grpo": ["algo.name=grpo", "rollout.batch_size=4", "rollout.num_generations=4"],
         "rloo": ["algo.name=rloo", "rollout.batch_size=4", "rollout.num_generations=4"]}


@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_trajectory_matches_reference(algo, tmp_path):
    torch.set_num_threads(1)
    profile = load_profile("tiny-gpt2", ["trainer.steps=10", "trainer.log_with=[csv]", "trainer.learning_rate=1e-3",
                                         "rewards=[{name: length, target: 6}]", *ALGOS[algo]])
    rows = read_csv(run(profile, output_dir=tmp_path).run_dir / "meta_data" / "training_stats.csv")
    got = {key: [float(r[key]) for r in rows] for key in KEYS}
    path = REFERENCE / f"{algo}.json"
    if os.environ.get("RLHF_UPDATE_REFERENCE") or not path.exists():
        path.write_text(json.dumps(got, indent=1) + "\n")
    want = json.loads(path.read_text())
    for key in KEYS:
        assert got[key] == pytest.approx(want[key], rel=1e-3, abs=1e-4), key
