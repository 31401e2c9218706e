"""Optional local staging: copy a remote input file to a local cache before processing.

With ``staging.enabled`` the workflow runs one ``stage_file`` job per input file; the per-file
processing job then reads the local copy. On a cluster this moves each file over the network once
(and lets a failed processing job be re-run without another remote read).

The copy streams the file in blocks through fsspec (``root://`` via fsspec-xrootd, ``https://``
via aiohttp) with the same timeout and bounded retries as remote reading, writes it atomically, and
checks that the copy has the expected size and opens as a ROOT file with the expected tree.
"""

from __future__ import annotations

import os
import shutil
import time
from typing import Callable

from .atomic import atomic_path
from .remote import (HTTP_SCHEMES, XROOTD_SCHEMES, RemoteOptions, RemoteReadError, configure_xrootd,
                     is_remote, local_path, with_retries)

BLOCK = 8 << 20


def _fsspec_open(url: str, timeout_s: float):
    import fsspec

    lower = url.lower()
    if lower.startswith(XROOTD_SCHEMES):
        configure_xrootd(timeout_s)
        return fsspec.open(url, "rb", timeout=max(1, int(round(timeout_s))))
    if lower.startswith(HTTP_SCHEMES):
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout_s, sock_read=timeout_s)
        return fsspec.open(url, "rb", client_kwargs={"timeout": timeout}, block_size=BLOCK)
    raise ValueError(f"not a remote URL: {url}")


def _copy_remote(url: str, dest_tmp: str, timeout_s: float) -> int:
    n = 0
    with _fsspec_open(url, timeout_s) as src, open(dest_tmp, "wb") as dst:
        size = getattr(src, "size", None)
        while True:
            block = src.read(BLOCK)
            if not block:
                break
            dst.write(block)
            n += len(block)
    if size is not None and n != size:
        raise OSError(f"short read: got {n} of {size} bytes")
    return n


def stage_file(path: str, dest: str, options: RemoteOptions | None = None, tree_name: str = "Events",
               expected_entries: int | None = None, log: Callable[[str], None] = print) -> dict:
    """Copy ``path`` (URL or local path) to ``dest``; returns a small report.

    Raises :class:`RemoteReadError` naming the URL when the copy fails after the bounded retries,
    and ``ValueError`` when the copy is not a readable ROOT file with tree ``tree_name``.
    """
    from .io import open_tree

    options = options or RemoteOptions()
    t0 = time.perf_counter()
    with atomic_path(dest) as tmp:
        if is_remote(path):
            nbytes = with_retries(lambda: _copy_remote(path, tmp, options.timeout_s), path, options,
                                  action="copy")
        else:
            src = local_path(path)
            if not os.path.exists(src):
                raise RemoteReadError(path, "file does not exist", 1, None, None, "copy")
            shutil.copyfile(src, tmp)
            nbytes = os.path.getsize(tmp)
        try:
            with open_tree(tmp, tree_name) as tree:
                entries = int(tree.num_entries)
        except Exception as err:  # noqa: BLE001 - any read failure means a bad copy
            raise ValueError(f"staged copy of {path} is not a readable ROOT file with tree "
                             f"'{tree_name}': {type(err).__name__}: {err}") from err
    seconds = time.perf_counter() - t0
    report = {"source": path, "path": dest, "bytes": nbytes, "entries": entries, "seconds": seconds,
              "mb_per_s": nbytes / 1e6 / seconds if seconds > 0 else None}
    log(f"staged {path} -> {dest}: {nbytes / 1e6:.1f} MB, {entries} entries in {seconds:.2f} s")
    if expected_entries is not None and entries != expected_entries:
        log(f"WARNING: {path}: tree '{tree_name}' has {entries} entries, the input list says "
            f"{expected_entries}")
    return report
