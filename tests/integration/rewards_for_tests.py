"""Rewards used by the integration tests, loaded the way users load theirs: ``module:function``."""

import math

_calls = {"n": 0}


def letter_e_fraction(prompts, completions, **kwargs):
    """Dense and learnable from scratch: ten times the share of characters that are the letter 'e'."""
    return [10.0 * c.count("e") / max(1, len(c)) for c in completions]


def nan_on_third_call(prompts, completions, **kwargs):
    _calls["n"] += 1
    scores = [1.0] * len(completions)
    if _calls["n"] >= 3:
        scores[1] = math.nan
    return scores


def wrong_length(prompts, completions, **kwargs):
    return [0.0] * (len(completions) - 1)


def depends_on_batch_order(prompts, completions, **kwargs):
    """Broken on purpose: the score of a sample depends on its position in the batch."""
    return [float(i) for i in range(len(completions))]


def nan_for_first_three(prompts, completions, **kwargs):
    """Three non-finite scores per batch: with `nonfinite_rewards: drop` their tokens leave the update."""
    return [math.nan] * 3 + letter_e_fraction(prompts, completions[3:])


def _third_call() -> bool:
    _calls["n"] += 1
    return _calls["n"] >= 3


def key_error_on_third_call(prompts, completions, **kwargs):
    """A user's bug: a dictionary lookup that fails on the third batch."""
    if _third_call():
        return [{"score": 1.0}["missing"]] * len(completions)
    return [1.0] * len(completions)


def exit_on_third_call(prompts, completions, **kwargs):
    """A user's reward that calls sys.exit: must not end the run as a success."""
    import sys

    if _third_call():
        sys.exit(0)
    return [1.0] * len(completions)


def exits(prompts, completions, **kwargs):
    import sys

    sys.exit(0)


def hang_on_third_call(prompts, completions, **kwargs):
    """A reward that never returns (a stuck API call), from the third batch on."""
    import time

    if _third_call():
        print("REWARD HANGS", flush=True)
        while True:
            time.sleep(0.05)
    return [1.0] * len(completions)


def letter_e_share(prompts, completions, **kwargs):
    """A dense reward in [0, 1]: the share of characters that are the letter 'e'."""
    return [c.count("e") / max(1, len(c)) for c in completions]
