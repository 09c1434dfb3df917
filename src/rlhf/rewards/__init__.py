"""Rewards: the protocol, the registry, loading from a profile entry, shaping and composition.

**Protocol.** A reward is any callable ``(prompts, completions, **kwargs) -> list[float | None] | Tensor``
with one value per completion (TRL's convention: TRL reward functions plug in unchanged). ``None`` means
the reward abstains for that sample and is left out of the weighted sum; NaN or inf is an error.

**Registry.** :data:`REWARDS` is the only list of reward names (:data:`SHAPINGS` of shaping names). A
registered reward is a pydantic class whose fields are its options: ``REWARDS.get("length")(target=20)``
validates the options and returns the callable. Shipped: ``agentic_communal``, ``sentiment``,
``toxicity``, ``classifier``, ``llm_judge``, ``length``, ``target_words``, ``hackable_word_count``; each
docstring gives its options and range.

**Profile entry.** ``{name, weight: 1.0, shaping: [], **options}``: ``name`` is a registry name or an
importable ``module:function`` (or ``path/file.py:function``; its options are bound with
``functools.partial``); ``shaping`` is a list of ``{name, **options}`` transforms applied in order
(``linear``, ``exponential``, ``negate``, ``clip``, ``length_penalty``, ``repetition_penalty``)::

    rewards:
      - {name: classifier, model: outputs/reward-model, label: 1, output: logit, weight: 1.0}
      - name: sentiment
        weight: 0.5
        shaping: [{name: exponential, scale: 2.0}, {name: repetition_penalty, ngram: 1, weight: 0.5},
                  {name: clip, low: -1.0, high: 1.0}]
      - {name: toxicity, mode: filter, threshold: 0.5, floor: -1.0}   # replaces the total when it fires
      - {name: my_pkg.rewards:politeness, weight: 0.5}

**Python API.**

- ``load_reward(spec) -> Reward``: one entry (name, ``module:function``, mapping, profile ``RewardSpec`` or
  callable). ``Reward(prompts, completions, **kw) -> list[float | None]`` returns shaped, *unweighted* values
  and carries ``name``, ``weight``, ``value_range``, ``is_filter``, ``last_info`` (e.g. judge ``unparsed``).
- ``load_rewards(specs, nonfinite="error"|"drop") -> CompositeReward``; calling it returns
  :class:`RewardScores`: ``total`` ``(N,)`` (weighted sum, overridden by filters, 0.0 where not
  ``valid``), ``components`` (name -> ``(N,)``, NaN where abstained/dropped), ``valid`` ``(N,)`` bool,
  ``num_invalid`` and ``metrics()`` -> ``{"rewards/total", "rewards/<name>", "rewards/invalid", ...}``.
  ``nonfinite="error"`` raises on NaN/inf or on a sample every reward abstained on; ``"drop"`` marks it
  invalid instead (the profile's ``trainer.nonfinite_rewards``).
- ``validate_scores(name, scores, completions) -> Tensor``: ``(N,)`` float32 (NaN where abstained);
  ``ValueError`` naming the reward, index and completion on wrong length/type or NaN/inf.
- ``shape(reward, *transforms)``: Python-side shaping, e.g. ``shape(r, Exponential(scale=2.0), Negate())``.
- Property checks for any reward: :mod:`rlhf.testing` (``rlhf check-reward module:function``).
"""

from rlhf.rewards import classifier, judge, lexical, rules, text  # noqa: F401  (registers the rewards)
from rlhf.rewards.base import (
    REWARDS,
    BuiltinReward,
    MissingExtraError,
    RewardError,
    RewardFn,
    as_values,
    validate_scores,
)
from rlhf.rewards.classifier import Classifier
from rlhf.rewards.composite import CompositeReward, RewardScores, load_rewards
from rlhf.rewards.judge import LLMJudge, parse_score
from rlhf.rewards.lexical import Sentiment, Toxicity
from rlhf.rewards.loading import Reward, import_callable, load_reward, shape
from rlhf.rewards.rules import AgenticCommunal
from rlhf.rewards.shaping import (
    SHAPINGS,
    Clip,
    Exponential,
    LengthPenalty,
    Linear,
    Negate,
    RepetitionPenalty,
    Shaping,
)
from rlhf.rewards.text import HackableWordCount, Length, TargetWords

__all__ = [
    "REWARDS",
    "SHAPINGS",
    "AgenticCommunal",
    "BuiltinReward",
    "Classifier",
    "Clip",
    "CompositeReward",
    "Exponential",
    "HackableWordCount",
    "LLMJudge",
    "Length",
    "LengthPenalty",
    "Linear",
    "MissingExtraError",
    "Negate",
    "RepetitionPenalty",
    "Reward",
    "RewardError",
    "RewardFn",
    "RewardScores",
    "Sentiment",
    "Shaping",
    "TargetWords",
    "Toxicity",
    "as_values",
    "import_callable",
    "load_reward",
    "load_rewards",
    "parse_score",
    "shape",
    "validate_scores",
]
