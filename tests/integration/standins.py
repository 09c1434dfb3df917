"""Tiny local stand-ins for the hub names of the big profiles: a Llama with a chat template, an encoder,
and a labelled data set in the ``ieuniversity/flirty_or_not`` layout. Built offline in a second or two."""

from __future__ import annotations

import random
from pathlib import Path

from rlhf.models.tokenizer import load_tokenizer

LLAMA3_STYLE_TEMPLATE = (
    "{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n{{ m['content'] }}<|eot_id|>"
    "{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)

_FLIRTY = (["Hey gorgeous,", "Hi cutie,", "Well hello beautiful,", "Excuse me, charming stranger,"],
           ["your smile lights up the whole room", "you have the loveliest eyes", "I cannot stop thinking about you",
            "you make my heart skip a beat"],
           ["want to grab a drink with me tonight?", "can I take you out on a date?", "are you free for dinner?",
            "may I have your number?"])
_NEUTRAL = (["Hello team,", "Good morning,", "Quick reminder,", "Dear customer,"],
            ["the quarterly report is due on Friday", "the printer on floor two is broken again",
             "your parcel was shipped yesterday", "the meeting moved to room four"],
            ["please confirm by email.", "let me know if you have questions.", "thanks for your patience.",
             "see the attached schedule."])


def make_tiny_llama(folder: Path) -> Path:
    """A 2-layer random Llama with the builtin tokenizer and a Llama-3-style chat template."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = load_tokenizer("builtin-bpe")
    tokenizer.chat_template = LLAMA3_STYLE_TEMPLATE
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         tie_word_embeddings=False)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def flirty_texts(n: int, seed: int) -> list[tuple[str, int]]:
    """``n`` (text, label) pairs, half flirty (1) and half neutral (0), each a random three-part sentence."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = i % 2
        parts = _FLIRTY if label else _NEUTRAL
        rows.append((" ".join(rng.choice(part) for part in parts), label))
    return rows


def make_flirty_or_not(folder: Path, train: int = 192) -> Path:
    """A ``save_to_disk`` DatasetDict with flirty_or_not's splits and features: ``id``, ``label`` (ClassLabel
    neutral/flirty) and ``texts``."""
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    features = Features({"id": Value("int64"), "label": ClassLabel(names=["neutral", "flirty"]),
                         "texts": Value("string")})
    splits = {}
    for seed, (split, size) in enumerate((("train", train), ("validation", 32), ("test", 32))):
        rows = flirty_texts(size, seed)
        splits[split] = Dataset.from_dict({"id": list(range(size)), "label": [label for _, label in rows],
                                           "texts": [text for text, _ in rows]}, features=features)
    DatasetDict(splits).save_to_disk(str(folder))
    return folder


def make_tiny_encoder(folder: Path, texts: list[str]) -> Path:
    """A 1-layer random BERT encoder (the distilroberta stand-in) with a WordPiece tokenizer trained on ``texts``."""
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    wordpiece = BertWordPieceTokenizer(lowercase=True)
    wordpiece.train_from_iterator(texts, vocab_size=400)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=wordpiece, cls_token="[CLS]", sep_token="[SEP]",
                                        pad_token="[PAD]", unk_token="[UNK]", mask_token="[MASK]")
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, pad_token_id=tokenizer.pad_token_id)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
