"""Several rewards combined: a weighted sum, filters that override it, abstentions and non-finite values."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from rlhf.rewards.base import call_reward, nonfinite_error, preview, scores_tensor
from rlhf.rewards.loading import Reward, load_reward

NonFinite = Literal["error", "drop"]


@dataclass(frozen=True)
class RewardScores:
    """The scored batch: total reward, each reward's values, which samples are usable, and counters.

    ``total`` is ``(N,)`` float32 and 0.0 where ``valid`` is False (dropped samples: leave them out of the
    update). ``components[name]`` is ``(N,)`` float32, shaped but unweighted, NaN where the reward abstained
    or its value was dropped.
    """

    total: torch.Tensor  # (N,)
    components: dict[str, torch.Tensor]  # name -> (N,)
    valid: torch.Tensor  # (N,) bool
    info: dict[str, float]  # e.g. {"judge/unparsed": 3.0, "toxicity/filtered": 1.0}

    @property
    def num_invalid(self) -> int:
        return int((~self.valid).sum())

    def metrics(self) -> dict[str, float]:
        """Scalars for logging: ``rewards/total``, ``rewards/<name>`` (means), ``rewards/invalid``, counters."""
        valid_total = self.total[self.valid]
        metrics = {"rewards/total": valid_total.mean().item() if valid_total.numel() else math.nan,
                   "rewards/invalid": float(self.num_invalid)}
        for name, values in self.components.items():
            metrics[f"rewards/{name}"] = values.nanmean().item()
        metrics.update({f"rewards/{key}": value for key, value in self.info.items()})
        return metrics


class CompositeReward:
    """Weighted sum of rewards; filters replace the sum; ``None`` abstains; NaN/inf raise or drop.

    For each sample: ``total = sum(weight * value)`` over the rewards that did not abstain. A filter reward
    (``is_filter``, e.g. ``toxicity`` with ``mode: filter``) that returns a value for a sample replaces that
    sample's total (the lowest if several do). A sample where every reward abstains and no filter fired, or
    where a reward returned NaN/inf, is an error (``nonfinite="error"``) or is dropped (``"drop"``:
    ``valid`` is False and it is counted in ``rewards/invalid``).

    >>> score = CompositeReward([load_reward({"name": "length", "target": 2}),
    ...                          load_reward({"name": "target_words", "words": ["sorry"], "weight": 0.5})])
    >>> out = score(["", ""], ["sorry sorry", "fine"])
    >>> out.total.tolist(), out.components["target_words"].tolist()
    ([2.0, 0.5], [2.0, 0.0])
    """

    def __init__(self, rewards: Sequence[Reward | Any], nonfinite: NonFinite = "error") -> None:
        if not rewards:
            raise ValueError("no rewards given; a profile needs at least one entry under 'rewards'")
        if nonfinite not in ("error", "drop"):
            raise ValueError(f"nonfinite={nonfinite!r}; expected 'error' or 'drop'")
        self.rewards = [load_reward(reward) for reward in rewards]  # plain callables get a name
        self.nonfinite = nonfinite
        self.names = _unique_names([reward.name for reward in self.rewards])

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> RewardScores:
        n = len(completions)
        total = torch.zeros(n)  # (N,)
        counted = torch.zeros(n, dtype=torch.bool)  # (N,) some non-filter reward scored the sample
        override = torch.full((n,), math.nan)  # (N,) lowest filter value, NaN where no filter fired
        invalid = torch.zeros(n, dtype=torch.bool)  # (N,)
        components: dict[str, torch.Tensor] = {}
        info: dict[str, float] = {}
        for name, reward in zip(self.names, self.rewards):
            raw = call_reward(name, reward, prompts, completions, **kwargs)
            values, abstained = scores_tensor(name, raw, completions)
            bad = ~torch.isfinite(values) & ~abstained  # (N,)
            if bad.any():
                if self.nonfinite == "error":
                    raise nonfinite_error(name, values, bad, completions)
                invalid |= bad
                values = values.masked_fill(bad, math.nan)
            present = ~torch.isnan(values)  # (N,)
            if reward.is_filter:
                override = torch.fmin(override, values)  # fmin ignores NaN
                info[f"{name}/filtered"] = float(present.sum())
            else:
                total += torch.where(present, reward.weight * values, 0.0)
                counted |= present
            components[name] = values
            info.update({f"{name}/{key}": float(value) for key, value in reward.last_info.items()})
        overridden = ~torch.isnan(override)  # (N,)
        unscored = ~(counted | overridden | invalid)  # (N,)
        if unscored.any():
            if self.nonfinite == "error":
                index = int(unscored.nonzero()[0, 0])
                raise ValueError(
                    f"every reward abstained (returned None) for sample {index}, completion "
                    f"{preview(completions[index])}; add a reward that scores every sample, or set "
                    "trainer.nonfinite_rewards: drop to skip such samples"
                )
            invalid |= unscored
        total = torch.where(overridden, override, total).masked_fill(invalid, 0.0)
        return RewardScores(total=total, components=components, valid=~invalid, info=info)


def load_rewards(specs: Sequence[Any], nonfinite: NonFinite = "error") -> CompositeReward:
    """:class:`CompositeReward` of the profile's reward entries (see :func:`load_reward` for one entry)."""
    return CompositeReward([load_reward(spec) for spec in specs], nonfinite=nonfinite)


def _unique_names(names: list[str]) -> list[str]:
    """Suffix repeated names (``classifier``, ``classifier_2``) so each gets its own ``rewards/<name>`` key."""
    unique: list[str] = []
    for name in names:
        candidate, count = name, 1
        while candidate in unique:
            count += 1
            candidate = f"{name}_{count}"
        unique.append(candidate)
    return unique


class DroppedStepGuard:
    """With ``nonfinite_rewards: drop``: a warning when a step dropped every sample, an error after
    ``patience`` such steps in a row (such a step cannot learn anything, and a run of them means the
    reward is broken rather than unlucky).
    """

    def __init__(self, patience: int = 3) -> None:
        self.patience = patience
        self.in_a_row = 0

    def check(self, scores: RewardScores) -> str | None:
        """A warning to show once for this step, or ``None``; ``ValueError`` after ``patience`` steps."""
        if bool(scores.valid.any()):
            self.in_a_row = 0
            return None
        self.in_a_row += 1
        broken = [name for name, values in scores.components.items() if bool(values.isnan().all())]
        blame = f"reward(s) {broken}" if broken else "rewards"
        if self.in_a_row >= self.patience:
            raise ValueError(
                f"trainer.nonfinite_rewards: drop dropped every sample for {self.in_a_row} steps in a row: the "
                f"{blame} return NaN/inf (or abstain) for every completion. Fix the reward, or set "
                "trainer.nonfinite_rewards: error to stop at the first bad value with the completion shown"
            )
        return (f"every one of the {scores.valid.numel()} samples of this step was dropped "
                f"(trainer.nonfinite_rewards: drop; the {blame} returned NaN/inf), so the step learns nothing; "
                f"the run stops after {self.patience} such steps in a row")
