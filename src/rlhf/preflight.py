"""Preflight: resolve everything a run needs without loading weights (``rlhf run --dry-run``).

Each :class:`Check` has a status: ``ok``; ``todo`` (the run will do it first: download a model, train the
reward model, pretrain); ``warn`` (the run works, but not as meant: an 8B profile on a CPU); ``missing``
(the run cannot start; ``fix`` says how to fix it). Checks read config files, the Hugging Face cache and
the installed packages only: no weights, no network. :func:`check_before_run` runs the same checks in
front of every ``rlhf run``, so a missing reward model or package fails in seconds, not after the
policy has loaded.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rlhf import hub
from rlhf.config import Profile
from rlhf.planning import (
    A100_40GB, KNOWN, Architecture, architecture_from_config, cpu_device, estimate_step_time, format_duration,
    plan_memory, system_memory_gib,
)

Status = Literal["ok", "todo", "warn", "missing"]
GPU_SIZED_PARAMS = 1e9  # a model this large is meant for a GPU
MODEL_FILES = ("config.json",)
GATED_PREFIXES = ("meta-llama/",)  # hub organisations whose models need an accepted licence and a token
TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json", "vocab.json", "vocab.txt", "tokenizer.model")


@dataclass(frozen=True)
class Check:
    """One line of the checklist."""

    item: str
    status: Status
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class Preflight:
    """The checklist of one profile; ``ready`` when nothing is ``missing``."""

    checks: tuple[Check, ...]

    @property
    def blocking(self) -> list[Check]:
        return [c for c in self.checks if c.status == "missing"]

    @property
    def ready(self) -> bool:
        return not self.blocking

    def error_message(self) -> str:
        """One line naming every blocking check and its fix."""
        parts = [f"{c.item}: {c.detail}" + (f" (fix: {c.fix})" if c.fix else "") for c in self.blocking]
        count = "1 check blocks" if len(parts) == 1 else f"{len(parts)} checks block"
        return f"preflight: {count} the run: " + "; ".join(parts)


def preflight(profile: Profile, *, profile_ref: str = "PROFILE", output_dir: str | Path | None = None,
              resume_dir: str | Path | None = None, gpu_memory: float | None = None,
              check_rewards: bool = True) -> Preflight:
    """Every check of ``profile``; ``profile_ref`` is the ``-p`` value used in fix commands.

    ``check_rewards=False``: the rewards were given as Python objects (``rlhf.run(rewards=...)``), which
    the run builds itself, before the policy.
    """
    from rlhf.stages.pretrain import is_pretrained, pointed_at_pretrained

    checks = [Check("profile", "ok", f"{profile_ref}: {profile.description or 'no description'}")]
    run_profile = profile  # what the RL stage loads: the pretrained folder once pretraining ran
    if profile.pretrain is not None and resume_dir is None:
        done = is_pretrained(profile)
        checks.append(Check("pretraining", "ok" if done else "todo",
                            "cached from an earlier run" if done else
                            f"runs first on {profile.pretrain.corpus} (once; cached afterwards)"))
        run_profile = pointed_at_pretrained(profile)
        profile = run_profile if done else profile
    checks += _model_checks("policy", profile)
    checks += _prompt_checks(profile)
    if check_rewards:
        checks += reward_checks(profile, profile_ref)
    else:
        checks.append(Check("rewards", "ok", "given in Python; built before the policy loads"))
    hub_models = [profile.model.name_or_path, getattr(profile.reward_model, "name_or_path", None)]
    disk = _disk_check([name for name in hub_models if name and hub.needs_download(name)])
    checks += [disk] if disk is not None else []
    arch = _architecture(profile)
    checks.append(_accelerator_check(profile, arch))
    checks.append(_memory_check(profile, arch, gpu_memory))
    checks.append(_run_folder_check(run_profile, output_dir, resume_dir))
    return Preflight(tuple(checks))


def check_before_run(profile: Profile, *, console=None, **kwargs) -> Preflight:
    """:func:`preflight`, raising ``ValueError`` if it blocks; prints what is not plainly ``ok``."""
    result = preflight(profile, **kwargs)
    if console is not None and int(os.environ.get("RANK", "0")) == 0:
        for check in result.checks:
            if check.status in ("todo", "warn"):
                console.print(_line(check), soft_wrap=True, highlight=False, markup=False)
    if not result.ready:
        raise ValueError(result.error_message())
    return result


def print_checklist(result: Preflight, console) -> None:
    """The whole checklist, then a verdict line (``error:`` when something blocks, for one clear message)."""
    for check in result.checks:
        console.print(_line(check), soft_wrap=True, highlight=False, markup=False)
    todo = sum(c.status == "todo" for c in result.checks)
    warned = sum(c.status == "warn" for c in result.checks)
    if result.ready:
        notes = [f"{todo} todo item{'s' if todo > 1 else ''} done first" if todo else "",
                 f"{warned} warning{'s' if warned > 1 else ''}" if warned else ""]
        extra = "; ".join(n for n in notes if n)
        console.print(f"dry run: ready to run{' (' + extra + ')' if extra else ''}", soft_wrap=True, highlight=False)


def _line(check: Check) -> str:
    fix = f"  -> {check.fix}" if check.fix else ""
    return f"  [{check.status:^7}] {check.item}: {check.detail}{fix}"


# ------------------------------------------------------------------------------------- models


def _model_checks(who: str, profile: Profile) -> list[Check]:
    model = profile.model
    if model.random_init is not None:
        checks = [Check(f"{who} model", "ok", f"random {model.random_init.arch} built from model.random_init")]
    else:
        checks = [locate(f"{who} model", model.name_or_path, MODEL_FILES, "model.name_or_path")]
    checks.append(_tokenizer_check(f"{who} tokenizer", model.tokenizer, "model.tokenizer",
                                   needs_chat_template=profile.data.chat_template))
    return checks


def _tokenizer_check(item: str, name: str, key: str, needs_chat_template: bool = False) -> Check:
    if name == "builtin-bpe":
        if needs_chat_template:
            return Check(item, "missing", "builtin-bpe has no chat template but data.chat_template is true",
                         "set data.chat_template: false, or use an instruct model's tokenizer")
        return Check(item, "ok", "builtin-bpe (built offline)")
    check = locate(item, name, TOKENIZER_FILES, key)
    if check.status == "ok" and needs_chat_template and not _has_chat_template(name):
        return Check(item, "missing", f"{name} has no chat template but data.chat_template is true",
                     "set data.chat_template: false, or use an instruct model's tokenizer")
    return check


def _has_chat_template(name: str) -> bool:
    """A chat template in the tokenizer's ``chat_template.jinja`` or ``tokenizer_config.json`` (local or cached)."""
    def find(filename: str) -> Path | None:
        folder = Path(name).expanduser()
        path = folder / filename if folder.is_dir() else hub.cached_file(name, filename)
        return Path(path) if isinstance(path, (str, Path)) and Path(path).is_file() else None

    if find("chat_template.jinja") is not None:
        return True
    config = find("tokenizer_config.json")
    try:
        return config is not None and bool(json.loads(config.read_text(encoding="utf-8")).get("chat_template"))
    except (OSError, ValueError):
        return False


