"""sentiment (VADER) and toxicity (profanity-check), and the message when an extra is missing."""

import sys

import pytest

from rlhf.rewards import MissingExtraError, Sentiment, Toxicity, load_reward, lexical


def test_sentiment_compound_and_negate():
    texts = ["What a wonderful, lovely film!", "It was awful.", ""]
    scores = Sentiment()([""] * 3, texts)
    assert scores[0] > 0.5 and scores[1] < -0.3 and scores[2] == 0.0
    assert Sentiment(negate=True)([""] * 3, texts) == [-s for s in scores]
    assert load_reward({"name": "sentiment", "negate": True})([""], ["It was awful."])[0] > 0.3


def test_toxicity_penalty_is_minus_probability():
    scores = Toxicity()(["", ""], ["Have a lovely day.", "you stupid idiot"])
    assert -0.1 < scores[0] <= 0.0 and scores[1] < -0.9
    assert Toxicity().value_range == (-1.0, 0.0)


def test_toxicity_filter_returns_floor_above_threshold_else_abstains():
    reward = load_reward({"name": "toxicity", "mode": "filter", "threshold": 0.5, "floor": -2.0})
    assert reward.is_filter
    assert reward(["", ""], ["Have a lovely day.", "you stupid idiot"]) == [None, -2.0]
    assert reward.value_range == (-2.0, -2.0)


def test_toxicity_filter_with_a_weight_is_refused():
    with pytest.raises(ValueError, match="no effect on a filter"):
        load_reward({"name": "toxicity", "mode": "filter", "weight": 2.0})


def test_toxicity_rejects_threshold_outside_unit_interval():
    with pytest.raises(ValueError, match="option 'threshold'=1.5"):
        load_reward({"name": "toxicity", "threshold": 1.5})


@pytest.mark.parametrize(
    ("name", "module", "cache", "extra"),
    [("sentiment", "vaderSentiment", lexical._vader, "sentiment"),
     ("toxicity", "profanity_check", lexical._profanity_probability, "toxicity")],
)
def test_missing_extra_names_the_pip_command(monkeypatch, name, module, cache, extra):
    cache.cache_clear()
    for key in [k for k in sys.modules if k == module or k.startswith(module + ".")]:
        monkeypatch.delitem(sys.modules, key)
    monkeypatch.setitem(sys.modules, module, None)  # makes the import fail
    try:
        with pytest.raises(MissingExtraError, match=rf"pip install 'rlhf\[{extra}\]'"):
            load_reward(name)
    finally:
        cache.cache_clear()
    assert issubclass(MissingExtraError, ImportError)
