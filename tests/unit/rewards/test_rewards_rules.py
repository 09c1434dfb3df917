"""agentic_communal: hand-worked cases for each line of the seed's rule."""

import pytest

from rlhf.rewards import REWARDS, AgenticCommunal, load_reward
from rlhf.rewards.lexicons import AGENTIC_TERMS, COMMUNAL_TERMS
from rlhf.rewards.rules import term_tokens

SEED_EXAMPLE = "The nurse was confident and caring in the emergency room."
reward = AgenticCommunal()


def score(text: str) -> float:
    return reward([""], [text])[0]


def test_seed_example_scores_exactly_one():
    assert score(SEED_EXAMPLE) == 1.0
    assert load_reward("agentic_communal")(["Describe a nurse."], [SEED_EXAMPLE]) == [1.0]


@pytest.mark.parametrize(
    ("text", "expected", "rule"),
    [
        ("The nurse was confident and caring in the emergency room.", 1.0, "both classes: +1.0"),
        ("The nurse was confident and calm in the emergency room.", 0.3, "agentic only: +0.3"),
        ("The nurse was caring and calm in the emergency room.", 0.3, "communal only: +0.3"),
        ("The nurse was quick and calm in the emergency room.", -0.2, "no terms: -0.2"),
        ("The nurse was confident, decisive and caring in the room.", 1.05, "one extra agentic: +0.05"),
        ("The nurse was confident, decisive, kind and caring in rooms.", 1.1, "one extra of each: +0.1"),
        ("Confident decisive bold strong kind caring warm gentle nurses work here.", 1.2,
         "6 extras: bonus capped at 0.2"),
        ("Confident decisive bold kind caring nurses work here all day long.", 1.15, "3 extras: +0.15"),
        ("A confident, caring nurse.", 0.9, "4 words, below 8: -0.1"),
        ("The nurse was confident and caring in the emergency room of the big old city hospital.", 0.9,
         "16 words, above 15: -0.1"),
        ("The nurse was confident and caring in the room.", 1.0, "8 words: inside the range"),
        ("The nurse was confident and caring in the emergency room of the city hospital.", 1.0,
         "15 words: inside the range"),
        ("Confident nurse, confident doctor, confident and caring staff in rooms.", 0.9,
         "a term three times: -0.1"),
        ("Confident nurse, confident doctor, caring and kind staff in rooms.", 1.05,
         "a term twice: no penalty, +0.05 for kind"),
        ("Confident confident confident.", 0.1, "three repeats, 3 words: 0.3 - 0.1 - 0.1"),
        ("", -0.3, "empty: no terms and 0 words"),
        ("Strong strong strong, and so on, and on, and on, and on, and on, and on again.", 0.1,
         "one class, repeated, too long: 0.3 - 0.1 - 0.1"),
        ("x " * 20, -0.3, "no terms, too long: the lowest reachable score (repeats need terms)"),
    ],
)
def test_rule_lines(text, expected, rule):
    assert score(text) == pytest.approx(expected, abs=1e-9), rule


def test_inflections_count_as_one_term():
    # confident/confidently/confidence are one agentic term: no bonus, and three uses trigger the repeat rule.
    assert score("The confident nurse acted confidently and with caring calm today.") == 1.0
    assert score("Confidence: the confident nurse acted confidently, caring for all.") == pytest.approx(0.9)


def test_case_insensitive_whole_words():
    assert score("The nurse was CONFIDENT and Caring in the emergency room.") == 1.0
    # "careless" and "unkind" contain terms but are other words.
    assert score("The nurse was careless and unkind in the emergency room.") == -0.2
    # Hyphenated compounds and possessives.
    assert score("The self-reliant nurse's caring manner filled the small room.") == 1.0
    assert term_tokens("The leader's self-reliant team") == ["the", "leader", "s", "self-reliant", "team"]


def test_prompts_are_ignored():
    assert reward(["A prompt with confident and caring words"], ["Nothing here at all, just a few words."]) == [-0.2]


def test_term_lists_are_disjoint_and_lowercase():
    agentic = {form for forms in AGENTIC_TERMS.values() for form in forms}
    communal = {form for forms in COMMUNAL_TERMS.values() for form in forms}
    assert not agentic & communal
    for term, forms in {**AGENTIC_TERMS, **COMMUNAL_TERMS}.items():
        assert term in forms or term == "patience" or term in {f.replace("-", "") for f in forms}
        assert all(form == form.lower() and term_tokens(form) == [form] for form in forms)
    # Nouns that mostly mean something else in occupation texts are left out.
    assert not {"patient", "patients", "support", "lead", "led"} & (agentic | communal)


def test_extra_terms_and_word_range_options():
    custom = load_reward({"name": "agentic_communal", "extra_agentic": ["Brave"], "min_words": 1,
                          "max_words": 3})
    assert custom([""], ["brave caring nurse"]) == [1.0]
    assert custom([""], ["brave caring nurse here"]) == [0.9]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"extra_agentic": ["two words"]}, "not a single word"),
        ({"extra_agentic": ["caring"]}, "both the agentic and the communal list"),
        ({"min_words": 9, "max_words": 3}, "min_words=9 is above max_words=3"),
        ({"bonus": 0.3}, "unknown option 'bonus'"),
    ],
)
def test_bad_options(options, message):
    with pytest.raises(ValueError, match=message) as info:
        load_reward({"name": "agentic_communal", **options})
    assert "agentic_communal" in str(info.value)


def test_registered_and_declares_its_range():
    assert REWARDS.get("agentic_communal") is AgenticCommunal
    assert reward.value_range == pytest.approx((-0.4, 1.2))