def locate(item: str, name: str, files: tuple[str, ...], key: str, *, local_hint: bool = False) -> Check:
    """Find a model or tokenizer: a local folder holding one of ``files``, else the HF cache, else the hub."""
    folder = Path(name).expanduser()
    if folder.is_dir():
        if any((folder / f).is_file() for f in files):
            return Check(item, "ok", f"{name} (local folder)")
        return Check(item, "missing", f"folder {name} has none of {', '.join(files)}",
                     f"set {key} to a folder saved with save_pretrained")
    if local_hint or folder.exists() or hub.looks_local(name):
        return Check(item, "missing", f"no folder {name}", f"set {key} to an existing folder or a hub name")
    if any(isinstance(hub.cached_file(name, f), str) for f in files):
        return Check(item, "ok", f"{name} (in the Hugging Face cache)")
    if hub.offline():
        return Check(item, "missing", f"{name} is not in the Hugging Face cache and HF_HUB_OFFLINE is set",
                     f"download it where there is network (hf download {name}), or unset HF_HUB_OFFLINE")
    if name.startswith(GATED_PREFIXES) and not hub.has_token():
        return Check(item, "missing", f"{name} is a gated model and no Hugging Face token is set",
                     f"accept its licence at https://huggingface.co/{name}, then run `hf auth login` (or set HF_TOKEN)")
    size = hub.download_bytes(name) if files == MODEL_FILES else 0
    size = f" (about {size / 1e9:.2g} GB)" if size else ""
    return Check(item, "todo", f"{name}: not in the Hugging Face cache; downloads on the first run{size}")


