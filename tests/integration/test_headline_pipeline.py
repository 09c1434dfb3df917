"""The headline command on CPU: `rlhf run -p a100-8b` trains its reward model (stage 1), then runs PPO with it
(stage 2); a second run reuses the trained reward model.

The profile is a100-8b as shipped, with its three hub names mapped to local stand-ins (a tiny Llama with a
chat template, a tiny encoder, a local copy of a labelled set in flirty_or_not's layout) and its sizes cut
for a CPU (batch, tokens, steps, reward-model epochs; a random encoder needs a larger learning rate).
Everything else runs as configured for the A100: 4-bit NF4 + LoRA, bf16, the classifier on `texts`/`label`,
`outputs/reward-model` relative to the working folder.
"""

import json

from helpers import column, stats
from standins import flirty_texts, make_flirty_or_not, make_tiny_encoder, make_tiny_llama
from typer.testing import CliRunner

from rlhf.cli import app

CPU_SIZES = ["rollout.batch_size=4", "rollout.micro_batch_size=4", "algo.mini_batch_size=4",
             "rollout.max_new_tokens=6", "trainer.steps=2", "trainer.log_with=[csv]",
             "reward_model.epochs=3", "reward_model.learning_rate=3e-3", "reward_model.max_length=32"]


def invoke(*args):
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_a100_8b_trains_its_reward_model_once_then_runs_ppo_with_it(tmp_path, monkeypatch):
    llama = make_tiny_llama(tmp_path / "stand-ins" / "llama")
    data = make_flirty_or_not(tmp_path / "stand-ins" / "flirty_or_not", train=128)
    encoder = make_tiny_encoder(tmp_path / "stand-ins" / "encoder", [t for t, _ in flirty_texts(64, seed=9)])
    hub_names = [f"model.name_or_path={llama}", f"model.tokenizer={llama}",
                 f"reward_model.name_or_path={encoder}", f"reward_model.tokenizer={encoder}",
                 f"reward_model.data=hf:{data}:train"]
    sets = [arg for override in hub_names + CPU_SIZES for arg in ("--set", override)]
    monkeypatch.chdir(tmp_path)  # outputs/ of the profile, as on a fresh machine

    checklist = invoke("run", "-p", "a100-8b", "--dry-run", *sets)
    assert "outputs/reward-model: not trained yet; the run trains it first" in checklist
    assert not (tmp_path / "outputs").exists()  # a dry run writes nothing

    first = invoke("run", "-p", "a100-8b", *sets)
    assert "reward model: outputs/reward-model is not trained yet: training a classifier" in first
    report = json.loads((tmp_path / "outputs" / "reward-model" / "eval.json").read_text())
    assert report["config"]["output_dir"] == "outputs/reward-model"
    assert (report["config"]["text_column"], report["config"]["label_column"]) == ("texts", "label")
    assert report["metrics"]["accuracy"] >= 0.9  # the stand-in task is learnable: the stage really trained
    (run_dir,) = (tmp_path / "outputs").glob("llama_*")
    scores = column(stats(run_dir), "rewards/classifier")
    assert len(scores) == 2 and len(set(scores)) == 2  # PPO was scored by the trained classifier

    weights = tmp_path / "outputs" / "reward-model" / "model.safetensors"
    trained_at = weights.stat().st_mtime_ns
    second = invoke("run", "-p", "a100-8b", *sets, "--set", "trainer.steps=1")
    assert "reward model: using the trained model in outputs/reward-model" in second
    assert "training a classifier" not in second
    assert weights.stat().st_mtime_ns == trained_at
    assert len(list((tmp_path / "outputs").glob("llama_*"))) == 2

    changed = invoke("run", "-p", "a100-8b", "--dry-run", *sets, "--set", "reward_model.epochs=4")
    assert "trained with other reward_model: settings; the run trains it first" in changed
