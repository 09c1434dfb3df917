"""The preflight checklist (`rlhf run --dry-run`): statuses, fixes and exit codes, with nothing loaded."""

import io
import json
import re

import pytest
import torch
from faults.harness import assert_clean_failure, invoke
from rich.console import Console
from typer.testing import CliRunner

from rlhf import hub
from rlhf import preflight as preflight_module
from rlhf.cli import app
from rlhf.config import load_profile
from rlhf.planning import LLAMA_3_8B, A100_40GB, Architecture, estimate_step_time, format_duration
from rlhf.preflight import check_before_run, preflight

LLAMA_3_8B_CONFIG = {"model_type": "llama", "vocab_size": 128256, "hidden_size": 4096, "intermediate_size": 14336,
                     "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
                     "tie_word_embeddings": False}


def dry_run(*args):
    return CliRunner().invoke(app, ["run", "--dry-run", *args])


def statuses(output: str) -> dict[str, str]:
    """``item -> status`` from the printed checklist."""
    rows = [line.strip() for line in output.splitlines() if line.strip().startswith("[")]
    return {row.split("]", 1)[1].split(":", 1)[0].strip(): row[1:].split("]", 1)[0].strip() for row in rows}


@pytest.fixture
def eight_b_folder(tmp_path):
    """A Llama-3-8B-shaped config.json beside a tokenizer with a chat template: no weights at all."""
    from rlhf.models.tokenizer import load_tokenizer

    folder = tmp_path / "llama-8b-config-only"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(LLAMA_3_8B_CONFIG))
    tokenizer = load_tokenizer("builtin-bpe")
    tokenizer.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    tokenizer.save_pretrained(folder)
    return folder


def test_a_complete_profile_passes_every_check(tmp_path):
    result = dry_run("-p", "tiny-gpt2", "--output-dir", str(tmp_path / "runs"))
    assert result.exit_code == 0, result.output
    found = statuses(result.output)
    assert set(found) >= {"profile", "policy model", "policy tokenizer", "prompts", "reward 0 (length)",
                          "accelerator", "memory plan", "run folder"}
    assert set(found.values()) == {"ok"}, result.output
    assert "dry run: ready to run" in result.output
    assert re.search(re.escape(str(tmp_path / "runs")) + r"/random-gpt2_\d+K_tokens__\d{4}-\d\d-\d\d__",
                     " ".join(result.output.split()))
    assert not (tmp_path / "runs").exists()


def test_a_missing_reward_model_that_a_stage_produces_will_be_trained(tmp_path):
    folder = tmp_path / "rm"
    result = dry_run("-p", "reward-model-tiny", "--set", f"reward_model.output_dir={folder}",
                     "--set", f"rewards.0.model={folder}")
    assert result.exit_code == 0, result.output
    assert statuses(result.output)["reward 0 (classifier)"] == "todo"
    assert f"{folder}: not trained yet; the run trains it first (pairwise on builtin:reviews-labelled" in \
        " ".join(result.output.split())
    assert not folder.exists()


def test_a_missing_optional_package_blocks_with_the_install_command(monkeypatch):
    monkeypatch.setattr(preflight_module, "package_installed", lambda module: module != "vaderSentiment.vaderSentiment")
    result = dry_run("-p", "tiny-gpt2", "--set", "rewards=[{name: length, target: 4}, {name: sentiment}]")
    assert result.exit_code == 2
    assert statuses(result.output)["reward 1 (sentiment)"] == "missing"
    assert statuses(result.output)["reward 0 (length)"] == "ok"
    error = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "pip install 'rlhf[sentiment]'" in " ".join(result.output.split())


