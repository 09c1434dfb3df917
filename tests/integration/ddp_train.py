"""Run by test_distributed.py under `accelerate launch --num_processes 2`: train, then record parameters."""

import hashlib
import sys
from pathlib import Path

import torch

from rlhf.config import load_profile
from rlhf.rl.trainer import Trainer

out = Path(sys.argv[1])
profile = load_profile("tiny-gpt2", ["trainer.steps=2", "trainer.checkpoint_every=1", "trainer.log_with=[csv]",
                                     "rollout.batch_size=4", "algo.mini_batch_size=4"])
trainer = Trainer(profile, out / "run")
trainer.train()
digest = hashlib.sha256()
for name, param in sorted(trainer.policy.named_parameters()):
    digest.update(name.encode())
    digest.update(param.detach().cpu().numpy().tobytes())
rank, world = trainer.accelerator.process_index, trainer.accelerator.num_processes
(out / f"rank{rank}.txt").write_text(f"{world} {digest.hexdigest()} {len(trainer.sampler.state_dict())}")
torch.distributed.destroy_process_group()
