"""Tokenizers: the offline ``builtin-bpe`` and ``builtin-wordpiece``, and anything ``AutoTokenizer`` loads.

``builtin-bpe`` is a byte-level BPE trained with ``tokenizers`` on the generated review corpus. Byte-level
means every Unicode string round-trips exactly. ``builtin-wordpiece`` is a BERT-style WordPiece trained on
the same corpus, for encoder reward models (``random_init: {arch: bert}``): like distilbert's it wraps each
text as ``[CLS] ... [SEP]`` and has no EOS token. Each is trained once, saved to the cache folder and
loaded back through ``AutoTokenizer.from_pretrained`` like any hub tokenizer.
"""

from __future__ import annotations

import os
from pathlib import Path

from rlhf.data.corpus import review_sentences
from rlhf.fsutil import atomic_directory

BUILTIN_BPE = "builtin-bpe"
BUILTIN_WORDPIECE = "builtin-wordpiece"
EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
_BUILTIN_VERSION = 1
_EXTRA_SENTENCES = [
    "Hello! How are you today? Tell me a story about your day.",
    "The nurse was confident and caring in the emergency room.",
    "The engineer is ambitious, helpful, independent and kind to her team.",
    "Would you like to get a coffee with me sometime? You have a lovely smile.",
    "Question: what is the answer? Answer: 42, of course.",
    "Write a short description of a teacher, a doctor, a pilot or a chef.",
]


def cache_dir() -> Path:
    """The folder for built tokenizers and tiny models: ``$RLHF_CACHE`` or ``~/.cache/rlhf``."""
    return Path(os.environ.get("RLHF_CACHE", Path.home() / ".cache" / "rlhf")).expanduser()


def train_builtin_tokenizer(vocab_size: int = 1024):
    """Train the byte-level BPE on the generated corpus (deterministic) and wrap it for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS_TOKEN, PAD_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(review_sentences(4000, seed=1234) + _EXTRA_SENTENCES, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token=EOS_TOKEN, pad_token=PAD_TOKEN, bos_token=EOS_TOKEN,
        clean_up_tokenization_spaces=False, padding_side="left", model_max_length=1024,
    )


def builtin_tokenizer_dir(vocab_size: int = 1024) -> Path:
    """Build (once) and return the folder holding the built-in byte-level BPE tokenizer."""
    target = cache_dir() / "tokenizers" / f"{BUILTIN_BPE}-v{_BUILTIN_VERSION}-{vocab_size}"
    if (target / "tokenizer.json").exists():
        return target
    wrapped = train_builtin_tokenizer(vocab_size)
    with atomic_directory(target) as tmp:
        wrapped.save_pretrained(tmp)
    return target


def train_builtin_wordpiece(vocab_size: int = 1024):
    """Train a cased BERT WordPiece on the generated corpus (deterministic) and wrap it for transformers."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    wordpiece = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wordpiece.normalizer = normalizers.BertNormalizer(lowercase=False)
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wordpiece.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False)
    wordpiece.train_from_iterator(review_sentences(4000, seed=1234) + _EXTRA_SENTENCES, trainer=trainer)
    cls, sep = wordpiece.token_to_id("[CLS]"), wordpiece.token_to_id("[SEP]")
    # Encoders score the first position: [CLS] must start every text (and [SEP] close it), as in BERT.
    wordpiece.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return PreTrainedTokenizerFast(
        tokenizer_object=wordpiece, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", padding_side="right", model_max_length=512,
    )


def builtin_wordpiece_dir(vocab_size: int = 1024) -> Path:
    """Build (once) and return the folder holding the built-in WordPiece tokenizer."""
    target = cache_dir() / "tokenizers" / f"{BUILTIN_WORDPIECE}-v{_BUILTIN_VERSION}-{vocab_size}"
    if not (target / "tokenizer.json").exists():
        with atomic_directory(target) as tmp:
            train_builtin_wordpiece(vocab_size).save_pretrained(tmp)
    return target


def load_tokenizer(name_or_path: str, *, padding_side: str = "left", require_eos: bool = True):
    """A tokenizer by name: ``builtin-bpe``, a hub name or a local folder, with a PAD token set.

    Left padding is the default because batched generation needs prompts right-aligned. Generating
    models need an EOS token (``require_eos``); encoders such as BERT classifiers may have none.
    """
    from transformers import AutoTokenizer

    builtin = {BUILTIN_BPE: builtin_tokenizer_dir, BUILTIN_WORDPIECE: builtin_wordpiece_dir}
    source = str(builtin[name_or_path]()) if name_or_path in builtin else name_or_path
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except OSError as exc:
        raise ValueError(
            f"could not load tokenizer {name_or_path!r}: {exc}. Use 'builtin-bpe', 'builtin-wordpiece', a local "
            "folder with tokenizer files, or a hub name (needs network access)."
        ) from exc
    if tokenizer.eos_token is None and require_eos:
        raise ValueError(f"tokenizer {name_or_path!r} has no eos_token; set one in its tokenizer_config.json")
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(f"tokenizer {name_or_path!r} has neither a pad_token nor an eos_token to pad with")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    return tokenizer
