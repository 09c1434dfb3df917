"""The RL stage: rollout (``rollout``), the PPO/GRPO/RLOO loop (``trainer``), run checkpoints (``checkpoint``)."""
