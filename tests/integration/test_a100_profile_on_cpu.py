"""The a100-8b profile's whole code path on CPU: only the model is swapped for a tiny local Llama.

4-bit NF4 with double quantisation and bf16 compute, LoRA on all linear layers, gradient checkpointing,
bf16 mixed precision, chat template with a system prompt, top-k/top-p sampling and the adaptive KL
controller all run exactly as configured for the A100.
"""

import csv

from standins import make_tiny_llama
from typer.testing import CliRunner

from rlhf.cli import app
from rlhf.config import load_profile


def test_a100_8b_profile_runs_on_cpu_with_a_tiny_llama(tmp_path):
    model_dir = tmp_path / "llama"
    make_tiny_llama(model_dir)
    overrides = [f"model.name_or_path={model_dir}", f"model.tokenizer={model_dir}", "rollout.batch_size=4",
                 "rollout.micro_batch_size=2", "algo.mini_batch_size=2", "rollout.max_new_tokens=8",
                 "trainer.steps=2", "rewards=[{name: length, target: 8}]"]
    profile = load_profile("a100-8b", overrides)
    assert profile.model.quantization.compute_dtype == "bfloat16" and profile.trainer.mixed_precision == "bf16"
    args = ["run", "-p", "a100-8b", "--output-dir", str(tmp_path / "runs")]
    for override in overrides:
        args += ["--set", override]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert run_dir.name.startswith("llama_")
    with (run_dir / "meta_data" / "generated_outputs.csv").open() as f:
        prompt = next(csv.DictReader(f))["prompt"]
    assert prompt.startswith("<|start_header_id|>system<|end_header_id|>\n\n" + profile.data.system_prompt)
    assert prompt.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    assert (run_dir / "final" / "adapter_config.json").exists()
