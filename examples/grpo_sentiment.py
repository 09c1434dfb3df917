# %% [markdown]
# # GRPO for positive sentiment: reward shaping, forward vs reverse KL, a hackable reward and its fix
# Seed: the GRPO exercise. Real run: `rlhf run -p grpo-sentiment` (the pretrained cpu-demo model, about a
# minute). `RLHF_RECIPE_QUICK=1` runs every variant for two steps on the tiny random GPT-2.

# %%
import importlib.util
import os
from pathlib import Path

import rlhf

QUICK = os.environ.get("RLHF_RECIPE_QUICK", "0") == "1"
OUT = Path(os.environ.get("RLHF_RECIPE_OUT", "outputs/recipes")) / "grpo_sentiment"
PROFILE = "tiny-gpt2" if QUICK else "grpo-sentiment"
GRPO = {"algo.name": "grpo", "rollout.batch_size": 4, "rollout.num_generations": 4,
        "trainer.steps": 2 if QUICK else 60, "trainer.log_with": ["csv"]}


def train(name, rewards, **overrides):
    result = rlhf.run(PROFILE, output_dir=OUT / name, rewards=rewards, overrides={**GRPO, **overrides}, quiet=QUICK)
    first, last = result.stats["objective/scores"].iloc[0], result.stats["objective/scores"].iloc[-1]
    print(f"{name:>24}: reward {first:+.3f} -> {last:+.3f}, KL {result.stats['objective/kl'].iloc[-1]:.3f}")
    return result


# %% [markdown]
# ## Shaping variants of the sentiment reward

# %%
train("linear", [{"name": "sentiment", "shaping": [{"name": "linear", "scale": 2.0}]}])
train("exponential+repetition", [{"name": "sentiment", "shaping": [
    {"name": "exponential", "scale": 2.0}, {"name": "repetition_penalty", "ngram": 1, "weight": 0.5}]}])

# %% [markdown]
# ## Reverse KL(policy || ref) vs forward KL(ref || policy), both exact over the vocabulary

# %%
for direction in ("reverse", "forward"):
    train(f"kl-{direction}", ["sentiment"], **{"algo.kl.estimator": "full", "algo.kl.direction": direction,
                                               "algo.kl.coef": 0.1})

# %% [markdown]
# ## A hackable reward (counting one word) and its fix (a repetition penalty)

# %%
hacked = train("hackable", [{"name": "hackable_word_count", "words": ["great"]}])
fixed = train("hackable+penalty", [{"name": "hackable_word_count", "words": ["great"],
                                    "shaping": [{"name": "repetition_penalty", "ngram": 1, "weight": 1.0}]}])

# %% [markdown]
# ## LoRA on and off; W&B offline when wandb is installed

# %%
train("lora", ["sentiment"], **{"model.lora": {"r": 8, "alpha": 16}})
if importlib.util.find_spec("wandb"):
    os.environ.setdefault("WANDB_MODE", "offline")
    train("wandb-offline", ["sentiment"], **{"trainer.log_with": ["csv", "wandb"]})
