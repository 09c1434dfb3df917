"""length, target_words, hackable_word_count: hand-computed values."""

import pytest

from rlhf.rewards import HackableWordCount, Length, TargetWords, load_reward


@pytest.mark.parametrize(
    ("options", "text", "expected"),
    [
        ({"target": 4}, "one two three four", 1.0),
        ({"target": 4}, "one two", 0.5),
        ({"target": 4}, "one two three four five six", 0.5),
        ({"target": 4}, "a b c d e f g h i j", 0.0),  # |10 - 4| / 4 > 1: clipped at 0
        ({"target": 4}, "", 0.0),
        ({"target": 4, "mode": "longer"}, "one two", 0.5),
        ({"target": 4, "mode": "longer"}, "a b c d e f", 1.0),
        ({"target": 4, "mode": "shorter"}, "one", 0.75),
        ({"target": 4, "mode": "shorter"}, "", 1.0),
        ({"target": 10, "unit": "characters"}, "abcde", 0.5),
    ],
)
def test_length(options, text, expected):
    assert Length(**options)([""], [text]) == [pytest.approx(expected)]


def test_length_declares_unit_interval_and_rejects_bad_mode():
    assert Length().value_range == (0.0, 1.0)
    with pytest.raises(ValueError, match="option 'mode'='long'"):
        load_reward({"name": "length", "mode": "long"})


def test_target_words_counts_whole_words_and_phrases_case_insensitively():
    reward = TargetWords(words=["sorry", "thank you"])
    texts = ["Sorry! I'm so SORRY.", "sorrywise unsorry", "Thank you, thank   you? thank-you", ""]
    assert reward([""] * 4, texts) == [2.0, 0.0, 2.0, 0.0]


def test_target_words_phrase_preferred_over_its_prefix():
    assert TargetWords(words=["thank", "thank you"])([""], ["thank you, thank"]) == [2.0]


def test_target_words_cap_and_validation():
    assert TargetWords(words=["sorry"], max_count=2)([""], ["sorry sorry sorry"]) == [2.0]
    assert TargetWords(words=["sorry"], max_count=2).value_range == (0.0, 2.0)
    with pytest.raises(ValueError, match="words"):
        load_reward("target_words")  # words is required
    with pytest.raises(ValueError, match="empty word"):
        load_reward({"name": "target_words", "words": ["sorry", " "]})


def test_hackable_word_count_rewards_repetition_without_limit():
    reward = HackableWordCount()
    scores = reward([""] * 3, ["A film.", "A great film.", "great " * 50])
    assert scores == [0.0, 1.0, 50.0]
    assert reward.value_range[1] == float("inf")
    # Shaping with a repetition penalty takes the exploit's edge off.
    shaped = load_reward({"name": "hackable_word_count", "shaping": [{"name": "repetition_penalty", "weight": 60}]})
    assert shaped([""], ["great " * 50])[0] < 50.0 - 50.0 * 0.9
