"""Interleaved rounds of rlhf, the floor and (optionally) TRL, each in its own process; medians and ratios.

Each contender is built once in a worker process with ``threads`` torch threads, then stepped one RL step
at a time, in turn, with the order rotated every round so no one always runs first after another's work.
Only one contender runs at any moment. The first ``warmup`` rounds are left out. Ratios are paired per
round (the same round's steps ran seconds apart under the same machine load), then summarised by median
and range.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from rlhf.bench.phases import RLHF_PHASES
from rlhf.config import Profile


class Worker:
    """A contender process speaking the line protocol of :mod:`rlhf.bench.worker`."""

    def __init__(self, kind: str, profile_path: Path, work_dir: Path, threads: int) -> None:
        self.kind = kind
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
               "TOKENIZERS_PARALLELISM": "false"}
        work_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = work_dir / "stderr.log"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen([sys.executable, "-m", "rlhf.bench.worker", kind, str(profile_path),
                                         str(work_dir), str(threads)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=self._log, text=True, env=env)

    def _read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            tail = "\n".join(self.log_path.read_text().splitlines()[-15:])
            raise RuntimeError(f"bench worker {self.kind!r} exited with code {self.process.returncode}:\n{tail}")
        return json.loads(line)

    def ready(self) -> None:
        self._read()

    def step(self) -> dict:
        self.process.stdin.write("step\n")
        self.process.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.write("quit\n")
                self.process.stdin.close()
                self.process.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        self._log.close()


def _summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


@dataclass
class BenchReport:
    """Per-contender step records of the measured rounds, and their summaries."""

    profile: str
    threads: int
    rounds: int
    warmup: int
    steps: dict[str, list[dict]] = field(default_factory=dict)

    def step_seconds(self, name: str) -> dict[str, float]:
        return _summary([s["step_s"] for s in self.steps[name]])

    def phase_seconds(self, name: str) -> dict[str, float]:
        phases = [p for p in RLHF_PHASES if any(p in s["phases"] for s in self.steps[name])]
        return {p: statistics.median(s["phases"].get(p, 0.0) for s in self.steps[name]) for p in phases}

    def tokens_per_s(self, name: str) -> float:
        return statistics.median(s["tokens"] / s["step_s"] for s in self.steps[name])

    def peak_memory_mb(self, name: str) -> float:
        return max(s["peak_memory_mb"] for s in self.steps[name])

    def ratio(self, slower: str, faster: str) -> dict[str, float]:
        """Per-round ``slower step / faster step`` (x > 1: ``faster`` is x times as fast), summarised."""
        pairs = zip(self.steps[slower], self.steps[faster])
        return _summary([a["step_s"] / b["step_s"] for a, b in pairs])

    def to_dict(self) -> dict:
        names = list(self.steps)
        out = {"profile": self.profile, "threads": self.threads, "rounds": self.rounds, "warmup": self.warmup,
               "contenders": {n: {"step_s": self.step_seconds(n), "phases_s": self.phase_seconds(n),
                                  "tokens_per_s": self.tokens_per_s(n), "peak_memory_mb": self.peak_memory_mb(n),
                                  "steps": self.steps[n]} for n in names}}
        if "floor" in names:
            out["rlhf_over_floor"] = self.ratio("rlhf", "floor")
        if "trl" in names:
            out["speedup_vs_trl"] = self.ratio("trl", "rlhf")
        return out


def run_bench(profile: Profile, name: str, *, against: list[str], rounds: int, threads: int, warmup: int = 1,
              work_dir: Path | None = None, progress=None) -> BenchReport:
    """Time ``rounds`` interleaved RL steps of rlhf, the floor and each peer in ``against`` (``trl``)."""
    from rlhf.models.factory import model_source

    if rounds < 1 or warmup < 0 or threads < 1:
        raise ValueError(f"--rounds ({rounds}) and --threads ({threads}) must be >= 1 and warm-up >= 0")
    if "trl" in against:
        from rlhf.bench.trl_peer import check_supported

        check_supported(profile)
    model_source(profile.model, profile.seed)  # build the random model folder once, before workers race for it
    kinds = ["rlhf", "floor", *against]
    report = BenchReport(name, threads, rounds, warmup, {k: [] for k in kinds})
    with tempfile.TemporaryDirectory(prefix="rlhf-bench-", dir=work_dir) as tmp:
        profile_path = Path(tmp) / "profile.yaml"
        profile_path.write_text(profile.to_yaml(), encoding="utf-8")
        workers = []
        try:
            for kind in kinds:  # built side by side: nothing is timed before every one is ready
                workers.append(Worker(kind, profile_path, Path(tmp) / kind, threads))
            for worker in workers:
                worker.ready()
            for r in range(warmup + rounds):
                shift = r % len(workers)
                for worker in workers[shift:] + workers[:shift]:
                    result = worker.step()
                    if r >= warmup:
                        report.steps[worker.kind].append(result)
                if progress is not None:
                    progress(r + 1, warmup + rounds)
        finally:
            for worker in workers:
                worker.close()
    return report


def _range(s: dict[str, float], scale: float = 1.0, fmt: str = "{:.0f}") -> str:
    return f"{fmt.format(s['median'] * scale)} [{fmt.format(s['min'] * scale)}-{fmt.format(s['max'] * scale)}]"


def report_table(report: BenchReport):
    """The phase table (median ms per phase, step median [range], tokens/s, peak memory) and ratio lines."""
    from rich.table import Table

    names = list(report.steps)
    table = Table("ms per step", *names, title=f"rlhf bench -p {report.profile}: {report.rounds} rounds, "
                  f"{report.warmup} warm-up, {report.threads} thread(s) per process", title_justify="left")
    phases = {n: report.phase_seconds(n) for n in names}
    for phase in RLHF_PHASES:
        if any(phase in phases[n] for n in names):
            table.add_row(phase, *(f"{phases[n][phase] * 1000:.0f}" if phase in phases[n] else "-" for n in names))
    table.add_row("step (median \\[range])", *(_range(report.step_seconds(n), 1000) for n in names), style="bold")
    table.add_row("generated tokens/s", *(f"{report.tokens_per_s(n):.0f}" for n in names))
    table.add_row("peak memory MB", *(f"{report.peak_memory_mb(n):.0f}" for n in names))
    lines = []
    if "trl" in names:
        lines.append(f"speedup vs TRL (TRL step / rlhf step, per round): "
                     f"{_range(report.ratio('trl', 'rlhf'), fmt='{:.2f}')}x")
    if "floor" in names:
        lines.append(f"rlhf / floor (per round): {_range(report.ratio('rlhf', 'floor'), fmt='{:.2f}')}x")
    return table, lines
