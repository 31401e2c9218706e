"""Which commit of the workflow produced a result, read from the checkout's ``.git`` without git.

A job inside the workflow's container image has no ``git`` executable, while the same job on the
host has one: asking ``git rev-parse HEAD`` would record the commit on the host and ``None`` in the
image, and the two runs' ``fit_results.json`` would differ in that field alone. Reading the few
files git itself reads for ``HEAD`` (``HEAD``, a loose ref or ``packed-refs``; the ``gitdir:`` file
of a worktree or submodule and its ``commondir``) gives the same answer in both, with no process to
start. Anything unusual (a ref stored in a reftable, an unreadable file) gives ``None``, as outside a
checkout: the commit is provenance, never an input to a result.
"""

from __future__ import annotations

import pathlib
import re

_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


def _git_dir(start: pathlib.Path) -> pathlib.Path | None:
    """The git directory of the checkout containing ``start`` (a ``.git`` folder or ``gitdir:`` file)."""
    for folder in (start, *start.parents):
        dot_git = folder / ".git"
        if dot_git.is_dir():
            return dot_git
        if dot_git.is_file():
            text = dot_git.read_text().strip()
            if not text.startswith("gitdir:"):
                return None
            target = pathlib.Path(text[len("gitdir:"):].strip())
            return target if target.is_absolute() else (folder / target).resolve()
    return None


def _resolve_ref(git_dir: pathlib.Path, common: pathlib.Path, ref: str) -> str | None:
    for base in (git_dir, common):
        loose = base / ref
        if loose.is_file():
            value = loose.read_text().strip()
            return value if _SHA.match(value) or value.startswith("ref:") else None
    packed = common / "packed-refs"
    if packed.is_file():
        for line in packed.read_text().splitlines():
            parts = line.split(" ", 1)
            if len(parts) == 2 and parts[1].strip() == ref and _SHA.match(parts[0]):
                return parts[0]
    return None


def git_commit(path: str | pathlib.Path) -> str | None:
    """Commit checked out at ``HEAD`` of the git checkout containing ``path``, or None.

    Follows symbolic refs (``ref: refs/heads/main``) up to a depth of 5, as git does for HEAD.
    """
    try:
        git_dir = _git_dir(pathlib.Path(path).resolve())
        if git_dir is None or not (git_dir / "HEAD").is_file():
            return None
        common = git_dir
        if (git_dir / "commondir").is_file():
            common = (git_dir / (git_dir / "commondir").read_text().strip()).resolve()
        value = (git_dir / "HEAD").read_text().strip()
        for _ in range(5):
            if _SHA.match(value):
                return value
            if not value.startswith("ref:"):
                return None
            resolved = _resolve_ref(git_dir, common, value[len("ref:"):].strip())
            if resolved is None:
                return None
            value = resolved
    except (OSError, UnicodeDecodeError):
        return None
    return None
