"""Causal-LM pretraining on the shipped review corpus; the saved folder is a usable model.name_or_path."""

import json

import pytest
import torch

from rlhf.config import Lora, ModelConfig, Profile
from rlhf.models.factory import build_policy
from rlhf.stages.pretrain import METRICS_FILE, pack_blocks, pretrain
from rlhf.models.tokenizer import load_tokenizer

TINY_GPT2 = {"arch": "gpt2", "n_layer": 2, "n_head": 4, "n_embd": 64, "n_positions": 128}


def make_profile(tmp_path, **pretrain_fields):
    fields = dict(epochs=1.0, batch_size=32, learning_rate=2e-3, output_dir=str(tmp_path / "pretrained"))
    return Profile.model_validate({"seed": 0, "model": {"random_init": TINY_GPT2},
                                   "pretrain": {**fields, **pretrain_fields}})


def test_pretraining_lowers_held_out_loss_and_saves_a_loadable_model(tmp_path):
    extra = tmp_path / "extra.txt"
    extra.write_text("The soundtrack was lovely.\nThe villain was silly.\n")
    result = pretrain(make_profile(tmp_path, corpus=["builtin:reviews", str(extra)]))

    metrics = result.metrics
    assert metrics["eval_loss_after"] < metrics["eval_loss_before"] - 0.5
    assert metrics["tokens"] > 0 and metrics["tokens"] % 64 == 0
    assert json.loads((result.output_dir / METRICS_FILE).read_text())["metrics"] == metrics
    # A later profile points model.name_or_path (and the tokenizer) at the folder.
    cfg = ModelConfig(name_or_path=str(result.output_dir), tokenizer=str(result.output_dir))
    policy = build_policy(cfg, with_value_head=False)
    tokenizer = load_tokenizer(cfg.tokenizer)
    batch = tokenizer(["The movie was", "I think"], return_tensors="pt", padding=True)
    out = policy.model.generate(**batch, max_new_tokens=4, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert out.shape == (2, batch.input_ids.shape[1] + 4)


@pytest.mark.skipif(torch.cuda.is_available() and torch.cuda.is_bf16_supported(), reason="bf16 is supported here")
def test_bf16_is_refused_without_support(tmp_path):
    with pytest.raises(ValueError, match=r"pretrain\.bf16"):
        pretrain(make_profile(tmp_path, bf16=True))


def test_a_corpus_shorter_than_one_block_is_an_error(tmp_path):
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("Short line one.\nShort line two.\nShort line three.\n")
    with pytest.raises(ValueError, match=r"pretrain\.max_length=64"):
        pretrain(make_profile(tmp_path, corpus=str(tiny)))


def test_pack_blocks_concatenates_and_drops_the_tail():
    assert pack_blocks([[1, 2, 3], [4, 5], [6, 7, 8]], 3) == [[1, 2, 3], [4, 5, 6]]
    assert pack_blocks([[1, 2]], 3) == []


def test_cache_key_covers_only_what_pretraining_depends_on(tmp_path):
    from rlhf.stages.pretrain import pretrained_dir

    base = make_profile(tmp_path)
    key = pretrained_dir(base)

    def changed(**sections):
        data = base.model_dump(mode="json")
        for section, fields in sections.items():
            data[section] = {**(data[section] or {}), **fields}
        return pretrained_dir(Profile.model_validate(data))

    # LoRA, quantisation, dtype, checkpointing and RL-only sections leave the pretrained model as it is.
    assert changed(model={"lora": {"r": 4}, "quantization": {"bits": 4}, "dtype": "bfloat16",
                          "gradient_checkpointing": True}) == key
    assert changed(algo={"name": "grpo"}, rollout={"num_generations": 2}, trainer={"steps": 3}) == key
    assert changed(pretrain={"output_dir": str(tmp_path / "elsewhere")}) == key
    # What the pretraining computes with does change it.
    assert changed(pretrain={"epochs": 2.0}) != key
    assert changed(model={"random_init": {**TINY_GPT2, "n_layer": 3}}) != key
    assert changed(model={"tokenizer": str(tmp_path)}) != key
    assert pretrained_dir(base.model_copy(update={"seed": 1})) != key


def test_toggling_lora_reuses_the_cached_pretraining(tmp_path, monkeypatch):
    import rlhf.stages.pretrain as stage

    monkeypatch.setenv("RLHF_CACHE", str(tmp_path / "cache"))
    profile = make_profile(tmp_path, dataset_fraction=0.25)
    first = stage.with_pretrained_policy(profile)
    assert list((tmp_path / "cache" / "pretrained").glob("*/tensorboard/events.out.tfevents.*"))

    def must_not_run(*args, **kwargs):
        raise AssertionError("pretraining ran again")

    monkeypatch.setattr(stage, "pretrain", must_not_run)
    lora = profile.model.model_copy(update={"lora": Lora(r=4, alpha=8)})
    second = stage.with_pretrained_policy(profile.model_copy(update={"model": lora}))
    assert second.model.name_or_path == first.model.name_or_path
    assert second.model.lora is not None  # the next stage keeps its LoRA
