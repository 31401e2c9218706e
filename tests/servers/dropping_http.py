"""A loopback HTTP file server (Range requests) that drops connections mid-transfer on demand.

``DroppingServer(folder)`` serves the files of ``folder`` on 127.0.0.1 from a thread. Every GET
whose range starts in ``[drop_from, drop_to)`` (byte offsets, e.g. where the baskets are) and asks for at least ``min_bytes`` (basket reads, not the small metadata reads around them) uses up one of ``drops`` (``None``: unlimited): the server sends the headers with the full
Content-Length, then only ``partial_bytes`` of the body, and closes the connection. Header and
metadata reads (outside that window) are always served in full, so a reopen succeeds.
"""

from __future__ import annotations

import os
import re
import threading
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def _file(self):
        path = os.path.join(self.server.folder, self.path.lstrip("/").split("?")[0])
        return path if os.path.isfile(path) else None

    def do_HEAD(self):
        path = self._file()
        if path is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(os.path.getsize(path)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()

    def do_GET(self):
        path = self._file()
        if path is None:
            self.send_error(404)
            return
        size = os.path.getsize(path)
        start, stop = 0, size - 1
        m = re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if m:
            start = int(m.group(1))
            stop = min(size - 1, int(m.group(2))) if m.group(2) else size - 1
        with open(path, "rb") as f:
            f.seek(start)
            body = f.read(stop - start + 1)
        drop = self.server.take_drop(start)
        self.send_response(206 if m else 200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        if m:
            self.send_header("Content-Range", f"bytes {start}-{stop}/{size}")
        self.end_headers()
        if drop:
            self.wfile.write(body[: self.server.partial_bytes])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(body)


class DroppingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, folder: str, drop_starts=(), drops: int | None = 0, partial_bytes: int = 100):
        super().__init__(("127.0.0.1", 0), partial(_Handler))
        self.folder = folder
        self.drop_starts = set(drop_starts)
        self.drops = drops
        self.partial_bytes = partial_bytes
        self.dropped = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    def take_drop(self, start: int) -> bool:
        with self._lock:
            if start not in self.drop_starts or (self.drops is not None and self.drops <= 0):
                return False
            if self.drops is not None:
                self.drops -= 1
            self.dropped += 1
            return True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()
        self._thread.join(5)
