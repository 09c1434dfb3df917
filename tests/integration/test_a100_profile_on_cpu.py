"""The a100-8b profile's whole code path on CPU: only the model is swapped for a tiny local Llama.

4-bit NF4 with double quantisation and bf16 compute, LoRA on all linear layers, gradient checkpointing,
bf16 mixed precision, chat template with a system prompt, top-k/top-p sampling and the adaptive KL
controller all run exactly as configured for the A100.
"""

import csv

from transformers import LlamaConfig, LlamaForCausalLM
from typer.testing import CliRunner

from rlhf.cli import app
from rlhf.config import load_profile
from rlhf.models.tokenizer import load_tokenizer

LLAMA3_STYLE_TEMPLATE = (
    "{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n{{ m['content'] }}<|eot_id|>"
    "{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)


def make_tiny_llama(folder):
    tokenizer = load_tokenizer("builtin-bpe")
    tokenizer.chat_template = LLAMA3_STYLE_TEMPLATE
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         tie_word_embeddings=False)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


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
