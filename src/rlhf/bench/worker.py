"""One bench contender in its own process: ``python -m rlhf.bench.worker KIND PROFILE.yaml WORK_DIR THREADS``.

Protocol (line-based JSON on the original stdout; anything libraries print goes to stderr): the worker
writes ``{"ready": true}`` once built, then one result line per ``step`` line it reads on stdin, and exits
on ``quit`` or end of input. Results: ``step_s``, ``phases`` (seconds), ``tokens``, ``sequences``,
``peak_memory_mb`` (CUDA peak allocated on a GPU, else the process's peak resident set).
"""

from __future__ import annotations

import json
import os
import resource
import sys
from pathlib import Path


def _set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # already set by an earlier parallel region: the intra-op count is what matters
        pass


def _peak_memory_mb() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def build(kind: str, profile, work_dir: Path):
    """The contender named ``kind``: ``rlhf``, ``floor`` or ``trl``."""
    if kind == "rlhf":
        from rlhf.bench.phases import RlhfStep

        return RlhfStep(profile, work_dir)
    if kind == "floor":
        from rlhf.bench.floor import FloorStep

        return FloorStep(profile, work_dir)
    if kind == "trl":
        from rlhf.bench.trl_peer import TrlStep

        return TrlStep(profile, work_dir)
    raise ValueError(f"unknown bench contender {kind!r}; valid: rlhf, floor, trl")


def serve_steps(contender, wait, emit) -> None:
    """Step a contender each time ``wait()`` is true (TRL's trainer drives its own loop instead)."""
    if hasattr(contender, "serve"):
        contender.serve(wait, emit)
        return
    while wait():
        emit(contender.step())


def main(argv: list[str]) -> None:
    kind, profile_path, work_dir, threads = argv
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # library prints must not corrupt the protocol
    _set_threads(int(threads))

    from transformers.utils import logging as hf_logging

    from rlhf.config import load_profile

    hf_logging.set_verbosity_error()
    contender = build(kind, load_profile(profile_path), Path(work_dir))
    protocol.write(json.dumps({"ready": True}) + "\n")

    def wait() -> bool:
        return sys.stdin.readline().strip() == "step"

    def emit(result: dict) -> None:
        protocol.write(json.dumps({**result, "peak_memory_mb": _peak_memory_mb()}) + "\n")

    serve_steps(contender, wait, emit)


if __name__ == "__main__":
    main(sys.argv[1:])
