# %% [markdown]
# # Occupations: balanced agentic/communal descriptions with a rule reward, QLoRA PPO, 250 per occupation
# Seed: the occupations guide (agentic/communal lexicon reward, PPO with LoRA on a 4-bit Llama, checkpoints,
# 250 generated descriptions per occupation into a CSV, "high reward is not enough": check for hacking).
# Real run: `rlhf run -p occupations-8b` on one A100. This recipe takes the same path with a tiny random Llama
# in 4-bit NF4 + LoRA on CPU (`tiny-llama-4bit`). `RLHF_RECIPE_QUICK=1` shrinks it to seconds.

# %%
import os
from pathlib import Path

import pandas as pd

import rlhf

QUICK = os.environ.get("RLHF_RECIPE_QUICK", "0") == "1"
OUT = Path(os.environ.get("RLHF_RECIPE_OUT", "outputs/recipes")) / "occupations"
PROFILE = "tiny-llama-4bit"  # on an A100: "occupations-8b"
PER_OCCUPATION = 1 if QUICK else 250  # the guide's deliverable: 250 per occupation

# %% [markdown]
# ## The reward: the guide's rule, exactly
# Agentic and communal terms are counted; a description scores highest when it has both, balanced.

# %%
reward = {"name": "agentic_communal"}
print([(r.name, r.passed) for r in rlhf.check_reward(reward, max_examples=10)])

# %% [markdown]
# ## QLoRA PPO with checkpoints

# %%
result = rlhf.run(PROFILE, output_dir=OUT, quiet=QUICK, rewards=[reward], overrides={
    "data.prompts": "builtin:occupations", "trainer.steps": 2 if QUICK else 200,
    "trainer.checkpoint_every": 1 if QUICK else 50, "trainer.log_with": ["csv"]})
print(sorted(p.name for p in result.paths["checkpoints"].iterdir()))

# %% [markdown]
# ## N descriptions per occupation into a CSV (prompt, sample, completion, rewards, occupation)

# %%
generated = rlhf.generate(result.run_dir, prompts="builtin:occupations", n=PER_OCCUPATION,
                          out=OUT / "descriptions.csv", quiet=QUICK)
table = pd.read_csv(generated.path)
print(table.groupby("occupation")["reward/agentic_communal"].mean().head())

# %% [markdown]
# ## Is the tuned model better, and did it cheat? The evaluation report with hacking flags

# %%
report = rlhf.evaluate(result.run_dir, samples=8 if QUICK else 100, quiet=QUICK)
print(report.folder, [flag["flag"] for flag in report.data["tuned"]["hacking_flags"]])
