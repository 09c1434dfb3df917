"""Clipped PPO policy and value losses, and the per-token quantities they need from logits.

All losses are token-level masked means over the micro-batch: every response token weighs the same, so
the loss of a batch is the token-count-weighted average of the losses of its shards.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rlhf.algos.kl import kl_estimate
from rlhf.algos.masked import masked_mean


def policy_loss(
    logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, mask: Tensor, clip_eps: float
) -> tuple[Tensor, Tensor]:
    """PPO clipped surrogate loss and the fraction of tokens where clipping was active.

    Paper: Schulman et al. 2017, https://arxiv.org/abs/1707.06347, eq. 7 (negated, to minimise).
    Shapes: ``logprobs``, ``old_logprobs``, ``advantages``, ``mask`` ``(B, T)`` -> ``(loss, clipfrac)``, scalars.
    ``loss = masked_mean(max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps)))``;
    ``clipfrac = masked_mean(-A * clipped > -A * ratio)`` (TRL's ``policy/clipfrac_avg``).
    Departures: the paper averages over timesteps of one trajectory; here the mean is over all response
    tokens of the micro-batch (token-level, as TRL/OpenRLHF PPO and DAPO), not per-sequence then per-batch.
    """
    selected = mask.bool()
    # Zero the log-ratio on padding before exp: garbage there could overflow to inf and NaN the gradient.
    log_ratio = torch.where(selected, logprobs - old_logprobs, 0.0)  # (B, T)
    ratio = torch.exp(log_ratio)  # (B, T)
    advantages = torch.where(selected, advantages, 0.0)  # (B, T)
    unclipped = -advantages * ratio  # (B, T)
    clipped = -advantages * ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps)  # (B, T)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    clipfrac = masked_mean((clipped > unclipped).to(ratio.dtype), mask).detach()
    return loss, clipfrac


def approx_kl(logprobs: Tensor, old_logprobs: Tensor, mask: Tensor) -> Tensor:
    """Masked mean of ``0.5 * (logprobs - old_logprobs)^2``: TRL's ``policy/approxkl_avg`` diagnostic.

    Paper: Schulman 2020, http://joschu.net/blog/kl-approx.html (the k2 estimator).
    Shapes: ``logprobs``, ``old_logprobs``, ``mask`` ``(B, T)`` -> scalar.
    Departures: none; it measures how far an update moved the policy from the rollout policy.
    """
    return masked_mean(kl_estimate(logprobs, old_logprobs, "k2"), mask)


def value_loss(
    values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor, clip_eps: float
) -> tuple[Tensor, Tensor]:
    """Clipped value loss and the fraction of tokens where the clipped error was the larger one.

    Paper: the value clipping of OpenAI baselines' PPO2, as analysed in Engstrom et al. 2020,
    https://arxiv.org/abs/2005.12729 (section 3, "value function clipping").
    Shapes: ``values``, ``old_values``, ``returns``, ``mask`` ``(B, T)`` -> ``(loss, clipfrac)``, scalars.
    ``loss = 0.5 * masked_mean(max((v - R)^2, (clip(v, old - eps, old + eps) - R)^2))``.
    Departures: PPO's paper uses an unclipped squared error; this is the baselines/TRL variant.
    """
    values_clipped = old_values + (values - old_values).clamp(-clip_eps, clip_eps)  # (B, T)
    unclipped = (values - returns).square()  # (B, T)
    clipped = (values_clipped - returns).square()  # (B, T)
    loss = 0.5 * masked_mean(torch.maximum(unclipped, clipped), mask)
    clipfrac = masked_mean((clipped > unclipped).to(unclipped.dtype), mask).detach()
    return loss, clipfrac


def entropy_from_logits(logits: Tensor) -> Tensor:
    """Entropy of the categorical distribution given by ``logits`` at every position.

    Paper: none (standard identity H = logsumexp(z) - sum(softmax(z) * z), as in TRL).
    Shapes: ``logits`` ``(B, T, V)`` -> ``(B, T)``.
    Departures: none. The identity avoids ``log(softmax)``, which underflows to -inf for tiny probabilities.
    """
    probs = F.softmax(logits, dim=-1)  # (B, T, V)
    return torch.logsumexp(logits, dim=-1) - (probs * logits).sum(dim=-1)  # (B, T)


def logprobs_from_logits(logits: Tensor, labels: Tensor) -> Tensor:
    """Log-probability of each label under the logits at the same position.

    Paper: none. Shapes: ``logits`` ``(B, T, V)``, ``labels`` ``(B, T)`` integer ids -> ``(B, T)``.
    The caller aligns them (logits at position t predict the token at t + 1).
    Departures: in float32/float64, ``gather - logsumexp`` avoids materialising a second ``(B, T, V)``
    tensor; lower precisions use ``log_softmax`` because their ``logsumexp`` loses accuracy (as in TRL).
    """
    if logits.dtype in (torch.float32, torch.float64):
        picked = logits.gather(dim=-1, index=labels.unsqueeze(-1)).squeeze(-1)  # (B, T)
        return picked - torch.logsumexp(logits, dim=-1)  # (B, T)
    log_probs = F.log_softmax(logits, dim=-1)  # (B, T, V)
    return log_probs.gather(dim=-1, index=labels.unsqueeze(-1)).squeeze(-1)  # (B, T)
