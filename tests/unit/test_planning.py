import pytest
from typer.testing import CliRunner

from rlhf.cli import app
from rlhf.config import load_profile
from rlhf.planning import GIB, LLAMA_3_8B, Architecture, architecture_from_config, lora_params, plan_memory


def test_llama3_8b_parameter_counts_match_the_published_model():
    assert LLAMA_3_8B.linear_params + LLAMA_3_8B.embedding_params == 8_029_995_008  # "8.03 B"
    # LoRA r=16 on q, k, v, o, gate, up, down of 32 blocks: the well-known 41.9 M
    assert lora_params(LLAMA_3_8B, 16) == 41_943_040


def test_tiny_architecture_by_hand():
    arch = Architecture(vocab_size=10, hidden_size=8, intermediate_size=16, num_layers=2, num_heads=2,
                        num_kv_heads=1, tie_embeddings=False, mlp_gated=True)
    # per block: q 8*8 + k 8*4 + v 8*4 + o 8*8 + gate 8*16 + up 8*16 + down 16*8 = 64+32+32+64+384 = 576
    assert arch.linear_params == 2 * 576 and arch.embedding_params == 2 * 10 * 8
    assert lora_params(arch, 2) == 2 * 2 * (16 + 12 + 12 + 16 + 24 + 24 + 24)


def test_config_json_of_gpt2_and_llama():
    gpt2 = architecture_from_config({"model_type": "gpt2", "vocab_size": 50257, "n_embd": 768, "n_layer": 12,
                                     "n_head": 12, "n_inner": None})
    assert (gpt2.intermediate_size, gpt2.mlp_gated, gpt2.num_kv_heads) == (3072, False, 12)
    assert gpt2.linear_params + gpt2.embedding_params == pytest.approx(124e6, rel=0.01)  # GPT-2 small, tied


def test_a100_profile_fits_on_40gb_and_a_full_bf16_finetune_does_not():
    qlora = plan_memory(load_profile("a100-8b"), LLAMA_3_8B, gpu_gib=40)
    rows = {what: gib for _, what, gib, _ in qlora.rows}
    assert 3.0 < rows["weights (linear layers)"] < 3.7  # 6.98 B params at ~4.13 bits
    assert rows["reference model"] == 0.0 and qlora.fits
    full = plan_memory(load_profile("a100-8b", ["model.quantization=null", "model.lora=null"]), LLAMA_3_8B, 40)
    assert not full.fits and full.total_gib > 8e9 * (2 + 2 + 8 + 2) / GIB


def test_peak_is_static_memory_plus_the_largest_phase():
    plan = plan_memory(load_profile("a100-8b"), LLAMA_3_8B)
    phases = {p: plan.phase_gib(p) for p in ("generate", "score", "update")}
    assert plan.total_gib == pytest.approx(plan.phase_gib("all") + max(phases.values()))


def test_plan_command():
    ok = CliRunner().invoke(app, ["plan", "-p", "a100-8b"])
    assert ok.exit_code == 0 and "fits" in ok.output
    too_small = CliRunner().invoke(app, ["plan", "-p", "a100-8b", "--gpu-memory", "8"])
    assert too_small.exit_code == 1 and "does not fit" in too_small.output
    tiny = CliRunner().invoke(app, ["plan", "-p", "tiny-gpt2"])
    assert tiny.exit_code == 0


def _rows(plan):
    return {what: gib for _, what, gib, _ in plan.rows}


def test_fsdp_divides_what_is_sharded_and_not_what_each_gpu_gathers():
    profile = load_profile("a100x8-8b-full")
    one, eight = plan_memory(profile, LLAMA_3_8B, 80, gpus=1), plan_memory(profile, LLAMA_3_8B, 80, gpus=8)
    for what in ("weights (linear layers)", "weights (embeddings, lm_head)", "grads + AdamW", "reference model"):
        assert _rows(eight)[what] == pytest.approx(_rows(one)[what] / 8)
    for what in ("KV cache", "logits", "activations", "CUDA context + allocator margin"):
        assert _rows(eight)[what] == pytest.approx(_rows(one)[what])
    # the rollout gathers the other 7/8 of the model, in the bf16 it computes in (param_dtype)
    assert _rows(eight)["whole model gathered"] == pytest.approx(8.03e9 * 2 * 7 / 8 / GIB, rel=0.01)
    assert "whole model gathered" not in _rows(one)  # one GPU holds it all anyway


