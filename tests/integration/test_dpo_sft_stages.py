"""train-dpo and sft end to end on the tiny profiles: learning, run-folder layout, and the next stage using it."""

import json

from helpers import column, stats
from typer.testing import CliRunner

from rlhf.cli import app
from rlhf.config import load_profile
from rlhf.stages.dpo import METRICS_FILE, train_dpo

runner = CliRunner()


def test_dpo_tiny_learns_the_preferences_and_its_run_folder_evaluates(tmp_path):
    result = runner.invoke(app, ["train-dpo", "-p", "dpo-tiny", "--output-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (run_dir,) = tmp_path.iterdir()
    metrics = json.loads((run_dir / "meta_data" / METRICS_FILE).read_text())["metrics"]
    print(f"dpo-tiny held out: accuracy {metrics['eval_accuracy']:.3f}, margin {metrics['eval_margin']:.4f}")
    assert metrics["eval_accuracy"] >= 0.9
    assert metrics["eval_margin"] > 0 and metrics["eval_chosen_reward"] > metrics["eval_rejected_reward"]
    assert metrics["num_eval"] == 80 and metrics["steps"] == 15
    assert len(stats(run_dir)) >= 2 and all(loss > 0 for loss in column(stats(run_dir), "loss"))
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert (run_dir / "final" / "model.safetensors").exists()
    card = (run_dir / "final" / "README.md").read_text()
    assert "dpo (sigmoid loss)" in card and f"| eval_accuracy | {metrics['eval_accuracy']:.4g} |" in card
    # The run folder is what `rlhf evaluate` takes from an RL run: profile.yaml + final/.
    evaluated = runner.invoke(app, ["evaluate", str(run_dir), "--samples", "4"])
    assert evaluated.exit_code == 0, evaluated.output
    (report_file,) = (run_dir / "evaluations").glob("*/report.json")
    report = json.loads(report_file.read_text())
    assert report["samples"] == 4 and "reward_mean" in report["base"] and "hacking_flags" in report["tuned"]


def test_ipo_on_4bit_lora_trains_the_adapter_against_the_disabled_adapter_reference(tmp_path):
    from safetensors.torch import load_file

    from rlhf.models.factory import build_policy

    profile = load_profile("tiny-llama-4bit", ["dpo.max_pairs=48", "dpo.loss_type=[ipo]", "dpo.batch_size=8",
                                               "dpo.learning_rate=1e-3", "dpo.eval_fraction=0.25"])
    result = train_dpo(profile, output_dir=tmp_path)

    final = result.final_dir
    assert (final / "adapter_config.json").exists() and not (final / "config.json").exists()
    assert not (final / "ref").exists()  # TRL did not add a copied "ref" adapter: reference = adapters disabled
    weights = load_file(str(final / "adapter_model.safetensors"))
    lora_b = [w for name, w in weights.items() if "lora_B" in name]
    assert lora_b and all(w.dtype.is_floating_point and w.dtype.itemsize == 4 for w in weights.values())  # fp32
    assert any(w.abs().sum() > 0 for w in lora_b)  # trained away from the zero init
    assert "dpo (ipo loss)" in (final / "README.md").read_text()
    policy = build_policy(profile.model, with_value_head=False, adapter_dir=final)  # how evaluate loads it
    assert policy.uses_lora


def test_pretrain_then_chat_sft_then_rl_on_the_sft_model(tmp_path, monkeypatch):
    monkeypatch.setenv("RLHF_CACHE", str(tmp_path / "cache"))  # the pretraining stage really runs here
    sft_dir = tmp_path / "sft"
    result = runner.invoke(app, ["sft", "-p", "sft-tiny", "--set", f"sft.output_dir={sft_dir}"])
    assert result.exit_code == 0, result.output
    assert list((tmp_path / "cache" / "pretrained").glob("*/pretrain_metrics.json"))  # pretrain ran first
    report = json.loads((sft_dir / "sft_metrics.json").read_text())
    assert report["model_source"].startswith(str(tmp_path / "cache" / "pretrained"))
    metrics = report["metrics"]
    assert metrics["eval_loss_after"] < metrics["eval_loss_before"] - 0.5
    assert list((sft_dir / "tensorboard").glob("events.out.tfevents.*"))
    # RL on the SFT model, prompts formatted with the chat template saved beside it.
    run = runner.invoke(app, ["run", "-p", "sft-tiny", "--output-dir", str(tmp_path / "runs"),
                              "--set", "pretrain=null", "--set", "model.random_init=null",
                              "--set", f"model.name_or_path={sft_dir}", "--set", f"model.tokenizer={sft_dir}",
                              "--set", "trainer.steps=2", "--set", "trainer.log_with=[csv]"])
    assert run.exit_code == 0, run.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert len(stats(run_dir)) == 2
    assert "Assistant: " in (run_dir / "meta_data" / "generated_outputs.csv").read_text()
    card = (run_dir / "final" / "README.md").read_text()  # an RL run's final/ carries its model card too
    assert "**algorithm:** ppo" in card and "**steps:** 2" in card and "`sentiment` (weight 1)" in card
    assert f"`{sft_dir}` (local folder)" in card
