"""The floor: the least any RL step on a profile must do, with nothing around it.

One bare ``generate`` of the step's completions (same sampling settings), then one forward + backward over
the same tokens (log-probs of the completion) and one AdamW step. An RL step can only approach this.
"""

from __future__ import annotations

import random
import time

import torch

from rlhf.config import Profile

FLOOR_PHASES = ("generate", "update_forward", "backward", "optimizer")


class FloorStep:
    """Generate + forward/backward + AdamW on the profile's saved model folder."""

    name = "floor"

    def __init__(self, profile: Profile, work_dir=None) -> None:
        from transformers import AutoModelForCausalLM

        from rlhf.data import load_prompts
        from rlhf.models.factory import model_source
        from rlhf.models.tokenizer import load_tokenizer

        torch.manual_seed(profile.seed)
        folder = str(model_source(profile.model, profile.seed))
        self.profile, self.tokenizer = profile, load_tokenizer(folder)
        self.model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        for module in self.model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=profile.trainer.learning_rate)
        self.prompts = load_prompts(profile.data, self.tokenizer, profile.seed)
        self.random = random.Random(profile.seed)

    def step(self) -> dict:
        r, tok = self.profile.rollout, self.tokenizer
        prompts = [p for p in self.random.sample(self.prompts, r.batch_size) for _ in range(r.num_generations)]
        encoded = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        phases, start = {}, time.perf_counter()
        with torch.no_grad():
            out = self.model.generate(**encoded, do_sample=True, max_new_tokens=r.max_new_tokens,
                                      min_new_tokens=r.min_new_tokens, temperature=r.temperature, top_p=r.top_p,
                                      top_k=r.top_k, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                                      use_cache=True)
        phases["generate"] = time.perf_counter() - start
        mark = time.perf_counter()
        response = out[:, encoded.input_ids.shape[1]:]  # (N, R)
        mask = torch.cat([encoded.attention_mask, torch.ones_like(response)], dim=1)
        logits = self.model(input_ids=out, attention_mask=mask, logits_to_keep=response.shape[1] + 1).logits
        logits = logits[:, :-1].float()  # (N, R, V)
        logprobs = logits.gather(-1, response.unsqueeze(-1)).squeeze(-1) - logits.logsumexp(-1)  # (N, R)
        loss = -logprobs.mean()
        phases["update_forward"] = time.perf_counter() - mark
        mark = time.perf_counter()
        loss.backward()
        phases["backward"] = time.perf_counter() - mark
        mark = time.perf_counter()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        phases["optimizer"] = time.perf_counter() - mark
        is_eos = (response == tok.eos_token_id).long()
        tokens = int(((is_eos.cumsum(-1) - is_eos) == 0).sum())  # up to and including the first EOS, as rlhf
        return {"step_s": time.perf_counter() - start, "phases": phases, "tokens": tokens,
                "sequences": len(prompts)}
