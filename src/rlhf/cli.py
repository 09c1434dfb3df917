"""The ``rlhf`` command line: parse, load the profile, call one function per command.

User errors (bad profile, missing file, bad reward) print one readable message and exit with code 2;
no traceback from deep inside torch.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rlhf import __version__
from rlhf.config import (
    ProfileError, available_profiles, check_resume_overrides, load_profile, profile_description,
)
from rlhf.fsutil import explain_os_error
from rlhf.quiet import quiet_transformers, silence_known_chatter

app = typer.Typer(help="Reinforcement-learning fine-tuning of language models: PPO, GRPO and RLOO.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
profiles_app = typer.Typer(help="List and inspect profiles (profiles/*.yaml).", no_args_is_help=True)
app.add_typer(profiles_app, name="profiles")
console = Console()
err_console = Console(stderr=True)

ProfileOpt = Annotated[str, typer.Option("--profile", "-p", help="profile name in profiles/ or a YAML path")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", "-s", help="override, e.g. trainer.steps=10")]


class UserError(Exception):
    """An error caused by the user's input; shown as a message, exit code 2."""


_DEBUG = {"on": False}


@app.callback()
def main(debug: Annotated[bool, typer.Option("--debug", help="show full tracebacks of errors")] = False,
         verbose: Annotated[bool, typer.Option("--verbose", "-v", help="also show library logs, progress bars "
                                               "and known harmless warnings")] = False) -> None:
    """Reinforcement-learning fine-tuning of language models: PPO, GRPO and RLOO."""
    _DEBUG["on"] = debug
    silence_known_chatter(verbose)  # before any command imports peft/bitsandbytes


def _fail(exc: BaseException, code: int, message: str | None = None) -> typer.Exit:
    """Print one ``error:`` line (and the traceback under ``--debug``); return the Exit to raise."""
    if _DEBUG["on"]:
        import traceback

        err_console.print("".join(traceback.format_exception(exc)), markup=False, highlight=False)
    text = message if message is not None else str(exc)
    err_console.print(f"[bold red]error:[/] {escape(text)}", highlight=False, soft_wrap=True)
    return typer.Exit(code=code)


def user_errors(command):
    """Turn user-facing errors into one ``error:`` line and an exit code, never a traceback.

    Exit 2: bad input (profile, files, rewards; a reward's own exception names the reward). Exit 3: the
    training diverged (`rlhf run`). Errors not raised by rlhf's own checks (``KeyError``, ``ImportError``...) show
    their type too, so a library's message is not mistaken for a profile problem.
    """
    from rlhf.rewards.base import RewardError

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (ProfileError, UserError, RewardError, ValueError) as exc:
            raise _fail(exc, 2) from None
        except OSError as exc:  # read-only folder, a file in the way, disk full: which path and why
            raise _fail(exc, 2, explain_os_error(exc)) from None
        except (KeyError, ImportError) as exc:
            detail = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            raise _fail(exc, 2, f"{type(exc).__name__}: {detail}") from None

    return wrapper


def _quiet_libraries() -> None:
    """Silence library progress bars and info logs that drown the run's own output (not with --verbose)."""
    quiet_transformers()


@app.command()
def version() -> None:
    """Print the rlhf version and the versions of the libraries it runs on."""
    import importlib.metadata as md

    console.print(f"rlhf {__version__}")
    for package in ("torch", "transformers", "trl", "peft", "accelerate", "bitsandbytes"):
        try:
            console.print(f"  {package} {md.version(package)}")
        except md.PackageNotFoundError:
            console.print(f"  {package} (not installed)")


@profiles_app.command("list")
def profiles_list() -> None:
    """Profile names with their one-line descriptions."""
    table = Table("profile", "description", box=None)
    for name, path in available_profiles().items():
        table.add_row(name, profile_description(path))
    console.print(table)


