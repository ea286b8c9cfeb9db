"""Where files come from: the working tree, a git revision, or nothing (no baseline)."""

from __future__ import annotations

import glob as _glob
import os
import re
import subprocess

from ci_checks import _git

GLOB_CHARS = re.compile(r"[*?\[]")


class Tree:
    """Files of one side of the comparison, by path relative to the compared folder."""

    label = ""

    def read(self, path: str) -> bytes | None:
        raise NotImplementedError

    def glob(self, pattern: str) -> list[str]:
        raise NotImplementedError

    def is_dir(self, path: str) -> bool:
        raise NotImplementedError

    def where(self, path: str) -> str:
        """How messages name a file of this side."""
        return path if not self.label else f"{path} at {self.label}"

    def close(self) -> None:
        """Release what reading needed (GitTree's git process)."""


class WorkingTree(Tree):
    def __init__(self, root: str) -> None:
        self.root = root

    def read(self, path: str) -> bytes | None:
        try:
            with open(os.path.join(self.root, path), "rb") as fh:
                return fh.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def glob(self, pattern: str) -> list[str]:
        if not GLOB_CHARS.search(pattern):
            return [pattern] if os.path.isfile(os.path.join(self.root, pattern)) else []
        found = _glob.glob(pattern, root_dir=self.root, recursive=True)
        return sorted(p.replace(os.sep, "/") for p in found if os.path.isfile(os.path.join(self.root, p)))

    def is_dir(self, path: str) -> bool:
        return os.path.isdir(os.path.join(self.root, path))


class GitTree(Tree):
    """The files of a git revision, read through one `git cat-file --batch` process."""

    def __init__(self, toplevel: str, rev: str, prefix: str, label: str) -> None:
        self.toplevel, self.rev, self.prefix, self.label = toplevel, rev, prefix, label
        self._files: list[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def files(self) -> list[str]:
        """Every file of the revision under the compared folder, relative to it."""
        if self._files is None:
            names = _git.ls_tree(self.toplevel, self.rev, self.prefix or ".")
            self._files = sorted(n[len(self.prefix) :] for n in names if n.startswith(self.prefix))
        return self._files

    def read(self, path: str) -> bytes | None:
        if self._proc is None:
            self._proc = _git.popen(["cat-file", "--batch"], self.toplevel)
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(f"{self.rev}:{self.prefix}{path}\n".encode())
        self._proc.stdin.flush()
        header = self._proc.stdout.readline().split()
        if len(header) != 3:  # "<name> missing" or "<name> ambiguous"
            return None
        size = int(header[2])
        data = self._proc.stdout.read(size)
        self._proc.stdout.read(1)  # the newline after the object
        return data if header[1] == b"blob" else None

    def glob(self, pattern: str) -> list[str]:
        if not GLOB_CHARS.search(pattern):
            return [pattern] if pattern in set(self.files) else []
        regex = glob_regex(pattern)
        return [f for f in self.files if regex.fullmatch(f)]

    def is_dir(self, path: str) -> bool:
        start = path.rstrip("/") + "/"
        return any(f.startswith(start) for f in self.files)

    def close(self) -> None:
        if self._proc is not None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            self._proc.wait()
            self._proc = None


class EmptyTree(Tree):
    """No baseline at all."""

    def read(self, path: str) -> bytes | None:
        return None

    def glob(self, pattern: str) -> list[str]:
        return []

    def is_dir(self, path: str) -> bool:
        return False


def glob_regex(pattern: str) -> re.Pattern[str]:
    """Translate a glob the way glob.glob(recursive=True) reads it: `*` stays in one folder, `**/` spans many."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:[^/]*/)*")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end]
                out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out))
