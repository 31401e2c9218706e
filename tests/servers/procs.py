"""Start and stop the loopback servers the integration tests use.

Each ``start_*`` function returns a :class:`Server` (process, URL, log file). Missing Debian
packages (xrootd-server, nginx) are installed with apt-get when the tests run as root; otherwise the
test is skipped. Served folders are world-readable temporary folders (xrootd and nginx workers drop
root privileges).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
_APT_UPDATED = False


def ensure_binaries(binaries: dict[str, str]) -> None:
    """Make sure each binary exists, installing its Debian package as root, else skip the test."""
    global _APT_UPDATED
    missing = {b: pkg for b, pkg in binaries.items() if shutil.which(b) is None and not os.path.exists(b)}
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip(f"needs {', '.join(sorted(set(missing.values())))} (not root: cannot apt-get install)")
    pkgs = sorted(set(missing.values()))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-qq", *pkgs]
    if subprocess.run(cmd, env=env, capture_output=True).returncode != 0 and not _APT_UPDATED:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
        _APT_UPDATED = True
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    still = [b for b in missing if shutil.which(b) is None and not os.path.exists(b)]
    if res.returncode != 0 or still:
        pytest.fail(f"apt-get install {' '.join(pkgs)} failed: {res.stderr[-2000:]}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, log: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}; log {log}:\n{_tail(log)}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"server did not listen on port {port} within {timeout} s; log:\n{_tail(log)}")


def _tail(path: str, n: int = 4000) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.read()[-n:]
    except OSError:
        return "<no log>"


@dataclass
class Server:
    name: str
    proc: subprocess.Popen
    url: str
    port: int
    log: str
    workdir: str
    extra: dict = field(default_factory=dict)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def log_text(self) -> str:
        return _tail(self.log, 20000)


def served_folder(prefix: str = "agc-served-") -> str:
    """A temporary folder readable by every user (for servers that drop privileges)."""
    path = tempfile.mkdtemp(prefix=prefix)
    os.chmod(path, 0o755)
    return path


def publish(src: str, folder: str, name: str | None = None) -> str:
    """Copy ``src`` into the served folder (world-readable); returns the name relative to it."""
    name = name or os.path.basename(src)
    dest = os.path.join(folder, name)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    for d in _parents(os.path.dirname(dest), folder):
        os.chmod(d, 0o755)
    shutil.copyfile(src, dest)
    os.chmod(dest, 0o644)
    return name


def _parents(path: str, stop: str):
    path = os.path.abspath(path)
    stop = os.path.abspath(stop)
    while path.startswith(stop) and path != stop:
        yield path
        path = os.path.dirname(path)


def _spawn(name: str, cmd: list[str], port: int, workdir: str, url: str, env=None) -> Server:
    log = os.path.join(workdir, f"{name}.out")
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=workdir, env=env,
                                start_new_session=True)
    server = Server(name, proc, url, port, log, workdir)
    try:
        wait_port(port, proc, log)
    except Exception:
        server.stop()
        raise
    return server


def start_xrootd(folder: str) -> Server:
    """A real xrootd (Debian xrootd-server) exporting ``folder`` at root://127.0.0.1:PORT//."""
    ensure_binaries({"xrootd": "xrootd-server"})
    workdir = tempfile.mkdtemp(prefix="agc-xrootd-")
    os.chmod(workdir, 0o777)
    port = free_port()
    cfg = os.path.join(workdir, "xrootd.cfg")
    with open(cfg, "w") as f:
        f.write(f"xrd.port {port}\nall.export /\noss.localroot {folder}\n"
                f"all.adminpath {workdir}\nall.pidpath {workdir}\nxrd.network nodnr\n")
    cmd = ["xrootd", "-c", cfg, "-l", os.path.join(workdir, "xrootd.log")]
    if os.geteuid() == 0:  # xrootd refuses to run as root; drop to its own user
        user = "xrootd" if subprocess.run(["id", "xrootd"], capture_output=True).returncode == 0 else "nobody"
        cmd[1:1] = ["-R", user]
    return _spawn("xrootd", cmd, port, workdir, f"root://127.0.0.1:{port}/")


def start_nginx(folder: str) -> Server:
    """A real nginx serving ``folder`` at http://127.0.0.1:PORT/ (byte ranges supported)."""
    ensure_binaries({"/usr/sbin/nginx": "nginx"})
    workdir = tempfile.mkdtemp(prefix="agc-nginx-")
    os.chmod(workdir, 0o755)
    port = free_port()
    conf = os.path.join(workdir, "nginx.conf")
    temps = "\n".join(f"  {k}_temp_path {workdir}/{k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    with open(conf, "w") as f:
        f.write(f"daemon off;\nworker_processes 1;\npid {workdir}/nginx.pid;\nerror_log {workdir}/error.log;\n"
                f"events {{ worker_connections 256; }}\n"
                f"http {{\n  access_log {workdir}/access.log;\n{temps}\n"
                f"  server {{ listen 127.0.0.1:{port}; root {folder}; }}\n}}\n")
    return _spawn("nginx", ["/usr/sbin/nginx", "-c", conf, "-e", f"{workdir}/error.log"], port, workdir,
                  f"http://127.0.0.1:{port}/")


def start_moto() -> Server:
    """A moto S3-compatible server on loopback."""
    workdir = tempfile.mkdtemp(prefix="agc-moto-")
    port = free_port()
    return _spawn("moto", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], port, workdir,
                  f"http://127.0.0.1:{port}")


def start_servicex_standin(s3_endpoint: str, token: str | None = None) -> Server:
    """The ServiceX stand-in (servicex_standin.py) on loopback, storing results in ``s3_endpoint``."""
    workdir = tempfile.mkdtemp(prefix="agc-servicex-")
    port = free_port()
    cmd = [sys.executable, os.path.join(HERE, "servicex_standin.py"), "--port", str(port), "--s3-endpoint", s3_endpoint]
    if token:
        cmd += ["--token", token]
    return _spawn("servicex", cmd, port, workdir, f"http://127.0.0.1:{port}")


def stop_all(*servers: Server) -> None:
    for s in servers:
        if s is not None:
            s.stop()
            shutil.rmtree(s.workdir, ignore_errors=True)
