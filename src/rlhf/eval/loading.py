"""Turn a MODEL argument (+ optional profile) into what the after-training commands need.

MODEL may be

- a **run folder** (``profile.yaml`` + ``final/``): the final model, with the run's profile;
- a **checkpoint folder** (``checkpoints/step-N/`` with ``policy/``): that step's model, with the profile
  of the run two levels above;
- a **LoRA adapter folder** (``adapter_config.json``, e.g. a run's ``final/``) or a **model folder**
  (``config.json``): the profile next to it (``final/`` -> its run) when there is one;
- a **hub name** (``org/name``).

The profile gives the sampling settings (``rollout``), the rewards and the default prompts. A run's own
profile always gives the model section (it knows how the weights were built); ``-p`` then replaces
everything else. Without a run, ``-p`` gives everything and MODEL replaces its model section.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rlhf.config import Lora, Profile, load_profile
from rlhf.models.factory import build_policy, load_causal_lm
from rlhf.models.policy import Policy
from rlhf.models.tokenizer import load_tokenizer
from rlhf.rl.checkpoint import POLICY_DIR, STATE_FILE

PROFILE_FILE = "profile.yaml"
FINAL_DIR = "final"


@dataclass(frozen=True)
class ModelLocation:
    """Where MODEL's weights are, what kind they are, and the run they belong to (if any)."""

    kind: str  # "run" | "checkpoint" | "adapter" | "model" | "hub"
    weights: str  # folder or hub name
    run_dir: Path | None = None

    @property
    def run_profile(self) -> Path | None:
        path = self.run_dir / PROFILE_FILE if self.run_dir is not None else None
        return path if path is not None and path.is_file() else None


def locate_model(model: str | Path) -> ModelLocation:
    """Classify MODEL; ``ValueError`` naming it when it is a path but not a model."""
    path = Path(model).expanduser()
    if path.is_dir():
        if (path / FINAL_DIR).is_dir() and (path / PROFILE_FILE).is_file():
            return ModelLocation("run", str(path / FINAL_DIR), path)
        if (path / POLICY_DIR).is_dir() and (path / STATE_FILE).is_file():
            return ModelLocation("checkpoint", str(path / POLICY_DIR), path.resolve().parents[1])
        kind = "adapter" if (path / "adapter_config.json").is_file() else "model" if (path / "config.json").is_file() else None
        if kind is None:
            raise ValueError(
                f"MODEL {str(model)!r} is a folder but not a model: expected a run folder (profile.yaml + final/), "
                "a checkpoint folder (policy/), a LoRA adapter folder (adapter_config.json) or a model folder "
                "(config.json)"
            )
        return ModelLocation(kind, str(path), _owning_run(path))
    text = str(model)
    if path.exists() or text.startswith((".", "/", "~")) or text.count("/") > 1 or text.endswith(("/", ".yaml")):
        raise ValueError(f"MODEL {text!r}: no such folder (relative to {Path.cwd()}); give a run, checkpoint, "
                         "adapter or model folder, or a hub name such as gpt2")
    return ModelLocation("hub", text)


def _owning_run(folder: Path) -> Path | None:
    """The run a weights folder belongs to: ``RUN/final`` or ``RUN/checkpoints/step-N/policy``."""
    folder = folder.resolve()
    if (folder.parent / PROFILE_FILE).is_file():
        return folder.parent
    if folder.name == POLICY_DIR and folder.parent.parent.name == "checkpoints":
        return folder.parents[2]
    return None


def resolve_profile(location: ModelLocation, profile: str | None, *, required: bool = True) -> Profile | None:
    """The profile for MODEL: the run's model section with ``-p``'s (or the run's) other sections."""
    run_profile = load_profile(location.run_profile) if location.run_profile else None
    chosen = load_profile(profile) if profile else run_profile
    if chosen is None:
        if required:
            raise ValueError(f"MODEL {location.weights!r} does not belong to a run (no profile.yaml next to it): "
                             "give -p PROFILE for its sampling settings and rewards, e.g. -p tiny-gpt2")
        return None
    if run_profile is not None:
        return chosen.model_copy(update={"model": run_profile.model})
    return chosen.model_copy(update={"model": _model_section(location, chosen)})


def _model_section(location: ModelLocation, profile: Profile):
    """``profile.model`` pointed at a weights folder or hub name that is not part of a run."""
    update = {"random_init": None, "gradient_checkpointing": False}
    if location.kind == "adapter":
        config = json.loads((Path(location.weights) / "adapter_config.json").read_text(encoding="utf-8"))
        base = config.get("base_model_name_or_path")
        if not base:
            raise ValueError(f"{location.weights}/adapter_config.json names no base_model_name_or_path")
        update.update(name_or_path=base, lora=profile.model.lora or Lora())
    else:
        update.update(name_or_path=location.weights, lora=None, quantization=None)
    update["tokenizer"] = _tokenizer_source(location, update["name_or_path"], profile.model.tokenizer)
    return profile.model.model_copy(update=update)


def _tokenizer_source(location: ModelLocation, base: str, fallback: str) -> str:
    for folder in (location.weights, base):
        if (Path(folder) / "tokenizer_config.json").is_file():
            return str(folder)
    return location.weights if location.kind == "hub" else fallback


@dataclass
class LoadedModel:
    """A model ready to generate: the network (and its reference), tokenizer, profile and provenance."""

    location: ModelLocation
    profile: Profile | None
    tokenizer: object
    policy: Policy

    @property
    def model(self):
        return self.policy.model

    @property
    def max_prompt_tokens(self) -> int | None:
        """Prompt tokens that leave room for ``max_new_tokens`` in the model's context (None: unlimited)."""
        config = self.policy.model.config
        context = getattr(config, "max_position_embeddings", getattr(config, "n_positions", None))
        new = self.profile.rollout.max_new_tokens if self.profile else 0
        return context - new if context else None


def load_model(model: str | Path, profile: str | None = None, *, require_profile: bool = True) -> LoadedModel:
    """Load MODEL for generation, with its reference model (the base it was trained from) for comparisons.

    Without a profile (``require_profile=False`` and none found), the model is loaded as a plain model
    with the default sampling settings.
    """
    location = locate_model(model)
    resolved = resolve_profile(location, profile, required=require_profile)
    if resolved is None:  # the schema's defaults: default sampling settings, no rewards
        defaults = Profile(model={"name_or_path": location.weights})
        resolved = defaults.model_copy(update={"model": _model_section(location, defaults)})
    cfg = resolved.model.model_copy(update={"gradient_checkpointing": False})
    try:
        tokenizer = load_tokenizer(_saved_tokenizer(location) or cfg.tokenizer)
        if location.run_dir is not None or location.kind == "adapter":  # reference: the base it was trained from
            policy = build_policy(cfg, with_value_head=False, seed=resolved.seed, adapter_dir=location.weights)
        else:  # a plain model is its own reference: no second copy
            network = load_causal_lm(cfg.name_or_path, cfg)
            policy = Policy(network, None, network, uses_lora=False)
    except (ValueError, OSError) as exc:  # transformers says "Unrecognized model" etc. without saying whose
        raise ValueError(f"could not load MODEL {str(model)!r}: {exc}") from exc
    policy.eval()
    return LoadedModel(location, resolved, tokenizer, policy)


def _saved_tokenizer(location: ModelLocation) -> str | None:
    folder = Path(location.weights)
    return str(folder) if location.kind != "hub" and (folder / "tokenizer_config.json").is_file() else None
