"""Clipped policy/value losses and logit helpers on hand-computed numbers."""

import math

import pytest
import torch

from rlhf.algos import approx_kl, entropy_from_logits, logprobs_from_logits, policy_loss, value_loss


def test_policy_loss_clips_positive_advantage_above_1_plus_eps_only():
    log_1_5 = math.log(1.5)
    logprobs = torch.tensor([[log_1_5, log_1_5, 0.0, 50.0]])  # ratios 1.5, 1.5, 1, garbage (exp(50))
    old_logprobs = torch.zeros(1, 4)
    advantages = torch.tensor([[1.0, -1.0, 2.0, float("nan")]])
    mask = torch.tensor([[1, 1, 1, 0]])
    loss, clipfrac = policy_loss(logprobs, old_logprobs, advantages, mask, clip_eps=0.2)
    # A=+1, r=1.5: max(-1.5, -1.2) = -1.2 (clipped: -A*clipped > -A*ratio)
    # A=-1, r=1.5: max(1.5, 1.2) = 1.5 (unclipped: a bigger ratio only makes the loss worse)
    # A=2, r=1:    max(-2, -2) = -2 (inside the range)
    # loss = (-1.2 + 1.5 - 2) / 3 = -1.7 / 3 ; clipfrac = 1 / 3
    assert loss.item() == pytest.approx(-1.7 / 3, abs=1e-6)
    assert clipfrac.item() == pytest.approx(1 / 3)


def test_policy_loss_clips_negative_advantage_below_1_minus_eps():
    logprobs = torch.tensor([[math.log(0.5), math.log(0.5)]])  # ratio 0.5
    advantages = torch.tensor([[-1.0, 1.0]])
    loss, clipfrac = policy_loss(logprobs, torch.zeros(1, 2), advantages, torch.ones(1, 2), clip_eps=0.2)
    # A=-1, r=0.5: max(0.5, 0.8) = 0.8 clipped ; A=+1, r=0.5: max(-0.5, -0.8) = -0.5 unclipped
    # loss = (0.8 - 0.5) / 2 = 0.15 ; clipfrac = 1/2
    assert loss.item() == pytest.approx(0.15, abs=1e-6)
    assert clipfrac.item() == pytest.approx(0.5)


def test_policy_loss_gradient_is_zero_on_clipped_tokens_and_finite_on_padding():
    logprobs = torch.tensor([[math.log(1.5), 0.0, 80.0]], requires_grad=True)
    advantages = torch.tensor([[1.0, 3.0, 1.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    loss, _ = policy_loss(logprobs, torch.zeros(1, 3), advantages, mask, clip_eps=0.2)
    loss.backward()
    # clipped token: no gradient ; ratio-1 token: d(-A*r)/dlogp / count = -3 * 1 / 2 ; padding: 0
    assert torch.allclose(logprobs.grad, torch.tensor([[0.0, -1.5, 0.0]]))


def test_approx_kl():
    logprobs = torch.tensor([[-1.0, -2.0, 9.0]])
    old = torch.tensor([[-2.0, -2.0, 0.0]])
    # 0.5 * [1, 0]^2 over 2 masked tokens = 0.25
    assert approx_kl(logprobs, old, torch.tensor([[1, 1, 0]])).item() == pytest.approx(0.25)


def test_value_loss_clipped_case():
    values = torch.tensor([[2.0, 0.0, 2.0, 7.0]])
    old_values = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    returns = torch.tensor([[3.0, 1.0, 1.2, 0.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    loss, clipfrac = value_loss(values, old_values, returns, mask, clip_eps=0.5)
    # token 0: (2-3)^2 = 1 ; clipped v = 1.5 -> (1.5-3)^2 = 2.25 -> max 2.25 (clipped)
    # token 1: v = old -> both (0-1)^2 = 1
    # token 2: (2-1.2)^2 = 0.64 ; clipped 1.5 -> 0.09 -> max 0.64 (unclipped)
    # loss = 0.5 * (2.25 + 1 + 0.64) / 3 = 0.648333 ; clipfrac = 1/3
    assert loss.item() == pytest.approx(0.5 * 3.89 / 3, abs=1e-6)
    assert clipfrac.item() == pytest.approx(1 / 3)


def test_entropy_of_uniform_logits_is_log_vocab():
    logits = torch.full((2, 3, 7), 4.2)
    assert torch.allclose(entropy_from_logits(logits), torch.full((2, 3), math.log(7)))


def test_entropy_of_peaked_logits_is_near_zero_and_stable():
    logits = torch.tensor([[[1000.0, 0.0, 0.0]]])
    entropy = entropy_from_logits(logits)
    assert torch.isfinite(entropy).all()
    assert entropy.abs().item() < 1e-6


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_logprobs_from_logits(dtype):
    # logits [0, log 3] -> probs [1/4, 3/4]
    logits = torch.tensor([[[0.0, math.log(3.0)], [math.log(3.0), 0.0]]], dtype=dtype)
    labels = torch.tensor([[1, 1]])
    expected = torch.tensor([[math.log(0.75), math.log(0.25)]])
    assert torch.allclose(logprobs_from_logits(logits, labels).float(), expected, atol=1e-2)
    reference = torch.log_softmax(logits.float(), -1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(logprobs_from_logits(logits, labels).float(), reference, atol=1e-2)
