"""The Python API: the functions the CLI calls, for notebooks and scripts.

>>> import rlhf
>>> result = rlhf.run("tiny-gpt2", overrides={"trainer.steps": 2}, rewards=[lambda p, c, **kw: [len(x) / 10 for x in c]])
>>> result.stats["objective/scores"]  # a pandas Series, one value per step              # doctest: +SKIP

Rewards may be Python callables with TRL's signature ``(prompts, completions, **kwargs) -> list[float]``
(lambdas and notebook functions included), registry names, ``module:function`` strings or option mappings.
The run's ``profile.yaml`` records a callable as ``module:function`` when it can be imported again, else as
``python:<name>``: resuming such a run asks for the callable again (``rlhf.run(resume=..., rewards=[fn])``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from rlhf.config import Profile, RewardSpec
from rlhf.config import load_profile as _load_profile

ProfileLike = str | Path | Profile
Overrides = Mapping[str, Any] | Sequence[str] | None


def load_profile(profile: ProfileLike = "tiny-gpt2", overrides: Overrides = None) -> Profile:
    """A validated profile: a name in ``profiles/``, a YAML path or a ``Profile``, with overrides applied.

    ``overrides`` is ``{"trainer.steps": 5, "rewards.0.weight": 2}`` or the CLI's ``["trainer.steps=5"]``.
    """
    settings = _override_strings(overrides)
    if isinstance(profile, Profile):
        if not settings:
            return profile
        raise ValueError("overrides apply to a profile name or path; for a Profile object use "
                         "profile.model_copy(update=...) or pass its name")
    return _load_profile(profile, settings)


def _override_strings(overrides: Overrides) -> list[str]:
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        return [f"{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"
                for key, value in overrides.items()]
    if isinstance(overrides, str):
        raise ValueError(f"overrides={overrides!r}: give a mapping or a list of 'key=value' strings")
    return list(overrides)


def _console(quiet: bool):
    from rich.console import Console

    return Console(quiet=quiet)  # rich renders progress bars in Jupyter as well as in terminals


def run(profile: ProfileLike = "tiny-gpt2", *, overrides: Overrides = None, rewards: Sequence | None = None,
        output_dir: str | Path | None = None, resume: str | Path | None = None, merge: bool = False,
        on_step=None, quiet: bool = False):
    """Train with PPO/GRPO/RLOO (``rlhf run``); returns a :class:`~rlhf.rl.trainer.RunResult`.

    ``rewards`` replace the profile's rewards; ``on_step(metrics, samples)`` is called after every step
    with the step's metrics and its ``[{prompt, completion, reward}]`` (plot live in a notebook).
    ``resume`` continues the run in that folder (its ``profile.yaml``, plus ``overrides``).
    """
    from rlhf.rewards.loading import callable_spec
    from rlhf.rl.trainer import run as run_training

    if resume is not None:
        loaded = load_profile(Path(resume) / "profile.yaml", overrides)
    else:
        loaded = load_profile(profile, overrides)
    if rewards is not None:
        rewards = list(rewards)
        specs = [callable_spec(r) if callable(r) and not isinstance(r, (str, Mapping)) else
                 ({"name": r} if isinstance(r, str) else dict(r)) for r in rewards]
        loaded = loaded.model_copy(update={"rewards": [RewardSpec(**spec) for spec in specs]})
    _quiet_libraries()
    return run_training(loaded, output_dir=output_dir, resume_dir=resume, merge=merge, console=_console(quiet),
                        rewards=rewards, on_step=on_step)


def train_reward(profile: ProfileLike = "reward-model-tiny", *, overrides: Overrides = None, quiet: bool = False):
    """Train the profile's ``reward_model:`` section (``rlhf train-reward``); returns its result."""
    from rlhf.stages.reward_model import train_reward_model

    loaded = load_profile(profile, overrides)
    if loaded.reward_model is None:
        raise ValueError("the profile has no `reward_model:` section (see profiles/reward-model-tiny.yaml)")
    _quiet_libraries()
    return train_reward_model(loaded.reward_model, seed=loaded.seed, console=_console(quiet))


def pretrain(profile: ProfileLike = "cpu-demo", *, overrides: Overrides = None, quiet: bool = False):
    """Causal-LM pretraining of the profile's ``pretrain:`` section (``rlhf pretrain``); returns its result."""
    from rlhf.stages.pretrain import pretrain as run_pretraining

    loaded = load_profile(profile, overrides)
    if loaded.pretrain is None:
        raise ValueError("the profile has no `pretrain:` section (see profiles/cpu-demo.yaml)")
    _quiet_libraries()
    return run_pretraining(loaded, console=_console(quiet))


def train_dpo(profile: ProfileLike = "dpo-tiny", *, overrides: Overrides = None, output_dir: str | Path | None = None,
              quiet: bool = False):
    """Preference optimisation without RL (``rlhf train-dpo``); returns its result (run folder, metrics)."""
    from rlhf.stages.dpo import train_dpo as run_dpo

    loaded = load_profile(profile, overrides)
    _quiet_libraries()
    return run_dpo(loaded, output_dir=output_dir, console=_console(quiet))


def sft(profile: ProfileLike = "sft-tiny", *, overrides: Overrides = None, quiet: bool = False):
    """Chat-format supervised fine-tuning (``rlhf sft``); returns its result (output folder, metrics)."""
    from rlhf.stages.sft import train_sft

    loaded = load_profile(profile, overrides)
    _quiet_libraries()
    return train_sft(loaded, console=_console(quiet))


def push(run_dir: str | Path, repo: str, *, private: bool = False) -> str:
    """Upload a run's ``final/`` (model, tokenizer, model card) to the hub (``rlhf push``); the commit URL."""
    from rlhf.publish import push_run

    return push_run(run_dir, repo, private=private)


