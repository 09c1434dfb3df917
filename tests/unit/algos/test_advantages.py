"""GAE, GRPO, RLOO, token rewards and the estimator registry on hand-computed numbers."""

import dataclasses

import pytest
import torch

from rlhf.algos import (
    ADVANTAGE_ESTIMATORS,
    AdvantageInputs,
    GRPOEstimator,
    gae,
    grpo_advantages,
    rloo_advantages,
    sequence_rewards_to_token_rewards,
    whiten,
)


def test_gae_1x3_by_hand():
    rewards = torch.tensor([[1.0, 0.0, 2.0]])
    values = torch.tensor([[0.5, 1.0, 1.5]])
    advantages, returns = gae(rewards, values, torch.ones(1, 3), gamma=0.9, lam=0.8)
    # gamma * lam = 0.72
    # t=2: delta = 2 + 0.9*0   - 1.5 = 0.5  ; A2 = 0.5
    # t=1: delta = 0 + 0.9*1.5 - 1.0 = 0.35 ; A1 = 0.35 + 0.72*0.5  = 0.71
    # t=0: delta = 1 + 0.9*1.0 - 0.5 = 1.4  ; A0 = 1.4  + 0.72*0.71 = 1.9112
    # returns = A + V = [2.4112, 1.71, 2.0]
    assert torch.allclose(advantages, torch.tensor([[1.9112, 0.71, 0.5]]))
    assert torch.allclose(returns, torch.tensor([[2.4112, 1.71, 2.0]]))


def test_gae_left_padding_ignores_garbage_and_does_not_bootstrap():
    rewards = torch.tensor([[9.0, 1.0, 2.0, 7.0]])
    values = torch.tensor([[5.0, 0.5, 1.0, 3.0]])  # 3.0 after the response must not be bootstrapped
    mask = torch.tensor([[0, 1, 1, 0]])
    advantages, returns = gae(rewards, values, mask, gamma=0.9, lam=0.8)
    # t=2: delta = 2 + 0.9*0   - 1.0 = 1.0 ; A2 = 1.0
    # t=1: delta = 1 + 0.9*1.0 - 0.5 = 1.4 ; A1 = 1.4 + 0.72*1.0 = 2.12
    # returns = [0, 2.12 + 0.5, 1.0 + 1.0, 0]
    assert torch.allclose(advantages, torch.tensor([[0.0, 2.12, 1.0, 0.0]]))
    assert torch.allclose(returns, torch.tensor([[0.0, 2.62, 2.0, 0.0]]))
    garbage = torch.tensor([[float("nan"), 1.0, 2.0, float("inf")]])
    advantages_garbage, returns_garbage = gae(garbage, values.masked_fill(mask == 0, float("nan")), mask, 0.9, 0.8)
    assert torch.equal(advantages_garbage, advantages)
    assert torch.equal(returns_garbage, returns)


def test_gae_rows_are_independent_and_empty_rows_are_zero():
    rewards = torch.tensor([[1.0, 1.0], [5.0, 5.0]])
    values = torch.zeros(2, 2)
    mask = torch.tensor([[1, 1], [0, 0]])
    advantages, returns = gae(rewards, values, mask, gamma=1.0, lam=1.0)
    # row 0: reward-to-go [2, 1] ; row 1 has no response
    assert torch.equal(advantages, torch.tensor([[2.0, 1.0], [0.0, 0.0]]))
    assert torch.equal(returns, advantages)


def test_grpo_by_hand():
    scores = torch.tensor([1.0, 2.0, 3.0, 4.0, 4.0, 4.0])
    # group 0: mean 2, unbiased std 1 -> [-1, 0, 1] / 1.0001 ; group 1: all equal -> 0 / (0 + 1e-4) = 0
    expected = torch.tensor([-1 / 1.0001, 0.0, 1 / 1.0001, 0.0, 0.0, 0.0])
    assert torch.allclose(grpo_advantages(scores, group_size=3), expected)
    # scale="none" only centres: [-1, 0, 1, 0, 0, 0]
    assert torch.equal(grpo_advantages(scores, 3, scale="none"), torch.tensor([-1.0, 0, 1, 0, 0, 0]))


def test_grpo_group_of_one_is_zero():
    assert torch.equal(grpo_advantages(torch.tensor([3.0, -1.0]), group_size=1), torch.zeros(2))


def test_rloo_by_hand():
    # baselines: (2+3)/2 = 2.5, (1+3)/2 = 2, (1+2)/2 = 1.5 -> [1-2.5, 2-2, 3-1.5]
    assert torch.equal(rloo_advantages(torch.tensor([1.0, 2.0, 3.0]), 3), torch.tensor([-1.5, 0.0, 1.5]))


@pytest.mark.parametrize("function", [grpo_advantages, rloo_advantages])
def test_group_size_not_dividing_batch_is_a_value_error(function):
    with pytest.raises(ValueError, match="5 scores is not divisible by group_size 2"):
        function(torch.zeros(5), 2)


def test_rloo_needs_two_samples_per_prompt():
    with pytest.raises(ValueError, match="group_size must be >= 2, got 1"):
        rloo_advantages(torch.zeros(4), 1)


