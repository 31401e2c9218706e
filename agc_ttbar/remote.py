"""The transport under the reading layer: timeouts and bounded retries for https and root://.

This module decides what is remote (:func:`is_remote`, the one definition) and how a remote file is
opened (:func:`open_file`) and retried (:func:`with_retries`). Trees are opened and read only through
:mod:`agc_ttbar.io` (``open_tree`` / ``read_chunk``), which the per-file job, ML training and the
staging check all use, so a remote file is read with the same rules everywhere:

* ``root://`` (and ``xroot://``) use uproot's XRootD source, which honours ``timeout``; the XRootD
  client's own connection retries are switched off (:func:`configure_xrootd`) so that the retries
  below are the only ones and the total time stays bounded.
* ``http://`` and ``https://`` use uproot's fsspec source with an aiohttp timeout on connect and on
  every read.
* Local paths (and ``file://``) are opened directly, without retries.

A failure that survives ``retries`` attempts raises :class:`RemoteReadError`, whose message names
the URL, the cause in words (connection refused, timed out, not found, ...), the number of attempts
and the timeout, e.g.::

    cannot open root://eospublic.cern.ch//eos/.../file.root: connection refused by the server
    (3 attempts, timeout 60 s each; last error: OSError: XRootD error: [FATAL] Connection error ...)
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass
from typing import Callable, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

#: URL schemes read remotely (everything else is a local path).
XROOTD_SCHEMES = ("root://", "xroot://", "roots://")
HTTP_SCHEMES = ("http://", "https://")
REMOTE_SCHEMES = XROOTD_SCHEMES + HTTP_SCHEMES


class RemoteReadError(OSError):
    """A remote (or local) input could not be read; the message names the URL and the cause."""

    def __init__(self, url: str, cause: str, attempts: int, timeout: float | None,
                 last_error: BaseException | None = None, action: str = "open"):
        self.url = url
        self.cause = cause
        self.attempts = attempts
        self.timeout = timeout
        self.last_error = last_error
        detail = f"{attempts} attempt{'s' if attempts != 1 else ''}"
        if timeout is not None:
            detail += f", timeout {timeout:g} s each"
        if last_error is not None:
            detail += f"; last error: {_one_line(last_error)}"
        super().__init__(f"cannot {action} {url}: {cause} ({detail})")


@dataclass(frozen=True)
class RemoteOptions:
    """How remote files are read: per-operation timeout, attempts, and the pause between attempts.

    ``backoff_s`` doubles after each failed attempt, capped at ``max_backoff_s``.
    """

    timeout_s: float = 60.0
    retries: int = 3
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0

    def __post_init__(self):
        if self.timeout_s <= 0:
            raise ValueError(f"remote timeout must be > 0 s, got {self.timeout_s}")
        if self.retries < 1:
            raise ValueError(f"remote retries must be >= 1 (attempts), got {self.retries}")

    @classmethod
    def from_config(cls, config: dict) -> "RemoteOptions":
        """Options from a validated workflow config (``processing.remote_timeout_s/remote_retries``)."""
        proc = config.get("processing", {})
        return cls(timeout_s=float(proc.get("remote_timeout_s", 60)), retries=int(proc.get("remote_retries", 3)))


def is_remote(path: str) -> bool:
    """True for https / http / root:// URLs."""
    return str(path).lower().startswith(REMOTE_SCHEMES)


def local_path(path: str) -> str:
    """A local path with an optional ``file://`` prefix removed."""
    return path[len("file://"):] if path.startswith("file://") else path


_xrootd_configured: float | None = None


def configure_xrootd(timeout_s: float) -> None:
    """Bound the XRootD client's own waits by ``timeout_s`` and switch off its silent retries.

    By default the client retries a connection for up to 5 x 120 s and checks timeouts only every
    15 s, which would make a dead server take ten minutes to report. Safe to call repeatedly.
    """
    global _xrootd_configured
    if _xrootd_configured == timeout_s:
        return
    from XRootD import client as xrd_client

    t = max(1, int(round(timeout_s)))
    xrd_client.EnvPutInt("ConnectionWindow", t)
    xrd_client.EnvPutInt("ConnectionRetry", 1)
    xrd_client.EnvPutInt("RequestTimeout", t)
    xrd_client.EnvPutInt("StreamTimeout", t)
    xrd_client.EnvPutInt("TimeoutResolution", 1)
    _xrootd_configured = timeout_s


