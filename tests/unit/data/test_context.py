import pytest

from rlhf.data.context import fit_prompts
from rlhf.models.tokenizer import load_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("builtin-bpe")


def n_tokens(tokenizer, text):
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def test_long_prompts_are_cut_to_the_room_left_and_counted(tokenizer):
    long = "The movie was a long and winding story about a teacher " * 3
    fitted = fit_prompts(["Hello there", long], tokenizer, context=32, max_new_tokens=12)
    assert fitted.num_cut == 1 and fitted.max_prompt_tokens == 20
    assert fitted.prompts[0] == "Hello there"
    assert n_tokens(tokenizer, fitted.prompts[1]) <= 20 and long.startswith(fitted.prompts[1])
    assert "1 of 2 prompts" in fitted.warning(12, 32)


def test_nothing_cut_when_everything_fits_or_the_model_has_no_limit(tokenizer):
    prompts = ["Hello there", "The cast was"]
    assert fit_prompts(prompts, tokenizer, context=64, max_new_tokens=12).num_cut == 0
    assert fit_prompts(prompts, tokenizer, context=None, max_new_tokens=10**6).prompts == prompts


def test_no_room_for_a_prompt_is_an_error_with_the_numbers(tokenizer):
    with pytest.raises(ValueError, match=r"rollout.max_new_tokens=64 leaves no room.*context of 64"):
        fit_prompts(["Hi"], tokenizer, context=64, max_new_tokens=64)
    shortest = n_tokens(tokenizer, "The cast was")
    with pytest.raises(ValueError, match=rf"shortest prompt \({shortest} tokens\).*at most {64 - shortest}"):
        fit_prompts(["The cast was", "The cast was great"], tokenizer, context=64, max_new_tokens=64 - shortest + 1)
    assert fit_prompts(["The cast was"], tokenizer, context=64, max_new_tokens=64 - shortest).num_cut == 0
