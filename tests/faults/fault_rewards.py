"""Broken rewards for the fault table, loaded the way users load theirs (``faults.fault_rewards:NAME``)."""

import math


def always_nan(prompts, completions, **kwargs):
    """Broken for every sample: with ``nonfinite_rewards: drop`` every step drops everything."""
    return [math.nan] * len(completions)
