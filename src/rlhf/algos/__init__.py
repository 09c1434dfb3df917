"""Pure tensor functions for RL fine-tuning: advantages, losses, KL estimators and KL controllers.

Tensors in, tensors out: no models, no I/O, no config objects, no host syncs. Shapes are ``(B, T)`` with a
``response_mask`` whose nonzero entries mark the response tokens that count.
"""

from rlhf.algos.advantages import (
    ADVANTAGE_ESTIMATORS,
    AdvantageEstimator,
    AdvantageInputs,
    GRPOEstimator,
    PPOEstimator,
    RLOOEstimator,
    gae,
    grpo_advantages,
    rloo_advantages,
    sequence_rewards_to_token_rewards,
)
from rlhf.algos.kl import (
    KL_ESTIMATORS,
    AdaptiveKLController,
    FixedKLController,
    kl_estimate,
    make_kl_controller,
)
from rlhf.algos.losses import approx_kl, entropy_from_logits, logprobs_from_logits, policy_loss, value_loss
from rlhf.algos.masked import masked_mean, masked_var, whiten

__all__ = [
    "ADVANTAGE_ESTIMATORS",
    "KL_ESTIMATORS",
    "AdaptiveKLController",
    "AdvantageEstimator",
    "AdvantageInputs",
    "FixedKLController",
    "GRPOEstimator",
    "PPOEstimator",
    "RLOOEstimator",
    "approx_kl",
    "entropy_from_logits",
    "gae",
    "grpo_advantages",
    "kl_estimate",
    "logprobs_from_logits",
    "make_kl_controller",
    "masked_mean",
    "masked_var",
    "policy_loss",
    "rloo_advantages",
    "sequence_rewards_to_token_rewards",
    "value_loss",
    "whiten",
]
