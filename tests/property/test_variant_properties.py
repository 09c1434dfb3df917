"""Invariants of the exact KL and of the loss types (hypothesis)."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlhf.algos import LOSS_TYPES, aggregate_loss, full_kl, kl_estimate

SETTINGS = settings(max_examples=60, deadline=None)


@st.composite
def logits_pair(draw):
    b, t, v = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(2, 6))
    seed = draw(st.integers(0, 2**31 - 1))
    gen = torch.Generator().manual_seed(seed)
    scale = draw(st.floats(0.1, 5.0))
    return (torch.randn(b, t, v, generator=gen, dtype=torch.float64) * scale,
            torch.randn(b, t, v, generator=gen, dtype=torch.float64) * scale)


@SETTINGS
@given(logits_pair(), st.sampled_from(["reverse", "forward"]))
def test_full_kl_is_nonnegative_and_zero_only_for_equal_distributions(pair, direction):
    logits, ref = pair
    kl = full_kl(logits, ref, direction)
    assert kl.shape == logits.shape[:2]
    assert bool((kl >= -1e-6).all())
    assert torch.allclose(full_kl(logits, logits.clone(), direction), torch.zeros_like(kl), atol=1e-6)
    differ = (logits.softmax(-1) - ref.softmax(-1)).abs().amax(-1) > 1e-3  # (B, T)
    assert bool((kl[differ] > 0).all())


@SETTINGS
@given(logits_pair())
def test_reverse_full_kl_is_the_expectation_of_k1_under_the_policy(pair):
    logits, ref = pair
    logp, ref_logp = logits.log_softmax(-1), ref.log_softmax(-1)
    k1_per_token = kl_estimate(logp, ref_logp, "k1")  # k1 of every vocabulary entry, (B, T, V)
    expectation = (logp.exp() * k1_per_token).sum(-1)  # E_{x ~ policy}[k1(x)]
    assert torch.allclose(full_kl(logits, ref, "reverse").double(), expectation, atol=1e-5)


def test_forward_differs_from_reverse_on_an_asymmetric_case():
    logits = torch.tensor([[[4.0, 0.0, 0.0]]])
    ref = torch.tensor([[[0.0, 0.0, 0.0]]])
    assert abs(full_kl(logits, ref, "forward").item() - full_kl(logits, ref, "reverse").item()) > 0.1


def test_sampled_k1_mean_converges_to_the_reverse_full_kl():
    gen = torch.Generator().manual_seed(0)
    logits, ref = torch.randn(1, 1, 5, generator=gen), torch.randn(1, 1, 5, generator=gen)
    samples = torch.multinomial(logits.softmax(-1)[0, 0], 200_000, replacement=True, generator=gen)
    logp, ref_logp = logits.log_softmax(-1)[0, 0, samples], ref.log_softmax(-1)[0, 0, samples]
    estimate = kl_estimate(logp, ref_logp, "k1").mean()
    assert abs(estimate.item() - full_kl(logits, ref, "reverse").item()) < 0.01


@st.composite
def shards(draw):
    rows, cols = draw(st.integers(2, 6)), draw(st.integers(1, 5))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    per_token = torch.randn(rows, cols, generator=gen, dtype=torch.float64)
    lengths = draw(st.lists(st.integers(1, cols), min_size=rows, max_size=rows))
    mask = (torch.arange(cols)[None, :] < torch.tensor(lengths)[:, None]).double()
    split = draw(st.integers(1, rows - 1))
    return per_token, mask, split


@SETTINGS
@given(shards(), st.sampled_from(["grpo", "dapo", "dr_grpo"]))
def test_accumulated_minibatches_weighted_by_their_unit_equal_the_whole_batch(case, loss_type):
    per_token, mask, split = case
    kind = LOSS_TYPES.get(loss_type)
    whole = aggregate_loss(per_token, mask, loss_type, max_len=mask.shape[1])
    parts = [(per_token[:split], mask[:split]), (per_token[split:], mask[split:])]
    total = sum(kind.count(m) for _, m in parts)
    accumulated = sum(aggregate_loss(p, m, loss_type, mask.shape[1]) * kind.count(m) / total for p, m in parts)
    assert torch.allclose(accumulated, whole, atol=1e-9)
