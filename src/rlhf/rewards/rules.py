"""The agentic/communal rule reward of the occupations seed (``seeds/occupations-agentic-communal-rlhf-guide.md``)."""

from __future__ import annotations

import re
from collections import Counter

from pydantic import Field, PrivateAttr, field_validator, model_validator

from rlhf.rewards.base import REWARDS, BuiltinReward
from rlhf.rewards.lexicons import AGENTIC_TERMS, COMMUNAL_TERMS
from rlhf.rewards.shaping import word_count

# The seed's rule, line by line.
BASE_BOTH = 1.0  # at least one agentic and one communal term
BASE_ONE = 0.3  # terms of one class only
BASE_NONE = -0.2  # no terms
BONUS_PER_TERM = 0.05  # per extra unique term beyond the first of each class
MAX_BONUS = 0.2
LENGTH_PENALTY = 0.1  # word count outside [min_words, max_words]
REPEAT_PENALTY = 0.1  # any term used more than MAX_REPEATS times
MAX_REPEATS = 2

# Whole words: letter runs, hyphenated compounds kept ("self-reliant"); "leader's" -> "leader", "s".
_TERM_TOKEN = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")


def term_tokens(text: str) -> list[str]:
    """Lowercased whole words of ``text``, hyphenated compounds kept together."""
    return _TERM_TOKEN.findall(text.lower())


def _lookup(agentic: dict[str, tuple[str, ...]], communal: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, str]]:
    """Inflected form -> (class, canonical term)."""
    table = {form: ("agentic", term) for term, forms in agentic.items() for form in forms}
    table.update({form: ("communal", term) for term, forms in communal.items() for form in forms})
    return table


@REWARDS.register("agentic_communal")
class AgenticCommunal(BuiltinReward):
    """Reward balanced agentic + communal descriptions; range ``[-0.4, 1.2]``.

    Base +1.0 with at least one agentic and one communal term, +0.3 with one class only, -0.2 with none;
    +0.05 per extra unique term beyond the first of each class (bonus at most +0.2); -0.1 when the
    whitespace word count is outside ``[min_words, max_words]`` (8-15); -0.1 when any term occurs more
    than twice. Terms match case-insensitively as whole words; the inflections of a term
    (``confident``, ``confidently``, ``confidence``) count as one term. Lists: :mod:`rlhf.rewards.lexicons`.
    Scores are rounded to 4 decimals so the rule's arithmetic is exact. Prompts are ignored.

    >>> reward = AgenticCommunal()
    >>> reward([""], ["The nurse was confident and caring in the emergency room."])
    [1.0]
    >>> reward(["", ""], ["Confident, ambitious, decisive, kind and warm: the pilot leads.", "A chef."])
    [1.15, -0.3]
    """

    min_words: int = Field(8, ge=0, description="shortest word count without the length penalty")
    max_words: int = Field(15, ge=0, description="longest word count without the length penalty")
    extra_agentic: list[str] = Field(default_factory=list, description="more agentic terms (single words)")
    extra_communal: list[str] = Field(default_factory=list, description="more communal terms (single words)")
    _table: dict[str, tuple[str, str]] = PrivateAttr()

    @field_validator("extra_agentic", "extra_communal")
    @classmethod
    def _single_words(cls, terms: list[str]) -> list[str]:
        for term in terms:
            if term_tokens(term) != [term.lower()]:
                raise ValueError(f"{term!r} is not a single word (letters and hyphens only)")
        return [term.lower() for term in terms]

    @model_validator(mode="after")
    def _check(self) -> AgenticCommunal:
        if self.min_words > self.max_words:
            raise ValueError(f"min_words={self.min_words} is above max_words={self.max_words}")
        agentic = AGENTIC_TERMS | {term: (term,) for term in self.extra_agentic}
        communal = COMMUNAL_TERMS | {term: (term,) for term in self.extra_communal}
        table = _lookup(agentic, communal)
        both = {form for forms in agentic.values() for form in forms} & set(table)
        clash = sorted(form for form in both if table[form][0] == "communal")
        if clash:
            raise ValueError(f"terms {clash} are in both the agentic and the communal list; keep each in one")
        self._table = table
        return self

    @property
    def value_range(self) -> tuple[float, float]:
        return (BASE_NONE - LENGTH_PENALTY - REPEAT_PENALTY, BASE_BOTH + MAX_BONUS)

    def score(self, prompts: list[str], completions: list[str]) -> list[float | None]:
        return [self.score_text(text) for text in completions]

    def compliance(self, completions: list[str]) -> dict[str, list[bool]]:
        """Per completion, whether it meets each rule (``rlhf evaluate`` reports the rates).

        >>> AgenticCommunal().compliance(["The nurse was confident and caring in the emergency room.", "A chef."])
        {'agentic_and_communal': [True, False], 'length_in_range': [True, False], 'no_term_repeated': [True, True]}
        """
        rules: dict[str, list[bool]] = {"agentic_and_communal": [], "length_in_range": [], "no_term_repeated": []}
        for text in completions:
            counts = self._term_counts(text)
            kinds = {kind for kind, _ in counts}
            rules["agentic_and_communal"].append(kinds == {"agentic", "communal"})
            rules["length_in_range"].append(self.min_words <= word_count(text) <= self.max_words)
            rules["no_term_repeated"].append(all(count <= MAX_REPEATS for count in counts.values()))
        return rules

    def _term_counts(self, text: str) -> Counter:
        """(class, canonical term) -> occurrences in ``text``."""
        return Counter(self._table[token] for token in term_tokens(text) if token in self._table)

    def score_text(self, text: str) -> float:
        """The rule reward of one text."""
        counts = self._term_counts(text)
        agentic = sum(1 for kind, _ in counts if kind == "agentic")
        communal = len(counts) - agentic
        if agentic and communal:
            reward = BASE_BOTH
        elif agentic or communal:
            reward = BASE_ONE
        else:
            reward = BASE_NONE
        extra_terms = max(agentic - 1, 0) + max(communal - 1, 0)
        reward += min(BONUS_PER_TERM * extra_terms, MAX_BONUS)
        if not self.min_words <= word_count(text) <= self.max_words:
            reward -= LENGTH_PENALTY
        if any(count > MAX_REPEATS for count in counts.values()):
            reward -= REPEAT_PENALTY
        return round(reward, 4)
