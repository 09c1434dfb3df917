"""Session fixtures for the reward tests: tiny models built once, offline."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/, for helpers_rewards

import helpers_rewards  # noqa: E402


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    return helpers_rewards.tiny_model_dirs(tmp_path_factory)