def _disk_check(names: list[str]) -> Check | None:
    """Free space in the Hugging Face cache for the weights still to download (known sizes only)."""
    import shutil

    from huggingface_hub import constants

    needed = sum(hub.download_bytes(name) for name in dict.fromkeys(names))
    if not needed:
        return None
    cache = Path(constants.HF_HUB_CACHE)
    existing = next(p for p in (cache, *cache.absolute().parents) if p.exists())
    free = shutil.disk_usage(existing).free
    detail = f"{needed / 1e9:.1f} GB to download into {cache}, {free / 1e9:.0f} GB free"
    if free < needed * 1.1:
        return Check("disk", "missing", detail, "free some space, or point HF_HOME at a larger disk")
    return Check("disk", "ok", detail)


# ------------------------------------------------------------------------------------- data


def _prompt_checks(profile: Profile) -> list[Check]:
    sources = [profile.data.prompts] if isinstance(profile.data.prompts, str) else list(profile.data.prompts)
    if not sources:
        return [Check("prompts", "missing", "data.prompts is an empty list",
                      "name a source, e.g. builtin:review-openers")]
    return [source_check("prompts", source, "data.prompts") for source in sources]


def source_check(item: str, source: str, key: str) -> Check:
    """A data source: a builtin set, a local file or folder, or a hub data set (cached or to download)."""
    from rlhf.data import BUILTIN_SETS, parse_source

    try:
        parsed = parse_source(source)
    except ValueError as exc:
        return Check(item, "missing", str(exc), f"fix {key}")
    if parsed.kind == "builtin":
        if parsed.name in BUILTIN_SETS:
            return Check(item, "ok", source)
        return Check(item, "missing", f"{source}: no such builtin set", f"use one of {', '.join(BUILTIN_SETS.names())}")
    if parsed.kind == "file":
        if Path(parsed.name).expanduser().is_file():
            return Check(item, "ok", f"{source} (local file)")
        return Check(item, "missing", f"{source}: no such file (relative to {Path.cwd()})", f"fix {key}")
    if Path(parsed.name).expanduser().is_dir():
        return Check(item, "ok", f"{source} (local data folder)")
    if hub.dataset_cached(parsed.name):
        return Check(item, "ok", f"{source} (in the Hugging Face cache)")
    if hub.offline(datasets=True):
        return Check(item, "missing", f"data set {parsed.name} is not in the Hugging Face cache and the hub is "
                     "offline (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE)",
                     f"download it where there is network (hf download {parsed.name} --repo-type dataset)")
    return Check(item, "todo", f"{source}: not in the Hugging Face cache; downloads on the first run")


# ------------------------------------------------------------------------------------- rewards


def reward_checks(profile: Profile, profile_ref: str = "PROFILE") -> list[Check]:
    """One check per reward (and the reward-model stage's inputs when it has to train)."""
    from rlhf.stages.reward_model import stage_users

    checks = []
    users = stage_users(profile)
    if not profile.rewards:
        checks.append(Check("rewards", "missing", "the profile has no rewards", "add one under rewards:"))
    for index, spec in enumerate(profile.rewards):
        item = f"reward {index} ({spec.name})"
        if index in users:
            checks += _stage_checks(item, profile, profile_ref)
        else:
            checks.append(_reward_check(item, index, spec, profile, profile_ref))
    return checks


