"""Run by test_fsdp.py under `torchrun --nproc_per_node 2` (gloo); also imported there for the 1-process side.

``fsdp_train.py OUT PROFILE...`` on each rank, for each profile: (1) trains 2 steps with trainer.strategy fsdp,
checkpointing every step, then generates with a different length on each rank; (2) resumes a copy of that run
from step 1 and trains step 2 again; (3) applies one update to a fresh trainer on a fixed batch (each rank its
half, in 2 accumulated minibatches). Every rank writes what it saw to ``OUT/PROFILE/rank<R>.json``; rank 0 also
saves the gathered weights around (3) to ``OUT/PROFILE/update.pt``.
"""

import hashlib
import json
import shutil
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor

from rlhf.config import load_profile
from rlhf.rl.checkpoint import list_checkpoints
from rlhf.rl.rollout import RolloutBatch, response_logprobs
from rlhf.rl.trainer import Trainer

FIXED_ROWS, PROMPT_LEN = 8, 6
# Each profile also turns on the FSDP options that are off by default, and leaves the others at their default.
OPTIONS = {"tiny-gpt2": ["trainer.fsdp.cpu_offload=true", "trainer.fsdp.gather_for_generation=false",
                         "trainer.eval_samples=2"],
           "tiny-llama-4bit": ["trainer.fsdp.reshard_after_forward=false"]}


def full_weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    """The whole trainable weights on every rank (gathered when sharded), by name."""
    return {name: (p.full_tensor() if isinstance(p, DTensor) else p).detach().clone()
            for name, p in trainer.policy.named_parameters() if p.requires_grad}


def digest(weights: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(weights):
        h.update(name.encode())
        h.update(weights[name].float().numpy().tobytes())
    return h.hexdigest()


def fixed_batch(trainer: Trainer, rows: slice) -> tuple[RolloutBatch, torch.Tensor, torch.Tensor | None]:
    """``rows`` of a fixed global batch: seeded tokens, old log-probs from the model itself (ratio 1),
    seeded advantages and returns; identical on every process and under every strategy."""
    response_len = trainer.profile.rollout.max_new_tokens
    g = torch.Generator().manual_seed(1234)
    vocab = trainer.policy.model.get_output_embeddings().out_features
    input_ids = torch.randint(3, vocab, (FIXED_ROWS, PROMPT_LEN + response_len), generator=g)[rows]
    advantages = torch.randn(FIXED_ROWS, response_len, generator=g)[rows]
    returns = torch.randn(FIXED_ROWS, response_len, generator=g)[rows]
    attention_mask = torch.ones_like(input_ids)
    with torch.no_grad():
        logprobs, values, _ = response_logprobs(trainer.model, input_ids, attention_mask, response_len, 1.0,
                                                with_values=trainer.estimator.needs_value_head)
    n = input_ids.shape[0]
    batch = RolloutBatch(prompts=["p"] * n, completions=["c"] * n, input_ids=input_ids,
                         attention_mask=attention_mask, response_mask=torch.ones(n, response_len),
                         logprobs=logprobs, ref_logprobs=logprobs - 0.01, values=values)
    return batch, advantages, returns if trainer.estimator.needs_value_head else None


def stats_rows(run_dir: Path) -> list[dict]:
    from rlhf.tracking import read_csv

    return read_csv(run_dir / "meta_data" / "training_stats.csv")


def main(out: Path, profile_name: str) -> None:
    base = ["trainer.strategy=fsdp", "trainer.steps=2", "trainer.checkpoint_every=1", "trainer.keep_checkpoints=3",
            "trainer.log_with=[csv]", *OPTIONS[profile_name]]
    profile = load_profile(profile_name, base)
    report: dict = {}

    # (1) train 2 steps, sharded
    trainer = Trainer(profile, out / "run")
    rank, world = trainer.accelerator.process_index, trainer.accelerator.num_processes
    params = list(trainer.policy.parameters())
    report["world"] = world
    report["all_sharded"] = all(isinstance(p, DTensor) for p in params)
    report["local_numel"] = sum(p.to_local().numel() for p in params if isinstance(p, DTensor))
    report["total_numel"] = sum(p.numel() for p in params)
    trainer.train()
    report["trained"] = digest(full_weights(trainer))
    # Processes that stop generating at different lengths (EOS) must not leave the others in an all-gather.
    from rlhf.rl.rollout import sample_responses

    uneven = profile.rollout.model_copy(update={"max_new_tokens": 2 + 4 * rank})
    with trainer.strategy.generation(trainer.policy):
        response = sample_responses(trainer.policy.model, trainer.tokenizer, ["a b", "c"], uneven,
                                    synced_gpus=trainer.strategy.synced_generation)[2]
    report["uneven_generation"] = list(response.shape)

    # (2) resume a copy of the run from its step-1 checkpoint
    if rank == 0:
        shutil.copytree(out / "run", out / "resumed")
        for checkpoint in list_checkpoints(out / "resumed")[1:]:
            shutil.rmtree(checkpoint)
        shutil.rmtree(out / "resumed" / "final")
    dist.barrier()
    resumed = Trainer(profile, out / "resumed", resume=True)
    report["resumed_from_step"] = resumed.step
    resumed.train()
    report["resumed"] = digest(full_weights(resumed))

    # (3) one update on this rank's half of a fixed batch
    # 2 accumulated minibatches per rank (FSDP reduce-scatters after each backward) vs 1 x 8 rows in 1 process
    update_profile = load_profile(profile_name, [*base, "algo.epochs=1", "trainer.grad_accum=2",
                                                 f"algo.mini_batch_size={FIXED_ROWS // world // 2}",
                                                 f"rollout.batch_size={FIXED_ROWS // world}"])
    fresh = Trainer(update_profile, out / "update-run")
    half = FIXED_ROWS // world
    batch, advantages, returns = fixed_batch(fresh, slice(rank * half, (rank + 1) * half))
    before = full_weights(fresh)
    fresh.update(batch, advantages, returns)
    after = full_weights(fresh)
    report["update_changed"] = sum(int(not torch.equal(before[k], after[k])) for k in after)
    if rank == 0:
        torch.save({"before": before, "after": after}, out / "update.pt")
    (out / f"rank{rank}.json").write_text(json.dumps(report))
    dist.barrier()


if __name__ == "__main__":
    out = Path(sys.argv[1])
    for name in sys.argv[2:]:  # one launch for every profile: process start-up is most of the cost
        main(out / name, name)
    dist.destroy_process_group()
