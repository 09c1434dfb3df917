"""Skipped rollout forwards change nothing: same loss, gradients, advantages and KL as computing them.

With one optimiser step per batch the update's own first forward gives the old log-probs, and a KL
coefficient of 0 needs no reference forward (nor, without LoRA, the frozen copy). Each test builds the
skipped batch, fills in what the full rollout would have computed, and compares the two paths.
"""

import copy
import dataclasses

import pytest
import torch

from rlhf.config import load_profile
from rlhf.rl.rollout import _tempered_logprobs, response_logprobs
from rlhf.rl.trainer import Trainer

COMMON = ["trainer.log_with=[csv]", "rewards=[{name: 'rewards_for_tests:letter_e_fraction'}]"]
GRPO = ["algo.name=grpo", "rollout.batch_size=4", "rollout.num_generations=4", "algo.epochs=1"]


def trainer_for(tmp_path, overrides):
    return Trainer(load_profile("tiny-gpt2", COMMON + overrides), tmp_path)


@torch.no_grad()
def full_rollout_outputs(trainer, batch):
    """The old and reference log-probs the rollout would have computed (policy in eval mode, as there)."""
    policy, t, r = trainer.policy, trainer.profile.rollout.temperature, batch.response_length
    policy.eval()
    old, _, _ = response_logprobs(policy, batch.input_ids, batch.attention_mask, r, t, with_values=False)
    ref_logits = policy.reference_logits(batch.input_ids, batch.attention_mask, r + 1)
    ref, _ = _tempered_logprobs(ref_logits, batch.input_ids[:, -r:], t)
    policy.train()
    return old, ref


def loss_and_gradients(trainer, batch):
    scores, _ = trainer.score(batch)
    moments = copy.deepcopy(trainer.reward_moments)  # running reward statistics: both paths start alike
    advantages, returns, seq_kl = trainer.advantage(batch, scores)
    trainer.reward_moments = moments
    trainer.optimizer.zero_grad(set_to_none=True)
    stats: dict = {}
    rows = torch.arange(len(batch.prompts))
    kl_in_loss = not trainer.estimator.kl_in_reward and trainer.kl_ctl.value > 0
    trainer._accumulate(batch, [rows], advantages, returns, kl_in_loss, stats)
    grads = {n: p.grad.clone() for n, p in trainer.policy.named_parameters() if p.grad is not None}
    trainer.optimizer.zero_grad(set_to_none=True)
    return {k: v[0] for k, v in stats.items()}, grads, advantages, seq_kl


def assert_same(skipped, full, keys):
    stats_s, grads_s, adv_s, _ = skipped
    stats_f, grads_f, adv_f, _ = full
    for key in keys:
        torch.testing.assert_close(stats_s[key], stats_f[key], rtol=1e-5, atol=1e-6, msg=key)
    torch.testing.assert_close(adv_s, adv_f)
    assert grads_s.keys() == grads_f.keys() and sum(g.norm() for g in grads_f.values()) > 0  # a real gradient
    for name in grads_f:
        torch.testing.assert_close(grads_s[name], grads_f[name], rtol=1e-4, atol=1e-7, msg=name)


@pytest.mark.parametrize("minibatches", [["algo.mini_batch_size=16"],
                                         ["algo.mini_batch_size=8", "trainer.grad_accum=2"]])
def test_old_logprob_forward_skipped_with_one_optimizer_step(tmp_path, minibatches):
    trainer = trainer_for(tmp_path, GRPO + minibatches + ["algo.kl.coef=0.1", "algo.kl.estimator=k3"])
    assert trainer.rollout_forwards() == (False, True)
    batch = trainer.rollout()
    assert batch.logprobs is None and batch.ref_logprobs is not None
    old, ref = full_rollout_outputs(trainer, batch)
    torch.testing.assert_close(batch.ref_logprobs, ref)
    full = loss_and_gradients(trainer, dataclasses.replace(batch, logprobs=old))
    skipped = loss_and_gradients(trainer, batch)
    assert_same(skipped, full, ["loss/policy_avg", "loss/kl_avg", "policy/entropy_avg", "policy/approxkl_avg"])
    # The sampling-time KL is still measured, by the update's forward: the rollout's value to float tolerance.
    assert skipped[3] is None
    torch.testing.assert_close(skipped[0]["objective/kl"], full[3].mean(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("algo", [GRPO + ["algo.mini_batch_size=16"], ["algo.name=ppo", "algo.epochs=1"]])
def test_reference_forward_and_frozen_copy_skipped_at_kl_coefficient_zero(tmp_path, algo):
    trainer = trainer_for(tmp_path, algo + ["algo.kl.coef=0"])
    batch = trainer.rollout()
    assert batch.ref_logprobs is None and not trainer.policy.reference_loaded
    old, ref = full_rollout_outputs(trainer, batch)
    full_batch = dataclasses.replace(batch, logprobs=batch.logprobs if batch.logprobs is not None else old,
                                     ref_logprobs=ref)
    full = loss_and_gradients(trainer, full_batch)
    skipped = loss_and_gradients(trainer, batch)
    assert_same(skipped, full, ["loss/policy_avg", "policy/entropy_avg"])
    if trainer.estimator.needs_value_head:  # PPO: values and returns from the same rollout forward
        torch.testing.assert_close(skipped[0]["loss/value_avg"], full[0]["loss/value_avg"])


def test_rollout_forwards_follow_the_settings(tmp_path):
    cases = {  # overrides -> (policy forward, reference forward)
        ("algo.mini_batch_size=16",): (False, True),
        ("algo.mini_batch_size=8",): (True, True),  # two optimiser steps: the second sees new weights
        ("algo.mini_batch_size=8", "trainer.grad_accum=2"): (False, True),
        ("algo.mini_batch_size=16", "algo.epochs=2"): (True, True),
        ("algo.mini_batch_size=16", "algo.kl.coef=0"): (False, False),
    }
    for overrides, expected in cases.items():
        profile = load_profile("tiny-gpt2", COMMON + GRPO + ["algo.kl.coef=0.05", *overrides])
        trainer = Trainer(profile, tmp_path)
        assert trainer.rollout_forwards() == expected, overrides
    ppo = trainer_for(tmp_path, ["algo.epochs=1", "algo.kl.coef=0"])
    assert ppo.rollout_forwards() == (True, False)  # values come from the policy forward


def test_a_step_without_reference_logs_no_kl(tmp_path):
    trainer = trainer_for(tmp_path, GRPO + ["algo.mini_batch_size=16", "algo.kl.coef=0"])
    metrics, _, scores = trainer.train_step()
    assert "objective/kl" not in metrics
    assert metrics["objective/rlhf_reward"] == pytest.approx(scores.mean().item(), rel=1e-6)
    assert not trainer.policy.reference_loaded
