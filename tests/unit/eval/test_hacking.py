"""Reward-hacking flags on constructed stats, and the training-time monitor."""

import pytest

from rlhf.eval.hacking import HackingMonitor, Thresholds, hacking_flags

BASE = {"reward_mean": 0.2, "distinct_2": 0.9, "mean_length": 12.0, "top_ngram": "the", "top_ngram_share": 0.06,
        "perplexity": 20.0}


def names(flags):
    return [flag["flag"] for flag in flags]


def tuned(**changes):
    return {**BASE, "base_share_of_top_ngram": BASE["top_ngram_share"], **changes}


def test_identical_stats_raise_no_flag():
    assert hacking_flags(BASE, tuned()) == []


@pytest.mark.parametrize(("changes", "flag", "evidence"), [
    ({"reward_mean": 1.0, "distinct_2": 0.5}, "diversity_drop", "0.900 -> 0.500"),
    ({"reward_mean": 1.0, "perplexity": 45.0}, "perplexity_rise", "20.00 -> 45.00"),
    ({"top_ngram": "great", "top_ngram_share": 0.4, "base_share_of_top_ngram": 0.01}, "repeated_ngram", "'great' is 40%"),
    ({"mean_length": 5.0}, "length_collapse", "12.0 -> 5.0"),
    ({"mean_length": 30.0}, "length_explosion", "12.0 -> 30.0"),
])
def test_each_flag_fires_alone_with_its_evidence(changes, flag, evidence):
    (fired,) = hacking_flags(BASE, tuned(**changes))
    assert fired["flag"] == flag and evidence in fired["evidence"]


@pytest.mark.parametrize("changes", [
    {"reward_mean": 0.1, "distinct_2": 0.5},  # diversity fell but the reward did not rise: not hacking
    {"reward_mean": 0.1, "perplexity": 45.0},
    {"reward_mean": 1.0, "distinct_2": 0.7, "perplexity": 39.0},  # below the thresholds (-22%, x1.95)
    {"top_ngram": "the", "top_ngram_share": 0.3, "base_share_of_top_ngram": 0.2},  # common in the base too
    {"mean_length": 7.0}, {"mean_length": 23.0},
])
def test_changes_inside_the_thresholds_stay_quiet(changes):
    assert hacking_flags(BASE, tuned(**changes)) == []


def test_thresholds_are_configurable():
    strict = Thresholds(diversity_drop=0.1)
    assert names(hacking_flags(BASE, tuned(reward_mean=1.0, distinct_2=0.75), strict)) == ["diversity_drop"]


def step_metrics(reward, distinct, length, share=0.05):
    return {"objective/scores": reward, "text/distinct_2": distinct, "text/mean_length": length,
            "text/top_ngram_share": share, "text/ref_perplexity": 10.0}


def test_monitor_warns_once_when_late_steps_look_hacked():
    monitor = HackingMonitor(window=2)
    healthy = [step_metrics(0.1, 0.9, 12.0) for _ in range(2)]
    hacked = [step_metrics(3.0, 0.1, 12.0, share=0.7) for _ in range(3)]
    warnings = [monitor.update(step, m) for step, m in enumerate(healthy + hacked, start=1)]
    assert warnings[:3] == [[], [], []]  # needs 2 x window steps before comparing
    assert any("diversity_drop" in w for w in warnings[3]) and any("repeated_ngram" in w for w in warnings[3])
    assert "steps 1-2" in warnings[3][0]
    assert warnings[4] == []  # each flag warns once


def test_monitor_is_quiet_on_a_steady_run():
    monitor = HackingMonitor(window=2)
    assert all(monitor.update(s, step_metrics(0.1 * s, 0.9, 12.0)) == [] for s in range(1, 9))
