"""The generic reward properties hold for every shipped reward, shaping and the composite; shaping laws."""

import math

import helpers_rewards
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlhf.rewards import (
    REWARDS,
    SHAPINGS,
    Exponential,
    Negate,
    RepetitionPenalty,
    load_reward,
    load_rewards,
    shape,
)
from rlhf.testing import assert_reward_properties, batches


MAX_EXAMPLES = 25
SLOW_MAX_EXAMPLES = 10  # llm_judge generates, toxicity costs ~12 ms a call: keep the suite fast on 2 cores
SLOW = ("llm_judge", "toxicity")
FAST = settings(max_examples=50, deadline=None, database=None)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    return helpers_rewards.tiny_model_dirs(tmp_path_factory)


def options_for(name, tiny_models):
    """The options a shipped reward needs to be built in a test (models are tiny and random)."""
    return {
        "classifier": {"model": tiny_models["classifier"], "label": "positive", "batch_size": 4},
        "llm_judge": {"model": tiny_models["lm"], "max_tokens": 2, "batch_size": 4,
                      "max_unparsed": 1.0},  # a random teacher never answers a number: score the fallback, never stop
        "target_words": {"words": ["sorry", "thank you"]},
    }.get(name, {})


@pytest.mark.parametrize("name", REWARDS.names())
def test_generic_properties_hold_for_every_shipped_reward(name, tiny_models):
    reward = load_reward({"name": name, **options_for(name, tiny_models)})
    assert_reward_properties(reward, max_examples=SLOW_MAX_EXAMPLES if name in SLOW else MAX_EXAMPLES)


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "toxicity", "mode": "filter"},
        {"name": "sentiment", "negate": True},
        {"name": "length", "mode": "longer", "unit": "characters"},
        {"name": "target_words", "words": ["great"], "max_count": 3},
    ],
    ids=lambda spec: "-".join(str(v) for v in spec.values()),
)
def test_generic_properties_hold_for_non_default_options(spec):
    examples = SLOW_MAX_EXAMPLES if spec["name"] in SLOW else MAX_EXAMPLES
    assert_reward_properties(load_reward(spec), max_examples=examples)


@pytest.mark.parametrize("output", ["probability", "logit_diff"])
def test_generic_properties_hold_for_classifier_outputs(output, tiny_models):
    reward = load_reward({"name": "classifier", "model": tiny_models["classifier"], "output": output,
                          "input": "prompt+completion", "append_eos": False})
    assert_reward_properties(reward, max_examples=MAX_EXAMPLES)


SHAPING_OPTIONS = {"clip": {"low": -0.5, "high": 0.5}, "linear": {"scale": -2.0, "shift": 0.5},
                   "exponential": {"scale": 3.0}, "length_penalty": {"min_words": 2, "max_words": 8}}


@pytest.mark.parametrize("shaping", SHAPINGS.names())
def test_generic_properties_and_mapped_range_hold_for_every_shaping(shaping):
    reward = load_reward({"name": "target_words", "words": ["great"], "max_count": 5,
                          "shaping": [{"name": shaping, **SHAPING_OPTIONS.get(shaping, {})}]})
    assert reward.value_range != (-math.inf, math.inf)
    assert_reward_properties(reward, max_examples=MAX_EXAMPLES)


def test_generic_properties_hold_for_the_composite_total():
    def no_digits(prompts, completions, **kwargs):
        """A filter: -1 for completions with a digit, else abstain."""
        return [-1.0 if any(ch.isdigit() for ch in c) else None for c in completions]

    no_digits.is_filter = True
    score = load_rewards([{"name": "agentic_communal"}, {"name": "length", "target": 10, "weight": 0.5}, no_digits])
    assert_reward_properties(lambda prompts, completions, **kw: score(prompts, completions).total,
                             declared_range=(-1.0, 1.7), max_examples=MAX_EXAMPLES)


BASE_REWARDS = ["sentiment", "agentic_communal", {"name": "length", "target": 5}, "hackable_word_count"]


@pytest.mark.parametrize("spec", BASE_REWARDS, ids=str)
@FAST
@given(batch=batches())
def test_negate_is_minus_the_reward(spec, batch):
    reward = load_reward(spec)
    assert shape(reward, Negate())(*batch) == [-value for value in reward(*batch)]


@FAST
@given(value=st.floats(-1e6, 1e6), completion=st.text(), ngram=st.integers(1, 4), weight=st.floats(0, 10))
def test_repetition_penalty_never_raises_a_reward(value, completion, ngram, weight):
    (shaped,) = RepetitionPenalty(ngram=ngram, weight=weight).apply([value], [completion])
    assert shaped <= value


@FAST
@given(value=st.floats(-50, 50), scale=st.floats(0.01, 10), neutral=st.floats(-5, 5))
def test_exponential_keeps_the_sign_and_order(value, scale, neutral):
    transform = Exponential(scale=scale, neutral=neutral)
    (shaped,) = transform.apply([value], [""])
    assert math.copysign(1.0, shaped - neutral) == math.copysign(1.0, value - neutral) or shaped == neutral
    if scale >= 1.0:  # expm1(x) >= x: the distance from neutral grows
        assert abs(shaped - neutral) >= abs(value - neutral) - 1e-9
    (higher,) = transform.apply([value + 1.0], [""])
    assert higher >= shaped
