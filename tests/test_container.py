"""The container image (envs/Containerfile, scripts/build_image.sh) and a REANA-style run in it.

REANA 0.9 drives the workflow with Snakemake 7.32.4 and runs every job's shell command in the rule's
image, the workspace mounted at the same path, without the host's environment. The run here does
the same with `container_runner: podman` (scripts/podman_job.sh wraps each job in `podman run --rm
--network none`), from an empty workspace, twice, and compares the results byte for byte with a host
run under Snakemake 9. Snakemake 7.32.4 comes from a venv without numpy or the package, so a job that
ran on the host instead of in the image would fail.

The image build is cached (podman's store, the rootfs tarball and the wheelhouse in
~/.cache/agc-ttbar-image): minutes cold, a second when nothing changed.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

import pytest

from scaleout_helpers import (REPO, cached_venv, copy_workflow, require_workflow, skip_or_fail,
                              snakemake_env, write_config)
from test_reana import SNAKEMAKE7, _job_counts

SNAKEMAKE8 = ["snakemake==8.27.1", "pyyaml==6.0.2", "jsonschema==4.25.1"]
COMPARED = ["results/histograms.root", "results/histograms_ml.root",
            "results/statistics/workspace.json", "results/fit_results.json"]


def build_image() -> str:
    """Build (or find cached) the image; its name:tag."""
    missing = [t for t in ("podman", "runc", "debootstrap") if shutil.which(t) is None]
    if missing:
        skip_or_fail(f"{', '.join(missing)} not installed (apt-get install -y podman runc debootstrap)")
    if os.geteuid() != 0:
        skip_or_fail("the local base image needs debootstrap as root")
    t0 = time.monotonic()
    proc = subprocess.run(["bash", str(REPO / "scripts" / "build_image.sh")], cwd=REPO,
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    ref = proc.stdout.strip().splitlines()[-1]
    print(f"\nimage {ref}: {time.monotonic() - t0:.1f} s")
    return ref


def _container_env(smk_bin: pathlib.Path) -> dict:
    """The driver's environment: its own venv and the system only (no workflow venv on PATH)."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "SNAKEMAKE_PROFILE"}}
    env["PATH"] = f"{smk_bin}:/usr/sbin:/usr/bin:/sbin:/bin"
    return env


def _outputs(work: pathlib.Path) -> dict[str, bytes]:
    return {rel: (work / rel).read_bytes() for rel in COMPARED}


def test_container_runner_needs_an_image():
    from agc_ttbar.config import ConfigError, validate_config

    with pytest.raises(ConfigError, match="container_runner.*container_image"):
        validate_config({"container_runner": "podman"})
    config = validate_config({})
    assert config["container_image"] is None and config["container_runner"] is None


def test_every_rule_gets_the_configured_image(tmp_path):
    """The global container: directive reaches every rule (Snakemake 9 API, parse only)."""
    require_workflow()
    work = write_config(copy_workflow(tmp_path / "wf"), {"container_image": "docker://example.org/agc:1"})
    code = ("import snakemake.api as a, pathlib\n"
            "with a.SnakemakeApi() as api:\n"
            "    wf = api.workflow(resource_settings=a.ResourceSettings(),\n"
            "                      snakefile=pathlib.Path('Snakefile'), workdir=pathlib.Path('.'))\n"
            "    rules = wf._workflow.rules\n"
            "    print(sorted({r.container_img for r in rules}), len(list(rules)))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=work, env=snakemake_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1].startswith("['docker://example.org/agc:1']")


@pytest.mark.slow
def test_snakemake8_dry_run_shows_the_same_dag(tmp_path):
    """REANA's next engine (Snakemake 8.27.1) parses the Snakefile, image set, with the DAG of 9."""
    require_workflow()
    smk8 = cached_venv("snakemake8", SNAKEMAKE8)
    work = write_config(copy_workflow(tmp_path / "wf"), {"container_image": "docker://example.org/agc:1"})
    counts = {}
    for name, python, env in (("8", smk8, _container_env(smk8.parent)),
                              ("9", pathlib.Path(sys.executable), snakemake_env())):
        proc = subprocess.run([str(python), "-m", "snakemake", "-n", "--cores", "1"], cwd=work, env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, (name, (proc.stdout + proc.stderr)[-5000:])
        counts[name] = _job_counts(proc.stdout + proc.stderr)
    assert "8.27.1" in subprocess.check_output([str(smk8), "-m", "snakemake", "--version"], text=True)
    print("\nSnakemake 8.27.1 DAG:", counts["8"])
    assert counts["8"] == counts["9"]
    assert counts["8"]["process_file"] >= 9


@pytest.mark.slow
@pytest.mark.integration
def test_reana_style_run_in_the_image_is_bitwise_the_host_run(tmp_path):
    require_workflow()
    image = build_image()
    smk7 = cached_venv("snakemake7", SNAKEMAKE7)
    env7 = _container_env(smk7.parent)
    # The driver's Python cannot run a job: a job that did not run in the image fails.
    probe = subprocess.run([str(smk7), "-c", "import numpy"], env=env7, capture_output=True)
    assert probe.returncode != 0

    host = write_config(copy_workflow(tmp_path / "host"), {})
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2"], cwd=host,
                          env=snakemake_env(), capture_output=True, text=True, timeout=1800)
    host_s = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr[-5000:]
    reference = _outputs(host)

    for attempt in (1, 2):  # the reproducible rerun: a second empty workspace gives the same bits
        work = write_config(copy_workflow(tmp_path / f"reana{attempt}"),
                            {"container_image": image, "container_runner": "podman"})
        assert not (work / "results").exists()
        t0 = time.monotonic()
        proc = subprocess.run([str(smk7), "-m", "snakemake", "--cores", "2"], cwd=work, env=env7,
                              capture_output=True, text=True, timeout=1800)
        wall = time.monotonic() - t0
        log = proc.stdout + proc.stderr
        assert proc.returncode == 0, log[-6000:]
        n_jobs = sum(_job_counts(log).values())
        print(f"\nREANA-style run {attempt} (Snakemake 7.32.4, {n_jobs} jobs in {image}): "
              f"{wall:.1f} s; host run (Snakemake 9): {host_s:.1f} s")
        got = _outputs(work)
        for rel in COMPARED:
            if got[rel] != reference[rel] and rel.endswith(".json"):
                # Name the differing entries (a JSON path each) before failing.
                print(rel, "differs:", _json_diff(json.loads(reference[rel]), json.loads(got[rel]))[:20])
            assert got[rel] == reference[rel], f"{rel} differs from the host run (attempt {attempt})"


def _json_diff(a, b, path="") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in _json_diff(a.get(k), b.get(k), f"{path}/{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _json_diff(x, y, f"{path}/{i}")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]