def plan(profile: ProfileLike = "a100-8b", *, overrides: Overrides = None, gpu_memory: float = 40.0,
         prompt_tokens: int = 64):
    """The GPU memory plan of a profile on paper (``rlhf plan``): rows, peak phase, total and fit."""
    from rlhf.planning import plan_memory, resolve_architecture

    loaded = load_profile(profile, overrides)
    return plan_memory(loaded, resolve_architecture(loaded), gpu_memory, prompt_tokens)


def check_reward(fn, *, declared_range: tuple[float, float] | None = None, max_examples: int = 50) -> list:
    """Property-test a reward (``rlhf check-reward``): one result per property (``.name``, ``.passed``,
    ``.counterexample``, ``.message``)."""
    from rlhf.rewards import load_reward
    from rlhf.testing import check_reward as check

    if isinstance(fn, (str, Mapping)):  # a registry name, module:function or an option mapping
        fn = load_reward(fn)
    return check(fn, declared_range, max_examples)


def _quiet_libraries() -> None:
    from rlhf.quiet import quiet_transformers

    quiet_transformers()


def _model_or_base(model, profile: str | None) -> str:
    """MODEL, or (``model=None``) the profile's own untrained model, materialised like a run's base."""
    if model is not None:
        return str(model)
    if profile is None:
        raise ValueError("give a MODEL (run folder, checkpoint, adapter, model folder or hub name) or a profile")
    from rlhf.models.factory import model_source

    loaded = load_profile(profile)
    return str(model_source(loaded.model, loaded.seed))


def generate(model: str | Path | None = None, *, out: str | Path, prompts: str | None = None, n: int = 1,
             profile: str | None = None, seed: int = 0, best_of: int = 1, batch_size: int = 64,
             rewards: Sequence | None = None, quiet: bool = False):
    """N completions per prompt with their rewards to a CSV (``rlhf generate``); ``model=None``: the profile's base.

    Returns the result (``.path``, ``.rows``, ``.rows_per_second``); ``rewards`` replace the profile's.
    """
    from rlhf.eval.generate import generate_csv, prompt_records_for
    from rlhf.eval.loading import load_model
    from rlhf.rewards import load_rewards

    for name, value in {"n": n, "best_of": best_of, "batch_size": batch_size}.items():
        if value < 1:
            raise ValueError(f"{name}={value}: must be at least 1")
    _quiet_libraries()
    loaded = load_model(_model_or_base(model, profile), profile)
    records = prompt_records_for(loaded, prompts)
    reward = load_rewards(rewards if rewards is not None else loaded.profile.rewards,
                          nonfinite=loaded.profile.trainer.nonfinite_rewards)
    return generate_csv(loaded, reward, records, n, out, seed=seed, best_of=best_of, batch_size=batch_size,
                        console=_console(quiet))


class Report:
    """An evaluation report: its folder (report.json, report.md, PNGs), ``data`` (report.json's content) and
    ``models``, the compared models' keys in ``data`` (``base``, ``tuned``, ``base_best_of_K``)."""

    def __init__(self, folder: Path, data: dict, models: list[str]) -> None:
        self.folder, self.data, self.models = folder, data, models

    def __repr__(self) -> str:
        return f"Report({str(self.folder)!r})"


def evaluate(run: str | Path, *, base: str | Path | None = None, prompts: str | None = None, samples: int = 32,
             out: str | Path | None = None, rewards: Sequence = (), best_of: int = 1, profile: str | None = None,
             quiet: bool = False) -> Report:
    """Base vs tuned report (``rlhf evaluate``): rewards, diversity, perplexity, hacking flags, figures."""
    from rlhf.eval.evaluate import draw_prompts, evaluate as run_evaluation, parse_reward_spec
    from rlhf.eval.loading import load_model
    from rlhf.eval.report import check_new_folder, new_report_dir, write_report

    if samples < 1 or best_of < 1:
        raise ValueError(f"samples={samples}, best_of={best_of}: both must be at least 1")
    _quiet_libraries()
    check_new_folder(out)
    extra = [parse_reward_spec(spec) if isinstance(spec, str) else spec for spec in rewards]
    tuned = load_model(str(run), profile)
    base_model = load_model(str(base), profile, require_profile=False) if base else None
    folder = new_report_dir(out, tuned.location.run_dir, Path(run).name)
    evaluation = run_evaluation(tuned, base_model, draw_prompts(tuned, prompts, samples), extra_rewards=extra,
                                best_of=best_of)
    meta = {"model": str(run), "base_model": str(base) if base else "the run's reference model",
            "seed": tuned.profile.seed, "prompts": prompts or tuned.profile.data.prompts,
            "rollout": tuned.profile.rollout.model_dump()}
    stats = tuned.location.run_dir / "meta_data" / "training_stats.csv" if tuned.location.run_dir else None
    return Report(folder, write_report(evaluation, folder, meta, stats), list(evaluation.models))


def serve(model: str | Path, *, base: str | Path | None = None, profile: str | None = None,
          host: str = "127.0.0.1", port: int | None = None, launch: bool = True):
    """The Gradio try-out app, base and tuned side by side (``rlhf serve``); ``launch=False`` only builds it."""
    from rlhf.eval.loading import load_model
    from rlhf.eval.serve import build_app, serve as start
    from rlhf.rewards import load_rewards

    _quiet_libraries()
    tuned = load_model(str(model), profile, require_profile=False)
    base_model = load_model(str(base), profile, require_profile=False) if base else None
    reward = load_rewards(tuned.profile.rewards) if tuned.profile.rewards else None
    app = build_app(tuned, base_model, reward, f"rlhf: {model}")
    if launch:
        start(app, host=host, port=port)
    return app