def test_token_rewards_put_score_on_last_response_token_and_kl_everywhere():
    seq_rewards = torch.tensor([1.0, 2.0, 3.0])
    mask = torch.tensor([[0, 1, 1, 0], [1, 1, 1, 1], [0, 0, 0, 0]])
    kl = torch.tensor([[9.0, 0.5, 1.0, 9.0], [1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    token_rewards = sequence_rewards_to_token_rewards(seq_rewards, mask, kl, kl_coef=0.1)
    # row 0: -0.1*[0.5, 1] on tokens 1, 2 and +1 on token 2 ; row 1: -0.1 each, +2 on token 3 ; row 2: empty
    expected = torch.tensor([[0.0, -0.05, 0.9, 0.0], [-0.1, -0.1, -0.1, 1.9], [0.0, 0.0, 0.0, 0.0]])
    assert torch.allclose(token_rewards, expected)
    assert torch.equal(sequence_rewards_to_token_rewards(seq_rewards[:1], mask[:1]), torch.tensor([[0, 0, 1.0, 0]]))


def test_estimator_registry():
    assert ADVANTAGE_ESTIMATORS.names() == ["grpo", "ppo", "rloo"]
    assert ADVANTAGE_ESTIMATORS.get("ppo").needs_value_head and ADVANTAGE_ESTIMATORS.get("ppo").kl_in_reward
    for name in ("grpo", "rloo"):
        assert not ADVANTAGE_ESTIMATORS.get(name).needs_value_head
        assert not ADVANTAGE_ESTIMATORS.get(name).kl_in_reward


def test_unknown_estimator_name_lists_valid_names():
    with pytest.raises(KeyError, match="'grpoo'; valid names: grpo, ppo, rloo"):
        ADVANTAGE_ESTIMATORS.get("grpoo")


def test_ppo_estimator_is_kl_rewards_then_gae_then_whiten():
    mask = torch.tensor([[0, 1, 1], [1, 1, 0]])
    inputs = AdvantageInputs(
        seq_rewards=torch.tensor([1.0, -1.0]),
        response_mask=mask,
        values=torch.tensor([[0.0, 0.2, 0.4], [0.1, 0.3, 0.0]]),
        kl=torch.tensor([[0.0, 0.1, 0.2], [0.3, 0.4, 0.0]]),
        kl_coef=0.5,
        gamma=0.9,
        lam=0.8,
    )
    advantages, returns = ADVANTAGE_ESTIMATORS.get("ppo")(inputs)
    token_rewards = sequence_rewards_to_token_rewards(inputs.seq_rewards, mask, inputs.kl, 0.5)
    raw_advantages, expected_returns = gae(token_rewards, inputs.values, mask, 0.9, 0.8)
    assert torch.allclose(advantages, whiten(raw_advantages, mask))
    assert torch.equal(returns, expected_returns)  # returns are not whitened


def test_ppo_estimator_requires_values():
    inputs = AdvantageInputs(seq_rewards=torch.zeros(1), response_mask=torch.ones(1, 2))
    with pytest.raises(ValueError, match="values"):
        ADVANTAGE_ESTIMATORS.get("ppo")(inputs)


def test_group_estimators_broadcast_over_response_tokens():
    mask = torch.tensor([[0, 1, 1], [1, 1, 0], [1, 0, 0], [0, 1, 0]])
    inputs = AdvantageInputs(seq_rewards=torch.tensor([1.0, 3.0, 0.0, 0.0]), response_mask=mask, group_size=2)
    # rloo groups [1, 3] -> [-2, 2] and [0, 0] -> [0, 0]
    advantages, returns = ADVANTAGE_ESTIMATORS.get("rloo")(inputs)
    assert returns is None
    assert torch.equal(advantages, torch.tensor([[0.0, -2, -2], [2, 2, 0], [0, 0, 0], [0, 0, 0]]))
    # grpo groups [1, 3]: mean 2, unbiased std sqrt(2) ; unscaled: [-1, 1]
    advantages, returns = ADVANTAGE_ESTIMATORS.get("grpo")(inputs)
    assert returns is None
    a = 1 / (2**0.5 + 1e-4)
    assert torch.allclose(advantages, torch.tensor([[0.0, -a, -a], [a, a, 0], [0, 0, 0], [0, 0, 0]]))
    advantages, _ = GRPOEstimator()(dataclasses.replace(inputs, scale_rewards="none"))
    assert torch.equal(advantages, torch.tensor([[0.0, -1, -1], [1, 1, 0], [0, 0, 0], [0, 0, 0]]))


def test_advantage_inputs_reject_mismatched_shapes():
    with pytest.raises(ValueError, match=r"seq_rewards must have shape \(2,\)"):
        AdvantageInputs(seq_rewards=torch.zeros(3), response_mask=torch.ones(2, 4))
    with pytest.raises(ValueError, match="values must have the shape"):
        AdvantageInputs(seq_rewards=torch.zeros(2), response_mask=torch.ones(2, 4), values=torch.zeros(2, 3))
