"""``rlhf bench``: time the RL step and its phases beside a floor and, optionally, TRL's trainer.

``phases`` times rlhf's own step phase by phase, ``floor`` is the least any RL step must do (generate, one
forward+backward, AdamW), ``trl_peer`` runs TRL's GRPOTrainer/RLOOTrainer at equal settings, ``worker`` hosts
one contender in its own process, and ``compare`` interleaves their steps and reports medians and ratios.
"""
