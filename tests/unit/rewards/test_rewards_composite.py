"""CompositeReward: weighted sum, abstentions, filters, non-finite values (error or drop), metrics."""

import math

import pytest
import torch

from rlhf.rewards import CompositeReward, load_reward, load_rewards


def fixed(*values, name="fixed"):
    def reward(prompts, completions, **kw):
        return list(values)

    reward.__name__ = name
    return load_reward(reward)


def test_weighted_sum_and_components():
    score = load_rewards([{"name": "length", "target": 2}, {"name": "target_words", "words": ["sorry"],
                                                           "weight": -0.5}])
    out = score(["", ""], ["sorry sorry", "fine"])
    assert out.total.tolist() == [0.0, 0.5]  # 1.0 - 0.5 * 2, 0.5 - 0
    assert out.components["length"].tolist() == [1.0, 0.5]
    assert out.components["target_words"].tolist() == [2.0, 0.0]
    assert out.valid.all() and out.num_invalid == 0


def test_abstaining_reward_is_left_out_of_the_sum():
    out = CompositeReward([fixed(1.0, None, name="a"), fixed(2.0, 3.0, name="b")])(["", ""], ["x", "y"])
    assert out.total.tolist() == [3.0, 3.0]
    assert math.isnan(out.components["a"][1])
    assert out.metrics()["rewards/a"] == 1.0  # mean over the samples it scored


def test_filter_overrides_the_total():
    score = load_rewards([{"name": "length", "target": 3},
                          {"name": "toxicity", "mode": "filter", "threshold": 0.5, "floor": -1.0}])
    out = score(["", ""], ["you stupid idiot", "have a lovely day"])
    assert out.total.tolist() == [-1.0, pytest.approx(1.0 - 1 / 3)]
    assert out.metrics()["rewards/toxicity/filtered"] == 1.0


def test_every_reward_abstaining_is_an_error_or_dropped():
    rewards = [fixed(None, 1.0, name="a"), fixed(None, None, name="b")]
    with pytest.raises(ValueError, match="every reward abstained .* sample 0, completion 'x'"):
        CompositeReward(rewards)(["", ""], ["x", "y"])
    out = CompositeReward(rewards, nonfinite="drop")(["", ""], ["x", "y"])
    assert out.valid.tolist() == [False, True] and out.total.tolist() == [0.0, 1.0]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nonfinite_raises_naming_reward_index_and_completion(bad):
    with pytest.raises(ValueError, match=rf"reward 'b' returned {bad} at index 1 .*completion 'y'.*drop"):
        CompositeReward([fixed(1.0, 1.0, name="a"), fixed(0.0, bad, name="b")])(["", ""], ["x", "y"])


def test_nonfinite_dropped_and_counted():
    score = CompositeReward([fixed(1.0, 1.0, 1.0, name="a"), fixed(0.0, math.nan, math.inf, name="b")],
                            nonfinite="drop")
    out = score([""] * 3, ["x", "y", "z"])
    assert out.valid.tolist() == [True, False, False]
    assert out.total.tolist() == [1.0, 0.0, 0.0] and torch.isfinite(out.total).all()
    metrics = out.metrics()
    assert metrics["rewards/invalid"] == 2.0 and metrics["rewards/total"] == 1.0 and metrics["rewards/b"] == 0.0


def test_wrong_length_is_always_an_error():
    with pytest.raises(ValueError, match="returned 3 values for 2 completions"):
        CompositeReward([load_reward("helpers_rewards:one_value_too_many")], nonfinite="drop")(["", ""], ["a", "b"])


def test_names_are_unique_and_metrics_keys_follow_the_convention():
    score = load_rewards(["length", {"name": "length", "target": 5}, "helpers_rewards:mean_word_length"])
    assert score.names == ["length", "length_2", "mean_word_length"]
    metrics = score([""], ["a b"]).metrics()
    assert set(metrics) == {"rewards/total", "rewards/invalid", "rewards/length", "rewards/length_2",
                            "rewards/mean_word_length"}


def test_kwargs_reach_every_reward():
    seen = []

    def spy(prompts, completions, **kwargs):
        seen.append(kwargs)
        return [0.0] * len(completions)

    load_rewards([spy])([""], ["a"], completion_ids=[[1]])
    assert seen == [{"completion_ids": [[1]]}]


def test_bad_composite_arguments():
    with pytest.raises(ValueError, match="no rewards given"):
        load_rewards([])
    with pytest.raises(ValueError, match="nonfinite='skip'"):
        load_rewards(["length"], nonfinite="skip")


def test_dropped_step_guard_warns_then_stops_and_resets_on_a_good_step():
    import math

    import pytest

    from rlhf.rewards.composite import DroppedStepGuard

    nan_reward = CompositeReward([lambda p, c, **k: [math.nan] * len(c)], nonfinite="drop")
    half_reward = CompositeReward([lambda p, c, **k: [math.nan, 1.0]], nonfinite="drop")
    guard = DroppedStepGuard(patience=2)
    assert "every one of the 2 samples" in guard.check(nan_reward(["a", "b"], ["x", "y"]))
    assert guard.check(half_reward(["a", "b"], ["x", "y"])) is None  # one sample survived: the count restarts
    assert guard.check(nan_reward(["a", "b"], ["x", "y"])) is not None
    with pytest.raises(ValueError, match="dropped every sample for 2 steps in a row"):
        guard.check(nan_reward(["a", "b"], ["x", "y"]))
