"""Throughput of the RL loop's phases on the tiny profiles (tokens/s are in the benchmark's extra_info).

Run: python -m pytest benchmarks/test_loop_throughput.py --benchmark-enable
"""

import pytest

from rlhf.config import load_profile
from rlhf.rl.trainer import Trainer


@pytest.fixture(scope="module", params=["tiny-gpt2", "tiny-llama-4bit"])
def trainer(request, tmp_path_factory):
    profile = load_profile(request.param, ["trainer.log_with=[csv]", "rewards=[{name: length, target: 8}]"])
    return Trainer(profile, tmp_path_factory.mktemp("bench"))


def test_rollout(benchmark, trainer):
    batch = benchmark(trainer.rollout)
    seconds = benchmark.stats.stats.mean
    benchmark.extra_info["generated_tokens_per_s"] = float(batch.response_mask.sum()) / seconds


def test_train_step(benchmark, trainer):
    metrics, batch, _ = benchmark.pedantic(trainer.train_step, rounds=5, iterations=1)
    benchmark.extra_info["tokens_per_s"] = metrics["tokens_per_s"]
