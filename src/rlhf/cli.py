"""The ``rlhf`` command line: parse, load the profile, call one function per command.

User errors (bad profile, missing file, bad reward) print one readable message and exit with code 2;
no traceback from deep inside torch.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from rlhf import __version__
from rlhf.config import ProfileError, available_profiles, load_profile, profile_description

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


def user_errors(command):
    """Turn known user-facing errors into a one-line message and exit code 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (ProfileError, UserError, ValueError, FileNotFoundError, KeyError, ImportError) as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            err_console.print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
            raise typer.Exit(code=2) from None

    return wrapper


def _quiet_libraries() -> None:
    """Silence library progress bars and info logs that drown the run's own output."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


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