@profiles_app.command("show")
@user_errors
def profiles_show(name: Annotated[str, typer.Argument(help="profile name or YAML path")],
                  overrides: SetOpt = None) -> None:
    """The fully resolved profile (extends and --set applied) as YAML."""
    profile = load_profile(name, overrides or [])
    typer.echo(profile.to_yaml(), nl=False)


@app.command()
@user_errors
def run(
    profile: Annotated[Optional[str], typer.Option("--profile", "-p", help="profile name in profiles/ or a "
                                                   "YAML path (default tiny-gpt2; not with --resume)")] = None,
    overrides: SetOpt = None,
    output_dir: Annotated[Optional[Path], typer.Option(help="parent folder of the run folder")] = None,
    resume: Annotated[Optional[Path], typer.Option(help="continue the run in this folder")] = None,
    merge: Annotated[bool, typer.Option(help="also save a copy with LoRA merged into the weights")] = False,
    dry_run: Annotated[bool, typer.Option(help="check what the run needs, load nothing, print a checklist")] = False,
    gpu_memory: Annotated[Optional[float], typer.Option(help="--dry-run: plan against this many GiB")] = None,
) -> None:
    """Optimise a policy with PPO, GRPO or RLOO against the profile's rewards."""
    # Validate everything the user typed before the heavy imports: a typo is reported in ~1 s, not ~6 s.
    if resume is not None:
        if profile is not None:
            raise UserError(f"--resume {resume} continues with the run's own profile.yaml; drop -p {profile} "
                            "(start a new run with -p instead)")
        if not (resume / "profile.yaml").exists():
            raise UserError(f"--resume {resume}: no profile.yaml there; is it a run folder?")
        check_resume_overrides(overrides or [])
        loaded = load_profile(resume / "profile.yaml", overrides or [])
    else:
        loaded = load_profile(profile or "tiny-gpt2", overrides or [])
    profile_ref = profile or (str(resume / "profile.yaml") if resume is not None else "tiny-gpt2")  # for fixes
    _quiet_libraries()
    from rlhf.rl.trainer import TrainingAborted, TrainingDiverged, TrainingInterrupted, run as run_training

    if dry_run:
        from rlhf.preflight import preflight, print_checklist

        checklist = preflight(loaded, profile_ref=profile_ref, output_dir=output_dir,
                              resume_dir=resume, gpu_memory=gpu_memory)
        print_checklist(checklist, console)
        if not checklist.ready:
            raise UserError(checklist.error_message())
        return
    try:
        result = run_training(loaded, output_dir=output_dir, resume_dir=resume, merge=merge, console=console,
                              profile_ref=profile_ref)
    except TrainingInterrupted as exc:
        err_console.print(f"[bold yellow]interrupted:[/] {exc}. Continue with: rlhf run --resume {resume or exc.checkpoint.parents[1]}")
        raise typer.Exit(code=128 + int(exc.signum)) from None
    except TrainingAborted as exc:
        from rlhf.rl.checkpoint import latest_checkpoint

        last = latest_checkpoint(exc.run_dir)
        hint = f"; last checkpoint: {last} (rlhf run --resume {exc.run_dir})" if last else "; no checkpoint yet"
        err_console.print(f"[bold yellow]interrupted:[/] {exc}{hint}", soft_wrap=True, highlight=False)
        raise typer.Exit(code=128 + int(exc.signum)) from None
    except TrainingDiverged as exc:
        fix = f" Resume from it with a lower learning rate: rlhf run --resume {exc.checkpoint.parents[1]} " \
              f"--set trainer.learning_rate=..." if exc.checkpoint else ""
        raise _fail(exc, 3, f"{exc}.{fix}") from None
    from accelerate import PartialState

    if not PartialState().is_main_process:  # a multi-process launch: process 0 reports
        return
    lines = [("run folder", result.run_dir), ("final model", result.final_dir),
             ("merged model", result.merged_dir),
             ("training stats", result.run_dir / "meta_data" / "training_stats.csv"),
             ("samples", result.run_dir / "meta_data" / "generated_outputs.csv"),
             ("tensorboard", f"tensorboard --logdir {result.run_dir / 'tensorboard'}")]
    lines += [(f"last {key}", f"{result.last_metrics[key]:.4f}")
              for key in ("objective/scores", "objective/kl") if key in result.last_metrics]
    for label, value in lines:
        if value is not None:
            console.print(f"[bold]{label:>24}[/]  {value}", soft_wrap=True, highlight=False)


