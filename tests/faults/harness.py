"""The fault table's harness: run one bad input through the CLI and check it fails the way a user needs.

A fault row says what to run and what the user must see: the exit code, one ``error:`` line naming the
file, key or value (``needles``), no Python traceback, and (``keeps``) that no finished work was lost.
Add new bad inputs as rows to a ``test_*_faults.py`` table in this folder (import from ``faults.harness``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from typer.testing import CliRunner

from rlhf.cli import app

TESTS = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Fault:
    """One bad input. ``args`` may contain ``{tmp}`` (the test's folder); ``setup(tmp)`` writes files first."""

    id: str
    args: list[str]
    needles: tuple[str, ...]
    exit_code: int = 2
    setup: Callable[[Path], None] | None = None
    keeps: Callable[[Path], None] | None = None  # asserts that finished work survived
    subprocess: bool = False  # run as a real process (signals, interpreter-level output)
    env: dict[str, str] = field(default_factory=dict)
    # in-process only: a context manager made from the test's folder that is active during the run, e.g. a
    # ``unittest.mock.patch`` that makes a write fail with ENOSPC (what cannot be staged on a real disk)
    patch: Callable[[Path], AbstractContextManager] | None = None


@dataclass
class Outcome:
    exit_code: int
    output: str
    exception: BaseException | None = None


def invoke(args: list[str], *, in_subprocess: bool = False, env: dict[str, str] | None = None,
           timeout: float = 300) -> Outcome:
    """Run ``rlhf ARGS`` in this process (fast) or in a fresh interpreter; stdout and stderr together."""
    if in_subprocess:
        path = os.pathsep.join([str(TESTS), str(TESTS / "integration"), os.environ.get("PYTHONPATH", "")])
        proc = subprocess.run([sys.executable, "-m", "rlhf", *args], capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, "PYTHONPATH": path, **(env or {})})
        return Outcome(proc.returncode, proc.stdout + proc.stderr)
    old = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        result = CliRunner().invoke(app, args)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    exception = None if isinstance(result.exception, SystemExit) else result.exception
    return Outcome(result.exit_code, result.output, exception)


def assert_clean_failure(outcome: Outcome, exit_code: int, needles: tuple[str, ...] | list[str]) -> str:
    """Exit code, no traceback, one ``error:`` line that contains every needle; returns that line."""
    assert outcome.exception is None, f"uncaught {outcome.exception!r}\n{outcome.output}"
    assert "Traceback (most recent call last)" not in outcome.output, outcome.output
    assert outcome.exit_code == exit_code, f"exit {outcome.exit_code}, wanted {exit_code}\n{outcome.output}"
    lines = [line for line in outcome.output.splitlines() if line.lstrip().startswith(("error:", "Error:"))]
    assert len(lines) == 1, f"want one error line, got {len(lines)}:\n{outcome.output}"
    # rich may wrap a long message: compare against the whole output with line breaks folded.
    flat = " ".join(outcome.output.split())
    for needle in needles:
        assert " ".join(needle.split()) in flat, f"{needle!r} not in the message:\n{outcome.output}"
    return lines[0]


def check_fault(fault: Fault, tmp_path: Path) -> Outcome:
    """Prepare, run and check one fault row."""
    if fault.setup is not None:
        fault.setup(tmp_path)
    args = [a.replace("{tmp}", str(tmp_path)) for a in fault.args]
    with fault.patch(tmp_path) if fault.patch is not None else nullcontext():
        outcome = invoke(args, in_subprocess=fault.subprocess, env=fault.env)
    assert_clean_failure(outcome, fault.exit_code, [n.replace("{tmp}", str(tmp_path)) for n in fault.needles])
    if fault.keeps is not None:
        fault.keeps(tmp_path)
    return outcome
