"""Lexicon rewards from optional offline back-ends: VADER sentiment and profanity-check toxicity."""

from __future__ import annotations

import functools
from typing import ClassVar, Literal

from pydantic import Field

from rlhf.rewards.base import REWARDS, BuiltinReward, require_extra


@functools.cache
def _vader():
    module = require_extra(*Sentiment.requires[0], "sentiment")
    return module.SentimentIntensityAnalyzer()


@functools.cache
def _profanity_probability():
    return require_extra(*Toxicity.requires[0], "toxicity").predict_prob


@REWARDS.register("sentiment")
class Sentiment(BuiltinReward):
    """VADER compound sentiment of the completion; range ``[-1, 1]`` (``negate: true`` rewards negative text).

    Needs ``pip install 'rlhf[sentiment]'`` (``vadersentiment``; ships its lexicon, works offline).

    >>> Sentiment()(["", ""], ["What a wonderful, lovely film!", "It was awful."])
    [0.8313, -0.4588]
    >>> Sentiment(negate=True)([""], ["It was awful."])
    [0.4588]
    """

    requires: ClassVar = (("vaderSentiment.vaderSentiment", "sentiment"),)
    negate: bool = Field(False, description="reward negative sentiment instead")

    def model_post_init(self, context: object) -> None:
        _vader()  # fail at load time, not mid-run, when the extra is missing

    @property
    def value_range(self) -> tuple[float, float]:
        return (-1.0, 1.0)

    def score(self, prompts: list[str], completions: list[str]) -> list[float | None]:
        sign = -1.0 if self.negate else 1.0
        analyzer = _vader()
        return [sign * analyzer.polarity_scores(text)["compound"] for text in completions]


@REWARDS.register("toxicity")
class Toxicity(BuiltinReward):
    """Profanity probability ``p`` of the completion, as a penalty ``-p`` or as a filter.

    ``mode: penalty`` returns ``-p`` (range ``[-1, 0]``; the entry's weight makes it ``-weight * p``).
    ``mode: filter`` returns ``floor`` when ``p > threshold`` and ``None`` otherwise: in a composite the
    floor replaces the whole reward of that sample (the seeds' "toxicity filter alongside the flirtiness
    reward"). Needs ``pip install 'rlhf[toxicity]'`` (``alt-profanity-check``; ships its model, offline).

    >>> reward = Toxicity()
    >>> [round(v, 2) for v in reward(["", ""], ["Have a lovely day.", "you stupid idiot"])]
    [-0.05, -1.0]
    >>> Toxicity(mode="filter", threshold=0.5, floor=-1.0)(["", ""], ["Have a lovely day.", "you stupid idiot"])
    [None, -1.0]
    """

    requires: ClassVar = (("profanity_check", "toxicity"),)
    mode: Literal["penalty", "filter"] = Field("penalty", description="-p, or floor above the threshold")
    threshold: float = Field(0.5, ge=0.0, le=1.0, description="filter: p above this is filtered")
    floor: float = Field(-1.0, description="filter: the reward of a filtered sample")

    def model_post_init(self, context: object) -> None:
        _profanity_probability()

    @property
    def is_filter(self) -> bool:
        return self.mode == "filter"

    @property
    def value_range(self) -> tuple[float, float]:
        return (-1.0, 0.0) if self.mode == "penalty" else (self.floor, self.floor)

    def score(self, prompts: list[str], completions: list[str]) -> list[float | None]:
        if not completions:
            return []
        probabilities = [float(p) for p in _profanity_probability()(completions)]
        if self.mode == "penalty":
            return [-p for p in probabilities]
        return [self.floor if p > self.threshold else None for p in probabilities]