@app.command("train-reward")
@user_errors
def train_reward(profile: ProfileOpt = "tiny-gpt2", overrides: SetOpt = None) -> None:
    """Stage 1: train a reward model (pairwise Bradley-Terry or classifier) from the `reward_model:` section."""
    loaded = load_profile(profile, overrides or [])
    _quiet_libraries()
    from rlhf.stages.reward_model import train_reward_model

    if loaded.reward_model is None:
        raise UserError(f"profile {profile!r} has no `reward_model:` section (see profiles/reward-model-tiny.yaml)")
    result = train_reward_model(loaded.reward_model, seed=loaded.seed, console=console)
    console.print(f"reward model saved to {result.output_dir}; use it as a reward with "
                  f"`{{name: classifier, model: {result.output_dir}}}`", soft_wrap=True)


@app.command()
@user_errors
def pretrain(profile: ProfileOpt = "tiny-gpt2", overrides: SetOpt = None) -> None:
    """Causal-LM pretraining / SFT of the profile's model on the `pretrain:` section's corpus."""
    loaded = load_profile(profile, overrides or [])
    _quiet_libraries()
    from rlhf.stages.pretrain import pretrain as run_pretraining
    from rlhf.stages.pretrain import summary

    if loaded.pretrain is None:
        raise UserError(f"profile {profile!r} has no `pretrain:` section (see profiles/cpu-demo.yaml)")
    result = run_pretraining(loaded, console=console)
    out = result.output_dir
    console.print(f"pretrain: {summary(result.metrics)}; saved to [bold]{out}[/]. Use it with --set "
                  f"model.name_or_path={out} --set model.tokenizer={out} --set model.random_init=null", soft_wrap=True)


@app.command("train-dpo")
@user_errors
def train_dpo(profile: ProfileOpt = "dpo-tiny", overrides: SetOpt = None,
              output_dir: Annotated[Optional[Path], typer.Option(help="parent of the run folder")] = None) -> None:
    """Preference optimisation without RL (DPO, IPO, ... via TRL's DPOTrainer) from the `dpo:` section."""
    _quiet_libraries()
    from rlhf.stages.dpo import train_dpo as run_dpo

    loaded = load_profile(profile, overrides or [])
    if loaded.dpo is None:
        raise UserError(f"profile {profile!r} has no `dpo:` section (see profiles/dpo-tiny.yaml)")
    result = run_dpo(loaded, output_dir=output_dir, console=console)
    m = result.metrics
    console.print(f"dpo: held-out preference accuracy {m['eval_accuracy']:.3f}, reward margin {m['eval_margin']:.4f} "
                  f"over {m['num_eval']} pairs; run folder [bold]{result.run_dir}[/] (rlhf evaluate {result.run_dir})",
                  soft_wrap=True)


ModelArg = Annotated[str, typer.Argument(
    help="a run folder, a checkpoint folder, a LoRA adapter folder, a model folder or a hub name")]
ModelProfileOpt = Annotated[Optional[str], typer.Option(
    "--profile", "-p", help="sampling settings and rewards (default: the run's profile.yaml)")]
SeedOpt = Annotated[int, typer.Option(help="random seed of the sampling")]


def _at_least_one(**values: int) -> None:
    for name, value in values.items():
        if value < 1:
            raise UserError(f"--{name.replace('_', '-')} {value}: must be at least 1")


