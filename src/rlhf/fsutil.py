"""Atomic folder writes: a folder appears complete or not at all, even if the process dies mid-write."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_directory(target: str | Path, *, replace: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of ``target`` to write into; rename it to ``target`` on success.

    On an exception the temporary folder is removed and ``target`` is untouched. If ``target`` exists
    (e.g. built concurrently by another process) it is kept unless ``replace`` is set.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".tmp-{target.name}-"))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if replace and target.exists():
        old = target.with_name(f".old-{target.name}")
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
        return
    try:
        tmp.rename(target)
    except OSError:  # another process finished first: keep its folder
        shutil.rmtree(tmp, ignore_errors=True)
