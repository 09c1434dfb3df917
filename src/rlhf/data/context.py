"""Prompts that fit the model's context beside the completion: checked once at load, cut and counted.

A prompt of P tokens and ``rollout.max_new_tokens`` R need P + R positions. When R alone, or R plus the
shortest prompt, does not fit, the run cannot start: that is an error naming the numbers. Longer prompts are
cut once here (not silently per batch), counted for one warning per run, and the cut text is what the
rollout, the rewards and ``generated_outputs.csv`` see.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FittedPrompts:
    prompts: list[str]
    num_cut: int  # prompts that were longer than max_prompt_tokens
    max_prompt_tokens: int | None  # None: the model reports no context length

    def warning(self, max_new_tokens: int, context: int) -> str:
        return (f"{self.num_cut} of {len(self.prompts)} prompts are longer than the {self.max_prompt_tokens} "
                f"tokens that fit beside rollout.max_new_tokens={max_new_tokens} in the model's {context}-token "
                f"context; they are cut to their first {self.max_prompt_tokens} tokens (generated_outputs.csv "
                "shows the prompts as cut)")


def fit_prompts(prompts: list[str], tokenizer, context: int | None, max_new_tokens: int) -> FittedPrompts:
    """Cut prompts to ``context - max_new_tokens`` tokens; ``ValueError`` if not even the shortest fits.

    >>> from rlhf.models.tokenizer import load_tokenizer
    >>> fit_prompts(["The movie was great fun"], load_tokenizer("builtin-bpe"), 6, 3).prompts
    ['The movie was']
    """
    if context is None:
        return FittedPrompts(list(prompts), 0, None)
    room = context - max_new_tokens
    if room < 1:
        raise ValueError(
            f"rollout.max_new_tokens={max_new_tokens} leaves no room for a prompt in the model's context of "
            f"{context} tokens; set rollout.max_new_tokens below {context} (the shortest prompt must fit too)"
        )
    ids = tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
    shortest = min(len(x) for x in ids)
    if shortest > room:
        raise ValueError(
            f"rollout.max_new_tokens={max_new_tokens} plus the shortest prompt ({shortest} tokens) is "
            f"{max_new_tokens + shortest} tokens, beyond the model's context of {context}: set "
            f"rollout.max_new_tokens to at most {context - shortest}, or use shorter prompts (data.query_tokens)"
        )
    fitted, cut = [], 0
    for text, token_ids in zip(prompts, ids):
        if len(token_ids) > room:
            text, cut = _cut(tokenizer, token_ids, room), cut + 1
        fitted.append(text)
    return FittedPrompts(fitted, cut, room)


def _cut(tokenizer, token_ids: list[int], room: int) -> str:
    """The text of the first ``room`` tokens (the last ones if the tokenizer truncates on the left).

    Decoding and re-encoding can merge tokens differently, so cut further until the text fits.
    """
    keep = room
    while True:
        part = token_ids[-keep:] if tokenizer.truncation_side == "left" else token_ids[:keep]
        text = tokenizer.decode(part)
        if len(tokenizer(text, add_special_tokens=False)["input_ids"]) <= room or keep == 1:
            return text
        keep -= 1
