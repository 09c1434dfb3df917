"""Gradient accumulation is a memory knob only: 2 minibatches of 4 give the gradient of 1 minibatch of 8."""

import torch

from rlhf.config import load_profile
from rlhf.rl.trainer import Trainer


def test_accumulating_two_halves_equals_one_full_minibatch(tmp_path):
    # Three of the eight samples are dropped (mask zeroed), all in the first half: the halves hold 1 and 4
    # live sequences, so a plain 1/accum weighting would give the first half's tokens 4x their weight.
    profile = load_profile("tiny-gpt2", ["trainer.log_with=[csv]", "trainer.nonfinite_rewards=drop",
                                         "rewards=[{name: 'rewards_for_tests:nan_for_first_three'}]"])
    trainer = Trainer(profile, tmp_path)
    batch = trainer.rollout()
    scores, _ = trainer.score(batch)
    advantages, returns, _ = trainer.advantage(batch, scores)
    assert batch.response_mask[:3].sum() == 0 and batch.response_mask[3:].sum() > 0

    def gradients(group):
        trainer.optimizer.zero_grad(set_to_none=True)
        trainer._accumulate(batch, group, advantages, returns, False, {})
        return {name: p.grad.clone() for name, p in trainer.policy.named_parameters() if p.grad is not None}

    rows = torch.arange(8)
    full, halves = gradients([rows]), gradients([rows[:4], rows[4:]])
    assert full.keys() == halves.keys() and len(full) > 0
    for name in full:
        torch.testing.assert_close(halves[name], full[name], rtol=1e-4, atol=1e-7, msg=name)
