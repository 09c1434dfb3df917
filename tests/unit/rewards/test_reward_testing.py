"""rlhf.testing: the generic properties catch broken rewards with a minimal example and pass correct ones."""

import pytest
from rich.console import Console

from rlhf.testing import (
    PropertyResult,
    assert_reward_properties,
    check_reward,
    render_report,
    reward_properties,
    run_check_reward,
)


def run(spec, declared_range=None):
    console = Console(record=True, width=200)
    code = run_check_reward(spec, declared_range, 25, console)
    return code, console.export_text()


def failed(results):
    return {result.name: result for result in results if not result.passed}


def test_correct_reward_passes_with_exit_code_zero():
    code, report = run("helpers_rewards:mean_word_length")
    assert code == 0
    assert "all 6 properties hold" in report and "FAIL" not in report


def test_nan_for_some_inputs_fails_with_the_minimal_example():
    code, report = run("helpers_rewards:nan_on_empty")
    assert code == 1
    assert "one finite float per input" in report and "FAIL" in report
    from helpers_rewards import nan_on_empty

    result = failed(check_reward(nan_on_empty, max_examples=25))["one finite float per input"]
    assert result.counterexample == "prompts=[''], completions=['']"  # shrunk to the smallest batch
    assert "value nan at index 0" in result.message


def test_wrong_number_of_values_fails():
    code, report = run("helpers_rewards:one_value_too_many")
    assert code == 1 and "returned 2 values for 1 completions" in report


def test_batch_dependent_reward_fails_the_split_property():
    from helpers_rewards import depends_on_batch

    failures = failed(check_reward(depends_on_batch, max_examples=25))
    assert set(failures) == {"batch split"}
    assert "split=1" in failures["batch split"].counterexample


def test_batch_order_dependent_reward_fails_the_order_property():
    from helpers_rewards import first_in_batch_bonus

    failures = failed(check_reward(first_in_batch_bonus, max_examples=25))
    assert "batch order" in failures
    assert "order=[1, 0]" in failures["batch order"].counterexample


def test_nondeterministic_reward_fails():
    import random

    rng = random.Random(0)
    failures = failed(check_reward(lambda p, c, **kw: [rng.random() for _ in c], max_examples=10))
    assert "deterministic" in failures


def test_crash_on_empty_completion_fails():
    def first_char(prompts, completions, **kw):
        return [float(ord(c[0])) for c in completions]

    failures = failed(check_reward(first_char, max_examples=25))
    assert "empty completion" in failures
    assert "IndexError" in failures["empty completion"].message


def test_declared_range_explicit_or_from_the_reward():
    code, report = run("helpers_rewards:mean_word_length", declared_range=(0.0, 1.0))
    assert code == 1 and "outside the declared range [0.0, 1.0]" in report
    results = check_reward(lambda p, c, **kw: [0.5] * len(c), max_examples=5)
    assert results[-1].passed and results[-1].message == "no range declared: skipped"


def test_unloadable_reward_exits_two():
    code, report = run("no_such_module_xyz:fn")
    assert code == 2 and "cannot load reward" in report


def test_assert_reward_properties_lists_failures():
    from helpers_rewards import nan_on_empty

    with pytest.raises(AssertionError, match="one finite float per input: value nan.*\n  minimal example: "):
        assert_reward_properties(nan_on_empty, max_examples=10)
    assert_reward_properties(lambda p, c, **kw: [1.0] * len(c), declared_range=(0, 1), max_examples=10)


@pytest.mark.parametrize("prop", reward_properties, ids=str)
def test_each_property_is_usable_on_its_own(prop):
    prop.assert_holds(lambda p, c, **kw: [0.0] * len(c), declared_range=(-1.0, 1.0), max_examples=5)


def test_render_report_escapes_markup():
    table = render_report([PropertyResult("p", False, "completions=['[red]x']", "boom")])
    console = Console(record=True, width=120)
    console.print(table)
    assert "[red]x" in console.export_text()
