"""Loss types, asymmetric clipping, reward-scale modes and the exact KL, against hand-worked cases."""

import math

import pytest
import torch

from rlhf.algos import (
    LOSS_TYPES, RunningMoments, aggregate_loss, clipped_surrogate, full_kl, grpo_advantages, rloo_advantages,
    scale_advantages, scale_scores,
)

PER_TOKEN = torch.tensor([[1.0, 2.0, 3.0], [4.0, 9.0, 9.0]])  # the 9s are padding
MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])


@pytest.mark.parametrize(("loss_type", "expected"), [
    ("grpo", 3.0),  # sequence means 2 and 4, then their mean
    ("bnpo", 2.5),  # (1 + 2 + 3 + 4) / 4 tokens
    ("dapo", 2.5),  # the same per minibatch; minibatches are weighted by tokens
    ("dr_grpo", 10.0 / (2 * 4)),  # sum / (sequences x max_new_tokens = 4)
])
def test_loss_types_by_hand(loss_type, expected):
    assert aggregate_loss(PER_TOKEN, MASK, loss_type, max_len=4).item() == pytest.approx(expected)


def test_loss_types_count_their_accumulation_unit():
    assert LOSS_TYPES.get("dapo").count(MASK).item() == 4.0  # tokens
    assert LOSS_TYPES.get("grpo").count(MASK).item() == 2.0  # sequences
    assert LOSS_TYPES.get("dr_grpo").count(MASK).item() == 2.0


def test_unknown_loss_type_lists_the_names():
    with pytest.raises(KeyError, match="dr_grpo"):
        aggregate_loss(PER_TOKEN, MASK, "drgrpo", 4)


def test_clip_higher_lets_a_positive_advantage_move_further():
    logprobs = torch.log(torch.tensor([[1.3, 0.7]]))
    advantages = torch.tensor([[1.0, -1.0]])
    mask = torch.ones(1, 2)
    symmetric, clipped = clipped_surrogate(logprobs, torch.zeros(1, 2), advantages, mask, 0.2)
    assert symmetric[0].tolist() == pytest.approx([-1.2, 0.8])  # ratio 1.3 clipped to 1.2; 0.7 to 0.8
    assert clipped.tolist() == [[1.0, 1.0]]
    dapo, _ = clipped_surrogate(logprobs, torch.zeros(1, 2), advantages, mask, 0.2, 0.28)
    assert dapo[0].tolist() == pytest.approx([-1.28, 0.8])  # DAPO: 1 + 0.28 above, 1 - 0.2 below


def test_scale_modes_by_hand():
    scores = torch.tensor([1.0, 3.0, 5.0, 9.0])  # two groups of two
    centred = torch.tensor([-1.0, 1.0, -2.0, 2.0])
    assert torch.equal(grpo_advantages(scores, 2, scale="none"), centred)
    batch_std = scores.std(unbiased=True).item()  # 3.416
    assert grpo_advantages(scores, 2, scale="batch").tolist() == pytest.approx((centred / (batch_std + 1e-4)).tolist())
    group = grpo_advantages(scores, 2, scale="group")  # group stds sqrt(2) and 2 sqrt(2)
    assert group.tolist() == pytest.approx([-1 / (2**0.5 + 1e-4), 1 / (2**0.5 + 1e-4),
                                            -2 / (2 * 2**0.5 + 1e-4), 2 / (2 * 2**0.5 + 1e-4)])
    rloo = rloo_advantages(scores, 2)  # [-2, 2, -4, 4]
    assert scale_advantages(rloo, scores, 2, "batch").tolist() == pytest.approx((rloo / (batch_std + 1e-4)).tolist())
    with pytest.raises(ValueError, match="algo.scale_rewards"):
        scale_advantages(rloo, scores, 2, "groups")


def test_full_kl_by_hand_both_directions():
    p = torch.log(torch.tensor([[[0.25, 0.75]]]))  # (1, 1, 2) logits of the policy
    q = torch.log(torch.tensor([[[0.5, 0.5]]]))  # the reference
    reverse = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)  # KL(p || q) = 0.1308
    forward = 0.5 * math.log(2.0) + 0.5 * math.log(2.0 / 3.0)  # KL(q || p) = 0.1438
    assert full_kl(p, q, "reverse").item() == pytest.approx(reverse, abs=1e-6)
    assert full_kl(p, q, "forward").item() == pytest.approx(forward, abs=1e-6)
    assert full_kl(p, p + 3.0, "reverse").item() == pytest.approx(0.0, abs=1e-6)  # logits shift: same distribution
    with pytest.raises(ValueError, match="algo.kl.direction"):
        full_kl(p, q, "backward")


def test_running_moments_match_the_whole_history_and_scale_scores():
    moments, seen = RunningMoments(), []
    for batch in (torch.tensor([0.1, 0.3]), torch.tensor([0.2, 0.9, 0.5]), torch.tensor([0.4])):
        moments.update(batch)
        seen.extend(batch.tolist())
    history = torch.tensor(seen, dtype=torch.float64)
    assert moments.mean.item() == pytest.approx(history.mean().item())
    assert moments.std.item() == pytest.approx(history.std(unbiased=True).item())
    scores = torch.tensor([0.4, 0.6])
    assert scale_scores(scores, moments, "scale").tolist() == pytest.approx((scores / history.std()).tolist())
    normalized = (scores - history.mean()) / history.std()
    assert scale_scores(scores, moments, "normalize").tolist() == pytest.approx(normalized.tolist())
    assert scale_scores(scores, moments, "none", clip=0.5).tolist() == pytest.approx([0.4, 0.5])
    restored = RunningMoments()
    restored.load_state_dict(moments.state_dict())
    assert restored.std.item() == moments.std.item()
