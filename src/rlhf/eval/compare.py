"""Base vs tuned at the end of a run (``trainer.eval_samples``): mean rewards, side by side.

The base model is the reference (adapters disabled, or the frozen copy), so no second download or
load is needed. Results go to the run's ``meta_data/evaluation.csv`` (side by side) and
``evaluation.json``. The full report of a finished run (diversity, perplexity, hacking flags, figures)
is ``rlhf evaluate`` (:mod:`rlhf.eval.evaluate`, :mod:`rlhf.eval.report`).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from rlhf.config import Profile, RolloutConfig
from rlhf.data import PromptSampler
from rlhf.models.policy import Policy
from rlhf.rl.rollout import sample_responses


@dataclass
class Comparison:
    """Completions and rewards per prompt: base, tuned and (``best_of`` > 1) the base's best of N samples."""

    prompts: list[str]
    base: list[str]
    tuned: list[str]
    base_rewards: list[float]
    tuned_rewards: list[float]
    best_of: int = 1
    best: list[str] | None = None
    best_rewards: list[float] | None = None

    @property
    def base_mean(self) -> float:
        return sum(self.base_rewards) / len(self.base_rewards)

    @property
    def tuned_mean(self) -> float:
        return sum(self.tuned_rewards) / len(self.tuned_rewards)

    def summary(self) -> dict[str, float]:
        summary = {"samples": len(self.prompts), "base_reward_mean": self.base_mean,
                   "tuned_reward_mean": self.tuned_mean, "improvement": self.tuned_mean - self.base_mean}
        if self.best_rewards is not None:
            summary[f"base_best_of_{self.best_of}_reward_mean"] = sum(self.best_rewards) / len(self.best_rewards)
        return summary


def _complete(model, tokenizer, prompts: list[str], cfg: RolloutConfig, seed: int) -> list[str]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        *_, response, _ = sample_responses(model, tokenizer, prompts, cfg)
    return tokenizer.batch_decode(response, skip_special_tokens=True)


def best_of_n(completions: list[str], rewards: list[float], n: int) -> tuple[list[str], list[float]]:
    """Per prompt, the highest-reward of its ``n`` consecutive completions (prompt-major layout).

    >>> best_of_n(["a", "b", "c", "d"], [0.1, 0.9, 0.5, 0.2], 2)
    (['b', 'c'], [0.9, 0.5])
    """
    best = [max(range(i, i + n), key=rewards.__getitem__) for i in range(0, len(completions), n)]
    return [completions[i] for i in best], [rewards[i] for i in best]


def compare_base_and_tuned(policy: Policy, tokenizer, reward, prompts: list[str], cfg: RolloutConfig,
                           seed: int = 0, best_of: int = 1) -> Comparison:
    """Complete ``prompts`` with the base (reference) and the tuned policy, score both with ``reward``.

    With ``best_of`` > 1 the base also samples that many completions per prompt and keeps the one the
    reward likes best: the baseline RL has to beat without any training (the reviews notebook's best-of-N).
    """
    was_training = policy.training
    policy.eval()
    with policy.as_reference() as base_model:
        base = _complete(base_model, tokenizer, prompts, cfg, seed)
        repeated = [p for p in prompts for _ in range(best_of)] if best_of > 1 else []
        samples = _complete(base_model, tokenizer, repeated, cfg, seed + 1) if repeated else []
    tuned = _complete(policy.model, tokenizer, prompts, cfg, seed)
    policy.train(was_training)
    comparison = Comparison(prompts, base, tuned, reward(prompts, base).total.tolist(),
                            reward(prompts, tuned).total.tolist(), best_of)
    if samples:
        comparison.best, comparison.best_rewards = best_of_n(samples, reward(repeated, samples).total.tolist(),
                                                             best_of)
    return comparison


def save_comparison(comparison: Comparison, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    columns = {"prompt": comparison.prompts, "base": comparison.base, "tuned": comparison.tuned,
               "base_reward": comparison.base_rewards, "tuned_reward": comparison.tuned_rewards}
    if comparison.best is not None:
        columns[f"base_best_of_{comparison.best_of}"] = comparison.best
        columns[f"base_best_of_{comparison.best_of}_reward"] = comparison.best_rewards
    with (folder / "evaluation.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows(zip(*columns.values()))
    (folder / "evaluation.json").write_text(json.dumps(comparison.summary(), indent=2))


def print_comparison(console: Console, comparison: Comparison, count: int = 5) -> None:
    table = Table("prompt", "base", "tuned", title="base vs tuned", show_lines=True)
    rows = zip(comparison.prompts, comparison.base, comparison.tuned, comparison.base_rewards,
               comparison.tuned_rewards)
    for prompt, base, tuned, base_r, tuned_r in list(rows)[:count]:
        table.add_row(prompt[-120:], f"{base[:200]}\n[dim]reward {base_r:+.3f}",
                      f"{tuned[:200]}\n[dim]reward {tuned_r:+.3f}")
    console.print(table)
    console.print(f"mean reward over {len(comparison.prompts)} prompts: base {comparison.base_mean:+.4f} -> "
                  f"tuned {comparison.tuned_mean:+.4f} ({comparison.tuned_mean - comparison.base_mean:+.4f})")
    if comparison.best_rewards is not None:
        best = sum(comparison.best_rewards) / len(comparison.best_rewards)
        console.print(f"base best-of-{comparison.best_of} (no training): {best:+.4f}")


def evaluate_and_report(policy: Policy, tokenizer, reward, prompts: list[str], profile: Profile, samples: int,
                        run_dir: Path, console: Console, best_of: int = 1) -> Comparison:
    """Compare on a seeded draw of ``samples`` prompts; save to ``meta_data/`` and print."""
    drawn = PromptSampler(prompts, samples, profile.seed + 1).next_batch()
    comparison = compare_base_and_tuned(policy, tokenizer, reward, drawn, profile.rollout, profile.seed, best_of)
    save_comparison(comparison, Path(run_dir) / "meta_data")
    print_comparison(console, comparison)
    return comparison


def evaluate_run(profile: Profile, run_dir: Path, samples: int, console: Console, best_of: int = 1) -> Comparison:
    """Load a finished run's final model and compare it with its base (used after a sharded run)."""
    from rlhf.data import load_prompts
    from rlhf.models.factory import build_policy
    from rlhf.models.tokenizer import load_tokenizer
    from rlhf.rewards import load_rewards

    tokenizer = load_tokenizer(profile.model.tokenizer)
    policy = build_policy(profile.model, with_value_head=False, seed=profile.seed, adapter_dir=run_dir / "final")
    prompts = load_prompts(profile.data, tokenizer, profile.seed)
    reward = load_rewards(profile.rewards, nonfinite=profile.trainer.nonfinite_rewards)
    return evaluate_and_report(policy, tokenizer, reward, prompts, profile, samples, run_dir, console, best_of)
