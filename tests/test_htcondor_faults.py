"""A large HTCondor run under faults: >= 40 per-file jobs on the real pool, some of them vacated,
removed or killed while they run; the run still finishes and histograms.root is bitwise equal to a
local run (issue 16, point 3).

The pool, the submit environment and the way Snakemake is started inside the chroot are those of
tests/test_htcondor.py (its helpers; the pool fixture is in conftest.py). The mock files are generated once, by the local
reference run, and copied into the pool run's folder, so the pool runs the 45 per-file jobs. While
`snakemake --profile profiles/htcondor` runs, the test waits for the payload of a per-file job
(`python workflow_scripts/process_file.py`, found in /proc by its working directory), stops it
(SIGSTOP, so that a 1000-event job cannot finish before the fault lands, however loaded the machine
is) and then, one fault at a time, on three different jobs:

1. `condor_vacate_job`: HTCondor evicts the job and, as it stays in the queue, starts it again by
   itself (a second execution of the same cluster); Snakemake only sees it go idle and run again.
2. `condor_rm`: the job is aborted; the executor plugin reports it failed and Snakemake's `retries`
   (profiles/htcondor/config.yaml) submits it again as a new cluster.
3. SIGKILL of the job's payload process (an OOM kill, a crashed node): the job's inner Snakemake
   exits non-zero, HTCondor records the exit code, and Snakemake retries the job.

What HTCondor did comes from `condor_history` (starts, holds, exit codes, removals per cluster),
printed and checked against the faults injected.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid

import pytest

from scaleout_helpers import (copy_workflow, histogram_contents, npz_contents, require_workflow,
                              snakemake_env, write_config)
from test_htcondor import _chown_tree, _pool

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PER_FILE_RULE = "process_file"
N_SAMPLES = 9
FILES_PER_SAMPLE = 5
# 9 samples x 5 small files, one per-file job each (events_per_job 0): 45 per-file condor jobs.
CONFIG = {
    "mock": {"files_per_sample": FILES_PER_SAMPLE, "events_per_file": 1000,
             "events_per_file_overrides": {}},
    "processing": {"events_per_job": 0},
    "use_inference": False,
    "statistics": {"ranking": False, "asimov": False, "goodness_of_fit": False},
}
N_PER_FILE = N_SAMPLES * FILES_PER_SAMPLE
#: Seconds to wait for the next per-file payload to run.
PAYLOAD_WAIT_S = 300
#: Seconds a payload stays stopped after its condor_vacate_job / condor_rm was issued.
STOPPED_AFTER_FAULT_S = 1.0
#: Seconds the faulted run may take in all.
RUN_TIMEOUT_S = 1500
HISTORY_ATTRS = ["ClusterId", "JobBatchName", "Args", "JobStatus", "ExitCode", "ExitBySignal",
                 "ExitSignal", "NumJobStarts", "NumShadowStarts", "NumHolds", "NumSystemHolds",
                 "LastHoldReason", "LastVacateTime", "RemoveReason", "RemoteWallClockTime",
                 "CommittedTime"]


def _targets() -> list[str]:
    from agc_ttbar import layout

    return [layout.histograms("results"), layout.cutflow("results")]


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    """The same configuration run locally (the reference of the bitwise comparison)."""
    require_workflow()
    work = write_config(copy_workflow(tmp_path_factory.mktemp("local-faults") / "wf"), CONFIG)
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", *_targets()],
                          cwd=work, capture_output=True, text=True, env=snakemake_env(), timeout=1200)
    assert proc.returncode == 0, proc.stderr[-6000:]
    return work


# --- the payload processes of the run, seen from the host --------------------------------------

def _payloads(run_id: str) -> dict[str, int]:
    """Running per-file payloads of the run: partial output path (relative) -> host pid."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = pathlib.Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            if len(argv) < 2 or not argv[1].endswith(b"workflow_scripts/process_file.py"):
                continue
            if run_id not in os.readlink(f"/proc/{entry}/cwd"):
                continue
        except OSError:  # gone meanwhile, or not ours to read
            continue
        args = [a.decode() for a in argv]
        if "--output" in args:
            found[args[args.index("--output") + 1]] = int(entry)
    return found


