"""Ordered map over forked worker processes: the one mechanism by which a job spreads independent
pieces of its work (the ranking's refits, the statistics figures) over the threads its rule declares.

Fork, not spawn: the workers inherit the parent's imported modules and prepared inputs (a pyhf model,
cabinetry predictions), so a worker costs milliseconds, not the seconds of re-importing and
rebuilding them, and nothing has to be pickled on the way in. The results come back in the order of
``items``, whatever the number of processes, so a job's output does not depend on it. JAX's threads
do not survive a fork: with JAX imported, the map runs in this process.
"""

from __future__ import annotations

import multiprocessing
import sys
from typing import Callable, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def can_fork() -> bool:
    """Whether this process can fork workers: the platform forks (not Windows) and JAX, whose
    threads do not survive a fork (a forked child would deadlock), is not loaded here."""
    return "fork" in multiprocessing.get_all_start_methods() and "jax" not in sys.modules


def fork_map(func: Callable[[T], R], items: Sequence[T], processes: int) -> list[R]:
    """``[func(x) for x in items]``, over ``processes`` forked workers when that is > 1.

    Runs in this process when ``processes`` <= 1, when there is at most one item, or when this
    process cannot fork (:func:`can_fork`).
    ``func`` must be a module-level function; its return values are pickled back. Items are handed
    out one at a time (``chunksize=1``): the pieces here are few and uneven.
    """
    items = list(items)
    n = min(int(processes), len(items))
    if n <= 1 or not can_fork():
        return [func(x) for x in items]
    with multiprocessing.get_context("fork").Pool(n) as pool:
        return pool.map(func, items, chunksize=1)
