"""Running reward statistics and score scaling (old TRL PPO's ``use_score_scaling`` / ``use_score_norm``).

A reward in [0, 1] whose spread across samples is a few hundredths is drowned by the noise of the sampled
per-token KL penalty in PPO's reward; dividing scores by their running std gives the reward signal unit
scale whatever the reward's units, so one KL coefficient fits every reward.
"""

from __future__ import annotations

import torch
from torch import Tensor

REWARD_SCALINGS = ("none", "scale", "normalize")


class RunningMoments:
    """Mean and variance of every score seen so far, merged batch by batch (Chan et al. 1979).

    Paper: Chan, Golub, LeVeque, "Updating formulae and a pairwise algorithm for computing sample
    variances" (1979); TRL 0.7's ``RunningMoments``. State is float64 tensors: no host syncs.
    """

    def __init__(self) -> None:
        self.mean = torch.zeros((), dtype=torch.float64)
        self.var = torch.ones((), dtype=torch.float64)  # population variance of the scores seen
        self.count = torch.zeros((), dtype=torch.float64)

    def update(self, scores: Tensor) -> None:
        """Merge a batch ``(N,)`` into the running mean and variance."""
        x = scores.detach().to(torch.float64).flatten().cpu()
        n = torch.tensor(float(x.numel()), dtype=torch.float64)
        if x.numel() == 0:
            return
        batch_mean, batch_var = x.mean(), x.var(unbiased=False)
        total = self.count + n
        delta = batch_mean - self.mean
        m2 = self.var * self.count + batch_var * n + delta.square() * self.count * n / total
        self.mean = self.mean + delta * n / total
        self.var = m2 / total
        self.count = total

    @property
    def std(self) -> Tensor:
        """Unbiased std of all scores seen (1.0 before two scores were seen)."""
        if float(self.count) < 2:
            return torch.ones((), dtype=torch.float64)
        return (self.var * self.count / (self.count - 1)).sqrt()

    def state_dict(self) -> dict:
        return {"mean": self.mean, "var": self.var, "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.mean, self.var, self.count = (state[k].to(torch.float64) for k in ("mean", "var", "count"))


def scale_scores(scores: Tensor, moments: RunningMoments, mode: str, clip: float | None = None,
                 eps: float = 1e-8) -> Tensor:
    """Scores divided by the running std (``scale``), also centred on the running mean (``normalize``).

    Paper: Ziegler et al. 2019, https://arxiv.org/abs/1909.08593 (reward normalisation), as TRL 0.7's
    ``use_score_scaling`` and ``use_score_norm``; ``clip`` is its ``score_clip``.
    Shapes: ``scores`` ``(N,)`` -> ``(N,)``; ``moments`` must already include this batch.
    Departures: none.
    """
    if mode not in REWARD_SCALINGS:
        raise ValueError(f"reward scaling {mode!r} is unknown; expected one of {', '.join(REWARD_SCALINGS)}. "
                         "Set algo.reward_scaling to one of them.")
    if mode != "none":
        std = moments.std.to(scores.device, scores.dtype)
        if mode == "normalize":
            scores = scores - moments.mean.to(scores.device, scores.dtype)
        scores = scores / (std + eps)
    return scores.clamp(-clip, clip) if clip is not None else scores