def _queue(inner: pathlib.Path) -> list[dict]:
    proc = _pool("root", "--", "condor_q", "-allusers", "-constraint", f'Iwd == "{inner}"', "-json",
                 "-attributes", "ClusterId,JobStatus,Args,JobBatchName", timeout=60)
    return json.loads(proc.stdout) if proc.stdout.strip() else []


def _job_key(output: str) -> str:
    """The per-file job of a partial output, as the condor job's arguments name it
    (`--target-jobs process_file:sample=<sample>,index=<index>`)."""
    path = pathlib.PurePosixPath(output)
    return f"{PER_FILE_RULE}:sample={path.parent.name},index={path.stem}"


def _key_of(ad: dict) -> str | None:
    """The per-file job a condor job ran (from its arguments), None for another rule."""
    match = re.search(rf"--target-jobs ({PER_FILE_RULE}:sample=\w+,index=\d+)\b", ad.get("Args", ""))
    return match.group(1) if match else None


def _cluster_of(inner: pathlib.Path, output: str) -> int | None:
    """ClusterId of the running condor job whose Snakemake target is `output`."""
    for ad in _queue(inner):
        if ad.get("JobStatus") == 2 and _key_of(ad) == _job_key(output):
            return int(ad["ClusterId"])
    return None


class _Run:
    """The faulted Snakemake run in the background, with bounded waits on it."""

    def __init__(self, proc: subprocess.Popen, log: pathlib.Path, run_id: str):
        self.proc, self.log, self.run_id = proc, log, run_id

    def tail(self, n: int = 6000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""

    def next_payload(self, exclude: set[str]) -> tuple[str, int]:
        deadline = time.monotonic() + PAYLOAD_WAIT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"snakemake ended (rc {self.proc.returncode}) before every fault was "
                            f"injected (done so far: {sorted(exclude)}):\n{self.tail()}")
            for output, pid in sorted(_payloads(self.run_id).items()):
                if output not in exclude:
                    return output, pid
            time.sleep(0.1)
        pytest.fail(f"no new {PER_FILE_RULE} payload started within {PAYLOAD_WAIT_S} s "
                    f"(faulted so far: {sorted(exclude)}):\n{self.tail()}")


def _first_event(host: pathlib.Path, cluster: int, codes: set[str], wait_s: float = 60) -> str | None:
    """The first of the event codes `codes` (e.g. 004 evicted, 005 terminated, 009 aborted) that
    the job event log of the executor records for `cluster`, waiting up to wait_s for one."""
    log = host / ".snakemake" / "htcondor" / "snakemake-rules.log"
    # The event log zero-pads the cluster id to three digits: "004 (047.000.000) ..."
    pattern = re.compile(rf"^(\d{{3}}) \(0*{cluster}\.\d+\.\d+\) ", re.MULTILINE)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        for code in pattern.findall(text):
            if code in codes:
                return code
        time.sleep(0.2)
    return None


def _inject_faults(run: _Run, inner: pathlib.Path, host: pathlib.Path) -> list[dict]:
    """Vacate one running per-file job, remove a second, SIGKILL the payload of a third.

    Each payload is stopped (SIGSTOP) as soon as it is seen, so its job is still running when the
    fault is injected: without it a small job often ended first and the run finished before all
    three faults were in. The stopped payload is continued (SIGCONT) a moment after the vacate or
    removal was issued (see _fault_one), and in any case when it is passed over. A payload
    gone before the stop, or a job whose fault does not show in the event log, is left alone and
    the next running payload is taken."""
    faults: list[dict] = []
    done: set[str] = set()
    for kind in ("vacate", "remove", "kill"):
        for _ in range(20):
            output, pid = run.next_payload(done)
            done.add(output)  # faulted or passed over: never taken again (its retry neither)
            try:
                os.kill(pid, signal.SIGSTOP)
            except ProcessLookupError:
                continue
            try:
                fault = _fault_one(kind, inner, host, output, pid)
            finally:  # a killed payload is gone (or a zombie): continuing it is harmless
                _continue(pid)
            if fault is None:
                continue
            faults.append(fault)
            print(f"fault {kind}: cluster {fault['cluster']} ({output}, payload pid {pid})",
                  flush=True)
            break
        else:
            pytest.fail(f"could not catch a running {PER_FILE_RULE} job to {kind}:\n{run.tail()}")
    return faults


