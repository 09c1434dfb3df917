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
    SCALE_REWARDS,
    rloo_advantages,
    scale_advantages,
    sequence_rewards_to_token_rewards,
)
from rlhf.algos.kl import (
    KL_DIRECTIONS,
    KL_ESTIMATORS,
    AdaptiveKLController,
    FixedKLController,
    full_kl,
    kl_estimate,
    make_kl_controller,
)
from rlhf.algos.losses import (
    LOSS_TYPES,
    LossType,
    aggregate_loss,
    approx_kl,
    clipped_surrogate,
    entropy_from_logits,
    logprobs_from_logits,
    policy_loss,
    value_loss,
)
from rlhf.algos.masked import masked_mean, masked_var, whiten
from rlhf.algos.normalize import REWARD_SCALINGS, RunningMoments, scale_scores

__all__ = [
    "ADVANTAGE_ESTIMATORS",
    "KL_DIRECTIONS",
    "KL_ESTIMATORS",
    "LOSS_TYPES",
    "REWARD_SCALINGS",
    "SCALE_REWARDS",
    "LossType",
    "AdaptiveKLController",
    "AdvantageEstimator",
    "AdvantageInputs",
    "FixedKLController",
    "GRPOEstimator",
    "PPOEstimator",
    "RLOOEstimator",
    "RunningMoments",
    "aggregate_loss",
    "approx_kl",
    "clipped_surrogate",
    "entropy_from_logits",
    "full_kl",
    "gae",
    "grpo_advantages",
    "kl_estimate",
    "logprobs_from_logits",
    "make_kl_controller",
    "masked_mean",
    "masked_var",
    "policy_loss",
    "rloo_advantages",
    "scale_advantages",
    "scale_scores",
    "sequence_rewards_to_token_rewards",
    "value_loss",
    "whiten",
]
