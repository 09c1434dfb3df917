"""Clipped PPO policy and value losses, and the per-token quantities they need from logits.

Per-token losses are aggregated by a loss type (:data:`LOSS_TYPES`: ``grpo``, ``bnpo``, ``dapo``,
``dr_grpo``); each says whether a batch's loss is the token- or sequence-weighted average of its shards'.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from rlhf.algos.kl import kl_estimate
from rlhf.algos.masked import masked_mean
from rlhf.registry import Registry


def clipped_surrogate(
    logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, mask: Tensor, clip_low: float,
    clip_high: float | None = None,
) -> tuple[Tensor, Tensor]:
    """Per-token PPO clipped surrogate loss and where clipping was active; aggregate with a loss type.

    Paper: Schulman et al. 2017, https://arxiv.org/abs/1707.06347, eq. 7 (negated, to minimise); the
    asymmetric range ``[1 - clip_low, 1 + clip_high]`` is DAPO's "clip-higher" (Yu et al. 2025,
    https://arxiv.org/abs/2503.14476, eq. 10).
    Shapes: all inputs ``(B, T)`` -> ``(per_token_loss (B, T), clipped (B, T) float)``; both 0 off the mask.
    ``loss_t = max(-A_t * ratio_t, -A_t * clip(ratio_t, 1 - clip_low, 1 + clip_high))``.
    Departures: none; ``clip_high=None`` means the symmetric ``clip_low``.
    """
    clip_high = clip_low if clip_high is None else clip_high
    selected = mask.bool()
    # Zero the log-ratio on padding before exp: garbage there could overflow to inf and NaN the gradient.
    log_ratio = torch.where(selected, logprobs - old_logprobs, 0.0)  # (B, T)
    ratio = torch.exp(log_ratio)  # (B, T)
    advantages = torch.where(selected, advantages, 0.0)  # (B, T)
    unclipped = -advantages * ratio  # (B, T)
    clipped = -advantages * ratio.clamp(1.0 - clip_low, 1.0 + clip_high)  # (B, T)
    per_token = torch.where(selected, torch.maximum(unclipped, clipped), 0.0)  # (B, T)
    return per_token, ((clipped > unclipped) & selected).to(ratio.dtype)


def policy_loss(
    logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, mask: Tensor, clip_eps: float
) -> tuple[Tensor, Tensor]:
    """PPO clipped surrogate loss, token-level mean, and the fraction of tokens where clipping was active.

    Paper: Schulman et al. 2017, https://arxiv.org/abs/1707.06347, eq. 7 (negated, to minimise).
    Shapes: ``logprobs``, ``old_logprobs``, ``advantages``, ``mask`` ``(B, T)`` -> ``(loss, clipfrac)``, scalars.
    ``loss = masked_mean(max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps)))``;
    ``clipfrac = masked_mean(-A * clipped > -A * ratio)`` (TRL's ``policy/clipfrac_avg``).
    Departures: the paper averages over timesteps of one trajectory; here the mean is over all response
    tokens of the micro-batch (token-level, as TRL/OpenRLHF PPO and DAPO): the ``bnpo`` loss type of
    :data:`LOSS_TYPES`.
    """
    per_token, clipped = clipped_surrogate(logprobs, old_logprobs, advantages, mask, clip_eps)
    return masked_mean(per_token, mask), masked_mean(clipped, mask).detach()


@dataclass(frozen=True)
class LossType:
    """How per-token losses become one number, and what a minibatch's share of an accumulated step is.

    ``aggregate(per_token (B, T), mask (B, T), max_len) -> scalar`` for one minibatch; ``count(mask)`` is
    the minibatch's weight when several are accumulated into one optimiser step (its tokens or its
    sequences), so that accumulation equals one large minibatch.
    """

    aggregate: Callable[[Tensor, Tensor, int], Tensor]
    unit: str  # "tokens" | "sequences"
    paper: str

    def count(self, mask: Tensor) -> Tensor:
        return mask.sum() if self.unit == "tokens" else mask.new_tensor(float(mask.shape[0]))


LOSS_TYPES: Registry[LossType] = Registry("loss type")


def _sequence_mean(per_token: Tensor, mask: Tensor, max_len: int) -> Tensor:
    per_sequence = (per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)  # (B,)
    return per_sequence.mean()


def _token_mean(per_token: Tensor, mask: Tensor, max_len: int) -> Tensor:
    return masked_mean(per_token, mask)


def _constant_normaliser(per_token: Tensor, mask: Tensor, max_len: int) -> Tensor:
    return (per_token * mask).sum() / (mask.shape[0] * max_len)


LOSS_TYPES.register("grpo")(LossType(
    _sequence_mean, "sequences",
    "GRPO (Shao et al. 2024, https://arxiv.org/abs/2402.03300, eq. 3): mean over each sequence's tokens, "
    "then over sequences; long completions weigh less per token"))
LOSS_TYPES.register("bnpo")(LossType(
    _token_mean, "tokens",
    "BNPO (Xiao et al. 2025, https://arxiv.org/abs/2506.02864): token-level mean over the minibatch"))
LOSS_TYPES.register("dapo")(LossType(
    _token_mean, "tokens",
    "DAPO (Yu et al. 2025, https://arxiv.org/abs/2503.14476, eq. 12): token-level mean over the whole "
    "accumulated batch (minibatches weighted by their tokens); TRL's default"))
LOSS_TYPES.register("dr_grpo")(LossType(
    _constant_normaliser, "sequences",
    "Dr. GRPO (Liu et al. 2025, https://arxiv.org/abs/2503.20783, eq. 4): sum over tokens divided by "
    "sequences x max_new_tokens, a constant, so no length bias"))


def aggregate_loss(per_token: Tensor, mask: Tensor, loss_type: str, max_len: int) -> Tensor:
    """One minibatch's loss from per-token losses, as ``loss_type`` (a :data:`LOSS_TYPES` name) defines it.

    Shapes: ``per_token``, ``mask`` ``(B, T)`` -> scalar; ``max_len`` is the longest allowed response
    (``rollout.max_new_tokens``), used by ``dr_grpo``.
    """
    return LOSS_TYPES.get(loss_type).aggregate(per_token, mask, max_len)


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
