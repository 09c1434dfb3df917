# %% [markdown]
# # Pretraining, then PPO with an LLM-teacher reward
# Seed: the pretraining framework (pretrain a small model, combine data sets under a token limit, run
# folders named by model and tokens with meta_data CSVs, PPO with a teacher LLM rating continuations).
# Everything runs on CPU; `RLHF_RECIPE_QUICK=1` shrinks it to seconds.

# %%
import os
from pathlib import Path

import rlhf

QUICK = os.environ.get("RLHF_RECIPE_QUICK", "0") == "1"
OUT = Path(os.environ.get("RLHF_RECIPE_OUT", "outputs/recipes")) / "pretrain_then_ppo"

# %% [markdown]
# ## Pretrain a small GPT-2 on the shipped reviews corpus (cached: a second run reuses it)

# %%
pretraining = rlhf.pretrain("cpu-demo", overrides={
    "pretrain.epochs": 0.05 if QUICK else 6, "pretrain.dataset_fraction": 0.2 if QUICK else 1.0,
    "pretrain.output_dir": str(OUT / "pretrained")}, quiet=QUICK)
print(pretraining.metrics)

# %% [markdown]
# ## PPO: two prompt sets combined under a token limit, a teacher LLM rates each continuation
# The teacher here is the pretrained model itself (a real run names an instruction-tuned model); answers
# it cannot parse as a 1-9 score get the fallback and are counted in `rewards/llm_judge/unparsed`.

# %%
model = str(pretraining.output_dir)
result = rlhf.run("tiny-gpt2", output_dir=OUT, quiet=QUICK, overrides={
    "model.name_or_path": model, "model.tokenizer": model, "model.random_init": None,
    "data.prompts": ["builtin:review-openers", "builtin:neutral"], "data.token_limit": 300,
    "trainer.steps": 2 if QUICK else 40, "trainer.log_with": ["csv"]},
    rewards=[{"name": "llm_judge", "model": model, "max_tokens": 4, "fallback": 0.5, "max_unparsed": 1.0},
             {"name": "length", "target": 12, "weight": 0.2}])

# %% [markdown]
# ## The run folder: `<model>_<N>K_tokens__<date>/meta_data/*.csv`

# %%
print(result.run_dir.name)
print(result.stats[["step", "objective/scores", "rewards/llm_judge/unparsed", "tokens"]])
print(result.samples.head())
