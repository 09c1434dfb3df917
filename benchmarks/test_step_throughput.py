"""The RL step of GRPO, RLOO and PPO beside the floor (bare generate + one forward/backward + AdamW).

One torch thread; each pytest-benchmark round runs one rlhf step and one floor step back to back, so the
ratio compares steps taken under the same machine load; the first round is a warm-up. Printed and kept in
``extra_info``: median ms of both, rlhf / floor (median and range of the per-round ratios) and tokens/s.
Nothing is asserted about time.

Full: ``python -m pytest benchmarks/test_step_throughput.py --benchmark-enable -s`` (bench-grpo shape).
Quick (CI): ``RLHF_BENCH_QUICK=1 python -m pytest benchmarks/test_step_throughput.py --benchmark-enable -s``.
For TRL beside them use ``rlhf bench -p bench-grpo --against trl`` (separate processes).
"""

import os
import statistics

import pytest
import torch
from transformers.utils import logging as hf_logging

from rlhf.bench.floor import FloorStep
from rlhf.bench.phases import RlhfStep
from rlhf.config import load_profile

QUICK = bool(os.environ.get("RLHF_BENCH_QUICK"))
PROFILE = "bench-grpo-small" if QUICK else "bench-grpo"
ROUNDS = 3 if QUICK else 10
hf_logging.disable_progress_bar()
ALGOS = {
    "grpo": [],
    "rloo": ["algo.name=rloo"],
    "ppo": ["algo.name=ppo", "rollout.batch_size=32", "rollout.num_generations=1", "algo.kl.coef=0.05"],
}


@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_step_beside_floor(benchmark, algo, tmp_path):
    torch.set_num_threads(1)
    profile = load_profile(PROFILE, ALGOS[algo])
    rlhf, floor = RlhfStep(profile, tmp_path), FloorStep(profile)
    records: list[tuple[dict, dict]] = []

    def one_round():
        records.append((rlhf.step(), floor.step()))

    benchmark.pedantic(one_round, rounds=ROUNDS, warmup_rounds=1, iterations=1)
    measured = records[1:]  # pedantic's warm-up round is recorded too
    ours = [r["step_s"] for r, _ in measured]
    ratios = [r["step_s"] / f["step_s"] for r, f in measured]
    tokens_per_s = statistics.median(r["tokens"] / r["step_s"] for r, _ in measured)
    info = {"profile": PROFILE, "rlhf_ms": 1000 * statistics.median(ours),
            "floor_ms": 1000 * statistics.median(f["step_s"] for _, f in measured),
            "rlhf_over_floor": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
            "tokens_per_s": tokens_per_s}
    benchmark.extra_info.update(info)
    print(f"\n{algo} on {PROFILE}: rlhf {info['rlhf_ms']:.0f} ms, floor {info['floor_ms']:.0f} ms, rlhf / floor "
          f"{info['rlhf_over_floor']:.2f} [{min(ratios):.2f}-{max(ratios):.2f}], {tokens_per_s:.0f} tokens/s")
