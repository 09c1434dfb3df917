"""Reward-model training on the offline sentiment task: the label is a function of the words in the text."""

import io
import json

import pytest
import torch
from rich.console import Console
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from rlhf.config import RandomInit, RewardModelConfig
from rlhf.data.corpus import labelled_review_sentences
from rlhf.models.factory import materialize_random_model
from rlhf.stages.reward_model import EVAL_FILE, pairwise_accuracy, train_reward_model
from rlhf.rewards.classifier import Classifier

TINY_GPT2 = RandomInit(arch="gpt2", n_layer=2, n_head=4, n_embd=64, n_positions=128)


def make_config(tmp_path, **fields):
    defaults = dict(random_init=TINY_GPT2, num_pairs=1024, batch_size=32, epochs=1.0,
                    output_dir=str(tmp_path / "reward-model"))
    return RewardModelConfig(**{**defaults, **fields})


def load_saved(folder):
    """Exactly what the classifier reward does with the folder."""
    return AutoModelForSequenceClassification.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)


def test_pairwise_from_labelled_texts_ranks_held_out_texts(tmp_path):
    cfg = make_config(tmp_path)
    result = train_reward_model(cfg, seed=0)

    assert result.metrics["pairwise_accuracy"] >= 0.9
    assert result.metrics["num_train"] == 1024
    report = json.loads((result.output_dir / EVAL_FILE).read_text())
    assert report["metrics"]["pairwise_accuracy"] == result.metrics["pairwise_accuracy"]
    assert report["config"]["kind"] == "pairwise"
    model, tokenizer = load_saved(result.output_dir)
    assert model.config.num_labels == 1 and model.config.pad_token_id == tokenizer.pad_token_id
    # The folder is a `classifier` reward with its defaults; it ranks freshly generated sentences.
    reward = Classifier(model=str(result.output_dir), label=0)
    rows = labelled_review_sentences(100, seed=7)
    scores = torch.tensor(reward([""] * len(rows), [text for text, _ in rows]))
    labels = torch.tensor([label for _, label in rows])
    assert pairwise_accuracy(scores[labels == 1], scores[labels == 0], paired=False) >= 0.9


def test_classifier_reaches_high_accuracy_and_auc(tmp_path):
    cfg = make_config(tmp_path, kind="classifier")
    result = train_reward_model(cfg, seed=0)

    assert result.metrics["accuracy"] >= 0.9
    assert result.metrics["roc_auc"] >= 0.9
    model, _ = load_saved(result.output_dir)
    assert model.config.num_labels == 2
    reward = Classifier(model=str(result.output_dir), label=1, output="probability")
    good, bad = reward(["", ""], ["The movie is truly wonderful.", "The plot was dull and bad."])
    assert good > 0.5 > bad


def test_pair_columns_with_lora_save_a_merged_plain_model(tmp_path):
    rows = labelled_review_sentences(200, seed=3)
    positive = [text for text, label in rows if label == 1]
    negative = [text for text, label in rows if label == 0]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"good": p, "bad": n}) + "\n" for p, n in zip(positive, negative)))
    cfg = make_config(tmp_path, data=str(data), chosen_column="good", rejected_column="bad", eval_fraction=0.2,
                      lora={"r": 4, "alpha": 8, "dropout": 0.0})
    console = Console(file=io.StringIO(), width=120)
    result = train_reward_model(cfg, seed=0, console=console)

    assert "pairwise_accuracy" in console.file.getvalue()

    assert result.metrics["num_train"] == 80 and result.metrics["num_eval"] == 20  # rows, not all pairs
    assert 0.0 <= result.metrics["pairwise_accuracy"] <= 1.0
    assert not (result.output_dir / "adapter_config.json").exists()
    model, _ = load_saved(result.output_dir)
    assert not any("lora" in name for name, _ in model.named_parameters())
    initial = AutoModelForSequenceClassification.from_pretrained(
        materialize_random_model(TINY_GPT2, "builtin-bpe", seed=0, task="seq-cls", num_labels=1))
    trained, start = model.state_dict(), initial.state_dict()
    assert trained.keys() == start.keys()
    for name in ("transformer.h.0.attn.c_attn.weight", "score.weight"):  # a LoRA target and the head
        assert not torch.equal(trained[name], start[name]), name


