"""Helpers of the scale-out tests: cached side venvs, workflow copies, result comparison.

Side venvs live in git-ignored folders of the repository (``.venv-<name>/``) and are rebuilt only
when their package list changes, so CI pays the install once per machine.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig
import tempfile

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def skip_or_fail(reason: str):
    """Skip outside CI; in CI the scale-out checks must run, so a missing prerequisite fails."""
    if IN_CI:
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


@contextlib.contextmanager
def _lock(name: str):
    path = pathlib.Path(tempfile.gettempdir()) / f"agc-ttbar-{name}.lock"
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _base_python() -> str:
    """The interpreter the running venv was made from (a fresh venv from it has no packages)."""
    return getattr(sys, "_base_executable", None) or sys.executable


def cached_venv(name: str, packages: list[str], overlay: bool = False, no_deps: bool = False,
                timeout: int = 900) -> pathlib.Path:
    """Create (once) REPO/.venv-<name> with `packages`; return its python.

    overlay: the venv also sees the running environment's site-packages (appended after its own),
    so a plugin can be added to the main venv without touching it.
    """
    path = REPO / f".venv-{name}"
    python = path / "bin" / "python"
    main_site = sysconfig.get_paths()["purelib"] if overlay else None
    stamp_content = json.dumps({"packages": packages, "overlay": main_site, "no_deps": no_deps,
                                "base": _base_python()}, sort_keys=True)
    stamp = path / ".agc-stamp.json"
    with _lock(f"venv-{name}"):
        if stamp.is_file() and stamp.read_text() == stamp_content and python.exists():
            return python
        shutil.rmtree(path, ignore_errors=True)
        subprocess.run([_base_python(), "-m", "venv", str(path)], check=True, timeout=120)
        cmd = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        if no_deps:
            cmd.append("--no-deps")
        proc = subprocess.run(cmd + packages, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            shutil.rmtree(path, ignore_errors=True)
            raise RuntimeError(f"pip install {packages} into {path} failed:\n{proc.stdout}\n{proc.stderr}")
        if overlay:
            site = pathlib.Path(subprocess.check_output(
                [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                text=True).strip())
            # addsitedir (not a plain path line) so the main venv's own .pth files (editable
            # installs) are processed too.
            (site / "zz_agc_main_venv.pth").write_text(f"import site; site.addsitedir({main_site!r})\n")
        stamp.write_text(stamp_content)
    return python


def requirement_lines(path: pathlib.Path) -> list[str]:
    lines = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
    return [line for line in lines if line]


def workflow_files() -> list[str]:
    """Files of the workflow as the repository has them (tracked and new, minus ignored)."""
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                         capture_output=True, check=True).stdout.decode()
    return [f for f in out.split("\0") if f and (REPO / f).is_file()]


def copy_workflow(dst: pathlib.Path) -> pathlib.Path:
    """Copy the workflow sources into dst (a fresh working directory for one run)."""
    dst.mkdir(parents=True, exist_ok=True)
    for rel in workflow_files():
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, target)
    return dst


def _merge(base: dict, extra: dict) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def write_config(work: pathlib.Path, overrides: dict) -> pathlib.Path:
    """Merge overrides into the copy's config.yaml (`--config` passes nested values as strings)."""
    import yaml

    path = work / "config.yaml"
    config = yaml.safe_load(path.read_text()) or {}
    _merge(config, overrides)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return work


def snakemake_env(extra_path: list[str] | None = None) -> dict:
    """Environment of a workflow run: the main venv's `python` first on PATH (rules call `python`)."""
    env = dict(os.environ)
    bindir = str(pathlib.Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join((extra_path or []) + [bindir, env.get("PATH", "/usr/bin:/bin")])
    env.pop("SNAKEMAKE_PROFILE", None)
    return env


@functools.lru_cache(maxsize=1)
def workflow_parses() -> tuple[bool, str]:
    """Whether the full workflow parses (the other stages' rule files may still be missing)."""
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--quiet", "all", "--cores", "1"],
                          cwd=REPO, capture_output=True, text=True, env=snakemake_env(), timeout=300)
    return proc.returncode == 0, proc.stdout + proc.stderr


def require_workflow():
    ok, out = workflow_parses()
    if not ok:
        tail = "\n".join(out.strip().splitlines()[-15:])
        if IN_CI:
            pytest.fail(f"the workflow does not parse:\n{tail}")
        pytest.skip(f"the workflow does not parse yet:\n{tail}")


def histogram_contents(path: pathlib.Path) -> dict:
    """name -> (edges, values, variances) byte strings of every histogram in a ROOT file."""
    import uproot

    out = {}
    with uproot.open(path) as f:
        for key, cls in f.classnames(cycle=False).items():
            if not cls.startswith("TH1"):
                continue
            h = f[key]
            out[key] = (h.axis().edges(flow=True).tobytes(), h.values(flow=True).tobytes(),
                        h.variances(flow=True).tobytes())
    return out


# Per-job measurements in the metadata of partial/merged histogram files: they describe the run,
# not the result, and differ between any two runs.
RUN_MEASUREMENTS = {"peak_rss_mb_max", "peak_rss_mb", "process_s", "timing"}


def npz_contents(path: pathlib.Path) -> dict:
    """Arrays of a HistogramSet .npz as (dtype, shape, bytes); the JSON metadata without timings."""
    import numpy as np

    out = {}
    with np.load(path, allow_pickle=False) as data:
        for key in data.files:
            if key == "__metadata__":
                meta = json.loads(data[key].tobytes())
                out[key] = {k: v for k, v in meta.items() if k not in RUN_MEASUREMENTS}
            else:
                out[key] = (data[key].dtype.str, data[key].shape, data[key].tobytes())
    return out
