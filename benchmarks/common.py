"""Shared helpers of the benchmark: child processes with their resource usage, medians, machine facts.

Every measured piece of work runs in a fresh child process, so that imports, caches and memory of
one measurement cannot leak into the next, and the child's CPU time and peak RSS come from the
kernel (``wait4``).
"""

from __future__ import annotations

import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time

#: The repository root (benchmarks/ sits directly under it).
REPO = pathlib.Path(__file__).resolve().parent.parent


def child_env() -> dict:
    """Environment of child processes: the running interpreter's bin/ first on PATH (the rules call
    ``python``), the repository on PYTHONPATH, single-threaded numeric libraries."""
    env = dict(os.environ)
    bindir = str(pathlib.Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, "1")
    env.setdefault("PYTHONWARNINGS", "ignore")
    return env


def run(cmd: list[str], cwd: str | os.PathLike | None = None, check: bool = True,
        timeout: float | None = None) -> dict:
    """Run ``cmd``; returns rc, wall seconds and the output (stdout and stderr together)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(c) for c in cmd], cwd=cwd or REPO, env=child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise RuntimeError(f"timed out after {timeout} s: {' '.join(map(str, cmd))}\n"
                           f"{out.decode(errors='replace')[-3000:]}")
    wall = time.perf_counter() - t0
    text = out.decode(errors="replace")
    if check and proc.returncode != 0:
        raise RuntimeError(f"command failed (rc {proc.returncode}): {' '.join(map(str, cmd))}\n{text[-4000:]}")
    return {"rc": proc.returncode, "wall_s": wall, "output": text}


def run_wait4(cmd: list[str], cwd: str | os.PathLike | None = None, check: bool = True) -> dict:
    """Like :func:`run`, plus the child's own CPU seconds and peak RSS from ``wait4``."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(c) for c in cmd], cwd=cwd or REPO, env=child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.stdout.read()
    proc.stdout.close()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    text = out.decode(errors="replace")
    if check and proc.returncode != 0:
        raise RuntimeError(f"command failed (rc {proc.returncode}): {' '.join(map(str, cmd))}\n{text[-4000:]}")
    return {"rc": proc.returncode, "wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_rss_mb": usage.ru_maxrss / 1024.0, "output": text}


def last_json(text: str) -> dict:
    """The last line of ``text`` that parses as a JSON object (the drivers print one at the end)."""
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    raise ValueError(f"no JSON result in output:\n{text[-3000:]}")


def median(values) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def spread(values) -> list[float] | None:
    """[min, max] of the values (how noisy the repeats were)."""
    vals = [v for v in values if v is not None]
    return [min(vals), max(vals)] if vals else None


def machine() -> dict:
    """CPU model, cores, memory, load and the versions that matter, for the report."""
    info = {"platform": platform.platform(), "python": platform.python_version(),
            "cores": os.cpu_count(), "load_avg_at_start": list(os.getloadavg())}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    info["memory_gb"] = round(int(line.split()[1]) / 1024**2, 1)
                    break
    except OSError:
        pass
    versions = {}
    for mod in ("numpy", "awkward", "uproot", "coffea", "xgboost", "snakemake"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:  # a missing optional package is reported as missing, not fatal
            versions[mod] = None
    info["versions"] = versions
    return info