@app.command()
@user_errors
def sft(profile: ProfileOpt = "sft-tiny", overrides: SetOpt = None) -> None:
    """Chat-format supervised fine-tuning (TRL's SFTTrainer, assistant-only loss) from the `sft:` section."""
    _quiet_libraries()
    from rlhf.stages.sft import train_sft

    loaded = load_profile(profile, overrides or [])
    if loaded.sft is None:
        raise UserError(f"profile {profile!r} has no `sft:` section (see profiles/sft-tiny.yaml)")
    result = train_sft(loaded, console=console)
    m, out = result.metrics, result.output_dir
    console.print(f"sft: held-out loss {m['eval_loss_before']:.3f} -> {m['eval_loss_after']:.3f}; saved to "
                  f"[bold]{out}[/]. Use it with --set model.name_or_path={out} --set model.tokenizer={out} "
                  "--set model.random_init=null", soft_wrap=True)


@app.command()
@user_errors
def push(run_dir: Annotated[Path, typer.Argument(help="a run folder with final/ (rlhf run or train-dpo)")],
         repo: Annotated[str, typer.Option("--repo", help="hub repository, e.g. my-name/my-model")],
         private: Annotated[bool, typer.Option(help="create the repository as private")] = False) -> None:
    """Upload a run's final model (with its model card) to the Hugging Face Hub."""
    from rlhf.publish import push_run

    url = push_run(run_dir, repo, private=private)
    console.print(f"pushed {run_dir / 'final'} to {repo}: {url}", soft_wrap=True)


@app.command()
@user_errors
def generate(
    model: ModelArg,
    out: Annotated[Path, typer.Option(help="the CSV file to write (rows are streamed to it)")],
    prompts: Annotated[Optional[str], typer.Option(help="builtin:NAME, hf:NAME:SPLIT[:COLUMN] or a file "
                                                        "(default: the profile's data.prompts)")] = None,
    n: Annotated[int, typer.Option("--n", help="completions per prompt")] = 1,
    profile: ModelProfileOpt = None,
    seed: SeedOpt = 0,
    best_of: Annotated[int, typer.Option(help="sample K per row and keep the highest-reward one")] = 1,
    batch_size: Annotated[int, typer.Option(help="completions per generate call")] = 64,
) -> None:
    """Write N completions per prompt, with their rewards, to a CSV."""
    _at_least_one(n=n, best_of=best_of, batch_size=batch_size)
    from rlhf import api

    result = api.generate(model, out=out, prompts=prompts, n=n, profile=profile, seed=seed, best_of=best_of,
                          batch_size=batch_size)
    console.print(f"{result.rows} rows ({result.rows // n} prompts x {n}) in {result.seconds:.1f} s "
                  f"({result.rows_per_second:.1f} rows/s) -> {result.path}", soft_wrap=True, highlight=False)


@app.command()
@user_errors
def evaluate(
    run_dir: Annotated[str, typer.Argument(help="a run folder made by `rlhf run` (or any MODEL, with -p)")],
    base: Annotated[Optional[str], typer.Option(help="compare with this MODEL (default: the run's reference)")] = None,
    prompts: Annotated[Optional[str], typer.Option(help="prompt source (default: the profile's data)")] = None,
    samples: Annotated[int, typer.Option(help="prompts to complete with base and tuned model")] = 32,
    out: Annotated[Optional[Path], typer.Option(help="report folder (default: a new RUN/evaluations/<time>/)")] = None,
    reward: Annotated[Optional[list[str]], typer.Option(
        "--reward", help="also report this reward: a name, module:function or '{name: length, target: 8}'")] = None,
    best_of: Annotated[int, typer.Option(help="also report the base model's best of K samples")] = 1,
    profile: ModelProfileOpt = None,
) -> None:
    """Base vs tuned report: rewards, diversity, perplexity, reward-hacking flags, figures (JSON, Markdown, PNG)."""
    _at_least_one(samples=samples, best_of=best_of)
    from rlhf import api

    report = api.evaluate(run_dir, base=base, prompts=prompts, samples=samples, out=out, rewards=reward or [],
                          best_of=best_of, profile=profile)
    _print_report(report.data, report.models, report.folder)


