"""Advantage estimation: GAE (PPO), group-normalised rewards (GRPO), leave-one-out baseline (RLOO).

The pure functions come first; the estimators at the end wrap them behind one signature
(``AdvantageInputs -> (advantages, returns)``) and are the only list of algorithm names
(``ADVANTAGE_ESTIMATORS``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

import torch
from torch import Tensor

from rlhf.algos.masked import whiten
from rlhf.registry import Registry


def sequence_rewards_to_token_rewards(
    seq_rewards: Tensor, mask: Tensor, kl: Tensor | None = None, kl_coef: float = 0.0
) -> Tensor:
    """PPO per-token reward: ``-kl_coef * kl`` on every response token, plus the sequence reward on the last.

    Paper: Ziegler et al. 2019, https://arxiv.org/abs/1909.08593, eq. 2 (R = r - beta * KL).
    Shapes: ``seq_rewards`` ``(B,)``, ``mask`` ``(B, T)``, ``kl`` ``(B, T)`` or None -> ``(B, T)``.
    Departures: the paper penalises the sequence-level KL; spreading it per token (as TRL/OpenRLHF) lets
    GAE credit each token with its own KL. A row without response tokens gets no reward at all.
    """
    selected = mask.bool()  # (B, T)
    positions = torch.arange(mask.shape[-1], device=mask.device)  # (T,)
    last = torch.where(selected, positions, -1).amax(dim=-1, keepdim=True)  # (B, 1); -1 for an empty row
    is_last = positions == last  # (B, T)
    token_rewards = torch.where(is_last, seq_rewards.unsqueeze(-1), 0.0)  # (B, T)
    if kl is not None:
        penalty = torch.where(selected, -kl_coef * kl, 0.0)  # (B, T)
        token_rewards = token_rewards + penalty
    return token_rewards


@torch.no_grad()
def gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation over the masked tokens of each row; returns ``(advantages, returns)``.

    Paper: Schulman et al. 2016, https://arxiv.org/abs/1506.02438, eq. 16.
    Shapes: ``rewards``, ``values``, ``mask`` ``(B, T)`` -> ``advantages`` ``(B, T)``, ``returns`` ``(B, T)``.
    ``returns = advantages + values`` on masked tokens; both outputs are 0 where ``mask`` is 0.
    Departures: the "next state" of a token is the next *masked* token, and the value after the last masked
    token is 0 (the episode ends with the response: no bootstrap). Unmasked positions pass ``nextvalues``
    and ``lastgaelam`` through unchanged and are never read, so padding may hold garbage (as verl's GAE).
    Runs under ``no_grad``: advantages and returns are targets, not functions of the value head.
    """
    selected = mask.bool()  # (B, T)
    dtype = torch.promote_types(rewards.dtype, values.dtype)
    rewards = torch.where(selected, rewards, 0.0).to(dtype)  # (B, T)
    values = torch.where(selected, values, 0.0).to(dtype)  # (B, T)
    next_values = torch.zeros_like(rewards[:, 0])  # (B,)
    last_gae_lam = torch.zeros_like(rewards[:, 0])  # (B,)
    advantages = torch.zeros_like(rewards)  # (B, T)
    for t in reversed(range(rewards.shape[1])):
        delta = rewards[:, t] + gamma * next_values - values[:, t]  # (B,)
        gae_lam = delta + gamma * lam * last_gae_lam  # (B,)
        last_gae_lam = torch.where(selected[:, t], gae_lam, last_gae_lam)  # (B,)
        next_values = torch.where(selected[:, t], values[:, t], next_values)  # (B,)
        advantages[:, t] = torch.where(selected[:, t], gae_lam, 0.0)
    returns = torch.where(selected, advantages + values, 0.0)  # (B, T)
    return advantages, returns


def _check_groups(scores: Tensor, group_size: int, minimum: int, why: str) -> None:
    if scores.dim() != 1:
        raise ValueError(f"scores must have shape (N,), got {tuple(scores.shape)}; flatten to one score per sample.")
    if group_size < minimum:
        raise ValueError(f"group_size must be >= {minimum}, got {group_size}; {why}")
    if scores.shape[0] % group_size != 0:
        raise ValueError(
            f"batch of {scores.shape[0]} scores is not divisible by group_size {group_size}; "
            "generate group_size completions per prompt (rollout.num_generations) so N = prompts * group_size."
        )


