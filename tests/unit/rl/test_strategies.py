"""trainer.strategy validation: bad combinations are one clear line naming the key and the fix."""

import pytest
from typer.testing import CliRunner

from rlhf.cli import app
from rlhf.config import ProfileError, load_profile


def test_fsdp_in_a_single_process_is_refused_with_the_launch_command(tmp_path):
    result = CliRunner().invoke(app, ["run", "--set", "trainer.strategy=fsdp", "--output-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "trainer.strategy: fsdp" in result.output and "torchrun --nproc_per_node N -m rlhf run" in result.output
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []  # failed before its first step: no run folder left


def test_fsdp_options_without_the_fsdp_strategy_are_refused():
    with pytest.raises(ProfileError, match=r"trainer.fsdp is set but trainer.strategy is 'ddp'"):
        load_profile("tiny-gpt2", ["trainer.fsdp.cpu_offload=true"])
    profile = load_profile("tiny-gpt2", ["trainer.strategy=fsdp", "trainer.fsdp.cpu_offload=true"])
    assert profile.trainer.fsdp_options.cpu_offload and profile.trainer.fsdp_options.reshard_after_forward


def test_fsdp_mixed_precision_would_cast_packed_4bit_weights():
    with pytest.raises(ProfileError, match=r"trainer.fsdp.param_dtype=bfloat16 would cast the packed 4-bit"):
        load_profile("tiny-llama-4bit", ["trainer.strategy=fsdp", "trainer.fsdp.param_dtype=bfloat16"])
    load_profile("tiny-gpt2", ["trainer.strategy=fsdp", "trainer.fsdp.param_dtype=bfloat16"])  # fine unquantised


def test_a_ddp_optimizer_state_is_renamed_as_torch_names_it_for_fsdp():
    import torch
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    from rlhf.rl.strategies import optimizer_state_by_name

    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    model[0].bias.requires_grad_(False)  # frozen parameters are not in the optimizer
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=0.1)
    model(torch.randn(5, 3)).sum().backward()
    optimizer.step()
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    ours = optimizer_state_by_name(optimizer.state_dict(), names)
    torchs = get_optimizer_state_dict(model, optimizer)  # the format FSDP checkpoints hold
    assert ours["state"].keys() == torchs["state"].keys() == {"0.weight", "2.weight", "2.bias"}
    for name in names:
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(ours["state"][name][key], torchs["state"][name][key])
    assert ours["param_groups"][0]["params"] == torchs["param_groups"][0]["params"]
