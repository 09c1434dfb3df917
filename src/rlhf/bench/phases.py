"""rlhf's RL step, timed phase by phase.

The trainer is timed from outside: the functions that make up each phase are wrapped for the duration of a
step, so the loop carries no benchmarking code. Phases: ``generate`` (sampling), ``old_logprobs`` (policy
log-probs and values at rollout time), ``ref_logprobs``, ``score`` (rewards), ``advantage``,
``update_forward`` (forward + loss of every minibatch), ``backward``, ``optimizer`` (clipping + AdamW) and
``other`` (the rest of the step: decoding, masks, metrics).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from rlhf.config import Profile

RLHF_PHASES = ("generate", "old_logprobs", "ref_logprobs", "score", "advantage", "update_forward", "backward",
               "optimizer", "other")


class PhaseTimes:
    """Seconds per phase for one step, accumulated over every call of the phase."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def wrap(self, phase: str, fn: Callable) -> Callable:
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - start

        return timed


@contextmanager
def _patched(owner, name: str, replacement) -> Iterator[None]:
    had_own = name in vars(owner) if not isinstance(owner, type) else True
    original = getattr(owner, name)
    setattr(owner, name, replacement)
    try:
        yield
    finally:
        if had_own:
            setattr(owner, name, original)
        else:
            delattr(owner, name)  # an instance attribute shadowing a method: remove the shadow


class RlhfStep:
    """A :class:`~rlhf.rl.trainer.Trainer` on ``profile`` whose ``step()`` returns phase timings."""

    name = "rlhf"

    def __init__(self, profile: Profile, work_dir: Path) -> None:
        from rlhf.rl.trainer import Trainer

        profile = profile.model_copy(update={"trainer": profile.trainer.model_copy(update={"log_with": []})})
        self.trainer = Trainer(profile, work_dir)

    def step(self) -> dict:
        from rlhf.rl import rollout

        t, times = self.trainer, PhaseTimes()
        targets = [(rollout, "sample_responses", "generate"), (rollout, "response_logprobs", "old_logprobs"),
                   (t.policy, "reference_logits", "ref_logprobs"), (t, "score", "score"),
                   (t, "advantage", "advantage"), (t, "_minibatch_loss", "update_forward"),
                   (t.accelerator, "backward", "backward"), (t.accelerator, "clip_grad_norm_", "optimizer"),
                   (t.optimizer, "step", "optimizer")]
        start = time.perf_counter()
        with ExitStack() as stack:
            for owner, attr, phase in targets:
                stack.enter_context(_patched(owner, attr, times.wrap(phase, getattr(owner, attr))))
            metrics, batch, _ = t.train_step()
        step_s = time.perf_counter() - start
        phases = {p: times.seconds.get(p, 0.0) for p in RLHF_PHASES[:-1]}
        phases["other"] = max(step_s - sum(phases.values()), 0.0)
        return {"step_s": step_s, "phases": phases, "tokens": int(batch.response_mask.sum()),
                "sequences": len(batch.prompts)}
