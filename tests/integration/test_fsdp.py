"""trainer.strategy: fsdp (FSDP2) on 2 CPU processes (gloo), on tiny-gpt2 (full fine-tune, PPO value head) and
tiny-llama-4bit (4-bit NF4 + LoRA: FSDP-QLoRA): ranks agree, each holds half of every parameter, an update
equals the 1-process update on the same global batch, a resume is exact, final/ is a normal folder."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import stats

from fsdp_train import FIXED_ROWS, digest, fixed_batch, full_weights
from rlhf.config import load_profile
from rlhf.rl.trainer import Trainer

HERE = Path(__file__).parent
PROFILES = ["tiny-gpt2", "tiny-llama-4bit"]


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    out = tmp_path_factory.mktemp("fsdp")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(HERE / "fsdp_train.py"), str(out), *PROFILES]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return out


def reports(out: Path) -> list[dict]:
    return [json.loads((out / f"rank{rank}.json").read_text()) for rank in (0, 1)]


@pytest.mark.parametrize("name", PROFILES)
def test_ranks_hold_half_of_every_parameter_and_agree(launched, name):
    rank0, rank1 = reports(launched / name)
    assert rank0["world"] == rank1["world"] == 2
    assert rank0["all_sharded"] and rank1["all_sharded"]  # the 4-bit base weights too
    total = rank0["total_numel"]
    assert rank0["local_numel"] + rank1["local_numel"] == total
    assert abs(rank0["local_numel"] - total / 2) < 0.01 * total  # dim-0 shards: about half each
    assert rank0["trained"] == rank1["trained"]  # the gathered weights after training, bit for bit
    rows = stats(launched / name / "run")
    assert [r["step"] for r in rows] == ["1", "2"]  # only rank 0 logs
    assert rank0["uneven_generation"] == [2, 2] and rank1["uneven_generation"] == [2, 6]  # and nobody hung


@pytest.mark.parametrize("name", PROFILES)
def test_resume_of_a_sharded_run_is_exact(launched, name):
    rank0, rank1 = reports(launched / name)
    assert rank0["resumed_from_step"] == 1
    assert rank0["resumed"] == rank0["trained"] and rank1["resumed"] == rank1["trained"]
    keys = ["objective/scores", "objective/kl", "loss/policy_avg", "policy/approxkl_avg"]
    full, resumed = stats(launched / name / "run"), stats(launched / name / "resumed")
    assert [[row[k] for k in keys] for row in resumed] == [[row[k] for k in keys] for row in full]


@pytest.mark.parametrize("name", PROFILES)
def test_final_folder_is_a_normal_save_pretrained_folder(launched, name):
    from rlhf.models.factory import build_policy

    final = launched / name / "run" / "final"
    profile = load_profile(name)
    policy = build_policy(profile.model, with_value_head=True, adapter_dir=final)  # 1 process, no FSDP
    saved = {n: p.detach() for n, p in policy.named_parameters() if p.requires_grad}
    assert digest(saved) == reports(launched / name)[0]["trained"]  # exactly the gathered trained weights
    assert (final / ("adapter_config.json" if profile.model.lora else "config.json")).exists()
    assert (final / "value_head.safetensors").exists()
    if name == "tiny-gpt2":  # trainer.eval_samples: process 0 compares base and the saved final/ model
        assert (launched / name / "run" / "meta_data" / "evaluation.csv").exists()


@pytest.mark.parametrize("name", PROFILES)
def test_sharded_update_equals_the_one_process_update_on_the_global_batch(launched, name, tmp_path):
    profile = load_profile(name, ["trainer.log_with=[csv]", "algo.epochs=1", f"algo.mini_batch_size={FIXED_ROWS}",
                                  f"rollout.batch_size={FIXED_ROWS}"])
    trainer = Trainer(profile, tmp_path)  # one process, strategy ddp (no wrapping)
    batch, advantages, returns = fixed_batch(trainer, slice(0, FIXED_ROWS))
    before = full_weights(trainer)
    trainer.update(batch, advantages, returns)
    after = full_weights(trainer)
    sharded = torch.load(launched / name / "update.pt")
    moved = 0
    for key in after:
        torch.testing.assert_close(sharded["before"][key], before[key], rtol=0, atol=0, msg=key)  # same init
        torch.testing.assert_close(sharded["after"][key], after[key], rtol=1e-5, atol=1e-6, msg=key)
        moved += int((after[key] - before[key]).abs().max() > 1e-4)  # Adam's first step: about lr
    assert moved >= len(after) // 2  # the update really moved the weights (LoRA A waits for B to move)


@pytest.mark.parametrize("name", PROFILES)
def test_a_sharded_checkpoint_resumes_on_one_process(launched, name, tmp_path):
    from rich.console import Console

    from rlhf.rl.checkpoint import latest_checkpoint, load_trainer_state

    run = tmp_path / "run"
    shutil.copytree(launched / name / "run", run)
    shutil.rmtree(run / "final")
    profile = load_profile(run / "profile.yaml", ["trainer.strategy=ddp", "trainer.fsdp=null", "trainer.steps=3"])
    console = Console(record=True, width=400)
    trainer = Trainer(profile, run, resume=True, console=console)
    assert trainer.step == 2
    assert digest(full_weights(trainer)) == reports(launched / name)[0]["trained"]
    saved = load_trainer_state(latest_checkpoint(run))["optimizer"]  # whole states keyed by parameter name
    loaded = trainer.optimizer.state_dict()  # this process: keyed by position
    names = [n for n, p in trainer.policy.named_parameters() if p.requires_grad]
    assert len(saved["state"]) == len(loaded["state"]) == len(names)
    for index, param_name in enumerate(names):
        for key in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(loaded["state"][index][key], saved["state"][param_name][key], rtol=0, atol=0)
    assert "written by 2 processes and resumes on 1" in console.export_text()
    trainer.train()
    assert [r["step"] for r in stats(run)] == ["1", "2", "3"]