def _continue(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGCONT)
    except ProcessLookupError:
        pass


def _fault_one(kind: str, inner: pathlib.Path, host: pathlib.Path, output: str,
               pid: int) -> dict | None:
    """Inject fault `kind` into the (stopped) payload `pid` of per-file job `output`; the fault's
    record, or None when it could not be injected."""
    deadline = time.monotonic() + 30  # the queue may show the job running a moment later
    cluster = _cluster_of(inner, output)
    while cluster is None and time.monotonic() < deadline and pathlib.Path(f"/proc/{pid}").exists():
        time.sleep(0.5)
        cluster = _cluster_of(inner, output)
    if cluster is None:
        print(f"{kind}: no running condor job for {output}; passed over", flush=True)
        return None
    if kind == "kill":
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return None
    else:
        tool = {"vacate": "condor_vacate_job", "remove": "condor_rm"}[kind]
        proc = _pool("root", "--", tool, str(cluster), timeout=60, check=False)
        # The starter's soft kill (SIGTERM) reaches the job's inner Snakemake, which passes it on to
        # the payload: a stopped payload would hold both until the hard kill (minutes). Continue it
        # once the kill has had time to arrive; the payload still has most of its work to do.
        time.sleep(STOPPED_AFTER_FAULT_S)
        _continue(pid)
        # 004 evicted (vacate, and the kill of a removed running job), 009 aborted.
        wanted = {"vacate": "004", "remove": "009"}[kind]
        first = _first_event(host, cluster, {wanted, "005"})
        if first != wanted:
            print(f"{kind} of cluster {cluster} missed (rc {proc.returncode}, first event "
                  f"{first}): {proc.stdout.strip()} {proc.stderr.strip()}", flush=True)
            return None
    return {"kind": kind, "cluster": cluster, "output": output, "pid": pid,
            "at": time.strftime("%H:%M:%S")}


def _history(inner: pathlib.Path) -> list[dict]:
    proc = _pool("root", "--", "condor_history", "-constraint", f'Iwd == "{inner}"', "-json",
                 "-attributes", ",".join(HISTORY_ATTRS), timeout=120)
    return sorted(json.loads(proc.stdout) if proc.stdout.strip() else [],
                  key=lambda ad: ad["ClusterId"])


@pytest.fixture(scope="module")
def faulted_run(pool, submit_python, local_run, tmp_path_factory):
    """The workflow on the pool through profiles/htcondor, with the faults injected while it runs."""
    root, user = pool["root"], pool["user"]
    run_id = uuid.uuid4().hex[:12]
    inner = pathlib.Path("/home") / user / "agc-runs" / run_id
    host = root / inner.relative_to("/")
    write_config(copy_workflow(host), CONFIG)
    # The mock files come from the local run (copied with their times, so Snakemake takes them as
    # up to date): both runs read the same input bytes, and the pool runs the per-file jobs only,
    # not 45 more short generation jobs (minutes of a CI run; tests/test_htcondor.py covers them).
    shutil.copytree(local_run / "results" / "mock", host / "results" / "mock")
    _chown_tree(host.parent, root, user)
    env = dict(pool["env"])
    env["PATH"] = os.pathsep.join([str(pathlib.Path(sys.executable).parent), "/usr/bin", "/bin"])
    log = tmp_path_factory.mktemp("faults") / "snakemake.log"
    t0 = time.monotonic()
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            ["bash", str(_POOL), "run", str(inner), "--", str(submit_python), "-m", "snakemake",
             "--profile", "profiles/htcondor", "--seconds-between-status-checks", "1",
             "--latency-wait", "10", *_targets()],
            stdout=fh, stderr=subprocess.STDOUT, env=env)
    run = _Run(proc, log, run_id)
    try:
        faults = _inject_faults(run, inner, host)
        proc.wait(timeout=RUN_TIMEOUT_S)
    except BaseException:
        if proc.poll() is None:  # the submitter's own cancel removes its condor jobs
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        raise
    wall = time.monotonic() - t0
    text = log.read_text(errors="replace")
    print(f"\nfaulted workflow on the pool: {wall:.0f} s")
    assert proc.returncode == 0, f"the faulted run failed (rc {proc.returncode}):\n{text[-8000:]}"
    history = _history(inner)
    yield {"host": host, "inner": inner, "log": text, "faults": faults, "history": history,
           "wall": wall}
    if os.environ.get("AGC_CONDOR_KEEP") != "1":
        shutil.rmtree(host, ignore_errors=True)


