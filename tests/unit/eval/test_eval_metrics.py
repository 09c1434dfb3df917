"""distinct-n, repetition rate, top n-gram and perplexity: hand-worked cases and hypothesis properties."""

import math
import random

import pytest
import torch
from eval_models import CYCLE, cycle_model
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from rlhf.eval.metrics import (
    completion_metrics, distinct_n, mean_length, ngram_share, perplexity, repetition_rate, top_ngram, words,
)

WORDS = st.lists(st.sampled_from(["a", "b", "c", "great", "film", "!", "the"]), max_size=12).map(" ".join)
TEXTS = st.lists(WORDS, min_size=1, max_size=6)


def test_hand_worked_cases():
    texts = ["a b a b", "c c c"]
    # unigrams a b a b c c c: 3 distinct of 7; bigrams ab ba ab cc cc: 3 distinct of 5; trigrams aba bab ccc: 3 of 3
    assert distinct_n(texts, 1) == pytest.approx(3 / 7)
    assert distinct_n(texts, 2) == pytest.approx(3 / 5)
    assert distinct_n(texts, 3) == 1.0
    # seq-rep-2: "a b a b" repeats 1 of 3 bigrams, "c c c" 1 of 2
    assert repetition_rate(texts) == pytest.approx((1 / 3 + 1 / 2) / 2)
    assert repetition_rate(texts, n=1) == pytest.approx((2 / 4 + 2 / 3) / 2)
    assert mean_length(texts) == 3.5
    assert top_ngram(texts, 1) == ("c", pytest.approx(3 / 7))
    assert top_ngram(texts, 2) == ("a b", pytest.approx(2 / 5))
    assert ngram_share(texts, "c c") == pytest.approx(2 / 5)
    assert words("Wow!! Great") == ["wow", "!", "!", "great"]


def test_no_ngrams_gives_zero_not_an_error():
    assert distinct_n(["", "a"], 2) == 0.0 and repetition_rate([""]) == 0.0 and top_ngram([""], 1) == ("", 0.0)
    assert mean_length([]) == 0.0


def test_completion_metrics_are_the_training_log_columns():
    metrics = completion_metrics(["great great great", "a fine film"])
    assert set(metrics) == {"text/distinct_1", "text/distinct_2", "text/distinct_3", "text/repetition_rate",
                            "text/mean_length", "text/top_ngram_share"}
    assert metrics["text/top_ngram_share"] == pytest.approx(3 / 6)  # "great" is 3 of 6 words


@given(TEXTS, st.integers(1, 3))
def test_metrics_are_in_unit_interval(texts, n):
    for value in (distinct_n(texts, n), repetition_rate(texts, n), top_ngram(texts, n)[1]):
        assert 0.0 <= value <= 1.0


@given(TEXTS, st.integers(1, 3), st.integers(2, 5))
def test_repeating_the_texts_never_raises_distinct_n(texts, n, k):
    assert distinct_n(texts * k, n) <= distinct_n(texts, n) + 1e-12


@given(WORDS, st.integers(1, 3), st.integers(2, 5))
def test_a_text_repeated_k_times_never_raises_distinct_n(text, n, k):
    assume(len(words(text)) >= n)  # a text without n-grams has distinct-n 0 by definition
    assert distinct_n([" ".join([text] * k)], n) <= distinct_n([text], n) + 1e-12


def test_perplexity_of_a_uniform_model_is_the_vocabulary_size(tmp_path_factory):
    model, tokenizer = cycle_model(tmp_path_factory)
    uniform = type(model)(model.config).eval()
    with torch.no_grad():
        uniform.lm_head.weight.zero_()  # every logit 0: each token has probability 1 / V
    value = perplexity(uniform, tokenizer, ["The movie", "A"], [" was great", " film and"])
    assert value == pytest.approx(model.config.vocab_size, rel=1e-4)


def test_perplexity_is_nan_without_completion_tokens(tmp_path_factory):
    model, tokenizer = cycle_model(tmp_path_factory)
    assert math.isnan(perplexity(model, tokenizer, ["The movie"], [""]))


def test_perplexity_batches_and_truncation_do_not_change_the_value(tmp_path_factory):
    model, tokenizer = cycle_model(tmp_path_factory)
    prompts, completions = [" great", " the movie was"], [" good the", " and film bad great"]
    together = perplexity(model, tokenizer, prompts, completions, batch_size=2)
    assert perplexity(model, tokenizer, prompts, completions, batch_size=1) == pytest.approx(together, rel=1e-5)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, len(CYCLE) - 1), st.integers(4, 12), st.randoms(use_true_random=False))
def test_own_greedy_text_has_lower_perplexity_than_shuffled(tmp_path_factory, start, length, rng: random.Random):
    model, tokenizer = cycle_model(tmp_path_factory)
    prompt = tokenizer(CYCLE[start], return_tensors="pt", add_special_tokens=False)
    out = model.generate(**prompt, do_sample=False, max_new_tokens=length, pad_token_id=tokenizer.pad_token_id)
    greedy_ids = out[0, prompt.input_ids.shape[1]:].tolist()
    shuffled_ids = greedy_ids[:]
    rng.shuffle(shuffled_ids)
    assume(shuffled_ids != greedy_ids)
    greedy, shuffled = tokenizer.decode(greedy_ids), tokenizer.decode(shuffled_ids)
    assert perplexity(model, tokenizer, [CYCLE[start]], [greedy]) < perplexity(model, tokenizer, [CYCLE[start]], [shuffled])
