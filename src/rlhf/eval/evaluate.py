"""``rlhf evaluate``: base vs tuned on the same prompts; rewards, diversity, perplexity, hacking flags.

Both models complete the same seeded draw of prompts (base with ``seed``, tuned with ``seed + 1``: two
independent draws, so the flags are tested against sampling noise). Every completion is scored by the
profile's rewards (plus any ``--reward``), and its perplexity is taken under the base model (the run's
reference, or ``--base``). :mod:`rlhf.eval.report` writes the result.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from rlhf.data import PromptSampler, load_prompts
from rlhf.eval.generate import complete, prompt_records_for
from rlhf.eval.hacking import Thresholds, hacking_flags
from rlhf.eval.loading import LoadedModel
from rlhf.eval.metrics import ngram_share, perplexity, text_stats
from rlhf.rewards import Reward, load_reward

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


@dataclass
class Completions:
    """One model's completions of the prompts with their rewards."""

    name: str
    completions: list[str]
    rewards: list[float]  # the profile's weighted total
    components: dict[str, list[float]] = field(default_factory=dict)  # per reward (and --reward), unweighted
    compliance: dict[str, float] = field(default_factory=dict)  # rate of each rule a reward defines


@dataclass
class Evaluation:
    prompts: list[str]
    models: dict[str, Completions]  # "base", "tuned", optionally "base_best_of_K"
    stats: dict[str, dict]  # model name -> report entry


def parse_reward_spec(text: str):
    """``--reward SPEC``: a registry name, ``module:function``, or a YAML mapping ``{name: length, target: 8}``."""
    import yaml

    spec = text
    if text.lstrip().startswith("{"):
        try:
            spec = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"--reward {text!r}: not valid YAML: {exc}") from None
    try:
        return load_reward(spec)
    except ValueError as exc:
        raise ValueError(f"--reward {text!r}: {exc}") from None


def draw_prompts(loaded: LoadedModel, source: str | None, samples: int) -> list[str]:
    """A seeded draw of ``samples`` prompts: ``source`` read whole, or the profile's data section."""
    if samples < 1:
        raise ValueError(f"--samples {samples}: need at least 1 prompt to evaluate")
    profile = loaded.profile
    if source:
        prompts = [record.model_input for record in prompt_records_for(loaded, source)]
    else:
        prompts = load_prompts(profile.data, loaded.tokenizer, profile.seed)
    return PromptSampler(prompts, samples, profile.seed + 1).next_batch()


@contextmanager
def base_network(tuned: LoadedModel, base: LoadedModel | None) -> Iterator[tuple[object, object]]:
    """``(network, tokenizer)`` of the base: ``--base`` or the tuned model's reference."""
    if base is not None:
        yield base.model, base.tokenizer
    else:
        with tuned.policy.as_reference() as network:
            yield network, tuned.tokenizer


def _score(name: str, prompts: list[str], completions: list[str], reward, extra: Sequence) -> Completions:
    scores = reward(prompts, completions)
    result = Completions(name, completions, scores.total.tolist(),
                         {n: v.tolist() for n, v in scores.components.items()})
    for term in [*reward.rewards, *extra]:
        if not any(term is own for own in reward.rewards):
            result.components[term.name] = [math.nan if v is None else v for v in term(prompts, completions)]
        rules = getattr(term.fn, "compliance", None)
        for rule, passed in (rules(completions) if rules else {}).items():
            result.compliance[f"{term.name}/{rule}"] = sum(passed) / len(passed)
    return result


def _sample(name: str, model, loaded: LoadedModel, tokenizer, prompts: list[str], seed: int, reward, extra,
            best_of: int = 1) -> Completions:
    repeated = [p for p in prompts for _ in range(best_of)]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        completions = complete(model, tokenizer, repeated, loaded.profile.rollout, loaded.max_prompt_tokens)
    if best_of == 1:
        return _score(name, prompts, completions, reward, extra)
    totals = reward(repeated, completions).total.view(len(prompts), best_of)  # (P, K)
    kept = [row * best_of + int(i) for row, i in enumerate(totals.argmax(dim=1))]
    return _score(name, prompts, [completions[i] for i in kept], reward, extra)


def reward_stats(values: Sequence[float]) -> dict:
    finite = torch.tensor([v for v in values if math.isfinite(v)], dtype=torch.float64)
    if not len(finite):
        return {"reward_mean": math.nan, "reward_std": math.nan, "reward_quantiles": {}}
    quantiles = torch.quantile(finite, torch.tensor(QUANTILES, dtype=torch.float64)).tolist()
    return {"reward_mean": float(finite.mean()), "reward_std": float(finite.std()) if len(finite) > 1 else 0.0,
            "reward_quantiles": {f"q{round(q * 100):02d}": v for q, v in zip(QUANTILES, quantiles)}}


def evaluate(tuned: LoadedModel, base: LoadedModel | None, prompts: list[str], *, extra_rewards: Sequence = (),
             best_of: int = 1, thresholds: Thresholds = Thresholds()) -> Evaluation:
    """Sample, score and compare; ``extra_rewards`` are reward specs reported beside the profile's."""
    from rlhf.rewards import load_rewards

    profile = tuned.profile
    if not profile.rewards:
        raise ValueError("the profile has no rewards to evaluate with; give -p PROFILE with a `rewards:` section")
    reward = load_rewards(profile.rewards, nonfinite=profile.trainer.nonfinite_rewards)
    extra = []
    for spec in extra_rewards:  # an extra reward named like a profile reward is reported as "<name> (--reward)"
        term = load_reward(spec)
        taken = set(reward.names) | {t.name for t in extra}
        extra.append(term if term.name not in taken else Reward(f"{term.name} (--reward)", term.fn, 1.0, term.shaping))
    models: dict[str, Completions] = {}
    with base_network(tuned, base) as (network, tokenizer):
        models["base"] = _sample("base", network, tuned, tokenizer, prompts, profile.seed, reward, extra)
        if best_of > 1:
            models[f"base_best_of_{best_of}"] = _sample(f"base_best_of_{best_of}", network, tuned, tokenizer,
                                                        prompts, profile.seed + 2, reward, extra, best_of)
    models["tuned"] = _sample("tuned", tuned.model, tuned, tuned.tokenizer, prompts, profile.seed + 1, reward, extra)
    stats = {}
    with base_network(tuned, base) as (network, tokenizer):
        for name, result in models.items():
            entry = reward_stats(result.rewards)
            entry["rewards"] = {n: _nanmean(v) for n, v in result.components.items()}
            entry.update(text_stats(result.completions))
            entry["perplexity"] = perplexity(network, tokenizer, prompts, result.completions,
                                             max_tokens=_context(network))
            entry["compliance"] = result.compliance
            stats[name] = entry
    for name, entry in stats.items():
        entry["base_share_of_top_ngram"] = ngram_share(models["base"].completions, entry["top_ngram"])
        entry["hacking_flags"] = [] if name == "base" else hacking_flags(stats["base"], entry, thresholds)
    return Evaluation(prompts, models, stats)


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


def _context(network) -> int | None:
    config = network.config
    return getattr(config, "max_position_embeddings", getattr(config, "n_positions", None))