def _print_report(report: dict, names: list[str], folder: Path) -> None:
    table = Table("metric", *names, title="evaluation")
    for key in ("reward_mean", "distinct_2", "repetition_rate", "mean_length", "perplexity"):
        table.add_row(key, *(f"{report[n][key]:.4g}" if report[n][key] is not None else "n/a" for n in names))
    console.print(table)
    flags = [f"{f['flag']}: {f['evidence']}" for n in names for f in report[n]["hacking_flags"]]
    for line in flags or ["no reward-hacking flag fired"]:
        console.print(f"[bold yellow]flag[/] {line}" if flags else line, soft_wrap=True, highlight=False)
    console.print(f"report: {folder / 'report.md'}", soft_wrap=True, highlight=False)


@app.command()
@user_errors
def chat(
    model: ModelArg,
    profile: ModelProfileOpt = None,
    seed: SeedOpt = 0,
    max_new_tokens: Annotated[Optional[int], typer.Option(help="reply length cap (default: the profile's)")] = None,
) -> None:
    """Chat with a model in the terminal (chat template if the tokenizer has one); stdin may be piped."""
    import sys

    _quiet_libraries()
    from rlhf.eval.chat import ChatSession, chat_loop, read_turns
    from rlhf.eval.loading import load_model

    loaded = load_model(model, profile, require_profile=False)
    if max_new_tokens is not None:
        _at_least_one(max_new_tokens=max_new_tokens)
        rollout = loaded.profile.rollout.model_copy(update={"max_new_tokens": max_new_tokens})
        loaded.profile = loaded.profile.model_copy(update={"rollout": rollout})
    session = ChatSession(loaded.model, loaded.tokenizer, loaded.profile.rollout, loaded.max_prompt_tokens, seed,
                          loaded.profile.data.system_prompt)
    interactive = sys.stdin.isatty()
    if interactive:
        console.print(f"chatting with {model} ({'chat template' if session.uses_template else 'plain continuation'}); "
                      "/reset starts over, Ctrl-D quits", soft_wrap=True)
    prompt = (lambda: console.print("you> ", end="")) if interactive else None
    chat_loop(session, read_turns(sys.stdin, prompt), lambda line: console.print(line, soft_wrap=True,
                                                                                  highlight=False, markup=False))


@app.command()
@user_errors
def serve(
    model: ModelArg,
    base: Annotated[Optional[str], typer.Option(help="the model shown on the left (default: the reference)")] = None,
    profile: ModelProfileOpt = None,
    host: Annotated[str, typer.Option(help="interface to bind; 0.0.0.0 exposes the app to the network")] = "127.0.0.1",
    port: Annotated[Optional[int], typer.Option(help="port (default: Gradio's, 7860 or the next free one)")] = None,
) -> None:
    """A small Gradio app to try the model: base and tuned side by side with their rewards (the `ui` extra)."""
    from rlhf import api

    api.serve(model, base=base, profile=profile, host=host, port=port)


@app.command("check-reward")
def check_reward(
    spec: Annotated[str, typer.Argument(help="module:function, path/file.py:function, or a registry name")],
    low: Annotated[Optional[float], typer.Option("--low", help="declared minimum of the reward")] = None,
    high: Annotated[Optional[float], typer.Option("--high", help="declared maximum of the reward")] = None,
    max_examples: Annotated[int, typer.Option(help="hypothesis examples per property")] = 50,
) -> None:
    """Property-test a reward function: finite, deterministic, batch-order and batch-split invariant, range."""
    from rlhf.testing import run_check_reward

    declared = None if low is None and high is None else (low if low is not None else float("-inf"),
                                                          high if high is not None else float("inf"))
    raise typer.Exit(code=run_check_reward(spec, declared, max_examples, console))


