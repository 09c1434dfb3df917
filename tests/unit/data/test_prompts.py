"""load_prompts and its pieces: columns, min-length filter, query truncation, combining, chat templates."""

from __future__ import annotations

import copy
import json
import random

import pandas as pd
import pytest

from rlhf.config import DataConfig
from rlhf.data import (
    apply_chat_template,
    combine_sources,
    count_tokens,
    load_prompts,
    load_records,
    prompt_texts,
    truncate_queries,
)
from rlhf.models.tokenizer import load_tokenizer

# Llama-3-Instruct's template shape, with its header tokens as plain text.
LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n"
    "{{ message['content'] | trim }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("builtin-bpe")


@pytest.fixture(scope="module")
def chat_tokenizer(tokenizer):
    chat = copy.deepcopy(tokenizer)
    chat.chat_template = LLAMA3_TEMPLATE
    return chat


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return str(path)


# ------------------------------------------------------------------------------------------------ columns


def test_text_column_defaults_to_prompt_then_query_then_text(tmp_path):
    assert prompt_texts(_jsonl(tmp_path / "a.jsonl", [{"text": "t", "query": "q", "prompt": "p"}])) == ["p"]
    assert prompt_texts(_jsonl(tmp_path / "b.jsonl", [{"text": "t", "query": "q"}])) == ["q"]
    assert prompt_texts(_jsonl(tmp_path / "c.jsonl", [{"text": "t", "label": 1}])) == ["t"]
    with pytest.raises(ValueError, match=r"c2.jsonl.*none of the columns.*\['body'\].*data.column"):
        prompt_texts(_jsonl(tmp_path / "c2.jsonl", [{"body": "x"}]))


def test_configured_column_for_local_files(tmp_path):
    rows = [{"question": "What is RL?", "prompt": "ignored"}, {"question": "Why KL?", "prompt": "ignored"}]
    pd.DataFrame(rows).to_csv(tmp_path / "q.csv", index=False)
    pd.DataFrame(rows).to_parquet(tmp_path / "q.parquet")
    for name in ("q.csv", "q.parquet"):
        assert prompt_texts(str(tmp_path / name), column="question") == ["What is RL?", "Why KL?"]
    with pytest.raises(ValueError, match=r"q.csv.*no column 'answer'.*\['question', 'prompt'\]"):
        prompt_texts(str(tmp_path / "q.csv"), column="answer")


def test_hf_column_wins_over_data_column(tmp_path):
    folder = tmp_path / "ds"
    folder.mkdir()
    _jsonl(folder / "train.jsonl", [{"query": "from hf", "prompt": "not this"}])
    assert prompt_texts(f"hf:{folder}:train:query", column="prompt") == ["from hf"]
    config = DataConfig(prompts=f"hf:{folder}:train:query")
    assert load_prompts(config, load_tokenizer("builtin-bpe"), seed=0) == ["from hf"]


def test_non_text_value_is_an_error_naming_source_and_column(tmp_path):
    source = _jsonl(tmp_path / "n.jsonl", [{"prompt": "ok"}, {"prompt": None}])
    with pytest.raises(ValueError, match=r"n.jsonl', column 'prompt': record 1 holds None"):
        prompt_texts(source)


# --------------------------------------------------------------------------------------- load_prompts


def test_default_profile_loads_review_openers(tokenizer):
    prompts = load_prompts(DataConfig(), tokenizer, seed=0)
    assert prompts == [r["prompt"] for r in load_records("builtin:review-openers")]


def test_min_prompt_tokens_drops_short_prompts(tokenizer):
    prompts = load_prompts(DataConfig(prompts="builtin:neutral", min_prompt_tokens=5), tokenizer, seed=0)
    all_prompts = prompt_texts("builtin:neutral")
    assert 0 < len(prompts) < len(all_prompts)
    assert all(n >= 5 for n in count_tokens(prompts, tokenizer))
    assert prompts == [p for p, n in zip(all_prompts, count_tokens(all_prompts, tokenizer)) if n >= 5]


def test_query_truncation_recipe_on_reviews(tokenizer):
    config = DataConfig(prompts="builtin:reviews", query_tokens=(2, 8))
    prompts = load_prompts(config, tokenizer, seed=0)
    reviews = prompt_texts("builtin:reviews")
    assert len(prompts) == len(reviews)  # every generated review has >= 2 tokens
    lengths = count_tokens(prompts, tokenizer)
    assert min(lengths) == 2 and max(lengths) == 8
    assert all(review.startswith(prompt) for prompt, review in zip(prompts, reviews))
    assert load_prompts(config, tokenizer, seed=0) == prompts
    assert load_prompts(config, tokenizer, seed=1) != prompts


