"""One generic loader of records (dicts) from every kind of data source a profile can name.

Sources:

- ``builtin:NAME``: a set shipped with the package (:mod:`rlhf.data.builtin`);
- ``hf:NAME:SPLIT[:COLUMN]``: ``datasets.load_dataset(NAME, split=SPLIT)``, where NAME is a hub name or a
  local data folder; a folder written by ``save_to_disk`` is read with ``load_from_disk`` (a saved
  ``DatasetDict`` is indexed by SPLIT; a saved single ``Dataset`` is used whatever SPLIT says). SPLIT may
  be a slice such as ``train[:100]`` for ``load_dataset``;
- a local ``.jsonl``, ``.json``, ``.csv``, ``.parquet`` or ``.txt`` file (``.txt``: one record per
  non-empty line, column ``text``).

Prompts, reward-model data and the pretraining corpus all go through :func:`load_records`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rlhf.data.builtin import load_builtin

FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet", ".txt")
# A ':' inside brackets belongs to a split slice ("train[:100]"), not to the source syntax.
_HF_PART = re.compile(r"(?:[^:\[]|\[[^\]]*\])+")


@dataclass(frozen=True)
class ParsedSource:
    """A source string split into its parts; ``column`` is only set by ``hf:NAME:SPLIT:COLUMN``."""

    kind: str  # "builtin" | "hf" | "file"
    name: str
    split: str | None = None
    column: str | None = None


def parse_source(source: str) -> ParsedSource:
    """Split a source string; ``ValueError`` with the accepted forms when it is malformed.

    >>> parse_source("hf:imdb:train[:100]:text")
    ParsedSource(kind='hf', name='imdb', split='train[:100]', column='text')
    """
    if source.startswith("builtin:"):
        return ParsedSource("builtin", source.removeprefix("builtin:"))
    if source.startswith("hf:"):
        body = source.removeprefix("hf:")
        parts = _HF_PART.findall(body)
        if ":".join(parts) != body or len(parts) not in (2, 3):
            raise ValueError(
                f"data source {source!r}: expected hf:NAME:SPLIT or hf:NAME:SPLIT:COLUMN, "
                "e.g. hf:stanfordnlp/imdb:train:text"
            )
        return ParsedSource("hf", parts[0], parts[1], parts[2] if len(parts) == 3 else None)
    return ParsedSource("file", source)


def load_records(source: str, columns: Sequence[str] | None = None) -> list[dict]:
    """All records of ``source`` as a list of dicts, checking that ``columns`` (and an hf COLUMN) exist.

    Raises ``ValueError`` naming the source for an unknown builtin, a missing file, an unsupported file
    type, an empty source, or a missing column (the message lists the columns that do exist).
    """
    parsed = parse_source(source)
    if parsed.kind == "builtin":
        records = load_builtin(parsed.name)
    elif parsed.kind == "hf":
        records = _load_hf(parsed, source)
    else:
        records = _load_file(Path(parsed.name).expanduser(), source)
    if not records:
        raise ValueError(f"data source {source!r} is empty: it holds no records")
    required = list(columns or [])
    if parsed.column is not None and parsed.column not in required:
        required.insert(0, parsed.column)
    check_columns(records, required, source)
    return records


def check_columns(records: list[dict], columns: Sequence[str], source: str) -> None:
    """``ValueError`` unless every record of ``source`` has every one of ``columns``."""
    present = list(dict.fromkeys(key for record in records for key in record))
    for column in columns:
        if column not in present:
            raise ValueError(
                f"data source {source!r} has no column {column!r}; its columns are {present}. "
                "Set the column in the profile (e.g. data.column or hf:NAME:SPLIT:COLUMN)."
            )
        lacking = sum(column not in record for record in records)
        if lacking:
            first = next(i for i, record in enumerate(records) if column not in record)
            raise ValueError(
                f"data source {source!r}: {lacking} of {len(records)} records lack column {column!r} "
                f"(the first is record {first}: {records[first]!r})"
            )


def _load_hf(parsed: ParsedSource, source: str) -> list[dict]:
    from datasets import DatasetDict, load_dataset, load_from_disk

    folder = Path(parsed.name).expanduser()
    saved = (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file()
    try:
        if saved:
            dataset = load_from_disk(str(folder))
            if isinstance(dataset, DatasetDict):
                if parsed.split not in dataset:
                    raise ValueError(f"unknown split {parsed.split!r}; the splits are {list(dataset)}")
                dataset = dataset[parsed.split]
        else:
            dataset = load_dataset(parsed.name, split=parsed.split)
    except Exception as exc:  # noqa: BLE001 - datasets raises many types; all mean "this source is unusable"
        raise ValueError(
            f"data source {source!r}: could not load dataset {parsed.name!r} split {parsed.split!r}: {exc}. "
            "NAME must be a hub dataset (needs network), a local data folder, or a save_to_disk folder."
        ) from exc
    if isinstance(dataset, DatasetDict):  # e.g. an iterable or a split-less result from a script
        raise ValueError(f"data source {source!r}: name one split, one of {list(dataset)}")
    return dataset.to_list()


def _load_file(path: Path, source: str) -> list[dict]:
    suffix = path.suffix.lower()
    if suffix not in FILE_SUFFIXES:
        raise ValueError(
            f"data source {source!r}: unsupported file type {suffix or '(none)'!r}; use builtin:NAME, "
            f"hf:NAME:SPLIT[:COLUMN], or a file ending in {', '.join(FILE_SUFFIXES)}"
        )
    if not path.is_file():
        raise ValueError(f"data source {source!r}: no such file {str(path)!r} (relative to {Path.cwd()})")
    try:
        return _read_file(path, suffix, source)
    except UnicodeDecodeError as exc:
        binary = b"\0" in exc.object[:4096]
        kind = "it holds binary data" if binary else f"byte {exc.object[exc.start]:#04x} is not UTF-8"
        raise ValueError(
            f"data source {source!r}: cannot read file {str(path)!r} as UTF-8 text ({kind}); "
            f"give a UTF-8 {suffix} file (e.g. convert with `iconv -f latin1 -t utf-8`)"
        ) from None


def _read_file(path: Path, suffix: str, source: str) -> list[dict]:
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path).to_pylist()
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise ValueError(
                f"data source {source!r}: file {str(path)!r} is not a readable parquet file: {exc}"
            ) from None
    if suffix == ".csv":
        import pandas as pd

        try:
            frame = pd.read_csv(path, keep_default_na=False)  # empty cells stay "" rather than NaN
        except pd.errors.EmptyDataError:
            return []
        return frame.to_dict("records")
    text = path.read_text(encoding="utf-8")
    if suffix == ".txt":
        return [{"text": line.strip()} for line in text.splitlines() if line.strip()]
    if suffix == ".json" and text.lstrip()[:1] in ("[", "{"):
        try:
            return _json_records(json.loads(text), source)
        except json.JSONDecodeError:
            pass  # a .json file holding JSON lines
    return _json_lines(text, source)


def _json_records(data: object, source: str) -> list[dict]:
    """A JSON list of objects, or an object of equal-length column lists."""
    if isinstance(data, dict) and all(isinstance(v, list) for v in data.values()):
        lengths = {len(v) for v in data.values()}
        if len(lengths) > 1:
            raise ValueError(f"data source {source!r}: column lists have different lengths {sorted(lengths)}")
        return [dict(zip(data, row)) for row in zip(*data.values())]
    if isinstance(data, list) and all(isinstance(item, dict) for item in data):
        return data
    raise ValueError(
        f"data source {source!r}: expected a JSON list of objects or an object of column lists, "
        f"got {type(data).__name__}"
    )


def _json_lines(text: str, source: str) -> list[dict]:
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"data source {source!r}: line {number} is not valid JSON: {exc}") from None
        if not isinstance(record, dict):
            raise ValueError(
                f"data source {source!r}: line {number} is a {type(record).__name__}, expected a JSON object "
                'such as {"prompt": "..."}'
            )
        records.append(record)
    return records
