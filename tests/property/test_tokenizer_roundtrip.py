from hypothesis import given, settings
from hypothesis import strategies as st

from rlhf.models.tokenizer import load_tokenizer

TOKENIZER = load_tokenizer("builtin-bpe")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_decode_encode_is_identity_for_any_unicode(text):
    ids = TOKENIZER.encode(text, add_special_tokens=False)
    assert TOKENIZER.decode(ids) == text