def _stage_checks(item: str, profile: Profile, profile_ref: str) -> list[Check]:
    from rlhf.stages.reward_model import EVAL_FILE, stage_state, stage_summary, stage_users

    cfg, state = profile.reward_model, stage_state(profile)
    if state == "trained":
        metrics = json.loads((Path(cfg.output_dir) / EVAL_FILE).read_text(encoding="utf-8"))["metrics"]
        return [Check(item, "ok", f"{cfg.output_dir}: trained by the reward_model: section ({stage_summary(metrics)})")]
    if state == "foreign":
        return [Check(item, "ok", f"{cfg.output_dir}: a model made elsewhere (no {EVAL_FILE}); used as it is")]
    label = next((profile.rewards[i].options.get("label") for i in stage_users(profile)), None)
    if cfg.kind == "classifier" and isinstance(label, int) and not 0 <= label < cfg.num_labels:
        return [Check(item, "missing", f"label {label} is not a class of the reward model "
                      f"(reward_model.num_labels={cfg.num_labels})",
                      f"set the reward's label to 0..{cfg.num_labels - 1}")]
    why = "not trained yet" if state == "missing" else "trained with other reward_model: settings"
    checks = [Check(item, "todo", f"{cfg.output_dir}: {why}; the run trains it first ({cfg.kind} on {cfg.data}, "
                    f"{cfg.epochs:g} epoch{'' if cfg.epochs == 1 else 's'})")]
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        checks.append(Check("reward model stage", "missing", "a multi-process launch does not train the reward model",
                            f"train it once first: rlhf train-reward -p {profile_ref}"))
    if cfg.random_init is None:
        checks.append(locate("reward model base", cfg.name_or_path, MODEL_FILES, "reward_model.name_or_path"))
    checks.append(_tokenizer_check("reward model tokenizer", cfg.tokenizer, "reward_model.tokenizer"))
    checks.append(source_check("reward model data", cfg.data, "reward_model.data"))
    return checks


def _reward_check(item: str, index: int, spec, profile: Profile, profile_ref: str) -> Check:
    from rlhf.rewards import REWARDS, load_reward

    options = spec.options
    if spec.name not in REWARDS or not (set(REWARDS.get(spec.name).requires) or "model" in options):
        try:  # plain rewards and module:function are cheap to build: validate them fully
            load_reward(spec)
        except (ValueError, ImportError) as exc:
            return Check(item, "missing", str(exc), f"fix rewards.{index}")
        return Check(item, "ok", "options valid")
    cls = REWARDS.get(spec.name)
    unknown = sorted(set(options) - set(cls.model_fields) - {"shaping"})
    if unknown:
        return Check(item, "missing", f"unknown option {unknown[0]!r}; valid options: {', '.join(cls.model_fields)}",
                     f"fix rewards.{index}")
    for module, extra in cls.requires:
        if not package_installed(module):
            return Check(item, "missing", f"optional package {module.split('.')[0]!r} is not installed",
                         f"pip install 'rlhf[{extra}]'")
    if isinstance(options.get("tokenizer"), str):
        tokenizer = _tokenizer_check(item, options["tokenizer"], f"rewards.{index}.tokenizer")
        if tokenizer.status == "missing":
            return tokenizer
    if "model" in options:
        check = locate(item, str(options["model"]), MODEL_FILES, f"rewards.{index}.model",
                       local_hint=_under(str(options["model"]), profile.trainer.output_dir))
        if check.status == "missing" and spec.name == "classifier":
            return Check(item, "missing", check.detail, f"train it with `rlhf train-reward -p {profile_ref}` (a "
                         f"reward_model: section with output_dir: {options['model']}), or set rewards.{index}.model")
        return check
    return Check(item, "ok", "optional packages installed")


def package_installed(module: str) -> bool:
    """Whether ``module`` can be imported (found without importing it, except for its parent packages)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _under(path: str, output_dir: str) -> bool:
    """``outputs/...`` (``trainer.output_dir``): where runs and stages write, never a hub organisation."""
    return Path(path).parts[:1] == Path(output_dir).parts[:1]


# ------------------------------------------------------------------------------------- device


def _architecture(profile: Profile) -> Architecture | None:
    """The policy's shapes from the known table, a local or cached config.json, or random_init; None if unknown."""
    from rlhf.planning import resolve_architecture

    model = profile.model
    if model.random_init is not None or model.name_or_path in KNOWN:
        return resolve_architecture(profile)
    local = Path(model.name_or_path).expanduser() / "config.json"
    cached = hub.cached_file(model.name_or_path, "config.json")
    path = local if local.is_file() else Path(cached) if isinstance(cached, str) else None
    if path is None:
        return None
    try:
        return architecture_from_config(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, StopIteration):
        return None


