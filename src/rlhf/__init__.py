"""rlhf: reinforcement-learning fine-tuning of language models (PPO, GRPO, RLOO).

The Python API (``rlhf.run``, ``generate``, ``evaluate``, ``serve``, ``train_reward``, ``pretrain``,
``train_dpo``, ``sft``, ``push``, ``plan``, ``check_reward``, ``load_profile``) is what the CLI calls;
see :mod:`rlhf.api`. Importing ``rlhf`` stays light: the functions load torch and the libraries when first used.
"""

__version__ = "0.1.0"

_API = ("load_profile", "run", "train_reward", "pretrain", "train_dpo", "sft", "push", "plan", "check_reward",
        "generate", "evaluate", "serve")
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        from rlhf import api

        return getattr(api, name)
    raise AttributeError(f"module 'rlhf' has no attribute {name!r}")
