from transformers import AutoTokenizer

from rlhf.models.tokenizer import EOS_TOKEN, PAD_TOKEN, builtin_tokenizer_dir, load_tokenizer, train_builtin_tokenizer


def test_training_is_deterministic():
    assert train_builtin_tokenizer().get_vocab() == train_builtin_tokenizer().get_vocab()


def test_builtin_tokenizer_has_special_tokens_and_left_padding():
    tokenizer = load_tokenizer("builtin-bpe")
    assert (tokenizer.eos_token, tokenizer.pad_token) == (EOS_TOKEN, PAD_TOKEN)
    assert tokenizer.eos_token_id != tokenizer.pad_token_id
    batch = tokenizer(["a", "a much longer text"], padding=True)
    assert batch["input_ids"][0][0] == tokenizer.pad_token_id and batch["attention_mask"][0][0] == 0


def test_cached_folder_loads_through_autotokenizer():
    folder = builtin_tokenizer_dir()
    reloaded = AutoTokenizer.from_pretrained(folder)
    assert reloaded.get_vocab() == load_tokenizer("builtin-bpe").get_vocab()


def test_common_words_are_single_tokens():
    tokenizer = load_tokenizer("builtin-bpe")
    assert len(tokenizer.tokenize(" movie")) == 1 and len(tokenizer.tokenize(" wonderful")) == 1


def test_missing_tokenizer_folder_is_a_clear_error(tmp_path):
    import pytest

    with pytest.raises(ValueError, match="could not load tokenizer"):
        load_tokenizer(str(tmp_path / "nothing-here"))
