"""Batches of prompts for the RL loop: seeded shuffled epochs, full batches only, resumable."""

from __future__ import annotations

import hashlib
import random


class PromptSampler:
    """Yields ``batch_size`` prompts per call, walking through a fresh seeded permutation each epoch.

    A batch that reaches the end of an epoch is completed from the next epoch's permutation, so every
    batch is full, also when there are fewer prompts than ``batch_size`` (prompts then repeat). The
    permutation of epoch ``e`` depends only on ``(seed, e)``, so :meth:`state_dict` is just the seed, the
    epoch and the position, and a restored sampler yields exactly the batches the saved one would have.

    >>> sampler = PromptSampler(["a", "b", "c"], batch_size=2, seed=0)
    >>> len(sampler.next_batch() + sampler.next_batch() + sampler.next_batch())
    6
    """

    def __init__(self, prompts: list[str], batch_size: int, seed: int) -> None:
        if not prompts:
            raise ValueError("PromptSampler needs at least one prompt; got an empty list")
        if batch_size < 1:
            raise ValueError(f"PromptSampler batch_size must be >= 1, got {batch_size}")
        self.prompts = list(prompts)
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0
        self.position = 0
        self._order = self._permutation(self.epoch)

    def next_batch(self) -> list[str]:
        """The next ``batch_size`` prompts; crosses into the next (reshuffled) epoch when needed."""
        batch: list[str] = []
        while len(batch) < self.batch_size:
            if self.position == len(self._order):
                self.epoch += 1
                self.position = 0
                self._order = self._permutation(self.epoch)
            take = min(self.batch_size - len(batch), len(self._order) - self.position)
            batch.extend(self.prompts[i] for i in self._order[self.position : self.position + take])
            self.position += take
        return batch

    def state_dict(self) -> dict:
        """Plain ints and strings: where the sampler is, and a fingerprint of the prompts it walks."""
        return {
            "seed": self.seed,
            "epoch": self.epoch,
            "position": self.position,
            "num_prompts": len(self.prompts),
            "prompts_sha256": _fingerprint(self.prompts),
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state``; ``ValueError`` if it was saved for a different prompt list."""
        if state["num_prompts"] != len(self.prompts) or state["prompts_sha256"] != _fingerprint(self.prompts):
            raise ValueError(
                f"sampler state was saved for a different prompt list ({state['num_prompts']} prompts) than this "
                f"sampler's ({len(self.prompts)} prompts): a resumed run must load the same prompts (same data "
                "section and seed)"
            )
        if not 0 <= state["position"] <= len(self.prompts):
            raise ValueError(f"sampler state position {state['position']} is outside 0..{len(self.prompts)}")
        self.seed = state["seed"]
        self.epoch = state["epoch"]
        self.position = state["position"]
        self._order = self._permutation(self.epoch)

    def _permutation(self, epoch: int) -> list[int]:
        order = list(range(len(self.prompts)))
        random.Random(f"{self.seed}:{epoch}").shuffle(order)  # str seeds hash stably across runs
        return order


def _fingerprint(prompts: list[str]) -> str:
    digest = hashlib.sha256()
    for prompt in prompts:
        digest.update(prompt.encode("utf-8", "surrogatepass") + b"\0")
    return digest.hexdigest()
