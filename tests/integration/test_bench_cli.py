"""`rlhf bench` end to end on a tiny shape: every contender, every phase and both ratios are reported.

Times are not checked (they live in benchmarks/ and in the command's output), only that the table and
the JSON carry every figure, so the command, its worker protocol and its TRL peer cannot rot unnoticed.
"""

import json

import pytest
from typer.testing import CliRunner

from rlhf.bench.phases import RLHF_PHASES
from rlhf.cli import app

TINY = ["--set", "rollout.batch_size=2", "--set", "rollout.max_new_tokens=4", "--set", "algo.mini_batch_size=8"]
TIMED = {"generate", "update_forward", "backward", "optimizer"}


@pytest.mark.bench  # three worker processes, one importing TRL: 20 s to 2 min on 2 cores; `pytest -m bench`
def test_bench_against_trl_reports_phases_and_ratios(tmp_path):
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(app, ["bench", "-p", "bench-grpo-small", *TINY, "--against", "trl", "--rounds", "1",
                                      "--warmup", "0", "--json", str(out)])
    assert result.exit_code == 0, result.output
    for phase in RLHF_PHASES:
        assert phase in result.output
    assert "speedup vs TRL" in result.output and "rlhf / floor" in result.output
    data = json.loads(out.read_text())
    assert set(data["contenders"]) == {"rlhf", "floor", "trl"}
    assert set(data["contenders"]["rlhf"]["phases_s"]) == set(RLHF_PHASES)
    assert "score" in data["contenders"]["trl"]["phases_s"]
    for name, contender in data["contenders"].items():
        assert len(contender["steps"]) == 1 and contender["step_s"]["median"] > 0, name
        assert contender["steps"][0]["tokens"] > 0 and contender["peak_memory_mb"] > 0, name
        # every phase was actually timed (a renamed method would leave its phase at zero)
        assert TIMED <= {k for k, v in contender["phases_s"].items() if v > 0}, name
    assert data["speedup_vs_trl"]["median"] > 0 and data["rlhf_over_floor"]["median"] > 0


def test_bench_rejects_unknown_peers_and_algorithms_trl_lacks():
    unknown = CliRunner().invoke(app, ["bench", "-p", "bench-grpo-small", "--against", "openrlhf"])
    assert unknown.exit_code == 2 and "only peer is 'trl'" in unknown.output
    ppo = CliRunner().invoke(app, ["bench", "-p", "bench-ppo", "--against", "trl"])
    assert ppo.exit_code == 2 and "TRL 1.x has trainers for grpo, rloo" in ppo.output
