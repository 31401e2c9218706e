"""Recover from the lock a killed Snakemake run leaves behind, and only from that.

Snakemake locks its working directory (``.snakemake/locks/``) while it runs; after a SIGKILL the
lock stays and the next run stops with "Directory cannot be locked" until someone types
``snakemake --unlock``. :func:`clear_stale_lock` does that for the user, but only when no live
Snakemake process works in the same directory: it looks through ``/proc`` for processes whose
command line runs snakemake and whose working directory (``--directory``/``-d`` or their current
directory) is this one. Snakemake has no notion of a stale lock itself (its lock files hold file
lists, no process id), hence this module. Unlocking goes through ``snakemake --unlock`` (public).
A process whose directory cannot be read (another user's) counts as a live holder: when in doubt,
the lock is kept and the user is told.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Iterable, Sequence


def workdir_of(args: Sequence[str], cwd: str) -> str:
    """The working directory a snakemake command line uses (``-d``/``--directory``, else ``cwd``)."""
    args = list(args)
    for i, a in enumerate(args):
        if a in ("-d", "--directory") and i + 1 < len(args):
            return os.path.realpath(os.path.join(cwd, args[i + 1]))
        if a.startswith("--directory="):
            return os.path.realpath(os.path.join(cwd, a.split("=", 1)[1]))
    return os.path.realpath(cwd)


def lock_files(workdir: str) -> list[str]:
    folder = os.path.join(workdir, ".snakemake", "locks")
    if not os.path.isdir(folder):
        return []
    return sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".lock"))


def _snakemake_args(cmdline: list[str]) -> list[str] | None:
    """The arguments after 'snakemake' if the command line runs snakemake, else None."""
    for i, a in enumerate(cmdline[:3]):
        if os.path.basename(a) == "snakemake":
            return cmdline[i + 1:]
        if a == "-m" and i + 1 < len(cmdline) and cmdline[i + 1] == "snakemake":
            return cmdline[i + 2:]
    return None


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as fh:
                pid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids


def live_holders(workdir: str, exclude: Iterable[int] = ()) -> list[int]:
    """Pids of live snakemake processes working in ``workdir`` (unreadable ones included)."""
    workdir = os.path.realpath(workdir)
    skip = _ancestors() | set(exclude)
    holders = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in skip:
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as fh:
                cmdline = [a.decode(errors="replace") for a in fh.read().split(b"\0") if a]
        except OSError:
            continue
        args = _snakemake_args(cmdline)
        if args is None:
            continue
        try:
            with open(f"/proc/{name}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue   # a zombie holds nothing
            cwd = os.readlink(f"/proc/{name}/cwd")
        except FileNotFoundError:
            continue           # exited meanwhile
        except OSError:
            holders.append(int(name))   # cannot tell where it works: assume here
            continue
        if workdir_of(args, cwd) == workdir:
            holders.append(int(name))
    return holders


def clear_stale_lock(snakemake_cmd: Sequence[str], args: Sequence[str], cwd: str | None = None) -> str:
    """Unlock the working directory of ``args`` if it is locked and no live snakemake holds it.

    Returns what was done: "unlocked", "not locked", "held by live snakemake pids ..." or
    "cannot check (no /proc)".
    """
    cwd = cwd or os.getcwd()
    workdir = workdir_of(args, cwd)
    if not lock_files(workdir):
        return "not locked"
    if not os.path.isdir("/proc"):
        return "cannot check (no /proc)"
    holders = live_holders(workdir)
    if holders:
        return f"held by live snakemake pids {' '.join(map(str, holders))}"
    res = subprocess.run([*snakemake_cmd, *args, "--unlock"], cwd=cwd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"snakemake --unlock failed in {workdir}:\n{res.stdout}{res.stderr}")
    return "unlocked"


def main(argv: Sequence[str] | None = None) -> int:
    """``run_snakemake.py ARGS``: clear a stale lock, then run ``snakemake ARGS`` in its place."""
    args = list(sys.argv[1:] if argv is None else argv)
    snakemake_cmd = [sys.executable, "-m", "snakemake"]
    outcome = clear_stale_lock(snakemake_cmd, args)
    if outcome == "unlocked":
        sys.stderr.write("run_snakemake: removed the lock left by a run that is no longer alive "
                         "(no live snakemake works in this directory)\n")
    elif outcome.startswith("held") or outcome.startswith("cannot"):
        sys.stderr.write(f"run_snakemake: the directory is locked and the lock is kept ({outcome}); "
                         "if no run is alive, run `snakemake --unlock` yourself\n")
    sys.stderr.flush()
    os.execv(sys.executable, [*snakemake_cmd, *args])
    return 0  # not reached
