"""Atomic file output: write to a temporary name in the same folder, then rename.

A job killed half-way leaves at most a ``.tmp-*`` file, never a truncated output that Snakemake
would take as complete; the next write of the same target removes such left-overs.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``.

    The temporary name keeps the extension, so libraries that choose a format by suffix work.
    On any exception the temporary file is removed and the exception propagates.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    base = os.path.basename(path)
    stem, ext = os.path.splitext(base)
    _remove_stale(folder, stem, ext)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{stem}-", suffix=ext, dir=folder)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: The process umask, read once at import (reading it means setting it, which is not thread-safe).
_UMASK = _umask()


def _remove_stale(folder: str, stem: str, ext: str) -> None:
    """Remove temporary files of the same target left by a killed writer (SIGKILL, power loss).

    Only names that :func:`tempfile.mkstemp` makes for this target match (8 random characters), so
    temporary files of other targets in the folder are kept. A workflow job is the only writer of
    its output, hence none of these can belong to a live writer.
    """
    pattern = re.compile(re.escape(f".tmp-{stem}-") + r"[a-z0-9_]{8}" + re.escape(ext) + "$")
    with os.scandir(folder) as entries:
        stale = [e.path for e in entries if pattern.match(e.name) and e.is_file(follow_symlinks=False)]
    for path in stale:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode())
