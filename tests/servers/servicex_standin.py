"""A ServiceX stand-in for tests: the REST API the servicex 3.x client uses, over real HTTP.

It implements what ``servicex.deliver`` calls:

* ``POST /token/refresh``                          -> ``{"access_token": <JWT>}`` (with ``--token``)
* ``GET  /servicex``                               -> info: app version, code generators, capabilities
* ``POST /servicex/transformation``                -> submit; ``{"request_id": ...}``
* ``GET  /servicex/transformation``                -> all requests
* ``GET  /servicex/transformation/{id}``           -> status (files, files-completed, minio endpoint, ...)
* ``GET  /servicex/transformation/{id}/results``   -> delivered objects (``later_than`` filter)

A submitted ``uproot-raw`` request is executed in a worker thread: every input file (local path,
``http(s)://`` or ``root://``) is read with uproot, each sub-query's ``cut`` / ``filter_name`` /
``expressions`` is applied like ``TTree.arrays`` (with awkward reducers such as ``count_nonzero``
available to expressions), and the result is written as a ROOT TTree (NanoAOD-style: ``nJet``
counters) and uploaded to an S3-compatible object store (a bucket per request, as ServiceX does),
e.g. a moto server on loopback. A file that cannot be read counts as failed.

Run: ``python servicex_standin.py --port P --s3-endpoint 127.0.0.1:Q [--token T]``.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import re
import sys
import tempfile
import threading
import traceback
import uuid
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

APP_VERSION = "1.5.6-standin"
S3_KEY = "standin-access"
S3_SECRET = "standin-secret"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(subject: str, secret: str, lifetime_s: int = 3600) -> str:
    """An HS256 JWT with an ``exp`` claim (the client reads ``exp`` without verifying)."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    now = int(dt.datetime.now(dt.timezone.utc).timestamp())
    payload = _b64(json.dumps({"sub": subject, "iat": now, "exp": now + lifetime_s}).encode())
    sig = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(sig)}"


# --------------------------------------------------------------------------------------------
# Query execution (what the uproot-raw transformer does)


def _language():
    """uproot's Python expression language plus awkward reducers (default axis=1, as ServiceX)."""
    import awkward as ak
    import uproot

    def axis1(fn):
        def wrapped(*args, **kwargs):
            kwargs.setdefault("axis", 1)
            return fn(*args, **kwargs)
        return wrapped

    funcs = dict(uproot.language.python.PythonLanguage.default_functions)
    for name in ("count_nonzero", "sum", "any", "all", "count", "num", "max", "min", "prod", "mean"):
        funcs[name] = axis1(getattr(ak, name))
    funcs["abs"] = abs
    return uproot.language.python.PythonLanguage(functions=funcs)


def _tree_map(treename) -> list[tuple[str, str]]:
    if isinstance(treename, str):
        return [(treename, treename)]
    if isinstance(treename, list):
        return [(t, t) for t in treename]
    return list(treename.items())


def _nanoaod_layout(arrays) -> dict:
    """Group jagged ``Coll_field`` branches into records so uproot writes ``nColl`` counters."""
    import awkward as ak

    out: dict = {}
    groups: dict[str, dict] = {}
    for name in arrays.fields:
        col = arrays[name]
        if "_" in name and col.ndim > 1:
            prefix, field = name.split("_", 1)
            groups.setdefault(prefix, {})[field] = col
        else:
            out[name] = col
    for prefix, fields in groups.items():
        counts = {tuple(ak.num(c, axis=1).to_list()) for c in fields.values()}
        if len(counts) == 1:
            out[prefix] = ak.zip(fields)
        else:  # fields of different multiplicity: separate counters
            for field, col in fields.items():
                out[f"{prefix}_{field}"] = col
    return out


