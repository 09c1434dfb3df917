import errno
import shutil
from pathlib import Path
from unittest import mock

import pytest

from rlhf.fsutil import atomic_directory, explain_os_error, names_path


@pytest.mark.parametrize("code, words", [
    (errno.ENOSPC, "disk full"), (errno.EROFS, "read-only file system"), (errno.EACCES, "permission denied"),
    (errno.ENOTDIR, "is a file, not a folder"), (errno.ENOENT, "no such file or folder"),
])
def test_explain_os_error_names_path_and_reason(code, words):
    message = explain_os_error(OSError(code, "raw", "/runs/x"))
    assert message.startswith("/runs/x: ") and words in message


def test_explain_os_error_keeps_own_messages_and_names_files_in_the_way(tmp_path):
    assert explain_os_error(FileNotFoundError("profile file not found: p.yaml")) == "profile file not found: p.yaml"
    (tmp_path / "f").write_text("x")
    with pytest.raises(FileExistsError) as info:
        (tmp_path / "f").mkdir(exist_ok=True)
    assert "is a file, not a folder" in explain_os_error(info.value)


def test_names_path_adds_the_path_a_write_error_lacks(tmp_path):
    with pytest.raises(OSError) as info, names_path(tmp_path / "stats.csv"):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / "stats.csv")


def test_names_path_reads_torch_riddle_on_a_full_disk_as_disk_full(tmp_path):
    riddle = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")
    with mock.patch("shutil.disk_usage", return_value=shutil._ntuple_diskusage(10**9, 10**9, 0)):
        with pytest.raises(OSError) as info, names_path(tmp_path / "ckpt"):
            raise riddle
    assert info.value.errno == errno.ENOSPC and info.value.__cause__ is riddle
    with pytest.raises(RuntimeError), names_path(tmp_path / "ckpt"):  # free space left: not ours to explain
        raise riddle


def test_atomic_directory_leaves_nothing_when_the_disk_fills(tmp_path):
    target = tmp_path / "checkpoints" / "step-1"
    with pytest.raises(OSError) as info, atomic_directory(target) as tmp:
        (tmp / "part").write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert info.value.filename == str(target)
    assert list(Path(tmp_path / "checkpoints").iterdir()) == []
