"""Shaping transforms by hand, their range mapping, and shaping from a profile entry."""

import math

import pytest

from rlhf.rewards import (
    SHAPINGS,
    Clip,
    Exponential,
    LengthPenalty,
    Linear,
    Negate,
    RepetitionPenalty,
    load_reward,
    shape,
)


def constant(value):
    return lambda prompts, completions, **kw: [value] * len(completions)


@pytest.mark.parametrize(
    ("transform", "value", "completion", "expected"),
    [
        (Linear(scale=2.0, shift=1.0), 0.5, "", 2.0),
        (Exponential(scale=1.0), 1.0, "", math.e - 1),
        (Exponential(scale=1.0), -1.0, "", -(math.e - 1)),
        (Exponential(scale=2.0, neutral=0.5), 0.5, "", 0.5),
        (Exponential(scale=1.0), 0.0, "", 0.0),
        (Negate(), 0.25, "", -0.25),
        (Clip(low=-1.0, high=1.0), 5.0, "", 1.0),
        (Clip(low=0.0), -3.0, "", 0.0),
        (Clip(high=0.0), 3.0, "", 0.0),
        (LengthPenalty(min_words=3, max_words=5, per_word=0.1), 1.0, "one", 0.8),
        (LengthPenalty(min_words=3, max_words=5, per_word=0.1), 1.0, "a b c d", 1.0),
        (LengthPenalty(min_words=0, max_words=2, per_word=0.5, max_penalty=1.0), 1.0, "a b c d e f", 0.0),
        (RepetitionPenalty(ngram=1, weight=1.0), 1.0, "great great great", 1.0 - 2 / 3),
        (RepetitionPenalty(ngram=1, weight=1.0), 1.0, "Great GREAT great!", 1.0 - 2 / 3),
        (RepetitionPenalty(ngram=2, weight=1.0), 1.0, "the cat the cat", 1.0 - 1 / 3),
        (RepetitionPenalty(ngram=2, weight=1.0), 1.0, "the cat sat", 1.0),
        (RepetitionPenalty(ngram=3, weight=1.0), 1.0, "too short", 1.0),
        (RepetitionPenalty(), 1.0, "", 1.0),
    ],
)
def test_transform_by_hand(transform, value, completion, expected):
    assert transform.apply([value, None], [completion, completion]) == [pytest.approx(expected), None]


def test_exponential_overflow_is_inf_not_a_crash():
    assert Exponential(scale=1000.0).apply([1.0], [""]) == [math.inf]


@pytest.mark.parametrize(
    ("transform", "low", "high", "expected"),
    [
        (Linear(scale=-2.0, shift=1.0), 0.0, 1.0, (-1.0, 1.0)),
        (Linear(scale=0.0, shift=3.0), -math.inf, math.inf, (3.0, 3.0)),
        (Negate(), -1.0, 0.5, (-0.5, 1.0)),
        (Clip(low=-1.0, high=1.0), -math.inf, math.inf, (-1.0, 1.0)),
        (Exponential(scale=1.0), -1.0, 1.0, (-(math.e - 1), math.e - 1)),
        (RepetitionPenalty(weight=0.5), 0.0, 1.0, (-0.5, 1.0)),
        (LengthPenalty(max_penalty=0.3), 0.0, 1.0, (-0.3, 1.0)),
    ],
)
def test_map_range(transform, low, high, expected):
    assert transform.map_range(low, high) == pytest.approx(expected)


def test_shaping_from_a_profile_entry_applies_in_order_and_maps_the_range():
    reward = load_reward({"name": "length", "target": 2, "shaping": [
        {"name": "linear", "scale": 4.0}, {"name": "negate"}, {"name": "clip", "low": -3.0}]})
    assert reward(["", ""], ["a b", "a"]) == [-3.0, -2.0]
    assert reward.value_range == (-3.0, 0.0)


def test_shape_in_python_extends_a_loaded_reward():
    base = load_reward({"name": "length", "target": 2, "shaping": ["negate"]})
    assert shape(base, Linear(shift=1.0))(["", ""], ["a b", "a"]) == [0.0, 0.5]
    assert shape(constant(2.0), Negate(), name="two")([""], ["x"]) == [-2.0]


@pytest.mark.parametrize(
    ("shaping", "message"),
    [
        ([{"name": "exponentail"}], "Did you mean 'exponential'"),
        ([{"name": "clip"}], "clip needs low, high or both"),
        ([{"name": "clip", "low": 1.0, "high": 0.0}], "above high"),
        ([{"name": "exponential", "scale": -1.0}], "option 'scale'=-1.0"),
        ([{"name": "linear", "slope": 2}], "unknown option 'slope'"),
        ([{"scale": 2}], "needs a 'name'"),
        ({"name": "negate"}, "must be a list"),
        ([{"name": "length_penalty", "min_words": 9, "max_words": 3}], "above max_words"),
    ],
)
def test_bad_shaping_entries_name_the_reward(shaping, message):
    with pytest.raises(ValueError, match=message) as info:
        load_reward({"name": "sentiment", "shaping": shaping})
    assert "reward 'sentiment'" in str(info.value)


def test_shaping_registry_is_the_list_of_names():
    assert SHAPINGS.names() == ["clip", "exponential", "length_penalty", "linear", "negate", "repetition_penalty"]