def _accelerator_check(profile: Profile, arch: Architecture | None) -> Check:
    import torch

    steps = profile.trainer.steps
    if profile.model.quantization is not None and not package_installed("bitsandbytes"):
        return Check("accelerator", "missing", "model.quantization needs bitsandbytes, which is not installed",
                     "pip install bitsandbytes")
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        if profile.trainer.mixed_precision == "bf16" and not torch.cuda.is_bf16_supported():
            return Check("accelerator", "missing", f"CUDA {name} has no bfloat16 but trainer.mixed_precision=bf16",
                         "--set trainer.mixed_precision=fp16")
        speed = ""
        if arch is not None:
            t = estimate_step_time(profile, arch, A100_40GB)
            speed = f"; on an A100 expect about {format_duration(t.step_s)} per step (estimate)"
        return Check("accelerator", "ok", f"CUDA: {name}{speed}")
    if arch is None:
        return Check("accelerator", "warn", "no CUDA GPU, and the model's size is unknown until its config is "
                     "downloaded")
    params = arch.linear_params + arch.embedding_params
    if params < GPU_SIZED_PARAMS:
        return Check("accelerator", "ok", f"CPU ({params / 1e6:.1f} M parameters: sized for a CPU)")
    cpu, gpu = (estimate_step_time(profile, arch, device) for device in (cpu_device(), A100_40GB))
    return Check("accelerator", "warn",
                 f"no CUDA GPU: this profile is meant for one ({params / 1e9:.1f} B parameters). Expected speed "
                 f"(estimate): about {format_duration(cpu.step_s)} per RL step on {cpu.device} "
                 f"({format_duration(cpu.run_s(steps))} for {steps} steps), against about "
                 f"{format_duration(gpu.step_s)} per step ({format_duration(gpu.run_s(steps))}) on {gpu.device}",
                 "run it on a machine with a CUDA GPU; on a CPU try -p tiny-llama-4bit")


def _memory_check(profile: Profile, arch: Architecture | None, gpu_memory: float | None) -> Check:
    import torch

    if arch is None:
        return Check("memory plan", "todo", "planned once the model's config.json is available")
    if gpu_memory is not None:
        memory, where = gpu_memory, f"{gpu_memory:g} GiB (--gpu-memory)"
    elif torch.cuda.is_available():
        memory = torch.cuda.get_device_properties(0).total_memory / 2**30
        where = f"{memory:.0f} GiB of GPU memory"
    else:
        memory = system_memory_gib()
        where = f"{memory:.0f} GiB of system RAM (no GPU)"
    plan = plan_memory(profile, arch, memory)
    detail = f"peak {plan.total_gib:.1f} GiB (during {plan.peak_phase}) of {where}"
    if plan.fits:
        return Check("memory plan", "ok", detail)
    return Check("memory plan", "missing", f"{detail}: does not fit",
                 "lower rollout.micro_batch_size, algo.mini_batch_size or rollout.max_new_tokens, or use "
                 "model.quantization with model.lora (see `rlhf plan`)")


def _run_folder_check(profile: Profile, output_dir: str | Path | None, resume_dir: str | Path | None) -> Check:
    from rlhf.rl.trainer import run_dir_name

    if resume_dir is not None:
        return Check("run folder", "ok", f"resumes {resume_dir}")
    run_dir = Path(output_dir or profile.trainer.output_dir) / run_dir_name(profile)
    existing = next(p for p in (run_dir, *run_dir.absolute().parents) if p.exists())
    if not os.access(existing, os.W_OK):
        return Check("run folder", "missing", f"{run_dir.parent}: not writable ({existing} is read-only)",
                     "pass --output-dir to a writable folder")
    return Check("run folder", "ok", f"{run_dir} (name with the start time)")