def test_query_truncation_drops_texts_shorter_than_lo(tokenizer, tmp_path):
    source = _jsonl(tmp_path / "p.jsonl", [{"prompt": "Hi"}, {"prompt": "This movie is great fun"}])
    prompts = load_prompts(DataConfig(prompts=source, query_tokens=(3, 3)), tokenizer, seed=0)
    assert prompts == ["This movie is"]


def test_truncate_queries_keeps_a_short_text_whole(tokenizer):
    assert truncate_queries(["Hi"], tokenizer, 4, 6, random.Random(0)) == ["Hi"]
    with pytest.raises(ValueError, match=r"1 <= lo <= hi, got \[5, 2\]"):
        truncate_queries(["Hi"], tokenizer, 5, 2, random.Random(0))


def test_max_prompts_and_several_sources_interleave(tokenizer):
    config = DataConfig(prompts=["builtin:review-openers", "builtin:neutral"], max_prompts=4)
    openers, neutral = prompt_texts("builtin:review-openers"), prompt_texts("builtin:neutral")
    assert load_prompts(config, tokenizer, seed=0) == [openers[0], neutral[0], openers[1], neutral[1]]


def test_token_limit_stops_before_exceeding(tokenizer):
    config = DataConfig(prompts="builtin:reviews", token_limit=500)
    prompts = load_prompts(config, tokenizer, seed=0)
    reviews = prompt_texts("builtin:reviews")
    used = sum(count_tokens(prompts, tokenizer))
    assert prompts == reviews[: len(prompts)]
    assert used <= 500 < used + count_tokens([reviews[len(prompts)]], tokenizer)[0]


def test_combine_sources_round_robin_and_limits():
    assert combine_sources([["a0", "a1", "a2"], ["b0"], []]) == ["a0", "b0", "a1", "a2"]
    assert combine_sources([["a0", "a1"], ["b0", "b1"]], max_prompts=3) == ["a0", "b0", "a1"]
    with pytest.raises(ValueError, match="token_limit needs a tokenizer"):
        combine_sources([["a"]], token_limit=3)


def test_all_filtered_out_names_sources_filter_and_numbers(tokenizer):
    config = DataConfig(prompts=["builtin:neutral", "builtin:review-openers"], min_prompt_tokens=40)
    with pytest.raises(ValueError) as info:
        load_prompts(config, tokenizer, seed=0)
    message = str(info.value)
    for part in ("'builtin:neutral': 30 loaded, 0 kept", "'builtin:review-openers': 40 loaded, 0 kept",
                 "data.min_prompt_tokens=40"):
        assert part in message
    with pytest.raises(ValueError, match=r"data.query_tokens=\[50, 60\]"):
        load_prompts(DataConfig(prompts="builtin:neutral", query_tokens=(50, 60)), tokenizer, seed=0)
    with pytest.raises(ValueError, match="data.token_limit=1 is smaller"):
        load_prompts(DataConfig(prompts="builtin:neutral", token_limit=1), tokenizer, seed=0)


def test_empty_source_list_is_an_error(tokenizer):
    with pytest.raises(ValueError, match="data.prompts is an empty list"):
        load_prompts(DataConfig(prompts=[]), tokenizer, seed=0)


# ------------------------------------------------------------------------------------------ chat template


def test_chat_template_wraps_system_and_user_then_generation_prompt(chat_tokenizer):
    config = DataConfig(prompts="builtin:flirty-openers", chat_template=True, system_prompt="Be charming.")
    prompts = load_prompts(config, chat_tokenizer, seed=0)
    first = prompt_texts("builtin:flirty-openers")[0]
    assert len(prompts) >= 100
    text = prompts[0]
    assert text.startswith(chat_tokenizer.bos_token)
    system_at = text.index("<|start_header_id|>system<|end_header_id|>\n\nBe charming.<|eot_id|>")
    user_at = text.index(f"<|start_header_id|>user<|end_header_id|>\n\n{first}<|eot_id|>")
    assert system_at < user_at
    assert text.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_chat_template_without_system_prompt(chat_tokenizer):
    [text] = apply_chat_template(["This movie is"], chat_tokenizer)
    assert "system" not in text
    assert text == (
        f"{chat_tokenizer.bos_token}<|start_header_id|>user<|end_header_id|>\n\nThis movie is<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_chat_template_errors(tokenizer):
    with pytest.raises(ValueError, match="data.chat_template is true but tokenizer .*builtin-bpe.* no chat template"):
        load_prompts(DataConfig(chat_template=True), tokenizer, seed=0)
    with pytest.raises(ValueError, match="data.system_prompt is set .* data.chat_template is false"):
        load_prompts(DataConfig(system_prompt="Be nice."), tokenizer, seed=0)
