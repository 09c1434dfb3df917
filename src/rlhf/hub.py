"""Where models and data sets are: a local folder, the Hugging Face cache, or the hub. No network calls.

The preflight asks these questions before a run; they only read the file system and the environment, so
the answers are cheap and work offline.
"""

from __future__ import annotations

import os
from pathlib import Path

from rlhf.planning import KNOWN


def cached_file(repo_id: str, filename: str, repo_type: str | None = None):
    """The cached path of ``filename`` in hub repo ``repo_id`` (a ``str``), or something else if not cached."""
    from huggingface_hub import try_to_load_from_cache

    try:
        return try_to_load_from_cache(repo_id, filename, repo_type=repo_type)
    except Exception:  # noqa: BLE001 - an invalid repo id is simply "not cached"
        return None


def offline(datasets: bool = False) -> bool:
    """Whether the hub may not be reached (``HF_HUB_OFFLINE``, and for data sets ``HF_DATASETS_OFFLINE``).

    Read from the environment now, not when huggingface_hub was imported.
    """
    names = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE") if datasets else ("HF_HUB_OFFLINE",)
    return any(os.environ.get(n, "").strip().lower() in ("1", "true", "yes", "on") for n in names)


def looks_local(name: str) -> bool:
    """A path rather than a hub ``org/name``: explicit, deeper than two parts, or under an existing folder."""
    explicit = name.startswith(("/", "./", "../", "~", ".\\")) or Path(name).is_absolute()
    return explicit or name.count("/") > 1 or ("/" in name and Path(name).expanduser().parent.is_dir())


def download_bytes(name: str) -> int:
    """The weights' size on the hub (16-bit safetensors) for the models planning knows; 0 if unknown."""
    arch = KNOWN.get(name)
    return 0 if arch is None else (arch.linear_params + arch.embedding_params) * 2


def needs_download(name: str) -> bool:
    """A hub model that is neither a local folder nor in the Hugging Face cache."""
    return not Path(name).expanduser().exists() and not isinstance(cached_file(name, "config.json"), str)


def has_token() -> bool:
    """Whether a Hugging Face token is set (``HF_TOKEN`` or ``hf auth login``), as gated models need."""
    from huggingface_hub import get_token

    return get_token() is not None


def dataset_cached(name: str) -> bool:
    """Whether hub data set ``name`` was downloaded before (hub cache) or prepared by ``datasets`` (its cache)."""
    from huggingface_hub import constants

    snapshots = Path(constants.HF_HUB_CACHE) / f"datasets--{name.replace('/', '--')}" / "snapshots"
    prepared = Path(os.environ.get("HF_DATASETS_CACHE") or Path(constants.HF_HOME) / "datasets")
    return (snapshots.is_dir() and any(snapshots.iterdir())) or (prepared / name.replace("/", "___")).is_dir()
