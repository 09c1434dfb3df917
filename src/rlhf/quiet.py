"""Library chatter we understand, kept out of the run's output (all of it comes back with ``--verbose``).

Each silenced message is named exactly (logger and text) with the reason it is harmless; a library warning
about silently wrong behaviour is a bug to fix, never a line to add here.
"""

from __future__ import annotations

import logging
import os
import warnings

# (logger name, start of the message, why it is harmless)
KNOWN_CHATTER = (
    ("bitsandbytes.backends.cpu.ops", "Failed to load CPU gemm_4bit_forward from kernels-community",
     "printed at import on CPUs with avx512_bf16 when the optional `kernels` package is absent; bitsandbytes "
     "then uses its own CPU kernel. peft imports bitsandbytes whenever it is installed (transformers' "
     "scheduler module imports peft), so even profiles that do not quantise would print it."),
    ("bitsandbytes.autograd._functions", "MatMul8bitLt: inputs will be cast from",
     "LLM.int8 quantises activations from float16 by design; repeated on every 8-bit matmul."),
)
# FutureWarnings that libraries trigger in each other (not in our code): regexes of their start.
KNOWN_DEPRECATIONS = (
    "`is_gradient_checkpointing` is deprecated",  # peft's prepare_model_for_kbit_training, transformers 5
    "`gradient_checkpointing_enable` is deprecated",  # the same peft call
)


class _DropKnown(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


_installed: list[tuple[logging.Logger, logging.Filter]] = []
_verbose = False


def silence_known_chatter(verbose: bool = False) -> None:
    """Drop the :data:`KNOWN_CHATTER` records (and known deprecation notices), unless ``verbose``.

    Cheap (no library import), so the CLI calls it first, before anything imports bitsandbytes. Safe to
    call again (e.g. once per CLI command in one process): the last call decides.
    """
    global _verbose
    _verbose = verbose
    for logger, known in _installed:
        logger.removeFilter(known)
    _installed.clear()
    if verbose:
        return
    for name, prefix, _why in KNOWN_CHATTER:
        logger, known = logging.getLogger(name), _DropKnown(prefix)
        logger.addFilter(known)  # a logger's own filters see every record it creates
        _installed.append((logger, known))
    for message in KNOWN_DEPRECATIONS:
        warnings.filterwarnings("ignore", message=message, category=FutureWarning)


def quiet_transformers() -> None:
    """transformers' info logs and progress bars off (on with ``--verbose``); imports transformers."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    if _verbose:
        hf_logging.set_verbosity_info()
        hf_logging.enable_progress_bar()
    else:
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