def uproot_options(path: str, timeout_s: float) -> dict:
    """Keyword arguments for ``uproot.open`` that read ``path`` with the given timeout."""
    import uproot

    lower = str(path).lower()
    if lower.startswith(XROOTD_SCHEMES):
        configure_xrootd(timeout_s)
        return {"handler": uproot.source.xrootd.XRootDSource, "timeout": timeout_s}
    if lower.startswith(HTTP_SCHEMES):
        import aiohttp

        # No total limit (a large file may take long); every connect and every read is bounded.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout_s, sock_read=timeout_s)
        return {"handler": uproot.source.fsspec.FSSpecSource, "client_kwargs": {"timeout": timeout}}
    return {}


def describe_error(err: BaseException) -> str:
    """A short human description of why a read failed (used in error messages)."""
    chain = [err]
    while chain[-1].__cause__ is not None or chain[-1].__context__ is not None:
        nxt = chain[-1].__cause__ or chain[-1].__context__
        if nxt in chain or len(chain) > 5:
            break
        chain.append(nxt)
    text = " ".join(f"{type(e).__name__} {e}".lower() for e in chain)
    if isinstance(err, FileNotFoundError) or "no such file" in text or "not found" in text:
        return "file not found on the server"
    if isinstance(err, PermissionError) or "permission denied" in text or re.search(r"\b(401|403) ", text):
        return "access denied by the server"
    if ("payload is not completed" in text or "clientpayloaderror" in text or "content-length" in text or "connection closed" in text
            or "connection reset" in text or "incompleteread" in text or "server disconnected" in text):
        return "connection dropped during the transfer"
    if ("refused" in text or "connection error" in text or "cannot connect" in text
            or "connect call failed" in text):
        return "connection refused (server unreachable)"
    if isinstance(err, TimeoutError) or "timeout" in text or "timed out" in text or "expired" in text:
        return "timed out (server not answering)"
    if "name or service not known" in text or "nodename nor servname" in text or "resolve" in text:
        return "host name not resolvable"
    return "read error"


def _one_line(err: BaseException, limit: int = 300) -> str:
    msg = " ".join(str(err).split("Files may be specified as:")[0].split())
    if len(msg) > limit:
        msg = msg[: limit - 3] + "..."
    return f"{type(err).__name__}: {msg}" if msg else type(err).__name__


#: Errors worth another attempt. A missing tree (KeyError) or a bad file format is not retried.
RETRYABLE = (OSError, TimeoutError, ConnectionError, EOFError)


def _retryable(err: BaseException) -> bool:
    if isinstance(err, RETRYABLE):
        return True
    try:  # aiohttp and fsspec errors that are not OSError subclasses
        import aiohttp

        if isinstance(err, aiohttp.ClientError):
            return True
    except ImportError:  # pragma: no cover - aiohttp comes with fsspec[http]
        pass
    try:
        from fsspec.exceptions import FSTimeoutError

        if isinstance(err, FSTimeoutError):
            return True
    except ImportError:  # pragma: no cover
        pass
    return False


def with_retries(func: Callable[[], T], url: str, options: RemoteOptions, action: str = "read",
                 sleep: Callable[[float], None] = time.sleep) -> T:
    """Call ``func()`` up to ``options.retries`` times while it fails with a retryable error.

    Raises :class:`RemoteReadError` naming ``url`` and the cause once the attempts are used up.
    Non-retryable errors (e.g. a missing tree, a corrupt file) propagate at once, unchanged.
    """
    pause = options.backoff_s
    last: BaseException | None = None
    for attempt in range(1, options.retries + 1):
        try:
            return func()
        except RemoteReadError:
            raise
        except Exception as err:  # noqa: BLE001 - classified below
            if not _retryable(err):
                raise
            last = err
            log.warning("attempt %d/%d to %s %s failed: %s", attempt, options.retries, action, url,
                        _one_line(err))
            if attempt < options.retries:
                sleep(pause)
                pause = min(pause * 2, options.max_backoff_s)
    assert last is not None
    raise RemoteReadError(url, describe_error(last), options.retries,
                          options.timeout_s if is_remote(url) else None, last, action) from last


def open_once(path: str, options: RemoteOptions):
    """One ``uproot.open`` of a remote URL with the timeout of ``options`` (no retries)."""
    import uproot

    f = uproot.open(path, **uproot_options(path, options.timeout_s))
    f.keys()  # touch the directory so a truncated or unreadable file fails here
    return f


def open_file(path: str, options: RemoteOptions | None = None):
    """``uproot.open`` of a local path or remote URL, with timeouts and bounded retries."""
    import uproot

    options = options or RemoteOptions()
    if not is_remote(path):
        local = local_path(path)
        if not os.path.exists(local):
            raise RemoteReadError(path, "file does not exist", 1, None, None, "open")
        return uproot.open(local)
    return with_retries(lambda: open_once(path, options), path, options, action="open")
