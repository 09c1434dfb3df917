"""Prompt texts for RL from a profile's ``data`` section: read, filter, truncate, combine, wrap.

:func:`load_prompts` runs the steps in this order, each a small function that can be used alone:

1. :func:`prompt_texts` reads each source's text column (:func:`rlhf.data.load_records`);
2. :func:`filter_short` drops texts with fewer than ``data.min_prompt_tokens`` tokens (and, when
   ``data.query_tokens = [lo, hi]`` is set, fewer than ``lo``: a query must be able to hold lo tokens);
3. :func:`truncate_queries` keeps the first k tokens of each text, k ~ U{lo..hi} per example (the IMDB
   recipe of the reviews notebook, ``LengthSampler(2, 8)``);
4. :func:`combine_sources` interleaves the sources round-robin under ``data.max_prompts`` and
   ``data.token_limit`` (the pretraining seed's ``DatasetCombiner.set_token_limit``);
5. :func:`apply_chat_template` wraps each prompt as a user turn (plus ``data.system_prompt``).

Token counts never include special tokens (``add_special_tokens=False``), and the token limit counts the
prompts before chat wrapping.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rlhf.data.sources import load_records, parse_source

if TYPE_CHECKING:  # rlhf.models.tokenizer imports rlhf.data; keep this package free of the config import
    from rlhf.config import DataConfig

TEXT_COLUMNS = ("prompt", "query", "text")


def load_prompts(data: DataConfig, tokenizer, seed: int) -> list[str]:
    """The prompt texts for RL described by ``data``; the same list for the same ``seed``.

    Raises ``ValueError`` when a source or column is bad, when every prompt is filtered out (naming the
    sources, the filter and the counts), or when ``data.chat_template`` is set for a tokenizer without one.
    """
    sources = [data.prompts] if isinstance(data.prompts, str) else list(data.prompts)
    if not sources:
        raise ValueError("data.prompts is an empty list; name at least one source, e.g. builtin:review-openers")
    if data.system_prompt is not None and not data.chat_template:
        raise ValueError(
            f"data.system_prompt is set ({data.system_prompt!r}) but data.chat_template is false: the system "
            "prompt only exists inside a chat template. Set data.chat_template: true or remove system_prompt."
        )
    lo, hi = data.query_tokens or (None, None)
    min_tokens = max(data.min_prompt_tokens, lo or 0)
    rng = random.Random(seed)
    prepared, counts = [], []
    for source in sources:
        texts = prompt_texts(source, data.column)
        kept = filter_short(texts, tokenizer, min_tokens)
        if lo is not None:
            kept = truncate_queries(kept, tokenizer, lo, hi, rng)
        prepared.append(kept)
        counts.append((len(texts), len(kept)))
    prompts = combine_sources(prepared, tokenizer, token_limit=data.token_limit, max_prompts=data.max_prompts)
    if not prompts:
        raise ValueError(_nothing_left_message(sources, counts, data, min_tokens))
    if data.chat_template:
        prompts = apply_chat_template(prompts, tokenizer, data.system_prompt)
    return prompts


def prompt_texts(source: str, column: str | None = None) -> list[str]:
    """The text column of ``source``: its ``hf:...:COLUMN``, else ``column``, else prompt/query/text."""
    explicit = parse_source(source).column or column
    records = load_records(source, columns=[explicit] if explicit else None)
    if explicit is None:
        present = list(dict.fromkeys(key for record in records for key in record))
        explicit = next((name for name in TEXT_COLUMNS if name in present), None)
        if explicit is None:
            raise ValueError(
                f"data source {source!r} has none of the columns {list(TEXT_COLUMNS)}; its columns are "
                f"{present}. Set data.column to the column holding the prompt text."
            )
    texts = [record.get(explicit) for record in records]
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(
                f"data source {source!r}, column {explicit!r}: record {index} holds {text!r} "
                f"({type(text).__name__}), expected text"
            )
    return texts


def count_tokens(texts: Sequence[str], tokenizer) -> list[int]:
    """Tokens per text, without special tokens."""
    if not texts:
        return []
    return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]


def filter_short(texts: Sequence[str], tokenizer, min_tokens: int) -> list[str]:
    """The texts with at least ``min_tokens`` tokens, in order."""
    return [text for text, n in zip(texts, count_tokens(texts, tokenizer)) if n >= min_tokens]


def truncate_query_ids(texts: Sequence[str], tokenizer, lo: int, hi: int, rng: random.Random) -> list[list[int]]:
    """The first k token ids of each text, k drawn from ``rng.randint(lo, hi)`` per text in order.

    A text with fewer than k tokens keeps all of them (filter with ``lo`` first to bound lengths below).
    """
    if not 1 <= lo <= hi:
        raise ValueError(f"query_tokens must be [lo, hi] with 1 <= lo <= hi, got [{lo}, {hi}]")
    if not texts:
        return []
    ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    return [list(token_ids[: rng.randint(lo, hi)]) for token_ids in ids]


def truncate_queries(texts: Sequence[str], tokenizer, lo: int, hi: int, rng: random.Random) -> list[str]:
    """Each text cut to its first k ~ U{lo..hi} tokens and decoded (``skip_special_tokens=True``).

    >>> from rlhf.models.tokenizer import load_tokenizer
    >>> tokenizer = load_tokenizer("builtin-bpe")
    >>> truncate_queries(["This movie is great"], tokenizer, 3, 3, random.Random(0))
    ['This movie is']
    """
    kept = truncate_query_ids(texts, tokenizer, lo, hi, rng)
    return tokenizer.batch_decode(kept, skip_special_tokens=True) if kept else []


def combine_sources(
    sources: Sequence[Sequence[str]],
    tokenizer=None,
    token_limit: int | None = None,
    max_prompts: int | None = None,
) -> list[str]:
    """Interleave ``sources`` round-robin (a0, b0, a1, b1, ...; exhausted sources drop out).

    Stops before the first prompt that would push the running token count past ``token_limit`` (which
    needs ``tokenizer``), or once ``max_prompts`` prompts are taken. Round-robin rather than concatenation,
    so that a limit takes a share of every source instead of only the first.
    """
    if token_limit is not None and tokenizer is None:
        raise ValueError("combine_sources: token_limit needs a tokenizer to count tokens")
    longest = max((len(texts) for texts in sources), default=0)
    interleaved = [texts[i] for i in range(longest) for texts in sources if i < len(texts)]
    if max_prompts is not None:
        interleaved = interleaved[:max_prompts]
    if token_limit is None:
        return interleaved
    combined, total = [], 0
    for text, n in zip(interleaved, count_tokens(interleaved, tokenizer)):
        if total + n > token_limit:
            break
        combined.append(text)
        total += n
    return combined


def apply_chat_template(texts: Sequence[str], tokenizer, system_prompt: str | None = None) -> list[str]:
    """Each text as the user turn of a chat (after ``system_prompt``), ending with the generation prompt.

    The result is a string that already holds the template's special tokens (e.g. Llama-3's
    ``<|begin_of_text|>``): tokenize it with ``add_special_tokens=False``.
    """
    if getattr(tokenizer, "chat_template", None) is None:
        name = getattr(tokenizer, "name_or_path", type(tokenizer).__name__)
        raise ValueError(
            f"data.chat_template is true but tokenizer {name!r} has no chat template. Use an instruct "
            "model's tokenizer (e.g. meta-llama/Meta-Llama-3-8B-Instruct) or set data.chat_template: false."
        )
    system = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return [
        tokenizer.apply_chat_template(
            [*system, {"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
        )
        for text in texts
    ]


def _nothing_left_message(sources: list[str], counts: list[tuple[int, int]], data: DataConfig, min_tokens: int) -> str:
    per_source = ", ".join(f"{s!r}: {loaded} loaded, {kept} kept" for s, (loaded, kept) in zip(sources, counts))
    rule = f"data.min_prompt_tokens={data.min_prompt_tokens}"
    if data.query_tokens is not None:
        rule += f" and data.query_tokens={list(data.query_tokens)} (a query needs at least {min_tokens} tokens)"
    message = f"no prompts left from data.prompts {sources}: {per_source} by the filter {rule}"
    if sum(kept for _, kept in counts) and data.token_limit is not None:
        message += (
            f"; then data.token_limit={data.token_limit} is smaller than the first prompt's token count. "
            "Raise data.token_limit"
        )
    else:
        message += ". Lower data.min_prompt_tokens / query_tokens or use longer prompts"
    return message + "."
