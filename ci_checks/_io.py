"""Atomic file writes: a temporary file in the target's folder, flushed to disk, then renamed over the target.

A reader sees the old file or the new one, never a half-written one; a write that fails or is interrupted (an
exception, SIGINT, SIGTERM) leaves the old file as it was and removes its temporary file. Every file the kit writes
goes through here.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any

TEMP_PREFIX = ".ci-checks-tmp-"


def _fsync_folder(folder: str) -> None:
    """Make the rename itself durable (POSIX); folders cannot be opened on Windows, where this is a no-op."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on a folder; the rename is still atomic
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def temp_path(path: str | os.PathLike[str], *, suffix: str = "") -> Iterator[str]:
    """A path for a new file in the target's folder; renamed over `path` when the block succeeds.

    For writers that want a file name (torch.onnx.export, np.savez): they write the temporary path, and the target
    changes only when the block ends without an exception. The temporary file is removed on every other way out.
    """
    target = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(target))
    tmp = stage(target, suffix=suffix)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        tmp = ""
        _fsync_folder(folder)
    finally:
        if tmp:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)


def stage(path: str | os.PathLike[str], *, suffix: str = "") -> str:
    """An empty temporary file next to path, with the permissions path has (else a new file's usual ones).

    Write it, then os.replace it over path (or hand it to replace_all); remove it if the write fails.
    """
    target = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(target))
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=suffix or ".part", dir=folder)
    os.close(fd)
    _keep_mode(target, tmp)
    return tmp


def _keep_mode(target: str, tmp: str) -> None:
    """Give the new file the old one's permissions, else the usual ones for a new file (mkstemp makes it 0600)."""
    try:
        mode = os.stat(target).st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    with contextlib.suppress(OSError):
        os.chmod(tmp, mode)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", *, encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """open(path, mode) for writing, atomically: the file appears complete when the block ends, or not at all."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode 'w' or 'wb', not {mode!r}")
    with temp_path(path) as tmp:
        with open(tmp, mode, encoding=None if "b" in mode else encoding) as fh:
            yield fh
            fh.flush()


def write_text(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8") -> None:
    """Write text to path atomically."""
    with atomic_open(path, "w", encoding=encoding) as fh:
        fh.write(text)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write bytes to path atomically."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def write_with(path: str | os.PathLike[str], writer: Callable[[str], Any], *, suffix: str = "") -> None:
    """Let writer(tmp_path) write the file, then put it in place atomically (suffix: an extension writers need)."""
    with temp_path(path, suffix=suffix) as tmp:
        writer(tmp)


def remove_stale(path: str | os.PathLike[str]) -> None:
    """Remove an earlier run's output file before a new run, so a failed run never leaves a stale result behind.

    Only a regular file (or a link) is removed: a folder or a device named as an output is the user's, and the write
    reports it.
    """
    target = os.fspath(path)
    if os.path.islink(target) or os.path.isfile(target):
        with contextlib.suppress(FileNotFoundError):
            os.remove(target)


def replace_all(staged: Sequence[tuple[str, str]], *, backup_suffix: str | None = None) -> None:
    """Move each written temporary file over its target, all or nothing: (temp, target) pairs.

    With backup_suffix, each target that existed is kept as target + backup_suffix (its previous version). A
    failure part-way puts back the targets already replaced; SIGINT/SIGTERM wait until the swap is done. The
    temporary files must be in their targets' folders (same filesystem), as temp_path makes them.
    """
    from ci_checks._errors import signals_deferred

    done: list[tuple[str, str | None]] = []  # (target, a hidden link to its previous version, or None: it is new)
    with signals_deferred():
        try:
            for tmp, target in staged:
                done.append((target, _keep(target) if os.path.lexists(target) else None))
                os.replace(tmp, target)
        except BaseException:
            for target, old in reversed(done):
                with contextlib.suppress(OSError):
                    if old is None:
                        os.remove(target)
                    else:
                        os.replace(old, target)
            raise
        for target, old in done:
            if old is not None:
                with contextlib.suppress(OSError):
                    if backup_suffix:
                        os.replace(old, target + backup_suffix)
                    else:
                        os.remove(old)
        for folder in {os.path.dirname(os.path.abspath(t)) for _, t in staged}:
            _fsync_folder(folder)


def _keep(target: str) -> str:
    """A hidden second name for the target's current file (a hard link, else a copy), to put back or keep."""
    folder = os.path.dirname(os.path.abspath(target))
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".old", dir=folder)
    os.close(fd)
    os.remove(tmp)
    try:
        os.link(target, tmp, follow_symlinks=False)  # the old file itself, no copy: the new one takes only its name
    except OSError:
        import shutil

        shutil.copy2(target, tmp, follow_symlinks=False)
    return tmp