@app.command()
@user_errors
def plan(
    profile: ProfileOpt = "a100-8b",
    overrides: SetOpt = None,
    gpu_memory: Annotated[float, typer.Option(help="GPU memory in GiB")] = 40.0,
    prompt_tokens: Annotated[int, typer.Option(help="typical prompt length in tokens")] = 64,
    gpus: Annotated[Optional[int], typer.Option(min=1, help="GPUs the run is launched on (default: the fewest "
                                                            "that fit with strategy fsdp, else 1)")] = None,
) -> None:
    """Plan a profile's peak GPU memory on paper (weights, optimizer, KV cache, logits, activations) and time."""
    if not (math.isfinite(gpu_memory) and gpu_memory > 0):
        raise UserError(f"--gpu-memory {gpu_memory:g}: expected the GPU's memory in GiB, a finite number > 0 "
                        "(e.g. 24, 40 or 80)")
    from rlhf.planning import gpus_needed, plan_memory, resolve_architecture, time_summary

    loaded = load_profile(profile, overrides or [])
    arch = resolve_architecture(loaded)
    needed = gpus_needed(loaded, arch, gpu_memory, prompt_tokens)
    count = gpus or needed or 1
    result = plan_memory(loaded, arch, gpu_memory, prompt_tokens, count)
    table = Table("phase", "what", "GiB", "counted as",
                  title=f"memory plan per GPU: {profile}, strategy {loaded.trainer.strategy}, {count} GPU(s)")
    for phase, what, gib, note in result.rows:
        table.add_row(phase, what, f"{gib:.2f}", note)
    console.print(table)
    verdict = "[green]fits[/]" if result.fits else "[red]does not fit[/]"
    console.print(f"peak {result.total_gib:.1f} GiB per GPU (during {result.peak_phase}) on {count} x "
                  f"{gpu_memory:g} GiB GPUs: {verdict}")
    if needed is None and loaded.trainer.strategy == "ddp":
        console.print(f"needs: a GPU larger than {gpu_memory:g} GiB (strategy ddp holds the whole model on every "
                      "GPU; trainer.strategy: fsdp divides it)")
    elif needed is None:
        hint = (" (the rollout gathers the whole model on each GPU: trainer.fsdp.gather_for_generation: false "
                "gathers one block at a time)" if loaded.trainer.fsdp_options.gather_for_generation else "")
        console.print(f"needs: more than 64 x {gpu_memory:g} GiB GPUs, or larger GPUs{hint}")
    else:
        console.print(f"needs: {needed} x {gpu_memory:g} GiB GPU(s)")
    console.print(time_summary(loaded, arch, prompt_tokens), soft_wrap=True, highlight=False)
    if not result.fits:
        raise typer.Exit(code=1)


@app.command()
@user_errors
def bench(
    profile: ProfileOpt = "bench-grpo",
    overrides: SetOpt = None,
    against: Annotated[Optional[list[str]], typer.Option("--against", help="peer to time beside rlhf: trl")] = None,
    rounds: Annotated[int, typer.Option(help="measured rounds (one step of each contender per round)")] = 10,
    warmup: Annotated[int, typer.Option(help="rounds left out at the start")] = 1,
    threads: Annotated[int, typer.Option(help="torch threads per contender process")] = 1,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="also write every step's timings here")] = None,
) -> None:
    """Time the RL step and its phases beside the floor (generate + fwd/bwd + AdamW) and, with --against trl, TRL."""
    import json

    from rlhf.bench.compare import report_table, run_bench

    _quiet_libraries()
    unknown = sorted(set(against or []) - {"trl"})
    if unknown:
        raise UserError(f"--against {', '.join(unknown)}: the only peer is 'trl'")
    loaded = load_profile(profile, overrides or [])
    report = run_bench(loaded, profile, against=sorted(set(against or [])), rounds=rounds, threads=threads,
                       warmup=warmup, progress=lambda done, total: err_console.print(f"round {done}/{total}"))
    table, lines = report_table(report)
    console.print(table)
    for line in lines:
        console.print(line, highlight=False)
    if json_path is not None:
        json_path.write_text(json.dumps(report.to_dict(), indent=1) + "\n", encoding="utf-8")
