"""`rlhf run` end to end through the CLI."""

from pathlib import Path

from helpers import stats
from typer.testing import CliRunner

from rlhf.cli import app

runner = CliRunner()


def test_tiny_llama_4bit_ppo_end_to_end_with_merge(tmp_path):
    result = runner.invoke(app, ["run", "--profile", "tiny-llama-4bit", "--output-dir", str(tmp_path), "--merge"])
    assert result.exit_code == 0, result.output
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert run_dir.name.startswith("random-llama_") and "K_tokens__" in run_dir.name
    rows = stats(run_dir)
    assert [r["step"] for r in rows] == ["1", "2", "3"] and "loss/value_avg" in rows[0]
    final = run_dir / "final"
    assert (final / "adapter_config.json").exists() and (final / "value_head.safetensors").exists()
    assert (run_dir / "final-merged" / "config.json").exists()
    assert (run_dir / "profile.yaml").exists() and (run_dir / "meta_data" / "generated_outputs.csv").exists()
    assert any((run_dir / "tensorboard").iterdir())
    assert "final model" in result.output


def test_default_profile_runs_and_reports_where_things_went(tmp_path):
    result = runner.invoke(app, ["run", "--output-dir", str(tmp_path), "--set", "trainer.steps=2"])
    assert result.exit_code == 0, result.output
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert str(run_dir.name) in result.output.replace("\n", "")
    assert len(stats(run_dir)) == 2


def test_bad_profile_key_exits_2_without_traceback(tmp_path):
    result = runner.invoke(app, ["run", "--output-dir", str(tmp_path), "--set", "trainer.stpes=3"])
    assert result.exit_code == 2 and "Did you mean 'steps'" in result.output
    assert "Traceback" not in result.output
    assert not any(Path(tmp_path).iterdir())