def test_ddp_divides_nothing_and_cpu_offload_empties_the_gpu_of_shards():
    ddp = load_profile("a100-8b")
    assert plan_memory(ddp, LLAMA_3_8B, gpus=8).total_gib == pytest.approx(plan_memory(ddp, LLAMA_3_8B).total_gib)
    offload = load_profile("a100x8-8b-full", ["trainer.fsdp.cpu_offload=true"])
    rows = _rows(plan_memory(offload, LLAMA_3_8B, 80, gpus=8))
    assert rows["grads + AdamW"] == rows["weights (linear layers)"] == 0.0


def test_gpus_needed_is_the_fewest_that_fit():
    from rlhf.planning import LLAMA_3_70B, gpus_needed

    full = load_profile("a100x8-8b-full")
    needed = gpus_needed(full, LLAMA_3_8B, 80)
    assert needed is not None and needed > 1
    assert plan_memory(full, LLAMA_3_8B, 80, gpus=needed).fits
    assert not plan_memory(full, LLAMA_3_8B, 80, gpus=needed // 2).fits
    assert gpus_needed(load_profile("a100x8-70b"), LLAMA_3_70B, 80) is not None
    assert gpus_needed(load_profile("a100-8b", ["model.quantization=null", "model.lora=null"]), LLAMA_3_8B, 40) is None


def test_plan_command_for_the_multi_gpu_profiles():
    for name in ("a100x8-70b", "a100x8-8b-full"):
        result = CliRunner().invoke(app, ["plan", "-p", name, "--gpu-memory", "80", "--gpus", "8"])
        assert result.exit_code == 0, result.output
        assert "8 GPU(s)" in result.output and "needs:" in result.output and "fits" in result.output


def test_plan_command_prints_the_time_estimate():
    result = CliRunner().invoke(app, ["plan", "-p", "occupations-8b"])
    assert result.exit_code == 0
    assert "time (estimate) on one A100-40GB" in result.output and "for 2000 steps" in result.output


def test_reward_models_are_counted_in_the_plan(tmp_path):
    encoder = tmp_path / "encoder"
    encoder.mkdir()
    (encoder / "config.json").write_text('{"model_type": "bert", "vocab_size": 100, "hidden_size": 8, '
                                         '"intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, '
                                         '"dtype": "float32"}')
    profile = load_profile("tiny-gpt2", [f"rewards=[{{name: classifier, model: {encoder}}}, {{name: length}}]"])
    rows = {what: (gib, note) for _, what, gib, note in plan_memory(profile, LLAMA_3_8B).rows}
    # q, k, v, o 8x8 + up 8x16 + down 16x8 (no gate: an encoder) = 512; tied embeddings 100x8 = 800
    assert rows["reward 0 model (classifier)"][0] == pytest.approx((512 + 800) * 4 / GIB)
    assert not any("reward 1" in what for what in rows)  # the length reward has no model
    a100 = {what: gib for _, what, gib, _ in plan_memory(load_profile("a100-8b"), LLAMA_3_8B).rows}
    assert 0.25 < a100["reward 0 model (classifier)"] < 0.35  # distilroberta-base, 82 M params in fp32


@pytest.mark.parametrize("name", ["tiny-gpt2", "bench-grpo-small"])
def test_plan_of_tiny_profiles_matches_the_tensors_a_cpu_step_holds(name, tmp_path):
    """Weights, grads + AdamW and the reference copy on paper vs the tensors after a real step, within 5%.

    bench-grpo-small has KL coefficient 0: the plan says no reference copy, and the run loads none.
    """
    import torch

    from rlhf.planning import resolve_architecture
    from rlhf.rl.trainer import Trainer

    profile = load_profile(name, ["trainer.log_with=[csv]", "algo.name=grpo", "rollout.num_generations=4",
                                  "rollout.batch_size=2", "algo.mini_batch_size=8"])
    trainer = Trainer(profile, tmp_path)
    trainer.train_step()
    nbytes = lambda tensors: sum(t.numel() * t.element_size() for t in tensors)  # noqa: E731
    weights = nbytes(trainer.policy.model.parameters())
    grads = nbytes(trainer.policy.trainable_parameters())  # held from backward to the optimizer step
    adam = nbytes(t for state in trainer.optimizer.state.values() for t in state.values() if t.dim() > 0)
    ref = nbytes(trainer.policy.__dict__["_ref_model"].parameters()) if trainer.policy.reference_loaded else 0
    assert trainer.policy.reference_loaded == (profile.algo.kl.coef > 0)
    rows = {what: gib * GIB for _, what, gib, _ in plan_memory(profile, resolve_architecture(profile)).rows}
    assert rows["weights (linear layers)"] + rows["weights (embeddings, lm_head)"] == pytest.approx(weights, rel=0.05)
    assert rows["grads + AdamW"] == pytest.approx(grads + adam, rel=0.05)
    assert rows["reference model"] == pytest.approx(ref, rel=0.05)
