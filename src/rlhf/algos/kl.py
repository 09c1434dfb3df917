"""KL divergence between the policy and the reference: per-token estimators and the KL coefficient controllers.

Estimators follow John Schulman, "Approximating KL Divergence" (2020), http://joschu.net/blog/kl-approx.html.
Each one maps ``(logp, ref_logp)`` of the sampled tokens to a per-token estimate of KL(policy || reference).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from rlhf.registry import Registry

KLEstimator = Callable[[Tensor, Tensor], Tensor]

KL_ESTIMATORS: Registry[KLEstimator] = Registry("KL estimator")

K3_LOG_RATIO_LIMIT = 20.0


@KL_ESTIMATORS.register("k1")
def kl_k1(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """k1 = log(p / ref): unbiased, high variance, negative on some tokens."""
    return logp - ref_logp  # (B, T)


@KL_ESTIMATORS.register("k2")
def kl_k2(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """k2 = 0.5 * log(p / ref)^2: biased, low variance, never negative."""
    return 0.5 * (logp - ref_logp).square()  # (B, T)


@KL_ESTIMATORS.register("k3")
def kl_k3(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """k3 = (r - 1) - log r with r = ref / p: unbiased, low variance, never negative.

    The log-ratio is clamped to [-20, 20] first: exp(20) ~ 5e8 still fits in bf16/fp16 and float32, while
    an unclamped exp overflows to inf (and NaN gradients) on tokens the reference finds near impossible.
    """
    log_ratio = (ref_logp - logp).clamp(-K3_LOG_RATIO_LIMIT, K3_LOG_RATIO_LIMIT)  # (B, T)
    return torch.exp(log_ratio) - log_ratio - 1.0  # (B, T)


def kl_estimate(logp: Tensor, ref_logp: Tensor, estimator: str) -> Tensor:
    """Per-token estimate of KL(policy || reference) from the log-probs of the sampled tokens.

    Paper: Schulman 2020, http://joschu.net/blog/kl-approx.html (k1, k2, k3); k3 is the GRPO paper's
    KL term (Shao et al. 2024, https://arxiv.org/abs/2402.03300, eq. 4).
    Shapes: ``logp`` ``(B, T)``, ``ref_logp`` ``(B, T)`` -> ``(B, T)``; no mask: callers mask the result.
    Departures: k3 clamps its log-ratio to [-20, 20] (see ``kl_k3``).
    """
    if estimator not in KL_ESTIMATORS:
        raise ValueError(
            f"kl estimator {estimator!r} is unknown; valid names: {', '.join(KL_ESTIMATORS.names())}. "
            "Set algo.kl.estimator to one of them."
        )
    return KL_ESTIMATORS.get(estimator)(logp, ref_logp)


KL_DIRECTIONS = ("reverse", "forward")


def full_kl(logits: Tensor, ref_logits: Tensor, direction: str = "reverse") -> Tensor:
    """Exact per-token KL between the policy's and the reference's next-token distributions.

    Paper: the definition, ``KL(P || Q) = sum_v P(v) (log P(v) - log Q(v))``; reverse is
    ``KL(policy || reference)`` (what k1/k2/k3 estimate from the sampled token, and what RLHF penalises),
    forward is ``KL(reference || policy)`` (mass-covering; the GRPO exercise compares both).
    Shapes: ``logits``, ``ref_logits`` ``(B, T, V)`` -> ``(B, T)``; no mask: callers mask the result.
    Departures: none; computed in float32 from log-softmax, so it is >= 0 up to rounding and exactly 0
    where the distributions match. It needs both full distributions: ``(B, T, V)`` reference logits at
    every position where KL is computed, where the sampled estimators need one log-prob per token.
    """
    if direction not in KL_DIRECTIONS:
        raise ValueError(f"KL direction {direction!r} is unknown; expected one of {', '.join(KL_DIRECTIONS)}. "
                         "Set algo.kl.direction to one of them.")
    logp = torch.log_softmax(logits.float(), dim=-1)  # (B, T, V)
    ref_logp = torch.log_softmax(ref_logits.float(), dim=-1)  # (B, T, V)
    if direction == "forward":
        logp, ref_logp = ref_logp, logp
    return (logp.exp() * (logp - ref_logp)).sum(-1)  # (B, T)


class FixedKLController:
    """A constant KL coefficient (beta). ``update`` does nothing; it exists so the loop treats both alike."""

    def __init__(self, coef: float) -> None:
        if coef < 0:
            raise ValueError(f"kl coef must be >= 0, got {coef}; a negative coef rewards drifting away.")
        self.value = float(coef)

    def update(self, current_kl: float, n_steps: int) -> None:
        """Keep the coefficient unchanged."""

    def state_dict(self) -> dict:
        return {"value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.value = float(state["value"])


class AdaptiveKLController:
    """Proportional controller moving the KL coefficient so the observed KL approaches ``target``.

    Paper: Ziegler et al. 2019, https://arxiv.org/abs/1909.08593, section 2.2:
    ``e = clip(KL / target - 1, -0.2, 0.2)``; ``beta <- beta * (1 + e * n_steps / horizon)``.
    ``n_steps`` is the number of samples (episodes) the KL was measured on, as in TRL and the paper.
    """

    def __init__(self, init_coef: float, target: float, horizon: int) -> None:
        if init_coef < 0:
            raise ValueError(f"kl coef must be >= 0, got {init_coef}; a negative coef rewards drifting away.")
        if target <= 0:
            raise ValueError(f"kl target must be > 0, got {target}; leave target unset for a fixed coef.")
        if horizon <= 0:
            raise ValueError(f"kl horizon must be > 0, got {horizon}; it is the number of samples to adapt over.")
        self.value = float(init_coef)
        self.target = float(target)
        self.horizon = horizon

    def update(self, current_kl: float, n_steps: int) -> None:
        """Scale the coefficient by ``1 + clip(current_kl / target - 1, -0.2, 0.2) * n_steps / horizon``."""
        proportional_error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + proportional_error * n_steps / self.horizon

    def state_dict(self) -> dict:
        # Only the evolving coefficient: target and horizon come from the profile on resume.
        return {"value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.value = float(state["value"])


def make_kl_controller(
    coef: float, target: float | None = None, horizon: int = 10000
) -> FixedKLController | AdaptiveKLController:
    """An adaptive controller toward ``target`` when it is set, else a fixed coefficient ``coef``."""
    if target is None:
        return FixedKLController(coef)
    return AdaptiveKLController(coef, target, horizon)
