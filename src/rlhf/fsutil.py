"""Files and folders: atomic folder writes, and readable reasons when the file system says no."""

from __future__ import annotations

import errno
import os
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
        with names_path(target):
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


@contextmanager
def names_path(path: str | Path) -> Iterator[None]:
    """Re-raise a failed write under ``path`` as an ``OSError`` that names ``path``.

    Python's ``write`` reports a full disk with no file name, and ``torch.save`` as a ``RuntimeError``
    riddle (``unexpected pos 704 vs 598``): with the disk (nearly) full, both become ENOSPC for ``path``.
    """
    try:
        yield
    except (OSError, RuntimeError) as exc:
        code = exc.errno if isinstance(exc, OSError) else None
        if code in (errno.ENOSPC, errno.EDQUOT) or (code is None and _disk_full(Path(path))):
            raise OSError(code or errno.ENOSPC, os.strerror(code or errno.ENOSPC), str(path)) from exc
        if isinstance(exc, OSError) and code is not None and exc.filename is None:
            raise OSError(code, exc.strerror, str(path)) from exc
        raise


def _disk_full(path: Path, margin: int = 1 << 20) -> bool:
    """Less than ``margin`` bytes free on the disk holding ``path`` (or its nearest existing parent)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free < margin
    except OSError:
        return False


_REASONS = {  # errno -> (what it means here, what to do)
    errno.ENOSPC: ("disk full", "free some space or write elsewhere"),
    errno.EDQUOT: ("disk quota exceeded", "free some space or write elsewhere"),
    errno.EROFS: ("read-only file system", "choose a writable folder"),
    errno.EACCES: ("permission denied", "choose a folder this user can write to, or fix its permissions"),
    errno.EPERM: ("operation not permitted", ""),
    errno.ENOTDIR: ("a part of the path is a file, not a folder", "remove that file or choose another folder"),
    errno.EISDIR: ("it is a folder, not a file", ""),
    errno.EEXIST: ("a file or folder already exists there", ""),
    errno.ENOENT: ("no such file or folder", ""),
    errno.ENAMETOOLONG: ("the path is too long", ""),
}


def explain_os_error(exc: OSError) -> str:
    """One line saying which path failed and why, e.g. ``/runs/x: disk full (No space left on device); ...``.

    The one place that maps an ``OSError``'s errno to words a user can act on (the system's own wording
    follows in brackets); errors raised with a message of our own (no errno) keep that message.
    """
    if exc.errno is None:
        return str(exc)
    system = exc.strerror or os.strerror(exc.errno)
    reason, fix = _REASONS.get(exc.errno, (system, ""))
    if exc.errno == errno.EEXIST and exc.filename is not None and Path(exc.filename).is_file():
        reason, fix = "it is a file, not a folder", "remove that file or choose another folder"
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    detail = f" ({system})" if system.lower() != reason.lower() else ""
    return f"{' -> '.join(paths) or 'a file operation'}: {reason}{detail}" + (f"; {fix}" if fix else "")
