"""Rewards computed from the completion's text alone: length, counts of given words, the hackable reward."""

from __future__ import annotations

import math
import re
from typing import Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from rlhf.rewards.base import REWARDS, BuiltinReward
from rlhf.rewards.lexicons import POSITIVE_WORDS
from rlhf.rewards.shaping import word_count


@REWARDS.register("length")
class Length(BuiltinReward):
    """Reward a length: near ``target`` (``mode: target``), longer or shorter; range ``[0, 1]``.

    With ``n`` the length in ``unit``: ``target`` gives ``1 - min(|n - target| / target, 1)``; ``longer``
    gives ``min(n / target, 1)``; ``shorter`` gives ``1 - min(n / target, 1)``. Prompts are ignored.

    >>> Length(target=4)(["", ""], ["one two three four", "one two"])
    [1.0, 0.5]
    >>> Length(target=10, mode="shorter", unit="characters")([""], ["abc"])
    [0.7]
    """

    target: int = Field(20, ge=1, description="target length (the scale for longer/shorter)")
    mode: Literal["target", "longer", "shorter"] = Field("target", description="what is rewarded")
    unit: Literal["words", "characters"] = Field("words", description="how length is counted")

    @property
    def value_range(self) -> tuple[float, float]:
        return (0.0, 1.0)

    def score(self, prompts: list[str], completions: list[str]) -> list[float | None]:
        return [self._score_one(word_count(c) if self.unit == "words" else len(c)) for c in completions]

    def _score_one(self, length: int) -> float:
        if self.mode == "target":
            return 1.0 - min(abs(length - self.target) / self.target, 1.0)
        fraction = min(length / self.target, 1.0)
        return fraction if self.mode == "longer" else 1.0 - fraction


@REWARDS.register("target_words")
class TargetWords(BuiltinReward):
    """Count occurrences of given words or phrases (e.g. ``["sorry"]``); range ``[0, max_count]``.

    Case-insensitive whole-word matches; a phrase ("thank you") counts once, whatever spaces separate its
    words. Prompts are ignored.

    >>> TargetWords(words=["sorry", "thank you"])(["", ""], ["Sorry, so SORRY. Thank you!", "sorrywise"])
    [3.0, 0.0]
    """

    words: list[str] = Field(min_length=1, description="words or phrases to count")
    max_count: int | None = Field(None, ge=1, description="cap on the count (null: no cap)")
    _pattern: re.Pattern[str] = PrivateAttr()

    @field_validator("words")
    @classmethod
    def _non_empty(cls, words: list[str]) -> list[str]:
        if any(not word.strip() for word in words):
            raise ValueError("an empty word cannot be counted; remove it")
        return [word.strip() for word in words]

    @model_validator(mode="after")
    def _compile(self) -> TargetWords:
        # Longest first, so "thank you" wins over "thank"; any run of spaces inside a phrase matches; the
        # lookarounds make the matches whole words.
        phrases = sorted(self.words, key=len, reverse=True)
        alternatives = "|".join(r"\s+".join(map(re.escape, phrase.split())) for phrase in phrases)
        self._pattern = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)
        return self

    @property
    def value_range(self) -> tuple[float, float]:
        return (0.0, math.inf if self.max_count is None else float(self.max_count))

    def score(self, prompts: list[str], completions: list[str]) -> list[float | None]:
        cap = math.inf if self.max_count is None else self.max_count
        return [float(min(len(self._pattern.findall(c)), cap)) for c in completions]


@REWARDS.register("hackable_word_count")
class HackableWordCount(TargetWords):
    """The deliberately exploitable reward of the GRPO exercise: the number of positive words; range ``[0, inf)``.

    It is meant to be hacked: "great great great ..." scores higher with every repeat, which is what the
    exercise wants students to see (and then fix with ``repetition_penalty`` shaping or a KL penalty).

    >>> HackableWordCount()(["", ""], ["a great film", "great great great great"])
    [1.0, 4.0]
    """

    words: list[str] = Field(default_factory=lambda: list(POSITIVE_WORDS), min_length=1,
                             description="the words counted")
