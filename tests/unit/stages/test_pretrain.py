"""Causal-LM pretraining on the shipped review corpus; the saved folder is a usable model.name_or_path."""

import json

import pytest
import torch

from rlhf.config import ModelConfig, Profile
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
