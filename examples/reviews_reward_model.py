# %% [markdown]
# # Reviews: a pairwise reward model, best-of-N, PPO with LoRA, side-by-side evaluation, the 4-bit variant
# Seed: the IMDB-style tutorial notebook (reward model with accuracy, best-of-N sampling as the baseline,
# PPO, base vs tuned side by side). Runs on CPU; `RLHF_RECIPE_QUICK=1` shrinks it to seconds.

# %%
import os
from pathlib import Path

import pandas as pd

import rlhf

QUICK = os.environ.get("RLHF_RECIPE_QUICK", "0") == "1"
OUT = Path(os.environ.get("RLHF_RECIPE_OUT", "outputs/recipes")) / "reviews"

# %% [markdown]
# ## A pairwise (Bradley-Terry) reward model: positive reviews preferred over negative ones

# %%
reward_model = rlhf.train_reward("reward-model-tiny", overrides={
    "reward_model.output_dir": str(OUT / "reward-model"), "reward_model.num_pairs": 256 if QUICK else 2000},
    quiet=QUICK)
print("held-out pairwise accuracy:", reward_model.metrics.get("eval_accuracy", reward_model.metrics))
REWARD = {"name": "classifier", "model": str(reward_model.output_dir), "output": "logit", "label": 0}

# %% [markdown]
# ## Best-of-N with the untrained model: the baseline RL has to beat

# %%
best = rlhf.generate(profile="reward-model-tiny", prompts="builtin:review-openers", best_of=4,  # the base model
                     out=OUT / "best-of-4.csv", quiet=QUICK, rewards=[REWARD])
print(pd.read_csv(best.path)[["prompt", "completion"]].head(3))

# %% [markdown]
# ## PPO with LoRA against the reward model, then base vs tuned side by side

# %%
result = rlhf.run("reward-model-tiny", output_dir=OUT, quiet=QUICK, rewards=[REWARD], overrides={
    "model.lora": {"r": 8, "alpha": 16}, "trainer.learning_rate": 1e-3, "trainer.steps": 2 if QUICK else 60,
    "trainer.log_with": ["csv"]})
report = rlhf.evaluate(result.run_dir, samples=8 if QUICK else 64, best_of=4, quiet=QUICK)
print({name: round(values["reward_mean"], 3) for name, values in report.data.items()
       if isinstance(values, dict) and "reward_mean" in values})

# %% [markdown]
# ## The same in 4-bit NF4 + LoRA (the A100 profile's path, on a tiny Llama)

# %%
quantised = rlhf.run("tiny-llama-4bit", output_dir=OUT / "4bit", quiet=QUICK, rewards=[REWARD], overrides={
    "data.prompts": "builtin:review-openers", "trainer.steps": 2 if QUICK else 60, "trainer.log_with": ["csv"]})
print(quantised.stats[["step", "objective/scores"]])
