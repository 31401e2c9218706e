"""Run the workflow from a scratch copy of the repository (integration tests of remote inputs)."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest
import yaml
from scaleout_helpers import REPO, histogram_contents, workflow_files  # noqa: F401  (histogram_contents: re-exported)



def copy_workflow(dst: pathlib.Path) -> pathlib.Path:
    """Copy the workflow sources (tracked and new files, minus ignored ones and tests) into ``dst``."""
    dst.mkdir(parents=True, exist_ok=True)
    for rel in workflow_files():
        if not rel.startswith("tests/"):
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dst / rel)
    return dst


def env() -> dict:
    """The test interpreter's bin folder first on PATH: rules call `python`."""
    e = dict(os.environ)
    e["PATH"] = os.pathsep.join([str(pathlib.Path(sys.executable).parent), e.get("PATH", "/usr/bin:/bin")])
    e.pop("SNAKEMAKE_PROFILE", None)
    return e


def snakemake(workdir: pathlib.Path, config: dict, targets: list[str], *args: str, cores: int = 4,
              timeout: int = 900, check: bool = True) -> subprocess.CompletedProcess:
    """Run snakemake in ``workdir`` with ``config`` written to a config file of its own."""
    name = f"config_{config.get('results_dir', 'results')}.yaml"
    (workdir / name).write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [sys.executable, "-m", "snakemake", "--configfile", name, "--cores", str(cores), *targets, *args]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=env(), timeout=timeout)
    if check and proc.returncode != 0:
        logs = _failed_logs(workdir / config.get("results_dir", "results"))
        pytest.fail(f"snakemake {' '.join(args)} {' '.join(targets)} failed ({proc.returncode}):\n"
                    f"{(proc.stdout + proc.stderr)[-6000:]}\n{logs}")
    return proc


def _failed_logs(results: pathlib.Path) -> str:
    out = []
    for log in sorted((results / "logs").rglob("*.log")) if (results / "logs").exists() else []:
        text = log.read_text(errors="replace")
        if "Error" in text or "ERROR" in text or "Traceback" in text:
            out.append(f"--- {log}\n{text[-3000:]}")
    return "\n".join(out[-5:])


def workflow_parses(workdir: pathlib.Path) -> tuple[bool, str]:
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--list-rules"],
                          cwd=workdir, capture_output=True, text=True, env=env(), timeout=300)
    return proc.returncode == 0, proc.stdout + proc.stderr


def require_workflow(workdir: pathlib.Path) -> None:
    ok, out = workflow_parses(workdir)
    if not ok:
        tail = "\n".join(out.strip().splitlines()[-12:])
        if os.environ.get("CI"):
            pytest.fail(f"the workflow does not parse:\n{tail}")
        pytest.skip(f"the workflow does not parse yet:\n{tail}")


#: A small mock dataset: one file per sample, few events, no ML (the remote tests test I/O).
MOCK_CONFIG = {
    "dataset": "mock",
    "use_inference": False,
    "mock": {"files_per_sample": 1, "events_per_file": 3000, "compression": "ZLIB:1",
             "events_per_file_overrides": {"ttbar__nominal": 3000}},
}


def mock_run(base: pathlib.Path) -> dict:
    """Run (once per test session) the workflow on the small mock dataset.

    Returns ``{"workdir", "inputs", "histograms"}``: the workflow copy, the mock input list and
    the local-file histograms.root every remote run is compared with.
    """
    workdir = base / "agc-workflow"
    results = workdir / "results_mock"
    done = results / "histograms.root"
    if not done.exists():
        if not workdir.exists():
            copy_workflow(workdir)
        require_workflow(workdir)
        cfg = dict(MOCK_CONFIG, results_dir="results_mock")
        snakemake(workdir, cfg, [str(done.relative_to(workdir)), "results_mock/mock/nanoaod_inputs.json",
                                 "results_mock/cutflow.json"])
    return {"workdir": workdir, "inputs": results / "mock" / "nanoaod_inputs.json", "histograms": done}


def rewrite_inputs(inputs: dict, mapping) -> dict:
    """A copy of an input list with every file path replaced by ``mapping(process, variation, i, path)``."""
    out = json.loads(json.dumps(inputs))
    for process, variations in out.items():
        for variation, sample in variations.items():
            for i, entry in enumerate(sample["files"]):
                entry["path"] = mapping(process, variation, i, entry["path"])
    return out
