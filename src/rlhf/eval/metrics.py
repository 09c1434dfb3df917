"""Text metrics of completions: distinct-n, repetition rate, length, the most repeated n-gram, perplexity.

Texts are split into lowercased words and punctuation marks (``\\w+`` runs and single other characters),
so "great!!!" is ``["great", "!", "!", "!"]``: a model that repeats a symbol shows up like one that
repeats a word.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

import torch

_WORD = re.compile(r"\w+|[^\w\s]")


def words(text: str) -> list[str]:
    """Lowercased words and punctuation marks.

    >>> words("Great film, GREAT!")
    ['great', 'film', ',', 'great', '!']
    """
    return _WORD.findall(text.lower())


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct n-grams over all n-grams of all texts (Li et al. 2016, corpus level); 0.0 without n-grams.

    >>> distinct_n(["a b a b"], 1), distinct_n(["a b a b"], 2)
    (0.5, 0.6666666666666666)
    """
    grams = [gram for text in texts for gram in ngrams(words(text), n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repetition_rate(texts: Sequence[str], n: int = 2) -> float:
    """Mean over texts of the share of n-grams that repeat an earlier one in the same text (seq-rep-n).

    From Welleck et al. 2019 ("Neural text degeneration with unlikelihood training"); texts with no
    n-gram are left out; 0.0 when none has one.

    >>> round(repetition_rate(["a b a b", "x y z"]), 4)  # (1/3 + 0) / 2
    0.1667
    """
    rates = []
    for text in texts:
        grams = ngrams(words(text), n)
        if grams:
            rates.append(1.0 - len(set(grams)) / len(grams))
    return sum(rates) / len(rates) if rates else 0.0


def mean_length(texts: Sequence[str]) -> float:
    """Mean number of words (and punctuation marks) per text."""
    return sum(len(words(text)) for text in texts) / len(texts) if texts else 0.0


def top_ngram(texts: Sequence[str], n: int) -> tuple[str, float]:
    """The most frequent n-gram of all texts and its share of all n-grams (``("", 0.0)`` without any).

    >>> top_ngram(["great great film", "great"], 1)
    ('great', 0.75)
    """
    counts = Counter(gram for text in texts for gram in ngrams(words(text), n))
    if not counts:
        return "", 0.0
    gram, count = counts.most_common(1)[0]
    return " ".join(gram), count / sum(counts.values())


def ngram_share(texts: Sequence[str], gram: str) -> float:
    """Share of all n-grams of ``texts`` (n = words in ``gram``) that equal ``gram``."""
    target = tuple(gram.split(" "))
    grams = [g for text in texts for g in ngrams(words(text), len(target))]
    return sum(g == target for g in grams) / len(grams) if grams else 0.0


def text_stats(texts: Sequence[str]) -> dict[str, float]:
    """Diversity and length of a set of completions: the keys the report and the training log share."""
    stats = {f"distinct_{n}": distinct_n(texts, n) for n in (1, 2, 3)}
    stats["repetition_rate"] = repetition_rate(texts)
    stats["mean_length"] = mean_length(texts)
    gram, share = max((top_ngram(texts, n) for n in (1, 2, 3)), key=lambda item: item[1])
    stats["top_ngram_share"] = share
    stats["top_ngram"] = gram
    return stats


def completion_metrics(texts: Sequence[str]) -> dict[str, float]:
    """``text/<stat>`` scalars of one step's completions, for ``training_stats.csv`` and TensorBoard."""
    return {f"text/{key}": value for key, value in text_stats(texts).items() if not isinstance(value, str)}


@torch.no_grad()
def perplexity(model, tokenizer, prompts: Sequence[str], completions: Sequence[str], batch_size: int = 16,
               max_tokens: int | None = None) -> float:
    """exp(mean negative log-likelihood per completion token), each completion given its prompt.

    Token-weighted over all completions (a long completion counts more, as in a language-model loss), at
    temperature 1. ``max_tokens`` keeps the last tokens of longer sequences. NaN when no completion has a
    token.
    """
    pairs = []
    for prompt, completion in zip(prompts, completions, strict=True):
        prompt_ids = tokenizer(prompt, add_special_tokens=False).input_ids or [tokenizer.eos_token_id]
        completion_ids = tokenizer(completion, add_special_tokens=False).input_ids
        if completion_ids:
            ids = (prompt_ids + completion_ids)[-max_tokens:] if max_tokens else prompt_ids + completion_ids
            pairs.append((ids, min(len(completion_ids), len(ids) - 1)))
    total_nll, total_tokens = 0.0, 0
    device = next(model.parameters()).device
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        width = max(len(ids) for ids, _ in chunk)
        input_ids = torch.full((len(chunk), width), tokenizer.pad_token_id, dtype=torch.long)  # (B, T) left-padded
        target_mask = torch.zeros(len(chunk), width, dtype=torch.bool)  # (B, T) completion tokens
        for row, (ids, scored) in enumerate(chunk):
            input_ids[row, width - len(ids):] = torch.tensor(ids)
            target_mask[row, width - scored:] = True
        attention_mask = (torch.arange(width) >= width - torch.tensor([len(ids) for ids, _ in chunk])[:, None]).long()
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        logits = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
                       position_ids=position_ids.to(device), use_cache=False).logits.float()  # (B, T, V)
        logprobs = torch.log_softmax(logits[:, :-1], dim=-1)  # position t predicts token t + 1
        token_lp = logprobs.gather(-1, input_ids[:, 1:, None].to(device)).squeeze(-1)  # (B, T - 1)
        mask = target_mask[:, 1:].to(device)
        total_nll -= float(token_lp[mask].sum())
        total_tokens += int(mask.sum())
    return math.exp(total_nll / total_tokens) if total_tokens else math.nan
