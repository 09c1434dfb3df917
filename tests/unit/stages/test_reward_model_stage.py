"""The reward-model stage inside `rlhf run`: when it trains, reuses, retrains or leaves a folder alone.

Training itself is covered by test_reward_model.py and the headline pipeline test; here the folder states
are written by hand and training is replaced by a stub that records its calls.
"""

import io
import json

import pytest
from rich.console import Console

import rlhf.stages.reward_model as stage
from rlhf.config import load_profile
from rlhf.stages.reward_model import EVAL_FILE, run_reward_model_stage, stage_state, stage_users


@pytest.fixture
def profile(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return load_profile("reward-model-tiny", ["reward_model.output_dir=outputs/rm",
                                              "rewards=[{name: length}, {name: classifier, model: ./outputs/rm}]"])


@pytest.fixture
def trainings(monkeypatch):
    calls = []

    def fake_train(cfg, seed=0, console=None, final_dir=None):
        calls.append(cfg)
        out = stage.Path(cfg.output_dir)
        (out / "config.json").write_text("{}")
        report = {"kind": cfg.kind, "seed": seed, "metrics": {"pairwise_accuracy": 0.95, "num_train": 10},
                  "config": cfg.model_dump(mode="json")}
        (out / EVAL_FILE).write_text(json.dumps(report))
        return stage.RewardModelResult(out, report["metrics"])

    monkeypatch.setattr(stage, "train_reward_model", fake_train)
    return calls


def write_model(folder, profile=None, seed=0, **changes):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text("{}")
    if profile is not None:
        config = {**profile.reward_model.model_dump(mode="json"), **changes}
        report = {"seed": seed, "metrics": {"pairwise_accuracy": 0.9, "num_train": 10}, "config": config}
        (folder / EVAL_FILE).write_text(json.dumps(report))


def printed(console):
    return console.file.getvalue()


def test_rewards_naming_the_output_folder_use_the_stage(profile):
    assert stage_users(profile) == [1]  # ./outputs/rm and outputs/rm are the same folder
    other = profile.model_copy(update={"rewards": profile.rewards[:1]})
    assert stage_users(other) == [] and stage_state(other) == "unused"


def test_a_missing_model_is_trained_into_place_then_reused(profile, trainings, tmp_path):
    console = Console(file=io.StringIO(), width=200)
    assert run_reward_model_stage(profile, console) == "missing"
    assert len(trainings) == 1 and trainings[0].output_dir != "outputs/rm"  # trained in a staging folder
    report = json.loads((tmp_path / "outputs" / "rm" / EVAL_FILE).read_text())
    assert report["config"]["output_dir"] == "outputs/rm"
    assert [p.name for p in (tmp_path / "outputs").iterdir()] == ["rm"]  # no staging folder left behind
    assert stage_state(profile) == "trained"
    assert run_reward_model_stage(profile, console) == "trained"
    assert len(trainings) == 1
    assert "reward model: using the trained model in outputs/rm (held-out pairwise_accuracy 0.950" in printed(console)


def test_changed_settings_or_seed_retrain(profile, trainings, tmp_path):
    write_model(tmp_path / "outputs" / "rm", profile, epochs=7.0)
    assert stage_state(profile) == "stale"
    write_model(tmp_path / "outputs" / "rm", profile, seed=1)
    assert stage_state(profile) == "stale"
    write_model(tmp_path / "outputs" / "rm", profile, output_dir="elsewhere")  # where it was trained is not a setting
    assert stage_state(profile) == "trained"


def test_a_folder_the_stage_did_not_make_is_used_as_it_is(profile, trainings, tmp_path):
    write_model(tmp_path / "outputs" / "rm")
    console = Console(file=io.StringIO(), width=200)
    assert run_reward_model_stage(profile, console) == "foreign"
    assert trainings == [] and not (tmp_path / "outputs" / "rm" / EVAL_FILE).exists()
    assert "as it is" in printed(console)


def test_a_failed_retraining_keeps_the_old_model(profile, monkeypatch, tmp_path):
    write_model(tmp_path / "outputs" / "rm", profile, epochs=7.0)

    def broken(*args, **kwargs):
        raise ValueError("data source broke")

    monkeypatch.setattr(stage, "train_reward_model", broken)
    with pytest.raises(ValueError, match="data source broke"):
        run_reward_model_stage(profile)
    kept = json.loads((tmp_path / "outputs" / "rm" / EVAL_FILE).read_text())
    assert kept["config"]["epochs"] == 7.0
    assert [p.name for p in (tmp_path / "outputs").iterdir()] == ["rm"]