SCALE_REWARDS = ("group", "batch", "none")


def scale_advantages(advantages: Tensor, scores: Tensor, group_size: int, scale: str, eps: float = 1e-4) -> Tensor:
    """Divide sequence advantages by the std of the scores: per group, over the batch, or not at all.

    Paper: ``group`` is GRPO's (Shao et al. 2024, https://arxiv.org/abs/2402.03300, section 4.1.2);
    ``batch`` is the batch-level scaling of REINFORCE++ / Hu et al. 2025 (https://arxiv.org/abs/2501.03262)
    and TRL's ``scale_rewards="batch"``; ``none`` is Dr. GRPO's (Liu et al. 2025,
    https://arxiv.org/abs/2503.20783, section 3.1: the std division biases toward easy/hard prompts).
    Shapes: ``advantages``, ``scores`` ``(N,)`` prompt-major -> ``(N,)``.
    Departures: the std is unbiased (as TRL) and ``eps`` is added to it rather than to the variance.
    """
    if scale not in SCALE_REWARDS:
        raise ValueError(f"scale {scale!r} is unknown; expected one of {', '.join(SCALE_REWARDS)}. "
                         "Set algo.scale_rewards to one of them.")
    if scale == "none" or scores.numel() < 2:
        return advantages
    if scale == "batch":
        return advantages / (scores.std(unbiased=True) + eps)
    if group_size < 2:
        return advantages  # a group of one has no spread to divide by
    std = scores.view(-1, group_size).std(dim=1, keepdim=True, unbiased=True)  # (P, 1)
    return (advantages.view(-1, group_size) / (std + eps)).reshape(-1)  # (N,)


def grpo_advantages(scores: Tensor, group_size: int, scale: str = "group", eps: float = 1e-4) -> Tensor:
    """Group-relative advantages: each score minus its group's mean, divided by a std + eps (``scale``).

    Paper: Shao et al. 2024 (DeepSeekMath), https://arxiv.org/abs/2402.03300, section 4.1.2.
    Shapes: ``scores`` ``(N,)`` laid out prompt-major (rows ``[0:G]`` are prompt 0's group) -> ``(N,)``.
    Departures: see :func:`scale_advantages` (``group`` is the paper's, ``batch`` and ``none`` the
    variants). A group of one, or of equal scores, gets advantage 0.
    """
    _check_groups(scores, group_size, 1, "it is the number of completions per prompt.")
    grouped = scores.view(-1, group_size)  # (P, G)
    advantages = (grouped - grouped.mean(dim=1, keepdim=True)).reshape(-1)  # (N,)
    return scale_advantages(advantages, scores, group_size, scale, eps)


def rloo_advantages(scores: Tensor, group_size: int) -> Tensor:
    """REINFORCE leave-one-out advantages: ``a_i = r_i - mean_{j != i} r_j`` within each prompt's group.

    Paper: Ahmadian et al. 2024, https://arxiv.org/abs/2402.14740, eq. 5 (Kool et al. 2019's baseline).
    Shapes: ``scores`` ``(N,)`` laid out prompt-major (rows ``[0:G]`` are prompt 0's group) -> ``(N,)``.
    Departures: none. Advantages sum to zero within each group.
    """
    _check_groups(scores, group_size, 2, "a leave-one-out baseline needs another sample of the same prompt.")
    grouped = scores.view(-1, group_size)  # (P, G)
    baseline = (grouped.sum(dim=1, keepdim=True) - grouped) / (group_size - 1)  # (P, G)
    return (grouped - baseline).reshape(-1)  # (N,)


