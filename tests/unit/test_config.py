from pathlib import Path

import pytest

from rlhf.config import Profile, ProfileError, available_profiles, load_profile, parse_override

SHIPPED = sorted(available_profiles())


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_profile_validates(name):
    profile = load_profile(name)
    assert isinstance(profile, Profile)
    assert profile.description, f"{name} needs a description for `rlhf profiles list`"


def test_required_profiles_are_shipped():
    assert {"base", "tiny-gpt2", "tiny-llama-4bit", "a100-8b"} <= set(SHIPPED)


def test_a100_profile_is_llama3_8b_qlora():
    model = load_profile("a100-8b").model
    assert model.name_or_path == "meta-llama/Meta-Llama-3-8B-Instruct" and model.random_init is None
    assert (model.quantization.bits, model.quantization.quant_type) == (4, "nf4")
    assert model.quantization.double_quant and model.quantization.compute_dtype == "bfloat16"
    assert (model.lora.r, model.lora.target_modules) == (16, "all-linear") and model.gradient_checkpointing


def test_unknown_key_names_file_key_and_suggestion(tmp_path):
    path = write(tmp_path, "typo.yaml", "extends: tiny-gpt2\ntrainer: {stpes: 3}\n")
    with pytest.raises(ProfileError) as err:
        load_profile(str(path))
    message = str(err.value)
    assert "typo.yaml" in message and "trainer.stpes" in message and "Did you mean 'steps'" in message


def test_wrong_type_names_key_and_value(tmp_path):
    path = write(tmp_path, "bad.yaml", "extends: tiny-gpt2\nrollout: {batch_size: lots}\n")
    with pytest.raises(ProfileError, match=r"bad\.yaml: rollout\.batch_size: .*integer.*'lots'"):
        load_profile(str(path))


def test_missing_extends_parent(tmp_path):
    path = write(tmp_path, "orphan.yaml", "extends: no-such-parent\n")
    with pytest.raises(ProfileError, match=r"orphan\.yaml: extends 'no-such-parent': unknown profile"):
        load_profile(str(path))


def test_extends_cycle(tmp_path):
    write(tmp_path, "a.yaml", "extends: b.yaml\n")
    write(tmp_path, "b.yaml", "extends: a.yaml\n")
    with pytest.raises(ProfileError, match="cycle"):
        load_profile(str(tmp_path / "a.yaml"))


def test_missing_file_and_unknown_name():
    with pytest.raises(ProfileError, match="not found: nowhere.yaml"):
        load_profile("nowhere.yaml")
    with pytest.raises(ProfileError, match="Did you mean 'tiny-gpt2'"):
        load_profile("tiny-gtp2")


def test_extends_merges_sections_deeply(tmp_path):
    path = write(tmp_path, "child.yaml", "extends: tiny-gpt2\nalgo: {kl: {coef: 0.5}}\n")
    profile, parent = load_profile(str(path)), load_profile("tiny-gpt2")
    assert profile.algo.kl.coef == 0.5
    assert profile.algo.kl.estimator == parent.algo.kl.estimator and profile.trainer == parent.trainer


def test_overrides_apply_with_types():
    profile = load_profile("tiny-gpt2", ["trainer.steps=3", "algo.kl.coef=1e-2", "rewards.0.weight=2",
                                         "algo.kl.target=0.1", "trainer.log_with=[csv]"])
    assert profile.trainer.steps == 3 and profile.algo.kl.coef == pytest.approx(0.01)
    assert profile.rewards[0].weight == 2.0 and profile.algo.kl.target == 0.1
    assert profile.trainer.log_with == ["csv"]


@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        ("trainer.steps", "expected section.key=value"),
        ("trainer.stepz=3", r"unknown key 'trainer.stepz'. Did you mean 'steps'"),
        ("trainer.steps=abc", r"--set trainer.steps=abc: trainer.steps: .*integer"),
        ("algo.name=ppx", "unknown algorithm 'ppx'"),
        ("algo.kl.estimator=k9", "unknown KL estimator 'k9'"),
        ("rewards.7.weight=1", "not an index"),
        ("trainer.steps.deep=1", "trainer.steps is not a section"),
    ],
)
def test_bad_overrides_are_clear(override, pattern):
    with pytest.raises(ProfileError, match=pattern):
        load_profile("tiny-gpt2", [override])


def test_parse_override_reads_yaml_values():
    assert parse_override("a.b=[1, 2]") == (("a", "b"), [1, 2])
    assert parse_override("a=null") == (("a",), None)


def test_model_needs_exactly_one_source():
    with pytest.raises(ProfileError, match="exactly one of model.name_or_path and model.random_init"):
        load_profile("tiny-gpt2", ["model.name_or_path=some/model"])


def test_group_algorithms_need_groups():
    with pytest.raises(ProfileError, match="num_generations >= 2"):
        load_profile("tiny-gpt2", ["algo.name=grpo"])
    profile = load_profile("tiny-gpt2", ["algo.name=grpo", "rollout.num_generations=4", "rollout.batch_size=2"])
    assert not profile.algo.needs_value_head and load_profile("tiny-gpt2").algo.needs_value_head


def test_minibatch_must_divide_batch():
    with pytest.raises(ProfileError, match="mini_batch_size .* must divide"):
        load_profile("tiny-gpt2", ["algo.mini_batch_size=3"])


def test_show_output_reloads_to_same_profile(tmp_path):
    for name in SHIPPED:
        profile = load_profile(name)
        path = write(tmp_path, f"{name}-resolved.yaml", profile.to_yaml())
        assert load_profile(str(path)) == profile