def run_uproot_raw(selection: str, input_path: str, output_path: str) -> int:
    """Execute an uproot-raw selection on one file; returns the number of entries written."""
    import uproot

    queries = json.loads(selection)
    if isinstance(queries, dict):
        queries = [queries]
    lang = _language()
    written = 0
    with uproot.open(input_path) as fin, uproot.recreate(output_path) as fout:
        for q in queries:
            if "copy_histograms" in q:
                names = q["copy_histograms"]
                for name in [names] if isinstance(names, str) else names:
                    for key in fin.keys(filter_name=name, cycle=False):
                        fout[key] = fin[key]
                continue
            for in_name, out_name in _tree_map(q["treename"]):
                if in_name not in fin:
                    if q.get("fail_on_missing_trees"):
                        raise KeyError(f"{input_path} has no tree {in_name!r}")
                    continue
                tree = fin[in_name]
                arrays = tree.arrays(q.get("expressions"), cut=q.get("cut"), filter_name=q.get("filter_name"),
                                     aliases=q.get("aliases"), language=lang)
                data = _nanoaod_layout(arrays)
                fout.mktree(out_name, {k: v.type.content for k, v in data.items()})
                if len(arrays):
                    fout[out_name].extend(data)
                written += len(arrays)
    return written


# --------------------------------------------------------------------------------------------
# Server state


class StandIn:
    def __init__(self, s3_endpoint: str, token: str | None = None, workers: int = 4):
        self.s3_endpoint = s3_endpoint
        self.refresh_token = token
        self.secret = uuid.uuid4().hex
        self.access_tokens: set[str] = set()
        self.transforms: dict[str, dict] = {}
        self.results: dict[str, list[dict]] = {}
        self.lock = threading.Lock()
        self.sem = threading.Semaphore(workers)
        self.did_counter = 0
        self.log_lines: list[str] = []

    def log(self, msg: str) -> None:
        line = f"{dt.datetime.now().isoformat(timespec='milliseconds')} {msg}"
        print(line, flush=True)

    def s3(self):
        import boto3

        return boto3.client("s3", endpoint_url=f"http://{self.s3_endpoint}", aws_access_key_id=S3_KEY,
                            aws_secret_access_key=S3_SECRET, region_name="us-east-1")

    def submit(self, req: dict) -> str:
        for key in ("selection", "codegen", "result-destination", "result-format"):
            if key not in req:
                raise ValueError(f"missing field {key!r}")
        if req["codegen"] != "uproot-raw":
            raise ValueError(f"code generator {req['codegen']!r} not supported by this stand-in")
        if req["result-format"] != "root-file":
            raise ValueError(f"result format {req['result-format']!r} not supported (only root-file)")
        files = req.get("file-list")
        if not files:
            raise ValueError("this stand-in needs a file-list (no DID finder)")
        json.loads(req["selection"])  # must be valid JSON
        request_id = str(uuid.uuid4())
        with self.lock:
            self.did_counter += 1
            self.transforms[request_id] = {
                "request_id": request_id, "did": "filelist:" + ",".join(files)[:200], "did_id": self.did_counter,
                "title": req.get("title"), "selection": req["selection"], "tree-name": None,
                "image": "standin/uproot-raw", "result-destination": req["result-destination"],
                "result-format": req["result-format"], "generated-code-cm": f"{request_id}-generated-source",
                "status": "Submitted", "app-version": APP_VERSION, "files": len(files),
                "files-completed": 0, "files-failed": 0, "files-remaining": len(files),
                "submit-time": dt.datetime.now(dt.timezone.utc).isoformat(), "finish-time": None,
                "minio-endpoint": self.s3_endpoint, "minio-secured": False,
                "minio-access-key": S3_KEY, "minio-secret-key": S3_SECRET, "log-url": None,
            }
            self.results[request_id] = []
        self.s3().create_bucket(Bucket=request_id)
        threading.Thread(target=self._run, args=(request_id, list(files)), daemon=True).start()
        self.log(f"submitted {request_id} ({req.get('title')}): {len(files)} file(s)")
        return request_id

    def _run(self, request_id: str, files: list[str]) -> None:
        with self.sem:
            with self.lock:
                self.transforms[request_id]["status"] = "Running"
            t = self.transforms[request_id]
            for path in files:
                obj = path.replace("/", ":")
                try:
                    with tempfile.TemporaryDirectory() as tmp:
                        out = os.path.join(tmp, "out.root")
                        n = run_uproot_raw(t["selection"], path, out)
                        size = os.path.getsize(out)
                        self.s3().upload_file(out, request_id, obj)
                    with self.lock:
                        self.results[request_id].append({
                            "s3-object-name": obj, "file-path": path, "total-bytes": size, "total-events": n,
                            "transform_status": "success",
                            "created_at": dt.datetime.now(dt.timezone.utc).replace(tzinfo=None).isoformat(),
                        })
                        t["files-completed"] += 1
                    self.log(f"{request_id}: {path} -> {obj}: {n} entries, {size} bytes")
                except Exception as err:  # noqa: BLE001 - a failed file, as in ServiceX
                    with self.lock:
                        t["files-failed"] += 1
                    self.log(f"{request_id}: FAILED {path}: {type(err).__name__}: {err}\n"
                             + traceback.format_exc())
                with self.lock:
                    t["files-remaining"] = t["files"] - t["files-completed"] - t["files-failed"]
            with self.lock:
                t["status"] = "Complete"
                t["finish-time"] = dt.datetime.now(dt.timezone.utc).isoformat()