@dataclass(frozen=True, kw_only=True)
class AdvantageInputs:
    """Everything any advantage estimator may read; one dataclass so every estimator has one signature.

    ``seq_rewards`` ``(N,)``; ``response_mask``, ``values``, ``kl`` ``(N, T)``. Samples are prompt-major:
    rows ``[0:group_size]`` are the completions of prompt 0.
    """

    seq_rewards: Tensor
    response_mask: Tensor
    values: Tensor | None = None
    kl: Tensor | None = None
    kl_coef: float = 0.0
    group_size: int = 1
    gamma: float = 1.0
    lam: float = 0.95
    scale_rewards: str | None = None  # group | batch | none; None: the estimator's own default
    whiten_rewards: bool = False  # PPO: rescale per-token rewards to unit variance before GAE

    def __post_init__(self) -> None:
        if self.response_mask.dim() != 2:
            raise ValueError(f"response_mask must have shape (N, T), got {tuple(self.response_mask.shape)}.")
        n = self.response_mask.shape[0]
        if tuple(self.seq_rewards.shape) != (n,):
            raise ValueError(
                f"seq_rewards must have shape ({n},) to match response_mask {tuple(self.response_mask.shape)}, "
                f"got {tuple(self.seq_rewards.shape)}; pass one reward per sample."
            )
        for name in ("values", "kl"):
            tensor = getattr(self, name)
            if tensor is not None and tensor.shape != self.response_mask.shape:
                raise ValueError(
                    f"{name} must have the shape of response_mask {tuple(self.response_mask.shape)}, "
                    f"got {tuple(tensor.shape)}; pass one entry per token."
                )


class AdvantageEstimator(Protocol):
    needs_value_head: bool
    kl_in_reward: bool

    def __call__(self, inputs: AdvantageInputs) -> tuple[Tensor, Tensor | None]: ...


ADVANTAGE_ESTIMATORS: Registry[AdvantageEstimator] = Registry("advantage estimator")


@dataclass(frozen=True)
class PPOEstimator:
    """KL-penalised per-token rewards, GAE against the value head, advantages whitened over the batch."""

    needs_value_head: ClassVar[bool] = True
    kl_in_reward: ClassVar[bool] = True

    def __call__(self, inputs: AdvantageInputs) -> tuple[Tensor, Tensor]:
        if inputs.values is None:
            raise ValueError("the 'ppo' estimator needs AdvantageInputs.values (N, T); got None. "
                             "Compute values with the value head during rollout.")
        mask = inputs.response_mask
        token_rewards = sequence_rewards_to_token_rewards(inputs.seq_rewards, mask, inputs.kl, inputs.kl_coef)
        if inputs.whiten_rewards:  # TRL's whiten_rewards: unit variance, mean kept
            token_rewards = whiten(token_rewards, mask, shift_mean=False)
        advantages, returns = gae(token_rewards, inputs.values, mask, inputs.gamma, inputs.lam)  # (N, T) each
        # Whiten advantages only: returns stay in reward units as value-head targets (TRL/OpenRLHF).
        return whiten(advantages, mask), returns


@dataclass(frozen=True)
class GRPOEstimator:
    """Group-normalised sequence rewards broadcast over the response; no value head, KL goes in the loss.

    ``scale_rewards`` defaults to ``group`` (the GRPO paper).
    """

    needs_value_head: ClassVar[bool] = False
    kl_in_reward: ClassVar[bool] = False
    default_scale: ClassVar[str] = "group"

    def __call__(self, inputs: AdvantageInputs) -> tuple[Tensor, None]:
        scale = inputs.scale_rewards or self.default_scale
        seq_advantages = grpo_advantages(inputs.seq_rewards, inputs.group_size, scale=scale)  # (N,)
        return torch.where(inputs.response_mask.bool(), seq_advantages.unsqueeze(-1), 0.0), None  # (N, T)


@dataclass(frozen=True)
class RLOOEstimator:
    """Leave-one-out baselined sequence rewards broadcast over the response; no value head.

    ``scale_rewards`` defaults to ``none`` (the RLOO paper does not normalise).
    """

    needs_value_head: ClassVar[bool] = False
    kl_in_reward: ClassVar[bool] = False
    default_scale: ClassVar[str] = "none"

    def __call__(self, inputs: AdvantageInputs) -> tuple[Tensor, None]:
        scale = inputs.scale_rewards or self.default_scale
        seq_advantages = rloo_advantages(inputs.seq_rewards, inputs.group_size)  # (N,)
        seq_advantages = scale_advantages(seq_advantages, inputs.seq_rewards, inputs.group_size, scale)
        return torch.where(inputs.response_mask.bool(), seq_advantages.unsqueeze(-1), 0.0), None  # (N, T)


ADVANTAGE_ESTIMATORS.register("ppo")(PPOEstimator())
ADVANTAGE_ESTIMATORS.register("grpo")(GRPOEstimator())
ADVANTAGE_ESTIMATORS.register("rloo")(RLOOEstimator())