_POOL = pathlib.Path(__file__).resolve().parent.parent / "scripts" / "htcondor_pool.sh"


def _rule(ad: dict) -> str:
    return ad.get("JobBatchName", "").rsplit("-", 1)[0]  # batch name "<rule>-<snakemake jobid>"


def _describe(ad: dict) -> str:
    status = {3: "removed", 4: "completed"}.get(ad.get("JobStatus"), f"status {ad.get('JobStatus')}")
    parts = [f"cluster {ad['ClusterId']}", ad.get("JobBatchName", "?"), status,
             f"ExitCode {ad.get('ExitCode')}", f"starts {ad.get('NumJobStarts')}",
             f"holds {_holds(ad)}", f"wall {ad.get('RemoteWallClockTime')} s",
             f"committed {ad.get('CommittedTime')} s"]
    if ad.get("LastVacateTime"):
        parts.append("vacated")
    if ad.get("ExitBySignal"):
        parts.append(f"signal {ad.get('ExitSignal')}")
    if ad.get("RemoveReason"):
        parts.append(f"RemoveReason {ad['RemoveReason']!r}")
    return ", ".join(str(p) for p in parts)


def _holds(ad: dict) -> int:
    """Times the job was held (NumHolds is undefined for a job never held)."""
    return int(ad.get("NumHolds") or 0)


def _clusters_of_output(history: list[dict], output: str) -> list[dict]:
    return [ad for ad in history if _key_of(ad) == _job_key(output)]


def test_faulted_run_summary(faulted_run):
    """Print what the pool did (the issue's note reads it from here) and the overall counts."""
    history = faulted_run["history"]
    per_file = [ad for ad in history if _rule(ad) == PER_FILE_RULE]
    by_rule: dict[str, int] = {}
    for ad in history:
        by_rule[_rule(ad)] = by_rule.get(_rule(ad), 0) + 1
    print(f"\nwall {faulted_run['wall']:.0f} s; condor clusters per rule: {dict(sorted(by_rule.items()))}")
    print("faults injected:")
    for fault in faulted_run["faults"]:
        print(f"  {fault['at']} {fault['kind']}: cluster {fault['cluster']} ({fault['output']})")
    print("condor_history of the faulted jobs and their retries:")
    for fault in faulted_run["faults"]:
        for ad in _clusters_of_output(history, fault["output"]):
            print(f"  [{fault['kind']}] {_describe(ad)}")
    faulted = {_job_key(f["output"]) for f in faulted_run["faults"]}
    others = [ad for ad in per_file if _key_of(ad) not in faulted]
    print(f"the other {len(others)} per-file clusters: "
          f"starts {sorted({ad.get('NumJobStarts') for ad in others})}, "
          f"exit codes {sorted({ad.get('ExitCode') for ad in others})}, "
          f"holds {sorted({_holds(ad) for ad in others})}")
    retries = faulted_run["log"].count("Trying to restart job")
    print(f"snakemake restarted {retries} job(s) (retries from the profile)")
    # Every per-file job has its output; each removed or killed one ran twice (a second cluster).
    outputs: dict[str, list[dict]] = {}
    for ad in per_file:
        outputs.setdefault(_key_of(ad), []).append(ad)
    assert None not in outputs, "a per-file condor job without --target-jobs in its arguments"
    assert set(outputs) == {_job_key(p) for p in _partials(faulted_run["host"])}
    assert len(outputs) == N_PER_FILE >= 40, len(outputs)
    assert len(per_file) == N_PER_FILE + 2, [_describe(ad) for ad in per_file]
    assert "generate_mock_file" not in by_rule, "the mock files copied from the local run were redone"
    assert retries == 2, f"expected 2 Snakemake restarts (remove, kill), saw {retries}"
    # No fault here holds a job (a hold would be the pool's own doing, e.g. over request_memory).
    assert not [ad for ad in history if _holds(ad)], [_describe(ad) for ad in history if _holds(ad)]
    for output, ads in outputs.items():
        assert ads[-1].get("JobStatus") == 4 and ads[-1].get("ExitCode") == 0, \
            f"{output}: the last condor job did not succeed: {_describe(ads[-1])}"


