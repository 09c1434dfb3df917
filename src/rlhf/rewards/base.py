"""The reward protocol, the reward registry, the base class of built-in rewards, and score validation.

A reward is any callable ``(prompts, completions, **kwargs) -> list[float | None] | Tensor`` returning one
value per completion (the TRL convention). ``None`` means "this reward abstains for this sample". NaN or
inf is an error that names the reward and shows the completion.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
from pydantic import BaseModel, ConfigDict

from rlhf.registry import Registry

UNBOUNDED = (-math.inf, math.inf)


@runtime_checkable
class RewardFn(Protocol):
    """``(prompts, completions, **kwargs) -> list[float | None] | Tensor``: one value per completion."""

    def __call__(self, prompts: list[str], completions: list[str], **kwargs: Any) -> Any: ...


class RewardOutputError(ValueError):
    """A reward returned something other than one finite float (or None) per completion."""


class RewardError(Exception):
    """A reward raised while scoring: names the reward, the call and the exception (kept as ``__cause__``)."""

    def __init__(self, name: str, exc: BaseException, completions) -> None:
        first = preview(completions[0]) if len(completions) else "(none)"
        super().__init__(f"reward {name!r} raised {type(exc).__name__}: {exc} (called on {len(completions)} "
                         f"completions, the first {first}); `rlhf --debug ...` shows its traceback")
        self.reward_name, self.original = name, exc


def call_reward(name: str, reward, prompts, completions, **kwargs):
    """``reward(prompts, completions, **kwargs)``; anything it raises, ``SystemExit`` too, as a RewardError.

    A reward is user code: a ``KeyError`` inside it must not look like a profile error, and a ``sys.exit``
    inside it must not end the run as if it had succeeded. ``KeyboardInterrupt`` passes through.
    """
    try:
        return reward(prompts, completions, **kwargs)
    except RewardOutputError:
        raise
    except (Exception, SystemExit) as exc:
        raise RewardError(name, exc, completions) from exc


class MissingExtraError(ImportError):
    """An optional back-end is not installed; the message names the ``pip install 'rlhf[extra]'`` to run."""


def require_extra(module: str, extra: str, reward: str):
    """Import ``module`` or raise :class:`MissingExtraError` naming the extra that provides it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"reward {reward!r} needs the optional package {module!r}, which is not installed. "
            f"Install it with: pip install 'rlhf[{extra}]'"
        ) from exc


class BuiltinReward(BaseModel):
    """Base of the registered rewards: the fields are the reward's options, the instance is the callable.

    Construction validates the options (unknown option, wrong type: ``ValueError``), so a registered
    reward class is its own factory: ``REWARDS.get(name)(**options)`` returns the reward callable.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())
    # Optional packages as (module, extra) pairs, so a run can be checked without building the reward.
    requires: ClassVar[tuple[tuple[str, str], ...]] = ()

    @property
    def value_range(self) -> tuple[float, float]:
        """The interval every returned value lies in (``-inf``/``inf`` when unbounded)."""
        return UNBOUNDED

    @property
    def is_filter(self) -> bool:
        """A filter returns ``None`` (pass) or a value that replaces the whole reward of that sample."""
        return False

    def score(self, prompts: list[str], completions: list[str]) -> list[float | None]:
        raise NotImplementedError

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float | None]:
        if len(prompts) != len(completions):
            raise ValueError(
                f"got {len(prompts)} prompts and {len(completions)} completions; pass one prompt per completion"
            )
        return self.score([as_text(p) for p in prompts], [as_text(c) for c in completions])


REWARDS: Registry[type[BuiltinReward]] = Registry("reward")


def as_text(item: Any) -> str:
    """Plain text of a prompt or completion: a string, or TRL's conversational list of ``{role, content}``."""
    if isinstance(item, str):
        return item
    if isinstance(item, Sequence) and all(isinstance(m, Mapping) and "content" in m for m in item):
        return "\n".join(str(m["content"]) for m in item)
    raise ValueError(f"expected a string (or a list of chat messages), got {type(item).__name__}: {preview(item)}")


