"""Loading the transformers models behind model-based rewards (classifier, judge), once per process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# (kind, path, tokenizer, padding side, truncation side, device) -> (folder stamp, model, tokenizer)
_LOADED: dict[tuple[str, ...], tuple[float | None, Any, Any]] = {}


def resolve_device(device: str | None) -> str:
    """``device``, or ``cuda`` when available and ``cpu`` otherwise."""
    import torch

    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def _looks_local(path: str) -> bool:
    """A path rather than a hub name ``org/name``: explicit (``./x``, ``/x``, ``~/x``), deep, or under an
    existing local folder (``outputs/reward-model`` when ``outputs/`` exists)."""
    explicit = path.startswith(("/", "./", "../", "~", ".\\")) or Path(path).is_absolute()
    return explicit or path.count("/") > 1 or ("/" in path and Path(path).expanduser().parent.is_dir())


def _stamp(path: str) -> float | None:
    """Latest modification time in a local model folder; None for a hub name."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        return None
    return max((item.stat().st_mtime for item in folder.iterdir()), default=folder.stat().st_mtime)


def load_model(kind: str, path: str, tokenizer_path: str, *, padding_side: str, truncation_side: str,
               device: str) -> tuple[Any, Any]:
    """``(model, tokenizer)``; ``kind`` is ``"sequence-classification"`` or ``"causal-lm"``.

    Loaded once per process and arguments, and again only if the folder was saved again since. The model is
    in eval mode on ``device`` with the tokenizer's ``pad_token_id``. Errors (``ValueError``) name the option,
    ``model`` or ``tokenizer``.
    """
    key = (kind, path, tokenizer_path, padding_side, truncation_side, device)
    stamp = _stamp(path)
    if key in _LOADED and _LOADED[key][0] == stamp:
        return _LOADED[key][1:]
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from rlhf.models.tokenizer import load_tokenizer

    local = Path(path).expanduser()
    if not local.exists() and _looks_local(path):
        raise ValueError(f"option 'model'={path!r}: no such folder. Give a folder saved with save_pretrained "
                         "(e.g. by `rlhf train-reward`) or a hub name")
    auto = AutoModelForSequenceClassification if kind == "sequence-classification" else AutoModelForCausalLM
    try:
        model = auto.from_pretrained(str(local) if local.exists() else path)
    except (OSError, ValueError) as exc:
        raise ValueError(f"option 'model'={path!r}: could not load a {kind} model: {exc}. Give a local folder "
                         "saved with save_pretrained, or a hub name (needs network access)") from exc
    try:
        tokenizer = load_tokenizer(tokenizer_path, padding_side=padding_side,
                                   require_eos=kind != "sequence-classification")
    except ValueError as exc:
        raise ValueError(f"option 'tokenizer'={tokenizer_path!r}: {exc}") from exc
    tokenizer.truncation_side = truncation_side
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    model.to(device).eval()
    _LOADED[key] = (stamp, model, tokenizer)
    return model, tokenizer


def context_length(model: Any, tokenizer: Any) -> int:
    """The longest input the model takes: its position table, else the tokenizer's ``model_max_length``."""
    positions = getattr(model.config, "max_position_embeddings", None)
    limit = tokenizer.model_max_length if tokenizer.model_max_length < 1e9 else 1024
    return min(positions, limit) if positions else limit
