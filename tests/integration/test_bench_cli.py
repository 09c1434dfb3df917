"""`rlhf bench` end to end on a tiny shape: every phase, every contender and the ratios are reported.

Times are not checked (they live in benchmarks/ and in the command's output), only that the table and
the JSON carry every figure, so the command and its TRL peer cannot rot unnoticed.
"""

import json

import pytest
from typer.testing import CliRunner

from rlhf.bench.phases import RLHF_PHASES
from rlhf.cli import app

TINY = ["--set", "rollout.batch_size=2", "--set", "rollout.max_new_tokens=4", "--set", "algo.mini_batch_size=8"]
TIMED = {"generate", "update_forward", "backward", "optimizer"}


def run_bench(tmp_path, *args):
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(app, ["bench", *TINY, *args, "--rounds", "1", "--warmup", "0", "--json", str(out)])
    assert result.exit_code == 0, result.output
    return result.output, json.loads(out.read_text())


def check_contender(name, contender):
    assert len(contender["steps"]) == 1 and contender["step_s"]["median"] > 0, name
    assert contender["steps"][0]["tokens"] > 0 and contender["peak_memory_mb"] > 0, name
    # every phase was actually timed (a renamed method would leave its phase at zero)
    assert TIMED <= {k for k, v in contender["phases_s"].items() if v > 0}, name


def test_bench_reports_every_phase_and_the_floor_ratio(tmp_path):
    output, data = run_bench(tmp_path, "-p", "bench-ppo", "--set", "rollout.batch_size=8")
    for phase in RLHF_PHASES:
        assert phase in output
    assert "rlhf / floor" in output and "speedup vs TRL" not in output
    assert set(data["contenders"]) == {"rlhf", "floor"}
    assert set(data["contenders"]["rlhf"]["phases_s"]) == set(RLHF_PHASES)
    assert data["contenders"]["rlhf"]["phases_s"]["old_logprobs"] > 0  # PPO needs values: not skipped
    for name, contender in data["contenders"].items():
        check_contender(name, contender)
    assert data["rlhf_over_floor"]["median"] > 0


@pytest.mark.slow  # three worker processes, one importing TRL: tens of seconds on 2 busy cores
def test_bench_against_trl_reports_the_peer_and_the_speedup(tmp_path):
    output, data = run_bench(tmp_path, "-p", "bench-grpo-small", "--against", "trl")
    assert "speedup vs TRL" in output
    assert set(data["contenders"]) == {"rlhf", "floor", "trl"}
    check_contender("trl", data["contenders"]["trl"])
    assert "score" in data["contenders"]["trl"]["phases_s"]
    assert data["speedup_vs_trl"]["median"] > 0


def test_bench_rejects_unknown_peers_and_algorithms_trl_lacks():
    unknown = CliRunner().invoke(app, ["bench", "-p", "bench-grpo-small", "--against", "openrlhf"])
    assert unknown.exit_code == 2 and "only peer is 'trl'" in unknown.output
    ppo = CliRunner().invoke(app, ["bench", "-p", "bench-ppo", "--against", "trl"])
    assert ppo.exit_code == 2 and "TRL 1.x has trainers for grpo, rloo" in ppo.output
