"""agc_ttbar.provenance.git_commit reads HEAD as git does, without a git executable.

A job in the container image has no git; the commit it records in fit_results.json must be the one
the host records (tests/test_container.py compares the two runs byte for byte).
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess

import pytest

from agc_ttbar.provenance import git_commit

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git makes the test repositories")


def _git(repo: pathlib.Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
    return subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: pathlib.Path) -> pathlib.Path:
    repo = tmp_path / "repo"
    (repo / "workflow_scripts").mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    (repo / "workflow_scripts" / "fit.py").write_text("print()\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "one")
    (repo / "README").write_text("two\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "two")
    return repo


def test_loose_ref_from_a_subfolder(repo):
    assert git_commit(repo / "workflow_scripts") == _git(repo, "rev-parse", "HEAD")


def test_packed_refs(repo):
    _git(repo, "pack-refs", "--all")
    assert not (repo / ".git" / "refs" / "heads" / "main").exists()
    assert git_commit(repo) == _git(repo, "rev-parse", "HEAD")


def test_detached_head(repo):
    first = _git(repo, "rev-parse", "HEAD~1")
    _git(repo, "checkout", "-q", "--detach", first)
    assert git_commit(repo) == first


def test_worktree_gitdir_file(repo, tmp_path):
    _git(repo, "branch", "side", "HEAD~1")
    _git(repo, "worktree", "add", "-q", str(tmp_path / "wt"), "side")
    assert (tmp_path / "wt" / ".git").is_file()
    assert git_commit(tmp_path / "wt") == _git(repo, "rev-parse", "side")


def test_outside_a_checkout_and_a_broken_head(tmp_path, repo):
    assert git_commit(tmp_path / "nowhere") is None
    (repo / ".git" / "HEAD").write_text("ref: refs/heads/missing\n")
    assert git_commit(repo) is None
