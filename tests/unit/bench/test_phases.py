"""The phase timer and the floor time what they claim: every phase of a step gets its own share."""

import pytest

from rlhf.bench.floor import FLOOR_PHASES, FloorStep
from rlhf.bench.phases import RLHF_PHASES, RlhfStep
from rlhf.config import load_profile

TINY = ["trainer.log_with=[csv]", "rollout.batch_size=4", "rollout.max_new_tokens=4", "algo.mini_batch_size=4"]


def test_every_rlhf_phase_is_timed_and_they_add_up_to_the_step(tmp_path):
    # PPO with a KL penalty runs every phase: policy and reference forwards, values, the update.
    step = RlhfStep(load_profile("tiny-gpt2", TINY + ["algo.epochs=1"]), tmp_path).step()
    assert set(step["phases"]) == set(RLHF_PHASES)
    untimed = [p for p in RLHF_PHASES if p != "other" and step["phases"][p] <= 0]
    assert untimed == []  # a renamed method would leave its phase at zero
    assert sum(step["phases"].values()) == pytest.approx(step["step_s"])  # "other" is the rest of the step
    assert step["tokens"] > 0 and step["sequences"] == 4


def test_skipped_forwards_show_as_zero(tmp_path):
    profile = load_profile("tiny-gpt2", TINY + ["algo.name=grpo", "rollout.num_generations=2", "algo.epochs=1",
                                                "algo.mini_batch_size=8", "algo.kl.coef=0"])
    phases = RlhfStep(profile, tmp_path).step()["phases"]
    assert phases["old_logprobs"] == 0 and phases["ref_logprobs"] == 0 and phases["backward"] > 0


def test_floor_times_generate_forward_backward_and_adamw():
    step = FloorStep(load_profile("tiny-gpt2", TINY)).step()
    assert set(step["phases"]) == set(FLOOR_PHASES) and all(v > 0 for v in step["phases"].values())
    assert 0 < step["tokens"] <= 4 * 4
