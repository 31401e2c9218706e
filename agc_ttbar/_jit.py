"""numba set-up shared by the package's compiled kernels (``_forest_kernels``, ``_observable_kernels``).

The first call of any numba function in a process initialises numba and runs every installed
``numba_extensions`` entry point; in this environment those import ``vector`` (and with it
``sympy``) and awkward's numba support: ~0.8 s of the ~1.1 s a per-file job would spend before its
first compiled call, even with the kernels cached on disk. The kernels use plain numpy arrays and
need none of those extensions, so :func:`warm_up` loads them (from numba's on-disk cache) with
the entry points held back, then puts numba's flag back: later numba users in the same process
still get their extensions on their own first compilation.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Callable

# numba caches compiled kernels beside their source (__pycache__). Where the package is installed
# read-only (a container image, a shared software area on a batch node) and no cache directory is
# configured, use a temporary one rather than failing or compiling in every job.
if "NUMBA_CACHE_DIR" not in os.environ and not os.access(os.path.dirname(os.path.abspath(__file__)), os.W_OK):
    os.environ["NUMBA_CACHE_DIR"] = os.path.join(tempfile.gettempdir(), "agc_ttbar-numba-cache")

import numba  # noqa: E402,F401  (after the cache directory is settled)


@contextlib.contextmanager
def _extensions_held_back():
    try:
        from numba.core import entrypoints
    except ImportError:                     # a numba without this module: nothing to hold back
        yield
        return
    before = getattr(entrypoints, "_already_initialized", None)
    if before is None:
        yield
        return
    entrypoints._already_initialized = True
    try:
        yield
    finally:
        entrypoints._already_initialized = before


def warm_up(*calls: Callable[[], object]) -> None:
    """Run ``calls`` (first calls of kernels, with the argument types of real use) without loading
    numba's extension entry points."""
    with _extensions_held_back():
        for call in calls:
            call()
