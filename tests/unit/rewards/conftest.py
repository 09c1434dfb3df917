"""Session fixtures for the reward tests: tiny models built once, offline."""

import pytest

import helpers_rewards


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    return helpers_rewards.tiny_model_dirs(tmp_path_factory)

