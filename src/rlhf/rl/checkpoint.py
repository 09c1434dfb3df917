"""Atomic checkpoints of a run and resuming from the last complete one.

A checkpoint folder ``checkpoints/step-000042/`` holds ``policy/`` (``save_pretrained`` output: the LoRA
adapter or the full model, the value head and the tokenizer) and ``trainer_state.pt`` (optimizer,
scheduler, KL controller, prompt-sampler position, every process's RNG states, step). It is written to a
temporary folder and renamed, so a crash mid-write never leaves a half checkpoint that looks complete.
"""

from __future__ import annotations

import pickle
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch

from rlhf.fsutil import atomic_directory

STATE_FILE = "trainer_state.pt"
POLICY_DIR = "policy"
_NAME = re.compile(r"^step-(\d+)$")


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step-{step:06d}"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if _NAME.match(p.name) and (p / STATE_FILE).exists()]
    return sorted(found, key=lambda p: int(_NAME.match(p.name).group(1)))


def latest_checkpoint(run_dir: Path) -> Path | None:
    checkpoints = list_checkpoints(run_dir)
    return checkpoints[-1] if checkpoints else None


def rng_state() -> dict:
    """This process's random states (python, numpy, torch CPU and CUDA)."""
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(run_dir: Path, step: int, policy, tokenizer, state: dict, keep: int) -> Path:
    """Write checkpoint ``step`` atomically and keep only the ``keep`` newest."""
    target = checkpoint_dir(run_dir, step)
    with atomic_directory(target, replace=True) as tmp:
        policy.save(tmp / POLICY_DIR, tokenizer)
        torch.save(state, tmp / STATE_FILE)
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def load_trainer_state(checkpoint: Path) -> dict:
    try:
        return torch.load(Path(checkpoint) / STATE_FILE, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, pickle.UnpicklingError, EOFError) as exc:
        raise ValueError(f"cannot read checkpoint {checkpoint}: {exc}") from exc
