"""Invariants of query truncation, source combining and the prompt sampler."""

from __future__ import annotations

import random
import string

from hypothesis import given, settings
from hypothesis import strategies as st

from rlhf.data import PromptSampler, combine_sources, count_tokens, filter_short, truncate_queries
from rlhf.data.prompts import truncate_query_ids
from rlhf.models.tokenizer import load_tokenizer

TOKENIZER = load_tokenizer("builtin-bpe")
FAST = settings(max_examples=50, deadline=None)

ascii_texts = st.lists(st.text(alphabet=string.ascii_letters + string.digits + " .,!?'", max_size=60), max_size=8)
any_texts = st.lists(st.text(max_size=40), max_size=6)
bounds = st.tuples(st.integers(1, 10), st.integers(0, 6)).map(lambda t: (t[0], t[0] + t[1]))


@FAST
@given(texts=any_texts, lo_hi=bounds, seed=st.integers(0, 2**16))
def test_truncated_ids_are_within_lo_hi_and_a_prefix(texts, lo_hi, seed):
    lo, hi = lo_hi
    kept = filter_short(texts, TOKENIZER, lo)
    queries = truncate_query_ids(kept, TOKENIZER, lo, hi, random.Random(seed))
    for text, ids in zip(kept, queries):
        assert lo <= len(ids) <= hi
        full = TOKENIZER(text, add_special_tokens=False)["input_ids"]
        assert ids == full[: len(ids)]


@FAST
@given(texts=ascii_texts, lo_hi=bounds, seed=st.integers(0, 2**16))
def test_truncated_text_retokenizes_to_lo_hi_tokens(texts, lo_hi, seed):
    lo, hi = lo_hi
    kept = filter_short(texts, TOKENIZER, lo)
    queries = truncate_queries(kept, TOKENIZER, lo, hi, random.Random(seed))
    assert len(queries) == len(kept)
    assert all(lo <= n <= hi for n in count_tokens(queries, TOKENIZER))
    assert all(text.startswith(query) for text, query in zip(kept, queries))
    assert truncate_queries(kept, TOKENIZER, lo, hi, random.Random(seed)) == queries


@FAST
@given(sources=st.lists(ascii_texts, max_size=4), limit=st.integers(1, 60), max_prompts=st.none() | st.integers(1, 10))
def test_combined_prompts_respect_limits_and_source_order(sources, limit, max_prompts):
    combined = combine_sources(sources, TOKENIZER, token_limit=limit, max_prompts=max_prompts)
    unlimited = combine_sources(sources)
    assert sorted(unlimited) == sorted(t for texts in sources for t in texts)
    assert combined == unlimited[: len(combined)]  # a prefix of the round-robin order
    used = sum(count_tokens(combined, TOKENIZER))
    assert used <= limit
    if max_prompts is not None:
        assert len(combined) <= max_prompts
    capped = unlimited[:max_prompts] if max_prompts is not None else unlimited
    if len(combined) < len(capped):  # stopped by the limit: the next prompt would not fit
        assert used + count_tokens([capped[len(combined)]], TOKENIZER)[0] > limit


@FAST
@given(
    num_prompts=st.integers(1, 12),
    batch_size=st.integers(1, 9),
    seed=st.integers(0, 1000),
    before=st.integers(0, 6),
    after=st.integers(1, 6),
)
def test_sampler_resume_equals_uninterrupted_run(num_prompts, batch_size, seed, before, after):
    prompts = [f"p{i}" for i in range(num_prompts)]
    sampler = PromptSampler(prompts, batch_size, seed)
    for _ in range(before):
        sampler.next_batch()
    state = sampler.state_dict()
    expected = [sampler.next_batch() for _ in range(after)]
    restored = PromptSampler(prompts, batch_size, seed=seed + 1)
    restored.load_state_dict(state)
    got = [restored.next_batch() for _ in range(after)]
    assert got == expected
    assert all(len(batch) == batch_size for batch in got)


@FAST
@given(num_prompts=st.integers(1, 12), batch_size=st.integers(1, 9), seed=st.integers(0, 1000))
def test_sampler_visits_every_prompt_once_per_epoch(num_prompts, batch_size, seed):
    prompts = [f"p{i}" for i in range(num_prompts)]
    sampler = PromptSampler(prompts, batch_size, seed)
    epochs = 3
    steps = -(-epochs * num_prompts // batch_size)
    stream = [p for _ in range(steps) for p in sampler.next_batch()]
    for e in range(epochs):
        assert sorted(stream[e * num_prompts : (e + 1) * num_prompts]) == sorted(prompts)
