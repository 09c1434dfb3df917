"""PromptSampler: shuffled epochs, full batches, exact resume."""

from __future__ import annotations

import json

import pytest

from rlhf.data import PromptSampler

PROMPTS = [f"prompt {i}" for i in range(10)]


def test_each_epoch_is_a_fresh_permutation():
    sampler = PromptSampler(PROMPTS, batch_size=5, seed=0)
    first = sampler.next_batch() + sampler.next_batch()
    second = sampler.next_batch() + sampler.next_batch()
    assert sorted(first) == sorted(PROMPTS) == sorted(second)
    assert first != second and first != PROMPTS
    assert sampler.epoch == 1


def test_batches_are_always_full_and_wrap_across_epochs():
    sampler = PromptSampler(PROMPTS, batch_size=4, seed=3)
    stream = [p for _ in range(5) for p in sampler.next_batch()]  # 20 prompts = 2 epochs
    assert sorted(stream[:10]) == sorted(PROMPTS) == sorted(stream[10:])


def test_fewer_prompts_than_batch_size_repeats():
    batch = PromptSampler(["a", "b", "c"], batch_size=7, seed=0).next_batch()
    assert len(batch) == 7
    assert sorted(batch[:3]) == sorted(batch[3:6]) == ["a", "b", "c"]


def test_same_seed_same_batches_other_seed_differs():
    def draw(seed):
        sampler = PromptSampler(PROMPTS, batch_size=3, seed=seed)
        return [sampler.next_batch() for _ in range(6)]

    assert draw(0) == draw(0)
    assert draw(0) != draw(1)


def test_resume_continues_with_identical_batches():
    sampler = PromptSampler(PROMPTS, batch_size=3, seed=7)
    for _ in range(5):
        sampler.next_batch()
    state = json.loads(json.dumps(sampler.state_dict()))  # survives a JSON round trip
    expected = [sampler.next_batch() for _ in range(8)]
    restored = PromptSampler(PROMPTS, batch_size=3, seed=999)  # the saved seed wins
    restored.load_state_dict(state)
    assert [restored.next_batch() for _ in range(8)] == expected


def test_resume_with_other_prompts_is_an_error():
    state = PromptSampler(PROMPTS, batch_size=2, seed=0).state_dict()
    with pytest.raises(ValueError, match="different prompt list"):
        PromptSampler(PROMPTS[:-1] + ["other"], batch_size=2, seed=0).load_state_dict(state)


def test_bad_arguments():
    with pytest.raises(ValueError, match="at least one prompt"):
        PromptSampler([], batch_size=2, seed=0)
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        PromptSampler(["a"], batch_size=0, seed=0)
