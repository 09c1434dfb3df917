"""A run stopped after step k and resumed ends with the same training_stats.csv as an uninterrupted run."""

import shutil

import pytest
from helpers import stats

from rlhf.rl.checkpoint import list_checkpoints
from rlhf.config import load_profile
from rlhf.rl.trainer import run

COMPARED = ["objective/scores", "objective/kl", "objective/rlhf_reward", "loss/policy_avg",
            "policy/approxkl_avg", "policy/entropy_avg", "kl_coef"]


@pytest.mark.parametrize("algo", [["algo.name=ppo", "algo.kl.target=0.5"],
                                  ["algo.name=grpo", "rollout.num_generations=2", "rollout.batch_size=4",
                                   "trainer.lr_scheduler=linear"]])
def test_resume_reproduces_the_uninterrupted_run(tmp_path, algo):
    overrides = ["trainer.steps=4", "trainer.checkpoint_every=2", "trainer.keep_checkpoints=3",
                 "trainer.log_with=[csv, tensorboard]", *algo]
    profile = load_profile("tiny-gpt2", overrides)
    full = run(profile, output_dir=tmp_path / "full").run_dir
    expected = stats(full)

    # Simulate a crash right after step 3: step 2 is the last complete checkpoint, logs went further.
    interrupted = tmp_path / "interrupted"
    shutil.copytree(full, interrupted)
    for checkpoint in list_checkpoints(interrupted)[1:]:
        shutil.rmtree(checkpoint)
    shutil.rmtree(interrupted / "final")
    resumed = run(load_profile(interrupted / "profile.yaml"), resume_dir=interrupted).run_dir
    got = stats(resumed)

    assert [r["step"] for r in got] == ["1", "2", "3", "4"]
    for want_row, got_row in zip(expected, got):
        for key in COMPARED:
            assert float(got_row[key]) == pytest.approx(float(want_row[key]), rel=1e-4, abs=1e-6), key
    assert (resumed / "final" / "config.json").exists()


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(ValueError, match="no intact checkpoint"):
        run(load_profile("tiny-gpt2"), resume_dir=tmp_path / "run")


def test_checkpoints_by_generated_tokens(tmp_path):
    # 8 completions x 12 tokens <= 96 tokens a step: a 150-token period checkpoints every second step or so
    profile = load_profile("tiny-gpt2", ["trainer.steps=6", "trainer.checkpoint_every=1000",
                                         "trainer.checkpoint_every_tokens=150", "trainer.keep_checkpoints=10",
                                         "trainer.log_with=[csv]", "rollout.min_new_tokens=12"])
    result = run(profile, output_dir=tmp_path)
    from helpers import column, stats

    tokens = column(stats(result.run_dir), "tokens")
    crossings = [step for step, (before, after) in enumerate(zip([0.0, *tokens], tokens), start=1)
                 if before // 150 < after // 150]
    saved = [int(p.name.removeprefix("step-")) for p in (result.run_dir / "checkpoints").iterdir()]
    assert sorted(saved) == sorted(set(crossings) | {6}) and len(crossings) >= 3
