"""rlhf: reinforcement-learning fine-tuning of language models (PPO, GRPO, RLOO).

The Python API (``rlhf.run``, ``rlhf.train_reward``, ``rlhf.pretrain``, ``rlhf.train_dpo``, ``rlhf.sft``,
``rlhf.push``, ``rlhf.plan``, ``rlhf.check_reward``, ``rlhf.load_profile``) is what the CLI calls; see :mod:`rlhf.api`. Importing ``rlhf`` stays light: the
functions load torch and the libraries when first used.
"""

__version__ = "0.1.0"

_API = ("load_profile", "run", "train_reward", "pretrain", "train_dpo", "sft", "push", "plan", "check_reward")
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        from rlhf import api

        return getattr(api, name)
    raise AttributeError(f"module 'rlhf' has no attribute {name!r}")
