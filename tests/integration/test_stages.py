"""The multi-stage recipes: reward model -> RL against it, and the cpu-demo (pretrain -> PPO -> evaluate)."""

import json

from helpers import column, first_last_mean, stats
from typer.testing import CliRunner

from rlhf.cli import app

runner = CliRunner()


def test_trained_reward_model_scores_a_run(tmp_path):
    reward_dir = tmp_path / "reward-model"
    trained = runner.invoke(app, ["train-reward", "-p", "reward-model-tiny", "--set",
                                  f"reward_model.output_dir={reward_dir}"])
    assert trained.exit_code == 0, trained.output
    assert json.loads((reward_dir / "eval.json").read_text())["metrics"]["pairwise_accuracy"] >= 0.9
    result = runner.invoke(app, ["run", "-p", "reward-model-tiny", "--output-dir", str(tmp_path / "runs"),
                                 "--set", f"rewards.0.model={reward_dir}", "--set", "trainer.steps=2"])
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    scores = column(stats(run_dir), "objective/scores")
    assert len(scores) == 2 and len(set(scores)) == 2  # real, varying classifier scores


def test_cpu_demo_pipeline_raises_sentiment(tmp_path, monkeypatch):
    monkeypatch.setenv("RLHF_CACHE", str(tmp_path / "cache"))  # pretraining really runs here
    result = runner.invoke(app, ["run", "-p", "cpu-demo", "--output-dir", str(tmp_path / "runs"),
                                 "--set", "trainer.steps=30", "--set", "pretrain.epochs=2",
                                 "--set", "trainer.eval_samples=16", "--set", "trainer.log_with=[csv]"])
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert run_dir.name.startswith("gpt2-pretrained-")
    pretrain_metrics = json.loads(next((tmp_path / "cache" / "pretrained").glob("*/pretrain_metrics.json")).read_text())
    assert pretrain_metrics["metrics"]["eval_loss_after"] < pretrain_metrics["metrics"]["eval_loss_before"] - 1.0
    first, last = first_last_mean(column(stats(run_dir), "objective/scores"), 5)
    evaluation = json.loads((run_dir / "meta_data" / "evaluation.json").read_text())
    print(f"cpu-demo (reduced): sentiment {first:.3f} -> {last:.3f}; evaluation {evaluation}")
    assert last > first + 0.2
    assert evaluation["tuned_reward_mean"] > evaluation["base_reward_mean"]
    assert "base vs tuned" in result.output
