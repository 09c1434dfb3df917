"""A lean sampling loop over the model's forward with a KV cache: what ``generate`` does for our rollouts,
without its per-token machinery (which dominates on small models: a 2-layer GPT-2 spends most of a
``generate`` call outside the network).

It draws tokens exactly as ``generate(do_sample=True)`` does: float32 logits of the last position, the same
transformers logits processors in the same order (min-new-tokens, temperature, top-k, top-p), softmax,
``torch.multinomial``, and padding after EOS, so with the same RNG state it returns the same tokens (tests
check this for GPT-2, Llama, 4-bit and LoRA). Whether all sequences have finished is checked every
``STOP_CHECK_EVERY`` tokens, not every token, to keep host syncs out of the loop.
"""

from __future__ import annotations

import torch

STOP_CHECK_EVERY = 8


def _processors(cfg, prompt_length: int, eos_token_id: int, device):
    from transformers import (
        LogitsProcessorList, MinNewTokensLengthLogitsProcessor, TemperatureLogitsWarper, TopKLogitsWarper,
        TopPLogitsWarper,
    )

    processors = LogitsProcessorList()
    if cfg.min_new_tokens > 0:
        processors.append(MinNewTokensLengthLogitsProcessor(prompt_length, cfg.min_new_tokens, eos_token_id,
                                                            device=device))
    if cfg.temperature != 1.0:
        processors.append(TemperatureLogitsWarper(cfg.temperature))
    if cfg.top_k > 0:
        processors.append(TopKLogitsWarper(top_k=cfg.top_k, min_tokens_to_keep=1))
    if cfg.top_p < 1.0:
        processors.append(TopPLogitsWarper(top_p=cfg.top_p, min_tokens_to_keep=1))
    return processors


@torch.no_grad()
def sample_with_cache(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, cfg, eos_token_id: int,
                      pad_token_id: int, greedy: bool = False) -> torch.Tensor:
    """``(B, cfg.max_new_tokens)`` new tokens after left-padded prompts; ``pad_token_id`` after EOS."""
    from transformers import DynamicCache

    batch, prompt_length = input_ids.shape
    total = prompt_length + cfg.max_new_tokens
    sequence = input_ids.new_full((batch, total), pad_token_id)  # (B, P + R), filled as tokens come
    sequence[:, :prompt_length] = input_ids
    mask = torch.cat([attention_mask, attention_mask.new_ones(batch, cfg.max_new_tokens)], dim=1)  # (B, P + R)
    positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)  # (B, P)
    next_position = positions[:, -1:] + 1  # (B, 1)
    processors = _processors(cfg, prompt_length, eos_token_id, input_ids.device)
    unfinished = torch.ones(batch, dtype=torch.bool, device=input_ids.device)  # (B,)
    cache = DynamicCache(config=getattr(model, "config", None))
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions,
                past_key_values=cache, use_cache=True, logits_to_keep=1)
    for t in range(cfg.max_new_tokens):
        logits = out.logits[:, -1].to(dtype=torch.float32)  # (B, V)
        scores = processors(sequence[:, :prompt_length + t], logits)
        if greedy:
            tokens = scores.argmax(dim=-1)  # (B,)
        else:
            tokens = torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1).squeeze(1)  # (B,)
        tokens = torch.where(unfinished, tokens, pad_token_id)
        sequence[:, prompt_length + t] = tokens
        unfinished = unfinished & (tokens != eos_token_id)
        last = t + 1 == cfg.max_new_tokens
        if last or ((t + 1) % STOP_CHECK_EVERY == 0 and not bool(unfinished.any())):
            break
        out = model(input_ids=tokens[:, None], attention_mask=mask[:, :prompt_length + t + 1],
                    position_ids=next_position + t, past_key_values=cache, use_cache=True)
    return sequence[:, prompt_length:]
