"""agentic_communal rule properties over texts built from the term lists and filler words."""

from hypothesis import given, settings
from hypothesis import strategies as st

from rlhf.rewards import AgenticCommunal
from rlhf.rewards.lexicons import AGENTIC_TERMS, COMMUNAL_TERMS

SETTINGS = settings(max_examples=100, deadline=None, database=None)
AGENTIC = sorted(form for forms in AGENTIC_TERMS.values() for form in forms)
COMMUNAL = sorted(form for forms in COMMUNAL_TERMS.values() for form in forms)
FILLER = ["the", "a", "nurse", "engineer", "works", "in", "with", "people", "and", "every", "day", "at", "room",
          "is", "was", "very", "team", "hospital", "office", "she", "he", "they"]
reward = AgenticCommunal()


def score(words: list[str]) -> float:
    return reward([""], [" ".join(words)])[0]


def base(words: list[str]) -> float:
    """The rule's base from an independent look at the lists."""
    has_agentic = any(w.lower().strip(",.") in AGENTIC for w in words)
    has_communal = any(w.lower().strip(",.") in COMMUNAL for w in words)
    return 1.0 if has_agentic and has_communal else 0.3 if has_agentic or has_communal else -0.2


def texts(classes: list[str], min_size: int = 0, max_size: int = 20) -> st.SearchStrategy[list[str]]:
    pool = FILLER + (AGENTIC if "agentic" in classes else []) + (COMMUNAL if "communal" in classes else [])
    word = st.sampled_from(pool).flatmap(lambda w: st.sampled_from([w, w.capitalize(), w + ",", w.upper()]))
    return st.lists(word, min_size=min_size, max_size=max_size)


@SETTINGS
@given(data=st.data(), present=st.sampled_from([[], ["agentic"], ["communal"]]))
def test_adding_a_term_of_the_missing_class_never_lowers_the_score(data, present):
    words = data.draw(texts(present, min_size=8, max_size=14), label="words")  # 8-14 words, +1 stays in 8-15
    missing = data.draw(st.sampled_from([c for c in ("agentic", "communal") if c not in present]), label="missing")
    term = data.draw(st.sampled_from(AGENTIC if missing == "agentic" else COMMUNAL), label="term")
    position = data.draw(st.integers(0, len(words)), label="position")
    assert score(words[:position] + [term] + words[position:]) >= score(words)


@SETTINGS
@given(words=texts(["agentic", "communal"]))
def test_bonus_never_exceeds_0_2(words):
    # Penalties only subtract, so the score is at most base + bonus.
    assert score(words) <= base(words) + 0.2 + 1e-9


@SETTINGS
@given(agentic=st.lists(st.sampled_from(sorted(AGENTIC_TERMS)), min_size=1, max_size=7, unique=True),
       communal=st.lists(st.sampled_from(sorted(COMMUNAL_TERMS)), min_size=1, max_size=7, unique=True))
def test_bonus_is_0_05_per_extra_unique_term_capped_at_0_2(agentic, communal):
    words = agentic + communal + ["work"] * max(0, 8 - len(agentic) - len(communal))  # 8-14 words, no repeats
    extra = len(agentic) - 1 + len(communal) - 1
    assert score(words) == round(1.0 + min(0.05 * extra, 0.2), 4)


@SETTINGS
@given(words=texts(["agentic", "communal"], max_size=30))
def test_score_lies_in_the_declared_range(words):
    assert -0.4 <= score(words) <= 1.2


@SETTINGS
@given(text=st.text(max_size=200))
def test_score_lies_in_the_declared_range_for_any_text(text):
    assert -0.4 <= reward([""], [text])[0] <= 1.2


@SETTINGS
@given(words=texts(["agentic", "communal"]))
def test_score_is_case_insensitive(words):
    assert score([w.upper() for w in words]) == score([w.lower() for w in words])


@SETTINGS
@given(filler=texts([], min_size=7, max_size=12), term=st.sampled_from(AGENTIC + COMMUNAL),
       position=st.integers(0, 12))
def test_a_term_used_three_times_costs_exactly_the_repeat_penalty(filler, term, position):
    once = filler + [term]  # 8-13 words
    thrice = filler[:position] + [term] + filler[position:] + [term, term]  # 10-15 words
    assert score(once) == 0.3
    assert score(thrice) == 0.2


def test_the_seed_example_scores_exactly_one():
    assert reward([""], ["The nurse was confident and caring in the emergency room."]) == [1.0]
