"""rlhf: reinforcement-learning fine-tuning of language models (PPO, GRPO, RLOO)."""

__version__ = "0.1.0"
