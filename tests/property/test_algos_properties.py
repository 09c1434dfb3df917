"""Invariants of rlhf.algos checked on random shapes, masks and values (hypothesis draws sizes and seeds)."""

import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from rlhf.algos import gae, grpo_advantages, kl_estimate, masked_mean, masked_var, policy_loss, rloo_advantages, whiten

SETTINGS = settings(max_examples=60, deadline=None)


@st.composite
def batches(draw, min_rows=1):
    """Random (B, T) rewards/values and a mask with one contiguous response block per row (left/right padding)."""
    rows = draw(st.integers(min_rows, 4))
    length = draw(st.integers(1, 8))
    mask = torch.zeros(rows, length)
    for row in range(rows):
        start = draw(st.integers(0, length))
        stop = draw(st.integers(start, length))
        mask[row, start:stop] = 1.0
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    rewards = torch.randn(rows, length, generator=generator, dtype=torch.float64)
    values = torch.randn(rows, length, generator=generator, dtype=torch.float64)
    return rewards, values, mask


def gae_reference(rewards, values, mask, gamma, lam):
    """Textbook GAE, one row at a time over the list of response positions."""
    advantages = torch.zeros_like(rewards)
    for row in range(rewards.shape[0]):
        positions = [t for t in range(rewards.shape[1]) if mask[row, t]]
        last_gae_lam = 0.0
        for i in reversed(range(len(positions))):
            t = positions[i]
            next_value = values[row, positions[i + 1]].item() if i + 1 < len(positions) else 0.0
            delta = rewards[row, t].item() + gamma * next_value - values[row, t].item()
            last_gae_lam = delta + gamma * lam * last_gae_lam
            advantages[row, t] = last_gae_lam
    return advantages, torch.where(mask.bool(), advantages + values, 0.0)


@SETTINGS
@given(batches())
def test_gae_with_unit_gamma_lam_is_reward_to_go_minus_value(batch):
    rewards, values, mask = batch
    advantages, returns = gae(rewards, values, mask, gamma=1.0, lam=1.0)
    masked_rewards = rewards * mask
    reward_to_go = masked_rewards.flip(-1).cumsum(-1).flip(-1)
    assert torch.allclose(advantages, (reward_to_go - values) * mask)
    assert torch.allclose(returns, reward_to_go * mask)


