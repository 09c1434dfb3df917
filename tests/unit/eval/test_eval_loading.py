"""Which kind of MODEL a path is, and which profile goes with it (no model is loaded here)."""

import json
from pathlib import Path

import pytest

from rlhf.eval.loading import locate_model, resolve_profile


def touch(path: Path, text: str = "{}") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def run(tmp_path):
    run = tmp_path / "run"
    touch(run / "profile.yaml", "extends: tiny-gpt2\nseed: 7\n")
    touch(run / "final" / "adapter_config.json")
    touch(run / "checkpoints" / "step-000002" / "policy" / "adapter_config.json")
    touch(run / "checkpoints" / "step-000002" / "trainer_state.pt", "")
    return run


def test_run_checkpoint_and_adapter_folders_find_their_run(run):
    checkpoint = run / "checkpoints" / "step-000002"
    cases = {run: ("run", run / "final"), checkpoint: ("checkpoint", checkpoint / "policy"),
             run / "final": ("adapter", run / "final"), checkpoint / "policy": ("adapter", checkpoint / "policy")}
    for model, (kind, weights) in cases.items():
        location = locate_model(model)
        assert (location.kind, Path(location.weights).resolve()) == (kind, weights.resolve())
        assert location.run_dir.resolve() == run.resolve() and location.run_profile is not None


def test_model_folder_and_hub_name(tmp_path):
    touch(tmp_path / "plain" / "config.json")
    assert locate_model(tmp_path / "plain").kind == "model" and locate_model(tmp_path / "plain").run_dir is None
    assert locate_model("gpt2").kind == "hub" and locate_model("org/name").kind == "hub"


@pytest.mark.parametrize("name", ["empty", "missing", "missing/deeper/folder"])
def test_a_path_that_is_not_a_model_is_named_in_the_error(tmp_path, name):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="MODEL .*" + name.split("/")[0]):
        locate_model(str(tmp_path / name))


def test_the_runs_model_section_is_kept_and_p_gives_the_rest(run):
    location = locate_model(run)
    own = resolve_profile(location, None)
    other = resolve_profile(location, "cpu-demo")
    assert own.seed == 7 and other.model == own.model  # the weights were built from the run's model section
    assert other.rewards[0].name == "sentiment" and other.rollout.batch_size == 16


def test_a_plain_model_takes_p_with_the_model_replaced(tmp_path):
    touch(tmp_path / "plain" / "config.json")
    location = locate_model(tmp_path / "plain")
    profile = resolve_profile(location, "tiny-gpt2")
    assert profile.model.name_or_path == str(tmp_path / "plain") and profile.model.random_init is None
    with pytest.raises(ValueError, match="give -p PROFILE"):
        resolve_profile(location, None)


def test_an_adapter_outside_a_run_loads_on_its_base(tmp_path):
    touch(tmp_path / "adapter" / "adapter_config.json", json.dumps({"base_model_name_or_path": "/models/base"}))
    profile = resolve_profile(locate_model(tmp_path / "adapter"), "tiny-gpt2")
    assert profile.model.name_or_path == "/models/base" and profile.model.lora is not None
