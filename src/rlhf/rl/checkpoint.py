"""Atomic, validated checkpoints of a run, and resuming from the newest intact one.

A checkpoint folder ``checkpoints/step-000042/`` holds ``policy/`` (``save_pretrained`` output: the LoRA
adapter or the full model, the value head and the tokenizer), ``trainer_state.pt`` (optimizer, scheduler,
KL controller, prompt-sampler position, every process's RNG states, step) and ``manifest.json`` (the size
of every file). It is written to a temporary folder and renamed, so a crash mid-write never leaves a half
checkpoint that looks complete.

Loading never executes code: ``trainer_state.pt`` holds only tensors, numbers, strings and containers and
is read with ``torch.load(weights_only=True)``; model weights are safetensors. Before a resume every
file is checked against the manifest and the state's keys are checked, and a damaged checkpoint is
skipped for the newest intact one, with a warning.
"""

from __future__ import annotations

import json
import pickle
import random
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from rlhf.fsutil import atomic_directory

STATE_FILE = "trainer_state.pt"
MANIFEST_FILE = "manifest.json"
POLICY_DIR = "policy"
STATE_KEYS = ("step", "tokens_seen", "optimizer", "scheduler", "kl_controller", "sampler", "rng")
_NAME = re.compile(r"^step-(\d+)$")


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step-{step:06d}"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run (renamed into place), oldest first; not yet validated."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if _NAME.match(p.name) and (p / STATE_FILE).exists()]
    return sorted(found, key=lambda p: int(_NAME.match(p.name).group(1)))


def latest_checkpoint(run_dir: Path) -> Path | None:
    checkpoints = list_checkpoints(run_dir)
    return checkpoints[-1] if checkpoints else None


def remove_leftovers(run_dir: Path) -> list[Path]:
    """Delete temporary folders a killed checkpoint write left in ``checkpoints/``; return what was removed."""
    folder = Path(run_dir) / "checkpoints"
    leftovers = [p for p in folder.glob(".tmp-step-*")] + [p for p in folder.glob(".old-step-*")] \
        if folder.is_dir() else []
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)
    return leftovers


# ------------------------------------------------------------------------------------------ RNG state


def rng_state() -> dict:
    """This process's random states (python, numpy, torch CPU and CUDA) as plain, safely loadable types."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),  # (version, tuple of ints, None)
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def set_rng_state(state: dict) -> None:
    random.setstate(_as_tuples(state["python"]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuples(value):
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


# --------------------------------------------------------------------------------------- save / load


def save_checkpoint(run_dir: Path, step: int, policy, tokenizer, state: dict, keep: int) -> Path:
    """Write checkpoint ``step`` atomically (with its manifest) and keep only the ``keep`` newest."""
    target = checkpoint_dir(run_dir, step)
    with atomic_directory(target, replace=True) as tmp:
        policy.save(tmp / POLICY_DIR, tokenizer)
        torch.save(state, tmp / STATE_FILE)
        write_manifest(tmp)
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def write_manifest(folder: Path) -> None:
    """Record the size of every file under ``folder``: truncation or loss is then detectable."""
    files = {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}
    (folder / MANIFEST_FILE).write_text(json.dumps({"files": files}, indent=1), encoding="utf-8")


def load_trainer_state(checkpoint: Path) -> dict:
    """The trainer state of ``checkpoint``; ``ValueError`` naming the file if it is unreadable or incomplete."""
    path = Path(checkpoint) / STATE_FILE
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ValueError(f"cannot read checkpoint {path}: it holds objects other than tensors, numbers and "
                         "strings, and is not loaded because unpickling them could run code "
                         f"({str(exc).splitlines()[0]})") from exc
    except (OSError, RuntimeError, EOFError) as exc:
        raise ValueError(f"cannot read checkpoint {path}: {exc}") from exc
    if not isinstance(state, dict):
        raise ValueError(f"cannot read checkpoint {path}: expected a dict, found {type(state).__name__}")
    missing = [key for key in STATE_KEYS if key not in state]
    if missing:
        raise ValueError(f"checkpoint {path} is incomplete: missing key(s) {', '.join(missing)}")
    return state


def validate_checkpoint(checkpoint: Path) -> dict:
    """Check every file against the manifest, the weights' headers and the state; return the state.

    Raises ``ValueError`` saying what is damaged. Checkpoints written before manifests existed are checked
    by their headers and state only.
    """
    checkpoint = Path(checkpoint)
    manifest = checkpoint / MANIFEST_FILE
    if manifest.exists():
        try:
            files = json.loads(manifest.read_text(encoding="utf-8"))["files"]
        except (ValueError, KeyError) as exc:
            raise ValueError(f"checkpoint {checkpoint}: unreadable {MANIFEST_FILE} ({exc})") from exc
        for name, size in files.items():
            path = checkpoint / name
            if not path.is_file():
                raise ValueError(f"checkpoint {checkpoint}: {name} is missing")
            if path.stat().st_size != size:
                raise ValueError(f"checkpoint {checkpoint}: {name} is truncated or changed "
                                 f"({path.stat().st_size} bytes, written as {size})")
    for weights in sorted((checkpoint / POLICY_DIR).glob("*.safetensors")):
        _check_safetensors(weights)
    return load_trainer_state(checkpoint)


def _check_safetensors(path: Path) -> None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():
                f.get_slice(key)  # validates each tensor's offsets against the file
    except Exception as exc:  # safetensors raises its own error types for every kind of damage
        raise ValueError(f"checkpoint weights {path} are damaged: {exc}") from exc


def newest_intact_checkpoint(run_dir: Path, warn: Callable[[str], None] = print) -> tuple[Path, dict] | None:
    """The newest checkpoint that validates, and its state; damaged newer ones are reported via ``warn``."""
    for checkpoint in reversed(list_checkpoints(run_dir)):
        try:
            return checkpoint, validate_checkpoint(checkpoint)
        except ValueError as exc:
            warn(f"skipping damaged checkpoint: {exc}")
    return None