def test_no_accelerator_for_a_gpu_profile_warns_with_the_expected_speed(eight_b_folder, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = dry_run("-p", "a100-8b", "--set", f"model.name_or_path={eight_b_folder}",
                     "--set", f"model.tokenizer={eight_b_folder}", "--set", "reward_model=null",
                     "--set", "rewards=[{name: length, target: 20}]", "--gpu-memory", "40")
    assert result.exit_code == 0, result.output  # a warning, not a block
    assert statuses(result.output)["accelerator"] == "warn"
    flat = " ".join(result.output.split())
    assert "no CUDA GPU: this profile is meant for one (8.0 B parameters)" in flat
    assert "per RL step on this CPU" in flat and "on one A100-40GB" in flat
    assert "1 warning" in flat


def test_a_plan_that_does_not_fit_blocks():
    result = dry_run("-p", "tiny-gpt2", "--gpu-memory", "0.5")
    assert result.exit_code == 2
    assert statuses(result.output)["memory plan"] == "missing"
    assert "of 0.5 GiB (--gpu-memory): does not fit" in " ".join(result.output.split())


def test_hub_names_download_when_online_and_block_when_offline(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-home"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(hub, "has_token", lambda: False)
    anonymous = preflight(load_profile("a100-8b"), profile_ref="a100-8b", output_dir=tmp_path)
    assert {c.item for c in anonymous.blocking} == {"policy model", "policy tokenizer"}  # Llama 3 is gated
    assert "hf auth login" in anonymous.error_message()

    monkeypatch.setattr(hub, "has_token", lambda: True)
    online = preflight(load_profile("a100-8b"), profile_ref="a100-8b", output_dir=tmp_path)
    by_item = {c.item: c for c in online.checks}
    assert online.ready
    assert by_item["policy model"].status == "todo" and "about 16 GB" in by_item["policy model"].detail
    assert by_item["reward model data"].status == "todo"
    assert by_item["reward 0 (classifier)"].status == "todo"
    assert by_item["disk"].status == "ok" and "16.2 GB to download" in by_item["disk"].detail

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    offline = preflight(load_profile("a100-8b"), profile_ref="a100-8b", output_dir=tmp_path)
    blocked = {c.item for c in offline.blocking}
    assert {"policy model", "policy tokenizer", "reward model base", "reward model data"} <= blocked
    assert "hf download meta-llama/Meta-Llama-3-8B-Instruct" in offline.error_message()


def test_a_real_run_with_a_missing_classifier_fails_before_the_policy_loads(tmp_path, monkeypatch):
    import rlhf.rl.trainer as trainer

    def must_not_load(*args, **kwargs):
        raise AssertionError("the policy was loaded")

    monkeypatch.setattr(trainer, "build_policy", must_not_load)
    outcome = invoke(["run", "-p", "tiny-gpt2", "--output-dir", str(tmp_path / "runs"), "--set",
                      f"rewards=[{{name: classifier, model: {tmp_path}/no-model}}]"])
    assert_clean_failure(outcome, 2, [f"no folder {tmp_path}/no-model", "rlhf train-reward -p tiny-gpt2"])
    assert not (tmp_path / "runs").exists()


def test_a_real_run_prints_the_gpu_warning_and_goes_on(eight_b_folder, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    profile = load_profile("a100-8b", [f"model.name_or_path={eight_b_folder}", f"model.tokenizer={eight_b_folder}",
                                       "reward_model=null", "rewards=[{name: length}]"])
    console = Console(file=io.StringIO(), width=300)
    result = check_before_run(profile, console=console, gpu_memory=40)
    assert result.ready
    printed = console.file.getvalue()
    assert "[ warn  ] accelerator: no CUDA GPU" in printed and "per RL step" in printed
    assert "[  ok   ]" not in printed  # only what needs attention is printed before a real run


def test_a_chat_template_profile_needs_a_tokenizer_with_one():
    result = dry_run("-p", "tiny-gpt2", "--set", "data.chat_template=true")
    assert result.exit_code == 2
    assert statuses(result.output)["policy tokenizer"] == "missing"


def test_step_time_by_hand():
    # 1 block: q,k,v,o 4x4 each, MLP 4x8 and 8x4 -> 128 linear params; embeddings 10x4 tied -> 40; 168 in all.
    arch = Architecture(vocab_size=10, hidden_size=4, intermediate_size=8, num_layers=1, num_heads=1,
                        num_kv_heads=1, tie_embeddings=True, mlp_gated=False)
    profile = load_profile("tiny-gpt2", ["rollout.batch_size=2", "rollout.max_new_tokens=3", "algo.mini_batch_size=2",
                                         "algo.epochs=2", "model.dtype=float32"])
    device = preflight_module.A100_40GB.__class__("unit", flops=1e3, bandwidth=1e3)
    t = estimate_step_time(profile, arch, device, prompt_tokens=5)
    # decode: max(168 params * 4 bytes / 1e3, 2 * 168 * 2 seqs / 1e3) = 0.672 s per token, 3 tokens
    assert t.generate_s == pytest.approx(3 * 0.672)
    tokens = 2 * (5 + 3)
    assert t.score_s == pytest.approx(2 * 2 * 168 * tokens / 1e3)
    assert t.update_s == pytest.approx(2 * 3 * 2 * 168 * tokens / 1e3)  # no checkpointing: 3 forward-equivalents
    eight_b = estimate_step_time(load_profile("a100-8b"), LLAMA_3_8B, A100_40GB)
    assert eight_b.update_s > eight_b.score_s > 0  # 4 epochs of training dominate a PPO step


def test_format_duration():
    assert [format_duration(s) for s in (42.0, 210.0, 18360.0, 1.1e6)] == ["42 s", "3.5 min", "5.1 h", "13 days"]


def test_every_shipped_profile_gets_a_checklist_or_one_clear_error():
    from rlhf.config import available_profiles

    for name in available_profiles():
        result = dry_run("-p", name)
        assert result.exception is None or isinstance(result.exception, SystemExit), (name, result.exception)
        errors = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert (result.exit_code, len(errors)) in ((0, 0), (2, 1)), (name, result.output)
        assert "profile" in statuses(result.output), result.output


def test_a_label_outside_the_reward_models_classes_blocks(tmp_path):
    result = dry_run("-p", "a100-8b", "--set", f"reward_model.output_dir={tmp_path}/rm",
                     "--set", f"rewards=[{{name: classifier, model: {tmp_path}/rm, label: 2}}]")
    assert result.exit_code == 2
    assert statuses(result.output)["reward 0 (classifier)"] == "missing"
    assert "label 2 is not a class of the reward model (reward_model.num_labels=2)" in " ".join(result.output.split())


def test_a_reward_model_that_cannot_load_fails_before_the_policy_loads(tmp_path, monkeypatch):
    import rlhf.rl.trainer as trainer

    def must_not_load(*args, **kwargs):
        raise AssertionError("the policy was loaded")

    monkeypatch.setattr(trainer, "build_policy", must_not_load)
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{}")  # passes the preflight (a folder with a config), has no weights
    outcome = invoke(["run", "-p", "tiny-gpt2", "--output-dir", str(tmp_path / "runs"), "--set",
                      f"rewards=[{{name: classifier, model: {broken}}}]"])
    assert_clean_failure(outcome, 2, [f"option 'model'={str(broken)!r}"])


def test_hub_names_found_in_the_hugging_face_cache_are_ok(tmp_path, monkeypatch):
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    for repo, files in (("org/flirt-classifier", {"config.json": "{}"}),
                        ("org/policy", {"config.json": json.dumps(LLAMA_3_8B_CONFIG), "tokenizer.json": "{}"})):
        folder = cache / f"models--{repo.replace('/', '--')}"
        (folder / "refs").mkdir(parents=True)
        (folder / "refs" / "main").write_text("abc123")
        for name, text in files.items():
            (folder / "snapshots" / "abc123").mkdir(parents=True, exist_ok=True)
            (folder / "snapshots" / "abc123" / name).write_text(text)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    profile = load_profile("tiny-gpt2", ["model.random_init=null", "model.name_or_path=org/policy",
                                         "model.tokenizer=org/policy",
                                         "rewards=[{name: classifier, model: org/flirt-classifier}]"])
    checks = {c.item: c for c in preflight(profile, gpu_memory=1000).checks}
    for item in ("policy model", "policy tokenizer", "reward 0 (classifier)"):
        assert (checks[item].status, checks[item].detail.endswith("(in the Hugging Face cache)")) == ("ok", True)
    peak = float(re.search(r"peak ([\d.]+) GiB", checks["memory plan"].detail).group(1))
    assert peak > 30  # planned from the cached config: 8 B float32 weights, not a tiny model
    assert "disk" not in checks  # nothing to download