def _partials(host: pathlib.Path) -> list[str]:
    return sorted(str(p.relative_to(host)) for p in (host / "results" / "partial").rglob("*.npz"))


def _fault(faulted_run, kind: str) -> tuple[dict, list[dict]]:
    fault = next(f for f in faulted_run["faults"] if f["kind"] == kind)
    return fault, _clusters_of_output(faulted_run["history"], fault["output"])


def test_vacated_job_was_restarted_by_htcondor(faulted_run):
    fault, clusters = _fault(faulted_run, "vacate")
    # One cluster: HTCondor itself ran it again after the eviction; Snakemake never saw a failure.
    assert [ad["ClusterId"] for ad in clusters] == [fault["cluster"]], [_describe(a) for a in clusters]
    ad = clusters[0]
    assert ad["JobStatus"] == 4 and ad["ExitCode"] == 0, _describe(ad)
    assert ad["NumJobStarts"] >= 2, f"the vacated job did not start again: {_describe(ad)}"
    # The evicted execution's time is lost (badput): wall clock over both starts, committed only
    # for the one that finished.
    assert ad.get("LastVacateTime") and ad["RemoteWallClockTime"] > ad["CommittedTime"], _describe(ad)


def test_removed_job_was_retried_by_snakemake(faulted_run):
    fault, clusters = _fault(faulted_run, "remove")
    assert len(clusters) == 2, [_describe(a) for a in clusters]
    removed, retry = clusters
    assert removed["ClusterId"] == fault["cluster"]
    assert removed["JobStatus"] == 3, f"not removed: {_describe(removed)}"
    assert "condor_rm" in removed.get("RemoveReason", ""), _describe(removed)
    # It was running: HTCondor evicted (killed) it, then aborted it; it never started again.
    assert removed["NumJobStarts"] == 1 and removed.get("LastVacateTime"), _describe(removed)
    assert retry["JobStatus"] == 4 and retry["ExitCode"] == 0, _describe(retry)


def test_killed_payload_failed_its_job_and_was_retried(faulted_run):
    fault, clusters = _fault(faulted_run, "kill")
    assert len(clusters) == 2, [_describe(a) for a in clusters]
    killed, retry = clusters
    assert killed["ClusterId"] == fault["cluster"]
    # The job's own process (the inner Snakemake) saw its shell command die of SIGKILL and exited
    # non-zero; HTCondor ran it once and recorded that exit code.
    assert killed["JobStatus"] == 4 and killed["ExitCode"] not in (0, None), _describe(killed)
    assert killed["NumJobStarts"] == 1, _describe(killed)
    assert retry["JobStatus"] == 4 and retry["ExitCode"] == 0, _describe(retry)


def test_faulted_run_equals_local_run_bit_for_bit(faulted_run, local_run):
    from agc_ttbar import layout

    condor, local = faulted_run["host"], local_run
    results = "results"
    a, b = condor / layout.histograms(results), local / layout.histograms(results)
    assert hashlib.sha256(a.read_bytes()).hexdigest() == hashlib.sha256(b.read_bytes()).hexdigest()
    ha, hb = histogram_contents(a), histogram_contents(b)
    assert len(ha) > 100 and ha == hb
    partials = sorted((local / results / "partial").rglob("*.npz"))
    assert len(partials) == N_PER_FILE
    for path in partials:
        rel = path.relative_to(local)
        assert npz_contents(path) == npz_contents(condor / rel), rel
    assert (json.loads((condor / layout.cutflow(results)).read_text())
            == json.loads((local / layout.cutflow(results)).read_text()))
