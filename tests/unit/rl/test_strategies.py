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
