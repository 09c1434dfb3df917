"""The model card renders a run's facts; push hands final/ to huggingface_hub (a fake HfApi: offline)."""

import pytest
from huggingface_hub import ModelCard

from rlhf.config import load_profile
from rlhf.publish import push_run, write_model_card


def test_card_renders_the_runs_facts(tmp_path):
    profile = load_profile("tiny-llama-4bit", ["rewards=[{name: length, target: 12, weight: 0.5}]"])
    (tmp_path / "run" / "meta_data").mkdir(parents=True)
    (tmp_path / "run" / "meta_data" / "evaluation.json").write_text('{"tuned_reward_mean": 0.875}')
    (tmp_path / "final").mkdir()
    path = write_model_card(tmp_path / "final", profile, algorithm="ppo", metrics={"objective/scores": 1.25},
                            steps=3, tokens=384, run_dir=tmp_path / "run")

    card = ModelCard.load(path)  # parses as a hub card: YAML metadata + body
    assert card.data.library_name == "peft" and "ppo" in card.data.tags
    text = card.text
    for fact in ("random-init llama (2 layers, hidden 64", profile.description, "**algorithm:** ppo",
                 "`length` (weight 0.5)", "**steps:** 3", "**tokens:** 384", "LoRA adapter (r=8)", "4-bit",
                 "| objective/scores | 1.25 |", "## Evaluation (base vs tuned)", "| tuned_reward_mean | 0.875 |",
                 "quant_type: nf4"):
        assert fact in text, fact


def test_card_without_evaluation_and_with_a_hub_base_model(tmp_path):
    profile = load_profile("a100-8b")
    path = write_model_card(tmp_path, profile, algorithm="grpo", metrics={}, run_dir=tmp_path)
    card = ModelCard.load(path)
    assert card.data.base_model == "meta-llama/Meta-Llama-3-8B-Instruct"
    assert "Evaluation" not in card.text and "**steps:** n/a" in card.text


class FakeHfApi:
    def __init__(self):
        self.calls = []

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))

    def upload_folder(self, **kwargs):
        self.calls.append(("upload_folder", kwargs["repo_id"], kwargs))
        return type("Commit", (), {"commit_url": f"https://hub.test/{kwargs['repo_id']}/commit/1"})()


def test_push_uploads_the_final_folder(tmp_path):
    (tmp_path / "final").mkdir()
    (tmp_path / "final" / "adapter_config.json").write_text("{}")
    api = FakeHfApi()
    url = push_run(tmp_path, "me/tiny", private=True, api=api)

    assert url == "https://hub.test/me/tiny/commit/1"
    (create, upload) = api.calls
    assert create[:2] == ("create_repo", "me/tiny") and create[2] == {"private": True, "exist_ok": True}
    assert upload[1] == "me/tiny" and upload[2]["folder_path"] == str(tmp_path / "final")


def test_push_command_uses_huggingface_hub(tmp_path, monkeypatch):
    import huggingface_hub
    from typer.testing import CliRunner

    from rlhf.cli import app

    (tmp_path / "final").mkdir()
    (tmp_path / "final" / "config.json").write_text("{}")
    api = FakeHfApi()
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda: api)
    result = CliRunner().invoke(app, ["push", str(tmp_path), "--repo", "me/tiny"])
    assert result.exit_code == 0, result.output
    assert [call[:2] for call in api.calls] == [("create_repo", "me/tiny"), ("upload_folder", "me/tiny")]
    assert api.calls[1][2]["folder_path"] == str(tmp_path / "final")


def test_push_refuses_a_folder_without_a_final_model(tmp_path):
    with pytest.raises(ValueError, match="no final model"):
        push_run(tmp_path, "me/tiny", api=FakeHfApi())


def test_python_api_exposes_the_new_stages(tmp_path):
    import rlhf

    with pytest.raises(ValueError, match="no final model"):
        rlhf.push(tmp_path, "me/tiny")
    with pytest.raises(ValueError, match="`dpo:`"):
        rlhf.train_dpo("tiny-gpt2")
    with pytest.raises(ValueError, match="`sft:`"):
        rlhf.sft("tiny-gpt2")
