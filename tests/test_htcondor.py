"""The workflow on a real HTCondor pool through profiles/htcondor, compared with a local run.

scripts/htcondor_pool.sh starts a single-machine pool (Debian trixie minicondor in a chroot; cached
after the first run, ~1 min to build). Snakemake submits from inside the chroot as an unprivileged
user, with the repository and the Python environment bind-mounted at their own paths, so jobs run
the same interpreter on the same shared filesystem. Needs root; outside CI it is skipped without.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import time
import uuid

import pytest

from scaleout_helpers import (REPO, cached_venv, copy_workflow, histogram_contents,
                              npz_contents, require_workflow, requirement_lines, skip_or_fail,
                              snakemake_env, write_config)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

POOL = REPO / "scripts" / "htcondor_pool.sh"
PER_FILE_RULE = "process_file"
# A small mock dataset: 9 samples x 1 file = 9 per-file condor jobs (plus 9 mock generation jobs),
# up to the fit; the plots stage is left out to keep the test short.
FILES_PER_SAMPLE = 1
CONFIG = {
    "mock": {"files_per_sample": FILES_PER_SAMPLE, "events_per_file": 2000,
             "events_per_file_overrides": {}},
    "use_inference": False,
    "statistics": {"ranking": False, "asimov": False, "goodness_of_fit": False},
}
N_PER_FILE = 9 * FILES_PER_SAMPLE


def _pool(*args, timeout=900, check=True, env=None):
    proc = subprocess.run(["bash", str(POOL), *args], capture_output=True, text=True,
                          timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"htcondor_pool.sh {' '.join(args)} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def _debootstrap_possible() -> str | None:
    if os.geteuid() != 0:
        return "needs root (debootstrap, chroot, mounts and the condor daemons)"
    if shutil.which("debootstrap") is None and shutil.which("apt-get") is None:
        return "neither debootstrap nor apt-get is available to build the trixie chroot"
    return None


# The pool and submit_python fixtures are in conftest.py (session scope): one pool for this module
# and tests/test_htcondor_faults.py, stopped once at the end of the session.


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    require_workflow()
    work = write_config(copy_workflow(tmp_path_factory.mktemp("local") / "wf"), CONFIG)
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", *_targets()],
                          cwd=work, capture_output=True, text=True, env=snakemake_env(), timeout=1200)
    assert proc.returncode == 0, proc.stderr[-6000:]
    return work


def _targets() -> list[str]:
    from agc_ttbar import layout

    return [layout.histograms("results"), layout.cutflow("results"), layout.fit_results("results")]


def _chown_tree(path: pathlib.Path, root: pathlib.Path, user: str):
    uid = gid = None
    for line in (root / "etc" / "passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == user:
            uid, gid = int(fields[2]), int(fields[3])
    assert uid is not None, f"user {user} missing in the chroot"
    for dirpath, dirnames, filenames in os.walk(path):
        os.chown(dirpath, uid, gid)
        for name in filenames:
            os.chown(os.path.join(dirpath, name), uid, gid, follow_symlinks=False)


@pytest.fixture(scope="module")
def condor_run(pool, submit_python):
    """The workflow submitted through --profile profiles/htcondor inside the pool's chroot."""
    root, user = pool["root"], pool["user"]
    inner = pathlib.Path("/home") / user / "agc-runs" / uuid.uuid4().hex[:12]
    host = root / inner.relative_to("/")
    write_config(copy_workflow(host), CONFIG)
    _chown_tree(host.parent, root, user)
    env = dict(pool["env"])
    env["PATH"] = os.pathsep.join([str(pathlib.Path(sys.executable).parent), "/usr/bin", "/bin"])
    t0 = time.monotonic()
    proc = _pool("run", str(inner), "--", str(submit_python), "-m", "snakemake",
                 "--profile", "profiles/htcondor", "--seconds-between-status-checks", "1",
                 "--latency-wait", "10", *_targets(), env=env, timeout=1500, check=False)
    wall = time.monotonic() - t0
    print(f"\nworkflow on the pool: {wall:.0f} s")
    assert proc.returncode == 0, (
        f"snakemake on the pool failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-8000:]}")
    hist = _pool("root", "--", "condor_history", "-constraint", f'Iwd == "{inner}"',
                 "-af", "JobBatchName", "ExitCode", "RequestMemory", "RequestCpus", "JobStatus")
    rows = [line.split() for line in hist.stdout.splitlines() if line.strip()]
    yield {"host": host, "inner": inner, "log": proc.stderr, "history": rows, "wall": wall}
    if os.environ.get("AGC_CONDOR_KEEP") != "1":
        shutil.rmtree(host, ignore_errors=True)


def test_condor_history_shows_the_per_file_jobs(condor_run):
    rows = condor_run["history"]
    assert rows, "condor_history shows no job of this run"
    by_rule: dict[str, list[list[str]]] = {}
    for row in rows:
        rule = row[0].rsplit("-", 1)[0]  # batch name "<rule>-<snakemake jobid>"
        by_rule.setdefault(rule, []).append(row)
    print("\ncondor jobs per rule:", {k: len(v) for k, v in sorted(by_rule.items())})
    per_file = by_rule.get(PER_FILE_RULE, [])
    assert len(per_file) == N_PER_FILE, (PER_FILE_RULE, len(per_file), by_rule.keys())
    for name, exit_code, request_memory, request_cpus, status in rows:
        assert exit_code == "0" and status == "4", f"{name}: ExitCode {exit_code}, JobStatus {status}"
    # request_memory comes from the rule's mem_mb (rules/scaleout.smk), request_cpus from threads.
    config = _effective_config(condor_run["host"])
    assert {r[2] for r in per_file} == {str(config["processing"]["mem_mb"])}
    assert {r[3] for r in per_file} == {"1"}
    # Cheap rules ran on the submit node (localrules), not in the pool.
    for local in ("fileset", "merge_sample", "write_histograms", "cutflow", "mock_inputs", "stat_config"):
        assert local not in by_rule, f"localrule {local} was submitted to condor"


def _effective_config(workdir: pathlib.Path) -> dict:
    from agc_ttbar.config import load_config

    return load_config(str(workdir / "config.yaml"), CONFIG)


def test_condor_results_equal_local_results_bit_for_bit(condor_run, local_run):
    from agc_ttbar import layout

    condor, local = condor_run["host"], local_run
    results = "results"
    ha = histogram_contents(condor / layout.histograms(results))
    hb = histogram_contents(local / layout.histograms(results))
    assert len(ha) > 100 and ha.keys() == hb.keys()
    differing = [k for k in ha if ha[k] != hb[k]]
    assert not differing, f"{len(differing)} histograms differ, e.g. {differing[:5]}"
    # one per-file job per sample here, so the partials are the samples' sums (no merge jobs)
    partials = sorted((local / results / "partial").rglob("*.npz"))
    assert len(partials) == N_PER_FILE and not (local / results / "merged").exists()
    for path in partials:
        rel = path.relative_to(local)
        assert npz_contents(path) == npz_contents(condor / rel), rel
    assert (json.loads((condor / layout.cutflow(results)).read_text())
            == json.loads((local / layout.cutflow(results)).read_text()))
    partials = sorted((condor / results / "partial").rglob("*.npz"))
    assert len(partials) == N_PER_FILE
    # The fit ran in the pool on the same workspace and found the same result.
    fa = json.loads((condor / layout.fit_results(results)).read_text())
    fb = json.loads((local / layout.fit_results(results)).read_text())
    assert fa["provenance"]["workspace_sha256"] == fb["provenance"]["workspace_sha256"]
    assert fa["poi"] == fb["poi"]