@SETTINGS
@given(batches(), st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_gae_equals_loop_reference(batch, gamma, lam):
    rewards, values, mask = batch
    advantages, returns = gae(rewards, values, mask, gamma, lam)
    expected_advantages, expected_returns = gae_reference(rewards, values, mask, gamma, lam)
    assert torch.allclose(advantages, expected_advantages)
    assert torch.allclose(returns, expected_returns)


@SETTINGS
@given(batches(), st.floats(0.0, 1.0), st.floats(0.0, 1.0), st.sampled_from([float("nan"), float("inf"), 1e6]))
def test_gae_masked_positions_do_not_matter(batch, gamma, lam, garbage):
    rewards, values, mask = batch
    padding = mask == 0
    advantages, returns = gae(rewards, values, mask, gamma, lam)
    noisy = gae(rewards.masked_fill(padding, garbage), values.masked_fill(padding, -garbage), mask, gamma, lam)
    assert torch.equal(noisy[0], advantages)
    assert torch.equal(noisy[1], returns)


@st.composite
def grouped_scores(draw, min_group=1):
    group_size = draw(st.integers(min_group, 6))
    prompts = draw(st.integers(1, 5))
    values = st.floats(-100, 100, allow_nan=False, width=64)
    scores = torch.tensor(draw(st.lists(values, min_size=prompts * group_size, max_size=prompts * group_size)),
                          dtype=torch.float64)
    return scores, group_size


@SETTINGS
@given(grouped_scores(), st.sampled_from(["group", "batch", "none"]))
def test_grpo_advantages_sum_to_zero_per_group(case, scale):
    scores, group_size = case
    advantages = grpo_advantages(scores, group_size, scale=scale)
    assert torch.allclose(advantages.view(-1, group_size).sum(-1), torch.zeros(1, dtype=torch.float64), atol=1e-6)


@SETTINGS
@given(grouped_scores(min_group=2))
def test_rloo_equals_leave_one_out_loop_and_sums_to_zero(case):
    scores, group_size = case
    advantages = rloo_advantages(scores, group_size)
    expected = []
    for start in range(0, len(scores), group_size):
        group = scores[start:start + group_size].tolist()
        for i, score in enumerate(group):
            others = group[:i] + group[i + 1:]
            expected.append(score - sum(others) / len(others))
    assert torch.allclose(advantages, torch.tensor(expected, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(advantages.view(-1, group_size).sum(-1), torch.zeros(1, dtype=torch.float64), atol=1e-9)


@SETTINGS
@given(st.integers(0, 2**31 - 1), st.floats(0.01, 30.0))
def test_kl_estimators_zero_at_equality_and_k2_k3_non_negative(seed, spread):
    generator = torch.Generator().manual_seed(seed)
    logp = -spread * torch.rand(3, 7, generator=generator, dtype=torch.float64)
    ref_logp = -spread * torch.rand(3, 7, generator=generator, dtype=torch.float64)
    for name in ("k1", "k2", "k3"):
        assert torch.equal(kl_estimate(logp, logp, name), torch.zeros_like(logp))
    assert (kl_estimate(logp, ref_logp, "k2") >= 0).all()
    assert (kl_estimate(logp, ref_logp, "k3") >= 0).all()


@SETTINGS
@given(batches(), st.floats(0.05, 0.5))
def test_policy_loss_at_ratio_one_is_unclipped_loss_with_gradient_minus_a_over_count(batch, clip_eps):
    advantages, logprobs, mask = batch
    logprobs = logprobs.clone().requires_grad_(True)
    loss, clipfrac = policy_loss(logprobs, logprobs.detach(), advantages, mask, clip_eps)
    assert torch.allclose(loss, -masked_mean(advantages, mask))  # ratio == 1: -masked_mean(A * 1)
    assert clipfrac == 0
    loss.backward()
    count = mask.sum().clamp(min=1)
    assert torch.allclose(logprobs.grad, -advantages * mask / count)


@SETTINGS
@given(batches())
def test_whiten_gives_zero_mean_unit_variance(batch):
    values, _, mask = batch
    assume(mask.sum() >= 2 and masked_var(values, mask) > 1e-3)
    whitened = whiten(values, mask)
    assert torch.allclose(masked_mean(whitened, mask), torch.zeros((), dtype=torch.float64), atol=1e-6)
    assert torch.allclose(masked_var(whitened, mask), torch.ones((), dtype=torch.float64), atol=1e-6)
    assert torch.equal(whitened[mask == 0], torch.zeros_like(whitened[mask == 0]))


@SETTINGS
@given(batches(min_rows=2), st.data())
def test_policy_loss_of_batch_is_token_weighted_average_of_shards(batch, data):
    advantages, old_logprobs, mask = batch
    generator = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31 - 1)))
    logprobs = old_logprobs + 0.5 * torch.randn(old_logprobs.shape, generator=generator, dtype=torch.float64)
    split = data.draw(st.integers(1, mask.shape[0] - 1))
    full_loss, _ = policy_loss(logprobs, old_logprobs, advantages, mask, 0.2)
    weighted = torch.zeros((), dtype=torch.float64)
    for shard in (slice(0, split), slice(split, None)):
        shard_loss, _ = policy_loss(logprobs[shard], old_logprobs[shard], advantages[shard], mask[shard], 0.2)
        weighted = weighted + shard_loss * mask[shard].sum()
    assert torch.allclose(full_loss, weighted / mask.sum().clamp(min=1))
