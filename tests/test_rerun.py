"""Killing the submitting snakemake mid-run, then rerunning: completed per-file jobs are kept.

The run is started with `make analysis` and killed with SIGKILL together with its job processes (as
when a login node or an ssh session dies); the same make command is rerun as is. The lock of the dead
process is cleared by scripts/run_snakemake.py (agc_ttbar/workflow_lock.py; never while a live
snakemake holds it, tested below); profiles/default sets rerun-incomplete, so jobs that were running
are redone from scratch and every job that had completed is neither rerun nor touched.
"""

from __future__ import annotations

import base64
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import pytest

from scaleout_helpers import copy_workflow, require_workflow, snakemake_env, write_config

pytestmark = pytest.mark.slow

PER_FILE_RULE = "process_file"
SAMPLES = 9
FILES_PER_SAMPLE = 2
N_PER_FILE = SAMPLES * FILES_PER_SAMPLE
CONFIG = {
    "mock": {"files_per_sample": FILES_PER_SAMPLE, "events_per_file": 2000,
             "events_per_file_overrides": {}},
    "use_inference": False,
    "processing": {"events_per_job": 0},     # one job per file: the per-file reruns under test
}



def _completed(work: pathlib.Path, outputs: list[str]) -> set[str]:
    """Outputs that exist and that snakemake no longer marks incomplete (job finished and recorded)."""
    marker_dir = work / ".snakemake" / "incomplete"
    done = set()
    for rel in outputs:
        marker = marker_dir / base64.urlsafe_b64encode(rel.encode()).decode()
        if (work / rel).exists() and not marker.exists():
            done.add(rel)
    return done


def _job_counts(log: str) -> dict[str, int]:
    """The 'Job stats' table of a snakemake log: rule -> number of jobs to run."""
    table = log.split("Job stats:", 1)[1]
    counts = {}
    for line in table.splitlines()[3:]:
        m = re.match(r"^(\S+)\s+(\d+)$", line.strip())
        if not m:
            break
        counts[m.group(1)] = int(m.group(2))
    return counts


def test_killed_run_resumes_without_redoing_completed_per_file_jobs(tmp_path):
    require_workflow()
    from agc_ttbar import layout

    work = write_config(copy_workflow(tmp_path / "wf"), CONFIG)
    env = snakemake_env()
    # Up to histograms.root: every per-file job and the merges (the statistics add nothing here).
    # `make analysis` as a user types it, on the running venv (-o: never reinstall it)
    venv = pathlib.Path(sys.prefix)
    cmd = ["make", "-o", str(venv / ".installed"), "analysis", f"VENV={venv}", "CORES=2",
           f"SNAKEMAKE_ARGS={layout.histograms('results')}"]
    outputs = [layout.partial("results", f"{s}", i) for s in _sample_keys(work)
               for i in range(FILES_PER_SAMPLE)]
    assert len(outputs) == N_PER_FILE

    with open(tmp_path / "first.log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline and proc.poll() is None:
            if len(_completed(work, outputs)) >= 4:
                break
            time.sleep(0.1)
        assert proc.poll() is None, ("the first run ended before it could be killed:\n"
                                     + (tmp_path / "first.log").read_text()[-3000:])
        os.killpg(proc.pid, signal.SIGKILL)  # snakemake and every job it started
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    done = _completed(work, outputs)
    assert 4 <= len(done) < N_PER_FILE, len(done)
    before = {rel: (work / rel).stat().st_mtime_ns for rel in done}
    benchmarks = {}
    for rel in done:
        sample, index = pathlib.Path(rel).parent.name, pathlib.Path(rel).stem
        bench = work / layout.benchmark("results", PER_FILE_RULE, f"{sample}_{index}")
        benchmarks[bench] = bench.stat().st_mtime_ns

    # The dead process's lock stays behind; the same command clears it and finishes the run.
    assert list((work / ".snakemake" / "locks").glob("*.lock")), "the killed run left no lock"
    t0 = time.monotonic()
    rerun = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=1200)
    print(f"\nkilled after {len(done)}/{N_PER_FILE} per-file jobs; rerun took "
          f"{time.monotonic() - t0:.0f} s")
    assert rerun.returncode == 0, rerun.stderr[-6000:]
    assert "removed the lock left by a run that is no longer alive" in rerun.stderr

    counts = _job_counts(rerun.stderr)
    print("rerun job counts:", counts)
    assert counts.get(PER_FILE_RULE) == N_PER_FILE - len(done), counts
    for rel, mtime in before.items():
        assert (work / rel).stat().st_mtime_ns == mtime, f"{rel} was rewritten by the rerun"
    for bench, mtime in benchmarks.items():
        assert bench.stat().st_mtime_ns == mtime, f"{bench.name}: the completed job ran again"
    assert (work / layout.histograms("results")).is_file()
    assert len(_completed(work, outputs)) == N_PER_FILE

    # A third run has nothing left to do.
    again = subprocess.run(cmd[:-1] + [cmd[-1] + " -n"], cwd=work, env=env, capture_output=True, text=True)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


def _sample_keys(work: pathlib.Path) -> list[str]:
    from agc_ttbar.config import load_config

    return list(load_config(str(work / "config.yaml"), CONFIG)["samples"])


TINY = """
rule all:
    input: "done.txt"

rule slow:
    output: "done.txt"
    shell: "sleep {config[delay]} && touch {output}"
"""


def test_lock_of_a_live_run_is_never_cleared(tmp_path):
    """run_snakemake.py keeps the lock while a live snakemake works in the directory (the second
    run fails with snakemake's lock error), and clears it once that run is dead (SIGKILL)."""
    (tmp_path / "Snakefile").write_text(TINY)
    wrapper = [sys.executable, str(pathlib.Path(__file__).resolve().parent.parent / "scripts" / "run_snakemake.py"),
               "--cores", "1", "--workflow-profile", "none"]
    env = snakemake_env()
    live = subprocess.Popen([sys.executable, "-m", "snakemake", "--cores", "1", "--workflow-profile", "none",
                             "--config", "delay=120"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not list((tmp_path / ".snakemake" / "locks").glob("*.lock")):
            assert time.monotonic() < deadline and live.poll() is None, "the first run took no lock"
            time.sleep(0.1)
        second = subprocess.run(wrapper + ["--config", "delay=0"], cwd=tmp_path, env=env, capture_output=True,
                                text=True, timeout=120)
        assert second.returncode != 0
        assert f"held by live snakemake pids {live.pid}" in second.stderr, second.stderr[-3000:]
        assert "cannot be locked" in second.stderr + second.stdout
        assert list((tmp_path / ".snakemake" / "locks").glob("*.lock")), "a live run's lock was removed"
        assert live.poll() is None
    finally:
        os.killpg(live.pid, signal.SIGKILL)
        live.wait()
    third = subprocess.run(wrapper + ["--config", "delay=0"], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=120)
    assert third.returncode == 0, third.stderr[-3000:]
    assert "removed the lock" in third.stderr and (tmp_path / "done.txt").is_file()
