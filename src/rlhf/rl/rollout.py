"""Batched generation and log-prob computation (the rollout phase of the RL loop).

Prompts are left-padded so every completion starts at the same column; generation uses the KV cache
and stops at EOS; tokens after the first EOS are padding and are masked out. Old policy log-probs,
reference log-probs and values are computed in micro-batches without building a graph, each only when
the caller needs it: the update's own first forward gives the old log-probs when the policy does not
change before it (one optimiser step per batch), and a KL coefficient of 0 needs no reference.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from rlhf.algos import full_kl, logprobs_from_logits
from rlhf.config import RolloutConfig
from rlhf.models.policy import Policy
from rlhf.rl.sampling import sample_with_cache


@dataclass
class RolloutBatch:
    """Everything the later phases need about N = prompts x num_generations completions."""

    prompts: list[str]  # N, each prompt repeated num_generations times (prompt-major groups)
    completions: list[str]  # N
    input_ids: torch.Tensor  # (N, P + R) left-padded prompt + response
    attention_mask: torch.Tensor  # (N, P + R)
    response_mask: torch.Tensor  # (N, R) 1.0 on response tokens up to and including EOS
    logprobs: torch.Tensor | None  # (N, R) policy log-probs at sampling time (None: not computed)
    ref_logprobs: torch.Tensor | None  # (N, R) (None: not computed)
    values: torch.Tensor | None  # (N, R) critic values (PPO)
    full_kl: torch.Tensor | None = None  # (N, R) exact per-token KL to the reference (algo.kl.estimator full)

    @property
    def response_length(self) -> int:
        return self.response_mask.shape[1]

    def select(self, index: torch.Tensor) -> RolloutBatch:
        """The rows ``index`` (a minibatch); tensors are indexed, lists picked."""
        rows = index.tolist()
        picked = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                picked[f.name] = value[index]
            elif isinstance(value, list):
                picked[f.name] = [value[i] for i in rows]
            else:
                picked[f.name] = value
        return RolloutBatch(**picked)


def response_logprobs(policy, input_ids: torch.Tensor, attention_mask: torch.Tensor, response_length: int,
                      temperature: float, with_values: bool):
    """Log-probs (and values) of the last ``response_length`` tokens, plus their logits.

    Logits are divided by the sampling temperature, so the log-probs are those of the distribution the
    tokens were sampled from. Returns ``(logprobs (B, R), values (B, R) | None, logits (B, R, V))``.
    """
    out = policy(input_ids, attention_mask, logits_to_keep=response_length + 1, with_values=with_values)
    logprobs, logits = _tempered_logprobs(out.logits, input_ids[:, -response_length:], temperature)
    values = out.values[:, :-1] if out.values is not None else None  # (B, R): value of the state before each token
    return logprobs, values, logits


def _tempered_logprobs(logits: torch.Tensor, tokens: torch.Tensor, temperature: float):
    """Log-probs of ``tokens`` (B, R) from the logits of the R + 1 positions before them, at ``temperature``.

    Policy and reference both go through here, so their log-probs always use the same temperature.
    """
    logits = logits[:, :-1].float() / temperature  # (B, R, V): position t predicts token t + 1
    return logprobs_from_logits(logits, tokens), logits


def _mask_after_eos(response: torch.Tensor, eos_token_id: int, pad_token_id: int):
    """Mask 1 up to and including the first EOS; later tokens become padding."""
    is_eos = response == eos_token_id  # (N, R)
    after_eos = (is_eos.long().cumsum(-1) - is_eos.long()) > 0  # (N, R) strictly after the first EOS
    return response.masked_fill(after_eos, pad_token_id), (~after_eos).float()


def _micro_batches(n: int, size: int | None):
    size = size or n
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


@torch.no_grad()
def sample_responses(model, tokenizer, prompts: list[str], cfg: RolloutConfig,
                     max_prompt_tokens: int | None = None, synced_gpus: bool = False):
    """Left-padded prompt ids and mask, and sampled responses ``(N, max_new_tokens)`` masked after EOS.

    Returns ``(prompt_ids, prompt_mask, response, response_mask)``; ``model`` is any causal LM.
    ``synced_gpus``: every process runs forwards until all are done (a model whose blocks all-gather their
    weights at each forward cannot let one process stop at EOS early).
    """
    device = next(model.parameters()).device
    encoded = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False,
                        truncation=max_prompt_tokens is not None, max_length=max_prompt_tokens)
    prompt_ids, prompt_mask = encoded.input_ids.to(device), encoded.attention_mask.to(device)
    generated = []
    for part in _micro_batches(len(prompts), cfg.micro_batch_size):
        # The lean loop stops when this process's sequences end; processes that must keep stepping together
        # (blocks gathered per forward) use generate(synced_gpus=True): the same tokens.
        if cfg.sampler == "lean" and not synced_gpus:
            response = sample_with_cache(model, prompt_ids[part], prompt_mask[part], cfg, tokenizer.eos_token_id,
                                         tokenizer.pad_token_id)
        else:
            out = model.generate(
                input_ids=prompt_ids[part], attention_mask=prompt_mask[part], do_sample=True,
                max_new_tokens=cfg.max_new_tokens, min_new_tokens=cfg.min_new_tokens, temperature=cfg.temperature,
                top_p=cfg.top_p, top_k=cfg.top_k, pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id, use_cache=True, synced_gpus=synced_gpus,
            )
            response = out[:, prompt_ids.shape[1]:]
        # Pad every micro-batch to max_new_tokens so they stack (generation may stop early at EOS).
        pad = cfg.max_new_tokens - response.shape[1]
        generated.append(torch.nn.functional.pad(response, (0, pad), value=tokenizer.pad_token_id))
    response, response_mask = _mask_after_eos(torch.cat(generated), tokenizer.eos_token_id, tokenizer.pad_token_id)
    return prompt_ids, prompt_mask, response, response_mask


@torch.no_grad()
def generate_rollouts(policy: Policy, tokenizer, prompts: list[str], cfg: RolloutConfig,
                      with_values: bool, max_prompt_tokens: int | None = None,
                      full_kl_direction: str | None = None, *, with_logprobs: bool = True,
                      with_reference: bool = True, synced_gpus: bool = False) -> RolloutBatch:
    """Sample ``cfg.num_generations`` completions per prompt and score them under policy and reference.

    The policy forward runs if ``with_logprobs`` or ``with_values``, the reference forward if
    ``with_reference``; what is not computed is None in the batch. ``full_kl_direction``
    (``reverse``/``forward``) also computes the exact per-token KL over the vocabulary from both models'
    logits, micro-batch by micro-batch (only ``(N, R)`` is kept); it needs both forwards.
    """
    repeated = [p for p in prompts for _ in range(cfg.num_generations)]  # prompt-major groups
    was_training = policy.training
    policy.eval()
    prompt_ids, prompt_mask, response, response_mask = sample_responses(policy.model, tokenizer, repeated, cfg,
                                                                        max_prompt_tokens, synced_gpus)
    input_ids = torch.cat([prompt_ids, response], dim=1)  # (N, P + R)
    attention_mask = torch.cat([prompt_mask, response_mask.long()], dim=1)  # (N, P + R)

    logprobs, ref_logprobs, values, kls = [], [], [], []
    for part in _micro_batches(len(repeated), cfg.micro_batch_size):
        logits = None
        if with_logprobs or with_values:
            lp, v, logits = response_logprobs(policy, input_ids[part], attention_mask[part], cfg.max_new_tokens,
                                              cfg.temperature, with_values)
            logprobs.append(lp)
            values.append(v)
        if with_reference:
            ref_logits = policy.reference_logits(input_ids[part], attention_mask[part], cfg.max_new_tokens + 1)
            ref_lp, ref_logits = _tempered_logprobs(ref_logits, response[part], cfg.temperature)
            ref_logprobs.append(ref_lp)
            if full_kl_direction is not None:
                assert logits is not None, "the exact KL needs the policy forward too"
                kls.append(full_kl(logits, ref_logits, full_kl_direction))
    if was_training:
        policy.train()
    completions = tokenizer.batch_decode(response, skip_special_tokens=True)
    return RolloutBatch(
        prompts=repeated, completions=completions, input_ids=input_ids, attention_mask=attention_mask,
        response_mask=response_mask, logprobs=torch.cat(logprobs) if logprobs else None,
        ref_logprobs=torch.cat(ref_logprobs) if ref_logprobs else None,
        values=torch.cat(values) if with_values else None, full_kl=torch.cat(kls) if kls else None,
    )
