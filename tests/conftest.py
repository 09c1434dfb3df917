"""Shared test set-up: an on-disk cache for the built tokenizer and tiny models, quiet libraries."""

import os
import tempfile
from pathlib import Path

os.environ.setdefault("RLHF_CACHE", str(Path(tempfile.gettempdir()) / "rlhf-test-cache"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from transformers.utils import logging as _hf_logging  # noqa: E402

_hf_logging.set_verbosity_error()
_hf_logging.disable_progress_bar()

import torch  # noqa: E402

# Tiny models are dominated by per-op overhead: one intra-op thread is faster, and leaves the second core
# to the subprocesses some integration tests start.
torch.set_num_threads(1)