def preview(text: Any, limit: int = 80) -> str:
    """``repr`` of ``text`` cut to ``limit`` characters, with the full length when cut."""
    text = text if isinstance(text, str) else repr(text)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


def as_values(name: str, scores: Any, completions: Sequence[Any]) -> list[float | None]:
    """Check the shape and types of a reward's output; return it as a list of floats and ``None``.

    Wrong length, a non-1-D tensor or a non-number raise :class:`RewardOutputError` naming the reward. NaN and inf pass
    through: :func:`validate_scores` (or the composite's ``drop`` mode) decides what happens to them.
    """
    n = len(completions)
    if isinstance(scores, torch.Tensor):
        if scores.dim() != 1:
            raise RewardOutputError(
                f"reward {name!r} returned a tensor of shape {tuple(scores.shape)}; expected shape ({n},), "
                "one value per completion"
            )
        scores = scores.detach().to(torch.float64).cpu().tolist()
    elif isinstance(scores, (str, bytes, Mapping)) or not hasattr(scores, "__len__"):
        raise RewardOutputError(
            f"reward {name!r} returned {type(scores).__name__}; expected a list (or 1-D tensor) of {n} floats"
        )
    if len(scores) != n:
        raise RewardOutputError(
            f"reward {name!r} returned {len(scores)} values for {n} completions; a reward returns exactly one "
            "float (or None to abstain) per completion"
        )
    values: list[float | None] = []
    for index, value in enumerate(scores):
        if value is None:
            values.append(None)
            continue
        try:
            if isinstance(value, (str, bytes)):
                raise TypeError
            values.append(float(value))
        except (TypeError, ValueError):
            raise RewardOutputError(
                f"reward {name!r} returned {value!r} ({type(value).__name__}) at index {index} for completion "
                f"{preview(completions[index])}; expected a float or None"
            ) from None
    return values


def scores_tensor(name: str, scores: Any, completions: Sequence[Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(values, abstained)``: float32 values of shape ``(N,)`` (NaN where abstained) and the bool mask."""
    values = as_values(name, scores, completions)
    abstained = torch.tensor([v is None for v in values], dtype=torch.bool)  # (N,)
    tensor = torch.tensor([math.nan if v is None else v for v in values], dtype=torch.float32)  # (N,)
    return tensor, abstained


def nonfinite_error(
    name: str, values: torch.Tensor, bad: torch.Tensor, completions: Sequence[Any]
) -> RewardOutputError:
    """The error for the first non-finite value of reward ``name`` (``bad`` marks the offending samples)."""
    index = int(bad.nonzero()[0, 0])
    return RewardOutputError(
        f"reward {name!r} returned {values[index].item()} at index {index} ({int(bad.sum())} of {len(values)} "
        f"non-finite) for completion {preview(completions[index])}. Rewards must be finite: fix the reward, or "
        "set trainer.nonfinite_rewards: drop to skip such samples"
    )


def validate_scores(name: str, scores: Any, completions: Sequence[Any]) -> torch.Tensor:
    """A reward's output as a float32 tensor of shape ``(N,)``; NaN marks samples where it abstained (None).

    Raises :class:`RewardOutputError` (a ``ValueError``) naming the reward, the index and the (truncated)
    completion when the output has the wrong length or type, or contains NaN or inf (also a float64 too large
    for float32).

    >>> validate_scores("demo", [1.0, None], ["a", "b"])
    tensor([1., nan])
    >>> validate_scores("demo", [float("nan"), 0.0], ["oops", "b"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    rlhf.rewards.base.RewardOutputError: reward 'demo' returned nan at index 0 (1 of 2 non-finite) ...
    """
    values, abstained = scores_tensor(name, scores, completions)
    bad = ~torch.isfinite(values) & ~abstained  # (N,)
    if bad.any():
        raise nonfinite_error(name, values, bad, completions)
    return values
