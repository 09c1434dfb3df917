"""Reward shaping: transforms applied, in order, to one reward's values before it is weighted.

In a profile, a reward entry lists them under ``shaping``, each ``{name: ..., **options}``::

    rewards:
      - name: sentiment
        shaping:
          - {name: exponential, scale: 2.0}
          - {name: repetition_penalty, ngram: 1, weight: 0.5}
          - {name: clip, low: -1.0, high: 1.0}

In Python, ``rlhf.rewards.shape(reward, Exponential(scale=2.0), Clip(low=-1, high=1))``. ``None``
(abstain) passes through every transform unchanged. Each transform also maps the reward's declared range,
so the range of a shaped reward is known (and checked by ``rlhf check-reward``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rlhf.registry import Registry
from rlhf.rewards.base import UNBOUNDED

_WORD = re.compile(r"\w+")


def word_count(text: str) -> int:
    """Number of whitespace-separated words (how the seeds count length)."""
    return len(text.split())


class Shaping(BaseModel):
    """Base of the shaping transforms: the fields are the options, ``transform`` maps one value."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def transform(self, value: float, completion: str) -> float:
        raise NotImplementedError

    def map_range(self, low: float, high: float) -> tuple[float, float]:
        """The range of the shaped values, given the range ``[low, high]`` of the input values."""
        return UNBOUNDED

    def apply(self, values: Sequence[float | None], completions: Sequence[str]) -> list[float | None]:
        return [None if v is None else self.transform(v, c) for v, c in zip(values, completions, strict=True)]


SHAPINGS: Registry[type[Shaping]] = Registry("shaping")


def _sorted_pair(a: float, b: float) -> tuple[float, float]:
    return (min(a, b), max(a, b))


@SHAPINGS.register("linear")
class Linear(Shaping):
    """``scale * r + shift``.

    >>> Linear(scale=2.0, shift=-1.0).apply([0.25, None], ["a", "b"])
    [-0.5, None]
    """

    scale: float = Field(1.0, description="multiplier")
    shift: float = Field(0.0, description="added after scaling")

    def transform(self, value: float, completion: str) -> float:
        return self.scale * value + self.shift

    def map_range(self, low: float, high: float) -> tuple[float, float]:
        if self.scale == 0.0:
            return (self.shift, self.shift)
        return _sorted_pair(self.transform(low, ""), self.transform(high, ""))


@SHAPINGS.register("exponential")
class Exponential(Shaping):
    """Amplify the distance from ``neutral``: ``neutral + sign(d) * (exp(scale * |d|) - 1)``, ``d = r - neutral``.

    Monotone and sign-preserving around ``neutral``; near it the slope is ``scale``. Overflows to +-inf
    (an error downstream) only for ``scale * |d| > 709``.

    >>> [round(v, 4) for v in Exponential(scale=2.0).apply([0.5, -0.5, 0.0], ["", "", ""])]
    [1.7183, -1.7183, 0.0]
    """

    scale: float = Field(1.0, gt=0.0, description="growth rate of the amplification")
    neutral: float = Field(0.0, description="the value left unchanged (e.g. 0 for sentiment in [-1, 1])")

    def transform(self, value: float, completion: str) -> float:
        distance = value - self.neutral
        try:
            amplified = math.expm1(self.scale * abs(distance))
        except OverflowError:
            amplified = math.inf
        return self.neutral + math.copysign(amplified, distance)

    def map_range(self, low: float, high: float) -> tuple[float, float]:
        return (self.transform(low, ""), self.transform(high, ""))


@SHAPINGS.register("negate")
class Negate(Shaping):
    """``-r`` (e.g. to optimise for negative sentiment).

    >>> Negate().apply([0.5, None], ["", ""])
    [-0.5, None]
    """

    def transform(self, value: float, completion: str) -> float:
        return -value

    def map_range(self, low: float, high: float) -> tuple[float, float]:
        return (-high, -low)


@SHAPINGS.register("clip")
class Clip(Shaping):
    """Clip to ``[low, high]`` (either bound may be omitted).

    >>> Clip(low=-1.0, high=1.0).apply([3.0, -0.5], ["", ""])
    [1.0, -0.5]
    """

    low: float | None = Field(None, description="lower bound (null: none)")
    high: float | None = Field(None, description="upper bound (null: none)")

    @model_validator(mode="after")
    def _check_bounds(self) -> Clip:
        if self.low is None and self.high is None:
            raise ValueError("clip needs low, high or both, e.g. {name: clip, low: -1.0, high: 1.0}")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"clip low={self.low} is above high={self.high}; swap them")
        return self

    def transform(self, value: float, completion: str) -> float:
        low = -math.inf if self.low is None else self.low
        high = math.inf if self.high is None else self.high
        return min(max(value, low), high)

    def map_range(self, low: float, high: float) -> tuple[float, float]:
        return (self.transform(low, ""), self.transform(high, ""))


@SHAPINGS.register("length_penalty")
class LengthPenalty(Shaping):
    """Subtract ``per_word`` for each word outside ``[min_words, max_words]``, at most ``max_penalty``.

    >>> LengthPenalty(min_words=3, max_words=5, per_word=0.1).apply([1.0, 1.0], ["one", "a b c d"])
    [0.8, 1.0]
    """

    min_words: int = Field(5, ge=0, description="fewer words than this are penalised")
    max_words: int = Field(50, ge=0, description="more words than this are penalised")
    per_word: float = Field(0.05, ge=0.0, description="penalty per word outside the range")
    max_penalty: float = Field(1.0, ge=0.0, description="cap on the total penalty")

    @model_validator(mode="after")
    def _check_bounds(self) -> LengthPenalty:
        if self.min_words > self.max_words:
            raise ValueError(f"length_penalty min_words={self.min_words} is above max_words={self.max_words}")
        return self

    def transform(self, value: float, completion: str) -> float:
        words = word_count(completion)
        outside = max(self.min_words - words, words - self.max_words, 0)
        return value - min(self.per_word * outside, self.max_penalty)

    def map_range(self, low: float, high: float) -> tuple[float, float]:
        return (low - self.max_penalty, high)


@SHAPINGS.register("repetition_penalty")
class RepetitionPenalty(Shaping):
    """Subtract ``weight * (1 - unique n-grams / n-grams)``: 0 without repeats, near ``weight`` for "great great...".

    Words are ``\\w+`` runs, lowercased. Never raises a reward.

    >>> penalty = RepetitionPenalty(ngram=1, weight=0.5)
    >>> [round(v, 4) for v in penalty.apply([1.0, 1.0], ["great great great", "so good"])]
    [0.6667, 1.0]
    """

    ngram: int = Field(1, ge=1, description="n-gram size (1: repeated words)")
    weight: float = Field(1.0, ge=0.0, description="penalty for a text that is all repeats")

    def transform(self, value: float, completion: str) -> float:
        words = _WORD.findall(completion.lower())
        grams = [tuple(words[i : i + self.ngram]) for i in range(len(words) - self.ngram + 1)]
        if not grams:
            return value
        return value - self.weight * (1.0 - len(set(grams)) / len(grams))

    def map_range(self, low: float, high: float) -> tuple[float, float]:
        return (low - self.weight, high)
