"""`rlhf evaluate`: the report folder (JSON, Markdown, PNGs), hacking flags, and the end-of-run comparison."""

import csv
import json
from pathlib import Path

import pytest
from eval_models import base_model_dir, hacked_model_dir, tiny_lora_run, write_profile
from PIL import Image
from typer.testing import CliRunner

from rlhf.cli import app
from rlhf.eval.compare import best_of_n, compare_base_and_tuned
from rlhf.eval.loading import load_model
from rlhf.rewards import AgenticCommunal, Length, load_rewards

runner = CliRunner()
MODEL_KEYS = {"reward_mean", "reward_std", "reward_quantiles", "rewards", "distinct_1", "distinct_2", "distinct_3",
              "repetition_rate", "mean_length", "perplexity", "compliance", "hacking_flags"}


def evaluate(*args) -> str:
    result = runner.invoke(app, ["evaluate", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result.output


def examples(folder: Path) -> list[dict[str, str]]:
    with (folder / "examples.csv").open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def assert_real_png(path: Path, min_width: int) -> None:
    with Image.open(path) as image:
        image.load()  # decodes every pixel
        assert image.format == "PNG" and image.width >= min_width and image.height >= 300
        assert len(image.convert("L").getcolors(maxcolors=1 << 16)) > 10  # drawn, not blank


def test_report_of_a_tiny_run(tmp_path_factory):
    run, _ = tiny_lora_run(tmp_path_factory)
    output = evaluate(run, "--samples", 20, "--reward", "{name: length, target: 4}")
    (folder,) = (run / "evaluations").iterdir()
    assert "report.md" in output and "no reward-hacking flag fired" in output
    report = json.loads((folder / "report.json").read_text())
    assert report["samples"] == 20 and MODEL_KEYS <= set(report["base"]) and MODEL_KEYS <= set(report["tuned"])
    assert set(report["tuned"]["rewards"]) == {"length", "length (--reward)"}
    rows = examples(folder)
    for name in ("base", "tuned"):  # every number is recomputed from the stored completions
        texts = [r[name] for r in rows]
        assert [float(r[f"{name}_reward"]) for r in rows] == pytest.approx(Length(target=12)([""] * 20, texts))
        assert report[name]["reward_mean"] == pytest.approx(sum(Length(target=12)([""] * 20, texts)) / 20)
        assert report[name]["rewards"]["length (--reward)"] == pytest.approx(sum(Length(target=4)([""] * 20, texts)) / 20)
        assert 1.0 < report[name]["perplexity"] < 10_000
        assert report[name]["reward_quantiles"]["q05"] <= report[name]["reward_quantiles"]["q95"]
    markdown = (folder / "report.md").read_text()
    assert "## Metrics" in markdown and "| distinct_2 |" in markdown and "## Reward-hacking flags" in markdown
    assert "![reward_histogram](reward_histogram.png)" in markdown and "![training_curves](training_curves.png)" in markdown
    example_rows = markdown.split("## Examples")[1].strip().splitlines()[4:]
    assert len(example_rows) == 20
    assert_real_png(folder / "reward_histogram.png", 600)
    assert_real_png(folder / "training_curves.png", 1100)  # three panels: reward, KL and the logged distinct-2

    evaluate(run, "--samples", 20)  # a second evaluation never overwrites the first
    assert len(list((run / "evaluations").iterdir())) == 2 and (folder / "report.json").read_text() == json.dumps(
        report, indent=2)


def test_flags_fire_on_a_hacked_model_and_stay_quiet_on_base_vs_base(tmp_path_factory, tmp_path):
    base, hacked = base_model_dir(tmp_path_factory), hacked_model_dir(tmp_path_factory)
    profile = write_profile(tmp_path, rewards="[{name: hackable_word_count}, {name: agentic_communal, weight: 0.0}]")
    output = evaluate(hacked, "--base", base, "-p", profile, "--samples", 20, "--out", tmp_path / "hacked")
    report = json.loads((tmp_path / "hacked" / "report.json").read_text())
    flags = {f["flag"]: f["evidence"] for f in report["tuned"]["hacking_flags"]}
    assert {"diversity_drop", "repeated_ngram"} <= set(flags) and report["base"]["hacking_flags"] == []
    assert "'great' is 100%" in flags["repeated_ngram"] and "flag" in output
    assert report["tuned"]["reward_mean"] > report["base"]["reward_mean"]
    assert "**repeated_ngram** (tuned)" in (tmp_path / "hacked" / "report.md").read_text()

    evaluate(base, "--base", base, "-p", profile, "--samples", 20, "--out", tmp_path / "same")
    report = json.loads((tmp_path / "same" / "report.json").read_text())
    assert report["tuned"]["hacking_flags"] == [] and report["tuned"]["reward_mean"] != report["base"]["reward_mean"]
    rows = examples(tmp_path / "same")  # independent draws of the same model, so the quiet is not trivial
    assert [r["base"] for r in rows] != [r["tuned"] for r in rows]
    rule = AgenticCommunal().compliance([r["tuned"] for r in rows])["agentic_and_communal"]
    assert report["tuned"]["compliance"]["agentic_communal/agentic_and_communal"] == pytest.approx(sum(rule) / 20)


def test_training_logs_text_metrics_and_warns_about_hacking(tmp_path_factory):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run, console_text = tiny_lora_run(tmp_path_factory)
    with (run / "meta_data" / "training_stats.csv").open() as f:
        rows = list(csv.DictReader(f))
    for key in ("text/distinct_1", "text/distinct_2", "text/distinct_3", "text/repetition_rate", "text/mean_length",
                "text/ref_perplexity"):
        assert all(0.0 <= float(r[key]) for r in rows) and key in rows[0]
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"tensors": 0}).Reload()
    assert "text/distinct_2" in events.Tags()["scalars"] and "samples/text_summary" in events.Tags()["tensors"]
    assert "warning: possible reward hacking at step 2: length_collapse" in console_text


def test_best_of_n_picks_the_highest_reward_per_prompt():
    completions = ["a1", "a2", "a3", "b1", "b2", "b3"]
    rewards = [0.0, 2.0, 1.0, -1.0, -3.0, -2.0]
    assert best_of_n(completions, rewards, 3) == (["a2", "b1"], [2.0, -1.0])


def test_end_of_run_comparison_scores_base_tuned_and_best_of(tmp_path_factory):
    loaded = load_model(tiny_lora_run(tmp_path_factory)[0])
    reward = load_rewards(loaded.profile.rewards)
    comparison = compare_base_and_tuned(loaded.policy, loaded.tokenizer, reward, ["The movie", "I think"] * 3,
                                        loaded.profile.rollout, best_of=4)
    for texts, stored in ((comparison.base, comparison.base_rewards), (comparison.tuned, comparison.tuned_rewards),
                          (comparison.best, comparison.best_rewards)):
        assert len(texts) == 6 and stored == pytest.approx(Length(target=12)([""] * 6, texts))
