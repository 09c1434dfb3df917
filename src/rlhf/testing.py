"""Generic property checks for any reward function, for ``rlhf check-reward`` and for users' own test suites.

The properties run under hypothesis on generated batches of prompts and completions (ASCII, Unicode,
empty, very long and word-like strings). All properties share one run, so a reward is called about six
times per example; when one fails, hypothesis shrinks the batch to a minimal failing example, and the run
repeats for the properties not yet decided. In a pytest suite::

    from rlhf.testing import assert_reward_properties, reward_properties

    def test_my_reward():
        assert_reward_properties(my_pkg.rewards.politeness, declared_range=(0.0, 1.0))

    @pytest.mark.parametrize("prop", reward_properties, ids=str)
    def test_each_property(prop):
        prop.assert_holds(my_pkg.rewards.politeness)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import strategies as st
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rlhf.rewards.base import RewardFn, RewardOutputError, as_values

Batch = tuple[list[str], list[str]]  # (prompts, completions)
Range = tuple[float, float]
_ABS_TOLERANCE, _REL_TOLERANCE = 1e-5, 1e-4  # batched model forward passes differ in the last bits
_WORDS = ["the", "a", "film", "nurse", "great", "awful", "confident", "caring", "kind", "ambitious", "sorry",
          "love", "idiot", "7", "Rating:", "!", "é", "日本"]


class PropertyFailure(Exception):
    """A reward broke a property; the message says how."""


@dataclass(frozen=True)
class PropertyResult:
    """The outcome of one property: the minimal failing example (shown shortened) and why it failed."""

    name: str
    passed: bool
    counterexample: str | None = None
    message: str = ""


def _texts() -> st.SearchStrategy[str]:
    return st.one_of(
        st.just(""),
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40),  # printable ASCII
        st.text(alphabet=st.characters(codec="ascii"), max_size=20),  # with control characters
        st.text(max_size=40),
        st.lists(st.sampled_from(_WORDS), max_size=20).map(" ".join),
        st.builds(lambda piece, times: piece * times, st.text(min_size=1, max_size=12), st.integers(100, 400)),
    )


def batches(min_size: int = 1, max_size: int = 6) -> st.SearchStrategy[Batch]:
    """Batches ``(prompts, completions)`` of generated texts."""
    pairs = st.lists(st.tuples(_texts(), _texts()), min_size=min_size, max_size=max_size)
    return pairs.map(lambda items: ([p for p, _ in items], [c for _, c in items]))


@dataclass
class Trial:
    """One generated example: a batch, a reordering and a split point; the plain scores are computed once."""

    fn: RewardFn
    prompts: list[str]
    completions: list[str]
    order: list[int]
    split: int
    declared_range: Range | None

    @functools.cached_property
    def scores(self) -> list[float | None]:
        return self.score(self.prompts, self.completions)

    def score(self, prompts: list[str], completions: list[str]) -> list[float | None]:
        try:
            return as_values("reward", self.fn(list(prompts), list(completions)), completions)
        except RewardOutputError as exc:  # wrong length or type, also when raised by a loaded Reward wrapper
            raise PropertyFailure(str(exc)) from None
        except (Exception, SystemExit) as exc:  # any crash (sys.exit too) is a property failure
            raise PropertyFailure(f"the reward raised {type(exc).__name__}: {exc}") from exc

    def show(self, completions: list[str] | None = None, extra: str = "") -> str:
        completions = self.completions if completions is None else completions
        return (f"prompts=[{', '.join(map(_show, self.prompts))}], "
                f"completions=[{', '.join(map(_show, completions))}]{extra}")


@st.composite
def trials(draw: st.DrawFn, fn: RewardFn, declared_range: Range | None) -> Trial:
    prompts, completions = draw(batches())
    order = draw(st.permutations(range(len(completions))))
    split = draw(st.integers(1, len(completions) - 1)) if len(completions) > 1 else 0
    return Trial(fn, prompts, completions, list(order), split, declared_range)


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    if math.isnan(a) or math.isnan(b):  # NaN is the finiteness property's business
        return math.isnan(a) and math.isnan(b)
    return a == b or math.isclose(a, b, rel_tol=_REL_TOLERANCE, abs_tol=_ABS_TOLERANCE)


def _compare(what: str, expected: list[float | None], got: list[float | None], completions: list[str]) -> None:
    for index, (a, b) in enumerate(zip(expected, got)):
        if not _same(a, b):
            raise PropertyFailure(f"{what}: completion {index} ({_show(completions[index])}) scored {a} and {b}")


def _finite(trial: Trial) -> None:
    for index, value in enumerate(trial.scores):
        if value is not None and not math.isfinite(value):
            raise PropertyFailure(f"value {value} at index {index} for completion {_show(trial.completions[index])}")


def _deterministic(trial: Trial) -> None:
    _compare("two calls differ", trial.scores, trial.score(trial.prompts, trial.completions), trial.completions)


def _permutation(trial: Trial) -> None:
    order = trial.order
    completions = [trial.completions[i] for i in order]
    permuted = trial.score([trial.prompts[i] for i in order], completions)
    _compare(f"batch reordered as {order}", [trial.scores[i] for i in order], permuted, completions)


def _halves(trial: Trial) -> None:
    if trial.split:
        split, prompts, completions = trial.split, trial.prompts, trial.completions
        parts = trial.score(prompts[:split], completions[:split]) + trial.score(prompts[split:], completions[split:])
        _compare(f"whole batch vs. split at {split}", trial.scores, parts, completions)


def _empty(trial: Trial) -> None:
    trial.score(trial.prompts, _first_emptied(trial))


def _first_emptied(trial: Trial) -> list[str]:
    return [""] + trial.completions[1:]


def _in_range(trial: Trial) -> None:
    low, high = trial.declared_range
    for index, value in enumerate(trial.scores):
        if value is not None and not low - 1e-9 <= value <= high + 1e-9:
            raise PropertyFailure(f"value {value} at index {index} is outside the declared range [{low}, {high}] "
                                  f"for completion {_show(trial.completions[index])}")


@dataclass(frozen=True)
class RewardProperty:
    """One generic property of rewards: ``check`` raises :class:`PropertyFailure`; ``shows`` the input it used."""

    name: str
    description: str
    check: Callable[[Trial], None]
    needs_range: bool = False
    shows: Callable[[Trial], str] = Trial.show

    def __str__(self) -> str:
        return self.name

    def run(self, fn: RewardFn, declared_range: Range | None = None, max_examples: int = 50) -> PropertyResult:
        return check_reward(fn, declared_range, max_examples, properties=[self])[0]

    def assert_holds(self, fn: RewardFn, declared_range: Range | None = None, max_examples: int = 50) -> None:
        result = self.run(fn, declared_range, max_examples)
        if not result.passed:
            raise AssertionError(_failure_text(result))


reward_properties: tuple[RewardProperty, ...] = (
    RewardProperty("one finite float per input", "one float or None per completion, never NaN/inf", _finite),
    RewardProperty("deterministic", "the same batch scores the same twice", _deterministic),
    RewardProperty("batch order", "permuting the batch permutes the scores", _permutation,
                   shows=lambda trial: trial.show(extra=f", order={trial.order}")),
    RewardProperty("batch split", "scoring in two halves equals scoring at once", _halves,
                   shows=lambda trial: trial.show(extra=f", split={trial.split}")),
    RewardProperty("empty completion", "an empty completion does not crash", _empty,
                   shows=lambda trial: trial.show(_first_emptied(trial))),
    RewardProperty("declared range", "every value lies in the declared range", _in_range, needs_range=True),
)


def check_reward(fn: RewardFn, declared_range: Range | None = None, max_examples: int = 50,
                 properties: Sequence[RewardProperty] = reward_properties) -> list[PropertyResult]:
    """Check ``properties`` on ``fn``; ``declared_range`` defaults to ``fn.value_range`` if it has one.

    >>> results = check_reward(lambda prompts, completions, **kw: [len(c) / 10 for c in completions],
    ...                        declared_range=(0.0, 1.0), max_examples=25)
    >>> [(r.name, r.passed) for r in results if not r.passed]
    [('declared range', False)]
    """
    if declared_range is None:
        declared_range = _declared_range(fn)
    results: dict[str, PropertyResult] = {}
    for prop in properties:
        if prop.needs_range and declared_range is None:
            results[prop.name] = PropertyResult(prop.name, True, None, "no range declared: skipped")
    remaining = [prop for prop in properties if prop.name not in results]
    while remaining:
        failure = _first_failure(fn, remaining, declared_range, max_examples)
        if failure is None:
            break
        results[failure.name] = failure
        remaining = [prop for prop in remaining if prop.name != failure.name]
    return [results.get(prop.name, PropertyResult(prop.name, True)) for prop in properties]


def _first_failure(fn: RewardFn, properties: Sequence[RewardProperty], declared_range: Range | None,
                   max_examples: int) -> PropertyResult | None:
    """Run ``properties`` together under hypothesis: the shrunk failure of one of them, or None."""
    last: dict[str, PropertyResult] = {}

    def body(trial: Trial) -> None:
        for prop in properties:
            try:
                prop.check(trial)
            except PropertyFailure as exc:
                last["failure"] = PropertyResult(prop.name, False, prop.shows(trial), str(exc))
                break
        else:
            return
        # One raise site, so hypothesis shrinks all properties' failures as one; its final call (recorded
        # in ``last``) is the minimal example.
        raise PropertyFailure(last["failure"].message)

    test = settings(database=None, max_examples=max_examples, deadline=None, derandomize=True,
                    suppress_health_check=list(HealthCheck), report_multiple_bugs=False, print_blob=False,
                    verbosity=Verbosity.quiet, phases=[Phase.explicit, Phase.generate, Phase.shrink],
                    )(given(trials(fn, declared_range))(body))
    try:
        test()
    except PropertyFailure:
        return last["failure"]
    except Exception as exc:  # e.g. hypothesis's FlakyFailure: the failure did not reproduce
        if "failure" not in last:
            raise
        failure = last["failure"]
        return PropertyResult(failure.name, False, failure.counterexample,
                              f"{failure.message} (did not reproduce: {type(exc).__name__})")
    return None


def assert_reward_properties(fn: RewardFn, declared_range: Range | None = None, max_examples: int = 50) -> None:
    """``AssertionError`` listing every failed property with its minimal example."""
    failures = [result for result in check_reward(fn, declared_range, max_examples) if not result.passed]
    if failures:
        raise AssertionError("\n".join(_failure_text(result) for result in failures))


def render_report(results: Sequence[PropertyResult], title: str = "reward properties") -> Table:
    """A rich table: property, PASS/FAIL, minimal failing example and message."""
    table = Table(title=escape(title))
    table.add_column("property")
    table.add_column("result")
    table.add_column("minimal failing example / note", overflow="fold")
    for result in results:
        verdict = "[green]PASS[/green]" if result.passed else "[red]FAIL[/red]"
        detail = result.message if result.counterexample is None else f"{result.counterexample}\n{result.message}"
        table.add_row(result.name, verdict, escape(detail))
    return table


def run_check_reward(spec: str, declared_range: Range | None, max_examples: int, console: Console) -> int:
    """``rlhf check-reward``: load ``spec``, check every property, print the table.

    Returns the exit code: 0 if every property holds, 1 if one fails, 2 if the reward cannot be loaded.
    """
    from rlhf.rewards import load_reward

    try:
        reward = load_reward(spec)
    except (ValueError, ImportError) as exc:
        console.print(f"[red]cannot load reward {escape(repr(spec))}:[/red] {escape(str(exc))}")
        return 2
    declared_range = declared_range if declared_range is not None else _declared_range(reward)
    results = check_reward(reward, declared_range, max_examples)
    shown_range = "none" if declared_range is None else f"[{declared_range[0]}, {declared_range[1]}]"
    console.print(render_report(results, title=f"{spec} (declared range {shown_range}, {max_examples} examples)"))
    failed = sum(not result.passed for result in results)
    console.print(f"[red]{failed} of {len(results)} properties failed[/red]" if failed
                  else f"[green]all {len(results)} properties hold[/green]")
    return 1 if failed else 0


def _declared_range(fn: Any) -> Range | None:
    declared = getattr(fn, "value_range", None)
    if declared is None or (math.isinf(declared[0]) and math.isinf(declared[1])):
        return None
    return (float(declared[0]), float(declared[1]))


def _show(text: str, limit: int = 40) -> str:
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text)} chars)"


def _failure_text(result: PropertyResult) -> str:
    example = f"\n  minimal example: {result.counterexample}" if result.counterexample else ""
    return f"{result.name}: {result.message}{example}"
