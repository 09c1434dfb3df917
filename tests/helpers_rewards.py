"""Shared by the reward tests and benchmarks: tiny models built offline, and sample (bad) rewards.

``tests/`` is on the test path (pyproject's ``pythonpath``), so ``import helpers_rewards`` works anywhere.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

_BUILT: dict[str, dict[str, str]] = {}


def tiny_model_dirs(tmp_path_factory) -> dict[str, str]:
    """Folders (model + tokenizer) of a tiny classifier, a tiny random LM and a teacher that always says "7".

    Built once per test session (shared by the unit, property and benchmark modules); the builtin-bpe
    tokenizer is saved next to each model.
    """
    root = Path(tmp_path_factory.getbasetemp()) / "reward-models"
    if str(root) not in _BUILT:
        _BUILT[str(root)] = _build(root)
    return _BUILT[str(root)]


def _build(root: Path) -> dict[str, str]:
    from transformers import GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel

    from rlhf.models.tokenizer import load_tokenizer

    tokenizer = load_tokenizer("builtin-bpe")
    torch.manual_seed(0)

    def config(**kwargs) -> GPT2Config:
        return GPT2Config(n_layer=1, n_head=2, n_embd=32, n_positions=128, vocab_size=len(tokenizer),
                          pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                          bos_token_id=tokenizer.eos_token_id, **kwargs)

    models = {
        "classifier": GPT2ForSequenceClassification(
            config(num_labels=2, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1})
        ),
        "scalar_classifier": GPT2ForSequenceClassification(config(num_labels=1)),
        "lm": GPT2LMHeadModel(config()),
        "teacher7": _always_says(GPT2LMHeadModel(config(tie_word_embeddings=False)), tokenizer, "7"),
    }
    folders = {}
    for name, model in models.items():
        folder = root / name
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        folders[name] = str(folder)
    return folders


def _always_says(model, tokenizer, token: str):
    """Rig an untied LM so every position predicts ``token``: the final layer norm outputs a constant
    vector ``b`` and only ``token``'s output row is aligned with it."""
    token_id = tokenizer.convert_tokens_to_ids(token)
    with torch.no_grad():
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.fill_(1.0)
        model.lm_head.weight.zero_()
        model.lm_head.weight[token_id] = 10.0
    return model


# Sample user rewards for the check-reward tests: three broken ways, one correct.
def nan_on_empty(prompts, completions, **kwargs):
    """Mean word length: 0/0 = NaN for an empty completion."""
    return [sum(map(len, c.split())) / len(c.split()) if c.split() else math.nan for c in completions]


def one_value_too_many(prompts, completions, **kwargs):
    return [0.0] * (len(completions) + 1)


def depends_on_batch(prompts, completions, **kwargs):
    """Length relative to the batch mean: changes when the batch is split."""
    mean = sum(len(c) for c in completions) / len(completions)
    return [len(c) - mean for c in completions]


def first_in_batch_bonus(prompts, completions, **kwargs):
    """Depends on batch order: the first completion gets a bonus."""
    return [float(len(c) > 0) + (1.0 if i == 0 else 0.0) for i, c in enumerate(completions)]


def mean_word_length(prompts, completions, **kwargs):
    """Correct: mean word length, 0.0 for an empty completion."""
    return [sum(map(len, c.split())) / len(c.split()) if c.split() else 0.0 for c in completions]


def scaled_length(prompts, completions, scale=1.0, **kwargs):
    return [scale * len(c) for c in completions]


def make_bert_classifier(folder: Path, num_labels: int = 2) -> Path:
    """A tiny random BERT classifier with a WordPiece tokenizer that, like distilbert's, has no EOS token."""
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    from rlhf.data.corpus import review_sentences

    wordpiece = BertWordPieceTokenizer(lowercase=False)
    wordpiece.train_from_iterator(review_sentences(500), vocab_size=300)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=wordpiece, cls_token="[CLS]", sep_token="[SEP]",
                                        pad_token="[PAD]", unk_token="[UNK]", mask_token="[MASK]")
    assert tokenizer.eos_token is None
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, num_labels=num_labels, pad_token_id=tokenizer.pad_token_id)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
