"""Atomic writes: a reader sees the old file or the new one, never half of one, and nothing is left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ci_checks import _io


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(_io.TEMP_PREFIX))


def test_write_text_replaces_the_file_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "results.json"
    target.write_text("old")
    _io.write_text(target, "new")
    assert target.read_text() == "new"
    assert leftovers(tmp_path) == []


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "results.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), _io.atomic_open(target) as fh:
        fh.write("half of the new")
        raise RuntimeError("the writer failed")
    assert target.read_text() == "old"
    assert leftovers(tmp_path) == []


def test_an_interrupted_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "results.json"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt), _io.temp_path(target) as tmp:
        Path(tmp).write_text("half")
        raise KeyboardInterrupt
    assert target.read_text() == "old"
    assert leftovers(tmp_path) == []


def test_permissions_of_the_old_file_are_kept_and_new_files_get_the_usual_ones(tmp_path: Path) -> None:
    kept = tmp_path / "kept.sh"
    kept.write_text("old")
    kept.chmod(0o750)
    _io.write_text(kept, "new")
    assert kept.stat().st_mode & 0o777 == 0o750
    new = tmp_path / "new.txt"
    umask = os.umask(0o022)
    try:
        _io.write_bytes(new, b"x")
    finally:
        os.umask(umask)
    assert new.stat().st_mode & 0o777 == 0o644  # mkstemp alone would make it 0600


def test_write_with_hands_the_writer_a_path(tmp_path: Path) -> None:
    target = tmp_path / "model.onnx"
    _io.write_with(target, lambda path: Path(path).write_bytes(b"onnx"), suffix=".onnx")
    assert target.read_bytes() == b"onnx" and leftovers(tmp_path) == []


def test_only_whole_files_are_written() -> None:
    with pytest.raises(ValueError, match="mode 'w' or 'wb'"), _io.atomic_open("x", "a"):
        pass


def test_replace_all_swaps_every_file_and_keeps_backups(tmp_path: Path) -> None:
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    a.write_text("old a")
    staged = []
    for target, text in ((a, "new a"), (b, "new b")):
        tmp = _io.stage(target)
        Path(tmp).write_text(text)
        staged.append((tmp, str(target)))
    _io.replace_all(staged, backup_suffix=".bak")
    assert (a.read_text(), b.read_text()) == ("new a", "new b")
    assert (tmp_path / "a.npz.bak").read_text() == "old a"
    assert not (tmp_path / "b.npz.bak").exists()  # there was no previous b
    assert leftovers(tmp_path) == []


def test_replace_all_is_all_or_nothing(tmp_path: Path) -> None:
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    a.write_text("old a")
    b.mkdir()  # a folder where the second file goes: os.replace fails after the first swap
    staged = []
    for target in (a, b):
        tmp = _io.stage(target)
        Path(tmp).write_text("new")
        staged.append((tmp, str(target)))
    with pytest.raises(OSError):
        _io.replace_all(staged, backup_suffix=".bak")
    assert a.read_text() == "old a"  # put back
    assert not (tmp_path / "a.npz.bak").exists()
    for tmp, _ in staged:
        if os.path.exists(tmp):
            os.remove(tmp)  # the caller removes what it staged (golden does, in its finally)
    assert leftovers(tmp_path) == []


def test_remove_stale_removes_a_file_and_never_a_folder(tmp_path: Path) -> None:
    stale = tmp_path / "results.json"
    stale.write_text("{}")
    _io.remove_stale(stale)
    assert not stale.exists()
    _io.remove_stale(stale)  # gone already: fine
    folder = tmp_path / "out"
    folder.mkdir()
    _io.remove_stale(folder)
    assert folder.is_dir()


KILLED_WRITER = """
import sys
from pathlib import Path
from ci_checks import _io

target, marker = sys.argv[1], sys.argv[2]
with _io.atomic_open(target) as fh:
    fh.write("half of the new content")
    fh.flush()
    Path(marker).write_text("writing")
    import threading
    threading.Event().wait(60)  # killed here
"""


@pytest.mark.parametrize(
    "sig", [pytest.param(signal.SIGKILL, id="SIGKILL"), pytest.param(signal.SIGTERM, id="SIGTERM")]
)
def test_a_writer_killed_mid_write_leaves_the_old_file_whole(tmp_path: Path, sig: signal.Signals) -> None:
    target, marker = tmp_path / "golden.npz", tmp_path / "marker"
    target.write_text("the old recording")
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(KILLED_WRITER), str(target), str(marker)])
    deadline = time.monotonic() + 60
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert marker.exists(), "the writer never got to the middle of its write"
    proc.send_signal(sig)
    proc.wait(timeout=60)
    assert target.read_text() == "the old recording"
