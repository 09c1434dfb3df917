# %% [markdown]
# # Flirty dialogue: a trained classifier reward, PPO, a toxicity filter
# Seed: the flirty sprint (classifier reward on `flirty_or_not`, PPO, a try-out app).
# The real run is one command on an A100: `rlhf run -p a100-8b` (Meta-Llama-3-8B-Instruct in 4-bit with LoRA;
# its `reward_model:` stage trains distilroberta on `hf:ieuniversity/flirty_or_not`). This recipe runs the same
# stages on a tiny GPT-2 on CPU. `RLHF_RECIPE_QUICK=1` shrinks it to seconds (what the tests run).

# %%
import os
from pathlib import Path

import rlhf

QUICK = os.environ.get("RLHF_RECIPE_QUICK", "0") == "1"
OUT = Path(os.environ.get("RLHF_RECIPE_OUT", "outputs/recipes")) / "flirty_dialogue"
PROFILE = "tiny-gpt2"  # on an A100: "a100-8b"
STEPS = 2 if QUICK else 60

# %% [markdown]
# ## Stage 1: a classifier reward model on labelled texts
# `flirty_or_not` has a `texts` column and a 0/1 `label`; the shipped `reviews-labelled` set has the same
# layout (`text`, `label`), so the tiny run trains on it.

# %%
reward_model = rlhf.train_reward("reward-model-tiny", overrides={
    "reward_model.kind": "classifier", "reward_model.output_dir": str(OUT / "reward-model"),
    "reward_model.epochs": 0.3 if QUICK else 1, "reward_model.max_length": 32}, quiet=QUICK)
print(reward_model.metrics)

# %% [markdown]
# ## Stage 2: PPO against the classifier's probability of label 1, with a toxicity filter
# A completion the profanity model flags gets the floor reward whatever the classifier says.

# %%
result = rlhf.run(PROFILE, output_dir=OUT, quiet=QUICK, overrides={
    "trainer.steps": STEPS, "trainer.log_with": ["csv", "tensorboard"], "data.prompts": "builtin:flirty-openers"},
    rewards=[{"name": "classifier", "model": str(reward_model.output_dir), "label": 1, "output": "probability"},
             {"name": "toxicity", "mode": "filter", "threshold": 0.5, "floor": -1.0}])
print(result.stats[["step", "objective/scores", "objective/kl"]].tail())
print("TensorBoard:", f"tensorboard --logdir {result.paths['tensorboard']}")

# %% [markdown]
# ## Try it: base and tuned side by side in a small web app
# `rlhf serve RUN` (or `rlhf.serve(RUN)`) opens it on 127.0.0.1; here the app is only built.

# %%
app = rlhf.serve(result.run_dir, launch=False)
print(type(app).__name__)
