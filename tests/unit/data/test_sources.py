"""load_records: every source kind, and the errors for bad data."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from rlhf.data import BUILTIN_SETS, load_records, parse_source
from rlhf.data.corpus import labelled_review_sentences

ROWS = [{"prompt": "Hello there", "label": 1}, {"prompt": "Good morning", "label": 0}]


def _write(path, rows):
    """Write ``rows`` in the format named by ``path``'s suffix; return ``path``."""
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows) + "\n", encoding="utf-8")
    elif path.suffix == ".json":
        path.write_text(json.dumps(rows), encoding="utf-8")
    elif path.suffix == ".csv":
        pd.DataFrame(rows).to_csv(path, index=False)
    elif path.suffix == ".parquet":
        pd.DataFrame(rows).to_parquet(path)
    return path


# --------------------------------------------------------------------------------------------- builtin


def test_builtin_sets_have_expected_sizes_and_columns():
    expected = {
        "flirty-openers": ({"prompt"}, 100),
        "occupations": ({"prompt", "occupation"}, 20),
        "review-openers": ({"prompt"}, 30),
        "neutral": ({"prompt"}, 20),
        "reviews": ({"text"}, 2000),
        "reviews-labelled": ({"text", "label"}, 2000),
        "review-pairs": ({"prompt", "chosen", "rejected"}, 2000),
        "chat-reviews": ({"messages"}, 600),
    }
    assert set(BUILTIN_SETS.names()) == set(expected)
    for name, (columns, at_least) in expected.items():
        records = load_records(f"builtin:{name}", columns=sorted(columns))
        assert len(records) >= at_least, name
        assert set(records[0]) == columns, name
        texts = [r.get("prompt", r.get("text", r.get("messages", [{}])[-1].get("content"))) for r in records]
        assert all(isinstance(t, str) and t.strip() for t in texts), name


def test_builtin_hand_written_sets_have_no_duplicates():
    for name in ("flirty-openers", "review-openers", "neutral", "occupations"):
        prompts = [r["prompt"] for r in load_records(f"builtin:{name}")]
        assert len(prompts) == len(set(prompts)), name


def test_builtin_occupations_are_20_with_templates():
    records = load_records("builtin:occupations")
    occupations = {r["occupation"] for r in records}
    assert len(occupations) == 20
    assert all(r["occupation"] in r["prompt"] for r in records)
    assert {"prompt": "Describe an engineer in one sentence:", "occupation": "engineer"} in records
    assert "This movie is" in [r["prompt"] for r in load_records("builtin:review-openers")]


def test_builtin_reviews_labelled_matches_corpus():
    records = load_records("builtin:reviews-labelled")
    assert [(r["text"], r["label"]) for r in records] == labelled_review_sentences(2000, seed=0)
    assert {r["label"] for r in records} == {0, 1}


def test_unknown_builtin_lists_available_names():
    with pytest.raises(ValueError, match="builtin:flirty.*flirty-openers.*review-openers"):
        load_records("builtin:flirty")


# ----------------------------------------------------------------------------------------- local files


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv", ".parquet"])
def test_local_file_round_trips_records(tmp_path, suffix):
    path = _write(tmp_path / f"prompts{suffix}", ROWS)
    assert load_records(str(path), columns=["prompt"]) == ROWS


def test_txt_file_is_one_text_record_per_nonempty_line(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("first line\n\n  second line  \n", encoding="utf-8")
    assert load_records(str(path), ["text"]) == [{"text": "first line"}, {"text": "second line"}]


def test_json_object_of_columns(tmp_path):
    path = tmp_path / "cols.json"
    path.write_text(json.dumps({"prompt": ["a", "b"], "label": [1, 0]}), encoding="utf-8")
    assert load_records(str(path)) == [{"prompt": "a", "label": 1}, {"prompt": "b", "label": 0}]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_missing_column_names_source_column_and_existing_columns(tmp_path, suffix):
    path = _write(tmp_path / f"prompts{suffix}", ROWS)
    with pytest.raises(ValueError) as info:
        load_records(str(path), columns=["question"])
    message = str(info.value)
    assert str(path) in message and "'question'" in message and "['prompt', 'label']" in message


def test_column_missing_in_some_records(tmp_path):
    path = _write(tmp_path / "ragged.jsonl", [{"prompt": "a"}, {"other": "b"}])
    with pytest.raises(ValueError, match="1 of 2 records lack column 'prompt'.*record 1"):
        load_records(str(path), ["prompt"])


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".txt", ".json"])
def test_empty_file_is_an_error_naming_the_source(tmp_path, suffix):
    path = tmp_path / f"empty{suffix}"
    path.write_text("\n" if suffix != ".json" else "[]", encoding="utf-8")
    with pytest.raises(ValueError, match=f"empty{suffix}.*empty"):
        load_records(str(path))


def test_bad_files_are_value_errors(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        load_records(str(tmp_path / "missing.jsonl"))
    with pytest.raises(ValueError, match="unsupported file type '.xlsx'"):
        load_records(str(tmp_path / "data.xlsx"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\nnot json\n', encoding="utf-8")
    with pytest.raises(ValueError, match="line 2 is not valid JSON"):
        load_records(str(bad))
    strings = tmp_path / "strings.jsonl"
    strings.write_text('"just a string"\n', encoding="utf-8")
    with pytest.raises(ValueError, match="line 1 is a str, expected a JSON object"):
        load_records(str(strings))


# ------------------------------------------------------------------------------------------ hf sources


def test_parse_source_forms():
    assert parse_source("builtin:neutral").name == "neutral"
    hf = parse_source("hf:stanfordnlp/imdb:train[:10%]:text")
    assert (hf.kind, hf.name, hf.split, hf.column) == ("hf", "stanfordnlp/imdb", "train[:10%]", "text")
    assert parse_source("hf:imdb:test").column is None
    assert parse_source("data/p.jsonl").kind == "file"
    for bad in ("hf:imdb", "hf:a:b:c:d", "hf::train"):
        with pytest.raises(ValueError, match="hf:NAME:SPLIT"):
            parse_source(bad)


def test_hf_source_through_load_dataset_on_local_folder(tmp_path):
    folder = tmp_path / "my_dataset"
    folder.mkdir()
    _write(folder / "train.jsonl", ROWS)
    _write(folder / "test.jsonl", ROWS[:1])
    assert load_records(f"hf:{folder}:train:prompt") == ROWS
    assert load_records(f"hf:{folder}:test") == ROWS[:1]
    assert load_records(f"hf:{folder}:train[:1]") == ROWS[:1]
    with pytest.raises(ValueError, match=r"no column 'question'.*\['prompt', 'label'\]"):
        load_records(f"hf:{folder}:train:question")
    with pytest.raises(ValueError, match="split 'validation'"):
        load_records(f"hf:{folder}:validation")


def test_hf_source_reads_save_to_disk_folders(tmp_path):
    from datasets import Dataset, DatasetDict

    DatasetDict({"train": Dataset.from_list(ROWS)}).save_to_disk(str(tmp_path / "dict"))
    Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "single"))
    assert load_records(f"hf:{tmp_path / 'dict'}:train:prompt") == ROWS
    assert load_records(f"hf:{tmp_path / 'single'}:train", ["label"]) == ROWS
    with pytest.raises(ValueError, match=r"unknown split 'test'.*\['train'\]"):
        load_records(f"hf:{tmp_path / 'dict'}:test")
