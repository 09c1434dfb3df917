"""Data sources: built-in sets, HF datasets and local files; prompt preparation and batching for RL."""

from rlhf.data.builtin import BUILTIN_SETS, load_builtin
from rlhf.data.prompts import (
    apply_chat_template,
    combine_sources,
    count_tokens,
    filter_short,
    load_prompts,
    prompt_texts,
    truncate_queries,
)
from rlhf.data.sampler import PromptSampler
from rlhf.data.sources import check_columns, load_records, parse_source

__all__ = [
    "BUILTIN_SETS",
    "PromptSampler",
    "apply_chat_template",
    "check_columns",
    "combine_sources",
    "count_tokens",
    "filter_short",
    "load_builtin",
    "load_prompts",
    "load_records",
    "parse_source",
    "prompt_texts",
    "truncate_queries",
]
