"""`rlhf generate`: N completions per prompt to CSV from a run, checkpoint, adapter or plain model; best-of-K."""

import csv
import shutil
from pathlib import Path

import pytest
from eval_models import base_model_dir, tiny_lora_run, write_profile
from typer.testing import CliRunner

from rlhf.cli import app
from rlhf.data import load_records
from rlhf.eval.generate import generate_csv, prompt_records_for
from rlhf.eval.loading import load_model
from rlhf.rewards import Length, load_rewards

runner = CliRunner()
PROMPTS = ["The movie was", "I think the acting", "Describe a nurse:", "My friend and I"]


def generate(*args) -> None:
    result = runner.invoke(app, ["generate", *map(str, args)])
    assert result.exit_code == 0, result.output


def read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def prompts_file(tmp_path) -> Path:
    path = tmp_path / "prompts.txt"
    path.write_text("\n".join(PROMPTS), encoding="utf-8")
    return path


def test_occupations_n3_gives_300_rows_with_reward_and_metadata_columns(tmp_path_factory, tmp_path):
    run, _ = tiny_lora_run(tmp_path_factory)
    out = tmp_path / "occupations.csv"
    generate(run, "--prompts", "builtin:occupations", "--n", 3, "--out", out, "--batch-size", 150)
    rows, records = read(out), load_records("builtin:occupations")
    assert len(rows) == 3 * len(records) == 300
    assert list(rows[0]) == ["prompt", "occupation", "sample", "completion", "reward", "reward/length"]
    assert [(r["prompt"], r["occupation"]) for r in rows[::3]] == [(r["prompt"], r["occupation"]) for r in records]
    assert [r["sample"] for r in rows[:6]] == ["0", "1", "2", "0", "1", "2"]
    expected = Length(target=12)([""] * 300, [r["completion"] for r in rows])  # the run's reward
    assert [float(r["reward"]) for r in rows] == pytest.approx(expected)
    assert [float(r["reward/length"]) for r in rows] == pytest.approx(expected)


@pytest.mark.parametrize("where", ["run", "checkpoint", "adapter"])
def test_same_seed_same_file_from_a_run_checkpoint_and_adapter(where, tmp_path_factory, tmp_path, prompts_file):
    run, _ = tiny_lora_run(tmp_path_factory)
    model, options = {"run": (run, []), "checkpoint": (sorted((run / "checkpoints").iterdir())[-1], []),
                      "adapter": (tmp_path / "adapter", ["-p", "tiny-gpt2"])}[where]
    shutil.copytree(run / "final", tmp_path / "adapter")  # a saved adapter outside its run: needs -p
    outs = {name: tmp_path / f"{name}.csv" for name in ("first", "again", "other-seed")}
    for name, seed in (("first", 5), ("again", 5), ("other-seed", 6)):
        generate(model, *options, "--prompts", prompts_file, "--n", 2, "--out", outs[name], "--seed", seed,
                 "--batch-size", 3)
    first = outs["first"].read_text()
    assert len(read(outs["first"])) == 8 and first == outs["again"].read_text()
    assert first != outs["other-seed"].read_text()


def test_an_adapter_loads_the_same_model_as_its_run(tmp_path_factory, tmp_path, prompts_file):
    run, _ = tiny_lora_run(tmp_path_factory)
    shutil.copytree(run / "final", tmp_path / "adapter")
    generate(run, "--prompts", prompts_file, "--out", tmp_path / "run.csv", "--seed", 1)
    generate(tmp_path / "adapter", "-p", "tiny-gpt2", "--prompts", prompts_file, "--out", tmp_path / "adapter.csv",
             "--seed", 1)
    assert (tmp_path / "run.csv").read_text() == (tmp_path / "adapter.csv").read_text()


def test_best_of_k_keeps_the_max_of_its_k_rewards_on_a_plain_model(tmp_path_factory, tmp_path):
    model = base_model_dir(tmp_path_factory)  # not a run: best-of-K works on any model
    profile = write_profile(tmp_path, rewards="[{name: length, target: 12}]")
    common = [model, "-p", profile, "--prompts", "builtin:review-openers", "--seed", 3]
    generate(*common, "--out", tmp_path / "single.csv")
    generate(*common, "--best-of", 4, "--out", tmp_path / "best.csv")
    single, best = read(tmp_path / "single.csv"), read(tmp_path / "best.csv")
    assert len(best) == len(single) == len(load_records("builtin:review-openers"))
    kept = [float(r["reward"]) for r in best]
    assert kept == pytest.approx([float(r["best_of_max"]) for r in best])
    assert kept == pytest.approx(Length(target=12)([""] * len(best), [r["completion"] for r in best]))
    assert all(k >= float(r["best_of_mean"]) - 1e-6 for k, r in zip(kept, best))
    assert any(k > float(r["best_of_mean"]) for k, r in zip(kept, best))  # the K samples differ
    mean = sum(kept) / len(kept)
    assert mean >= sum(float(r["best_of_mean"]) for r in best) / len(best)
    assert mean >= sum(float(r["reward"]) for r in single) / len(single)


class StopOnSecondBatch:
    """The profile's rewards, but the second batch raises as Ctrl-C would."""

    def __init__(self, reward):
        self.reward, self.names, self.calls = reward, reward.names, 0

    def __call__(self, prompts, completions):
        self.calls += 1
        if self.calls == 2:
            raise KeyboardInterrupt
        return self.reward(prompts, completions)


def test_rows_are_streamed_so_a_stopped_command_keeps_them(tmp_path_factory, tmp_path, prompts_file):
    loaded = load_model(base_model_dir(tmp_path_factory), str(write_profile(tmp_path)))
    reward = StopOnSecondBatch(load_rewards(loaded.profile.rewards))
    out = tmp_path / "partial.csv"
    with pytest.raises(KeyboardInterrupt):
        generate_csv(loaded, reward, prompt_records_for(loaded, str(prompts_file)), 1, out, seed=0, batch_size=2)
    assert [r["prompt"] for r in read(out)] == PROMPTS[:2]
