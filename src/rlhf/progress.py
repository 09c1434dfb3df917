"""Console output of a run: a rich progress bar with the live reward and KL, and sample tables."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table


@contextmanager
def step_progress(console: Console, total: int, start: int, enabled: bool = True) -> Iterator[Callable]:
    """Yield ``update(step, metrics)``; shows steps done, reward and KL, elapsed and remaining time."""
    if not enabled or console.quiet:
        yield lambda step, metrics: None
        return
    columns = [TextColumn("[bold]RL"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
               TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("", total=total, completed=start)

        def update(step: int, metrics: dict[str, float]) -> None:
            text = (f"reward {metrics.get('objective/scores', float('nan')):+.3f}  "
                    f"kl {metrics.get('objective/kl', float('nan')):.3f}")
            progress.update(task, completed=step, description=text)

        yield update


def print_samples(console: Console, step: int, prompts: list[str], completions: list[str],
                  rewards: list[float], count: int = 3) -> None:
    """A table of the first ``count`` prompt / completion / reward triples."""
    table = Table("prompt", "completion", "reward", title=f"samples at step {step}", show_lines=True)
    for prompt, completion, reward in list(zip(prompts, completions, rewards))[:count]:
        table.add_row(prompt[-200:], completion[:300], f"{reward:+.3f}")
    console.print(table)