def test_pairs_need_two_label_values(tmp_path):
    data = tmp_path / "one-label.jsonl"
    data.write_text("".join(json.dumps({"text": f"text {i}", "stars": 1}) + "\n" for i in range(10)))
    cfg = make_config(tmp_path, data=str(data), label_column="stars")
    with pytest.raises(ValueError, match=r"'stars'.*only the labels \[1\]"):
        train_reward_model(cfg)


def test_classifier_labels_must_fit_num_labels(tmp_path):
    data = tmp_path / "three-labels.jsonl"
    data.write_text("".join(json.dumps({"text": f"text {i}", "label": i % 3}) + "\n" for i in range(9)))
    with pytest.raises(ValueError, match=r"num_labels=2"):
        train_reward_model(make_config(tmp_path, data=str(data), kind="classifier"))


def test_pairwise_accuracy_over_all_pairs_equals_brute_force():
    generator = torch.Generator().manual_seed(0)
    chosen, rejected = torch.randn(37, generator=generator), torch.randn(23, generator=generator)
    brute = (chosen[:, None] > rejected[None, :]).float().mean().item()
    assert pairwise_accuracy(chosen, rejected, paired=False) == pytest.approx(brute)
    assert pairwise_accuracy(torch.tensor([2.0, 0.0]), torch.tensor([1.0, 1.0]), paired=True) == 0.5


def test_classifier_on_a_bert_encoder_without_eos(tmp_path):
    import helpers_rewards

    bert = helpers_rewards.make_bert_classifier(tmp_path / "bert")
    cfg = RewardModelConfig(kind="classifier", name_or_path=str(bert), tokenizer=str(bert), epochs=2.0,
                            batch_size=32, output_dir=str(tmp_path / "reward-model"))
    result = train_reward_model(cfg)
    assert result.metrics["accuracy"] >= 0.9
    assert AutoModelForSequenceClassification.from_pretrained(result.output_dir).config.model_type == "bert"


def test_pairwise_bert_encoder_without_eos_on_builtin_wordpiece(tmp_path):
    """The reviews notebook's setup: a BERT-style encoder ([CLS] ... [SEP], no EOS) as a pairwise reward model."""
    from rlhf.models.tokenizer import load_tokenizer

    tokenizer = load_tokenizer("builtin-wordpiece", require_eos=False)
    assert tokenizer.eos_token is None
    assert tokenizer.convert_ids_to_tokens(tokenizer("The plot is dull.").input_ids) == \
        ["[CLS]", "The", "plot", "is", "dull", ".", "[SEP]"]
    bert = RandomInit(arch="bert", n_layer=2, n_head=4, n_embd=64, n_positions=128)
    cfg = make_config(tmp_path, random_init=bert, tokenizer="builtin-wordpiece", num_pairs=512,
                      learning_rate=3e-3)
    result = train_reward_model(cfg, seed=0)

    assert result.metrics["pairwise_accuracy"] >= 0.9
    assert result.metrics["train_pairwise_accuracy"] >= 0.9
    assert result.metrics["reward_margin"] > 0
    assert list((result.output_dir / "tensorboard").glob("events.out.tfevents.*"))
    model, saved_tokenizer = load_saved(result.output_dir)
    assert model.config.model_type == "bert" and saved_tokenizer.eos_token is None
    reward = Classifier(model=str(result.output_dir), label=0)
    good, bad = reward(["", ""], ["The movie is truly wonderful.", "The plot was dull and bad."])
    assert good > bad


def test_pairs_with_a_prompt_column_score_prompt_and_completion(tmp_path):
    """The DPO data (prompt, chosen, rejected) trains a reward model too: each text is prompt + completion."""
    from rlhf.stages.reward_model import _pairwise_data

    cfg = make_config(tmp_path, data="builtin:review-pairs", eval_fraction=0.1)
    train, eval_chosen, eval_rejected, paired = _pairwise_data(cfg, seed=0)
    assert paired and len(train) == 1800 and len(eval_chosen) == len(eval_rejected) == 200
    from rlhf.data import load_records

    originals = {(r["prompt"] + r["chosen"], r["prompt"] + r["rejected"]) for r in load_records("builtin:review-pairs")}
    assert set(train) <= originals and set(zip(eval_chosen, eval_rejected)) <= originals
