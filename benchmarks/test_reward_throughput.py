"""Throughput (texts/s) of every shipped reward at batch 64; classifier and judge use tiny random models.

Run: ``RLHF_CACHE=/tmp/rlhfcache python -m pytest benchmarks/test_reward_throughput.py --benchmark-enable -q``.
Timings are recorded (``extra_info["texts_per_second"]``), never asserted.
"""

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # for helpers_rewards

import helpers_rewards  # noqa: E402

from rlhf.data.corpus import review_sentences  # noqa: E402
from rlhf.rewards import REWARDS, load_reward, load_rewards  # noqa: E402

BATCH = 64


@pytest.fixture(scope="module")
def batch():
    completions = review_sentences(BATCH, seed=7)
    return ["Write a short movie review:"] * BATCH, completions


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    return helpers_rewards.tiny_model_dirs(tmp_path_factory)


def spec_for(name, tiny_models):
    options = {
        "classifier": {"model": tiny_models["classifier"], "label": "positive"},
        "llm_judge": {"model": tiny_models["lm"], "max_tokens": 4},
        "target_words": {"words": ["great", "awful", "sorry"]},
    }.get(name, {})
    return {"name": name, **options}


def record(benchmark, fn, batch):
    scores = benchmark(fn, *batch)
    assert len(scores) == BATCH
    if benchmark.stats is not None:
        benchmark.extra_info["texts_per_second"] = round(BATCH / benchmark.stats.stats.mean, 1)


@pytest.mark.parametrize("name", REWARDS.names())
def test_reward_throughput(benchmark, name, batch, tiny_models):
    record(benchmark, load_reward(spec_for(name, tiny_models)), batch)


def test_shaped_reward_throughput(benchmark, batch):
    reward = load_reward({"name": "sentiment", "shaping": [{"name": "exponential", "scale": 2.0},
                                                           {"name": "repetition_penalty", "ngram": 1},
                                                           {"name": "clip", "low": -1.0, "high": 1.0}]})
    record(benchmark, reward, batch)


def test_composite_throughput(benchmark, batch):
    score = load_rewards(["sentiment", "agentic_communal", {"name": "toxicity", "mode": "filter"}])
    record(benchmark, lambda prompts, completions: score(prompts, completions).total, batch)
