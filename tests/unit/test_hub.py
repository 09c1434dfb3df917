"""Where models and data sets are, answered from the file system and the environment only."""

import pytest

from rlhf import hub


def test_paths_and_hub_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert hub.looks_local("./model") and hub.looks_local("/abs/model") and hub.looks_local("a/b/c")
    assert not hub.looks_local("org/name")
    (tmp_path / "org").mkdir()
    assert hub.looks_local("org/name")  # under an existing folder: a path, not a hub organisation


def test_cache_lookups_need_no_network(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "datasets"))
    assert hub.cached_file("not/a/valid/repo id", "config.json") is None
    assert hub.needs_download("org/model")
    assert not hub.dataset_cached("org/data")
    (tmp_path / "hub" / "datasets--org--data" / "snapshots" / "abc123").mkdir(parents=True)
    assert hub.dataset_cached("org/data")
    (tmp_path / "datasets" / "other___set").mkdir(parents=True)
    assert hub.dataset_cached("other/set")


@pytest.mark.parametrize(("env", "models", "datasets"), [
    ({}, False, False), ({"HF_HUB_OFFLINE": "1"}, True, True), ({"HF_HUB_OFFLINE": "0"}, False, False),
    ({"HF_DATASETS_OFFLINE": "true"}, False, True)])
def test_offline_is_read_from_the_environment_now(env, models, datasets, monkeypatch):
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert (hub.offline(), hub.offline(datasets=True)) == (models, datasets)


def test_download_sizes_of_known_models():
    assert hub.download_bytes("meta-llama/Meta-Llama-3-8B-Instruct") == 8_029_995_008 * 2
    assert hub.download_bytes("someone/unknown-model") == 0