class Handler(BaseHTTPRequestHandler):
    server_version = "ServiceXStandIn/1.0"

    def __init__(self, *args, state: StandIn, **kwargs):
        self.state = state
        super().__init__(*args, **kwargs)

    def log_message(self, fmt, *args):  # quiet access log, routed to the state log
        self.state.log(f"{self.command} {self.path} -> " + (args[1] if len(args) > 1 else ""))

    def _send(self, code: int, body) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self) -> bool:
        if self.state.refresh_token is None:
            return True
        auth = self.headers.get("Authorization", "")
        return auth.startswith("Bearer ") and auth[7:] in self.state.access_tokens

    def _body(self) -> dict:
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n) or b"null") or {}

    def do_POST(self):
        url = urlparse(self.path)
        if url.path == "/token/refresh":
            auth = self.headers.get("Authorization", "")
            if self.state.refresh_token is None or auth != f"Bearer {self.state.refresh_token}":
                return self._send(401, {"message": "bad refresh token"})
            token = make_jwt("standin-user", self.state.secret)
            self.state.access_tokens.add(token)
            return self._send(200, {"access_token": token})
        if not self._authorized():
            return self._send(401, {"message": "not authorized"})
        if url.path == "/servicex/transformation":
            try:
                request_id = self.state.submit(self._body())
            except (ValueError, KeyError, json.JSONDecodeError) as err:
                return self._send(400, {"message": str(err)})
            return self._send(200, {"request_id": request_id})
        return self._send(404, {"message": f"no route {url.path}"})

    def do_GET(self):
        url = urlparse(self.path)
        if not self._authorized():
            return self._send(401, {"message": "not authorized"})
        st = self.state
        if url.path == "/servicex":
            return self._send(200, {"app-version": APP_VERSION, "code-gen-image": {"uproot-raw": "standin/uproot-raw"},
                                    "capabilities": ["poll_local_transformation_results"]})
        if url.path == "/servicex/transformation":
            with st.lock:
                return self._send(200, {"requests": list(st.transforms.values())})
        m = re.fullmatch(r"/servicex/transformation/([0-9a-f-]+)(/results)?", url.path)
        if m:
            rid = m.group(1)
            with st.lock:
                if rid not in st.transforms:
                    return self._send(404, {"message": f"request {rid} not found"})
                if not m.group(2):
                    return self._send(200, dict(st.transforms[rid]))
                results = list(st.results[rid])
            later = parse_qs(url.query).get("later_than")
            if later:
                t0 = dt.datetime.fromisoformat(later[0]).replace(tzinfo=None)
                results = [r for r in results if dt.datetime.fromisoformat(r["created_at"]) >= t0]
            return self._send(200, {"results": results})
        return self._send(404, {"message": f"no route {url.path}"})


def serve(port: int, s3_endpoint: str, token: str | None, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    state = StandIn(s3_endpoint, token)
    httpd = ThreadingHTTPServer((host, port), partial(Handler, state=state))
    httpd.daemon_threads = True
    return httpd


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--s3-endpoint", required=True, help="host:port of the S3-compatible store")
    p.add_argument("--token", default=None, help="refresh token clients must present (servicex.yaml token)")
    args = p.parse_args(argv)
    httpd = serve(args.port, args.s3_endpoint, args.token, args.host)
    print(f"ServiceX stand-in on http://{args.host}:{args.port} (S3 at {args.s3_endpoint})", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
