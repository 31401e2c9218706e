"""Workflow-level reliability (issue 8): --keep-going, SIGKILL and resume, determinism, memory.

A small mock dataset (four samples, two files each) is generated once per module; every test runs
the workflow in its own copy of the repository with that dataset copied in, so only the analysis
jobs run again. The reference run uses ``--cores 2``; the other runs must reproduce its
``histograms.root``, ``histograms_ml.root``, ``statistics/workspace.json`` and ``fit_results.json``
byte for byte (timings and dates live in ``fit_provenance.json``, which is not compared).
"""

from __future__ import annotations

import base64
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest
import yaml

import synthetic_nanoaod as synth
from scaleout_helpers import REPO, copy_workflow, require_workflow, snakemake_env

pytestmark = pytest.mark.slow

SAMPLES = ["ttbar__nominal", "ttbar__ME_var", "ttbar__PS_var", "wjets__nominal"]
FILES_PER_SAMPLE = 2
N_PER_FILE = len(SAMPLES) * FILES_PER_SAMPLE
CONFIG = {
    "samples": SAMPLES,
    "mock": {"files_per_sample": FILES_PER_SAMPLE, "events_per_file": 1000,
             "events_per_file_overrides": {"ttbar__nominal": 2000}},
    "use_inference": True,
    "ml": {"model": "bdt", "compare_models": [], "max_train_events": 200, "threads": 1,
           "bdt": {"num_boost_round": 8, "max_depth": 3}},
    "statistics": {"ranking": False, "goodness_of_fit": False, "asimov": False, "threads": 1},
    "processing": {"chunksize": 600, "events_per_job": 0},   # one job per file: per-file failures
}
TARGETS = ["results/histograms.root", "results/histograms_ml.root", "results/fit_results.json",
           "results/hepdata/submission.tar.gz"]   # the HEPData record, validated in its job
#: Outputs that must be bitwise identical between runs.
COMPARED = TARGETS + ["results/statistics/workspace.json"]
RUN_TIMEOUT = 1200


# ---------------------------------------------------------------------------------------------
# helpers


def _write_config(work: pathlib.Path, **overrides) -> None:
    cfg = json.loads(json.dumps(CONFIG))
    for key, value in overrides.items():
        if isinstance(value, dict):
            cfg.setdefault(key, {}).update(value)
        else:
            cfg[key] = value
    (work / "reliability.yaml").write_text(yaml.safe_dump(cfg))


def _cmd(*args: str, cores: int = 2, targets=TARGETS) -> list[str]:
    return [sys.executable, "-m", "snakemake", *targets, "--cores", str(cores),
            "--configfile", "reliability.yaml", *args]


def _run(work: pathlib.Path, *args: str, cores: int = 2, targets=TARGETS) -> subprocess.CompletedProcess:
    return subprocess.run(_cmd(*args, cores=cores, targets=targets), cwd=work, env=snakemake_env(),
                          capture_output=True, text=True, timeout=RUN_TIMEOUT)


def _job_counts(log: str) -> dict[str, int]:
    """The 'Job stats' table of a snakemake log: rule -> number of jobs to run."""
    if "Job stats:" not in log:
        return {}
    counts = {}
    for line in log.split("Job stats:", 1)[1].splitlines()[3:]:
        m = re.match(r"^(\S+)\s+(\d+)$", line.strip())
        if not m:
            break
        counts[m.group(1)] = int(m.group(2))
    return counts


def _workdir(dst: pathlib.Path, seed: pathlib.Path, **overrides) -> pathlib.Path:
    """A copy of the workflow with the mock dataset of ``seed`` (files, input list, mtimes kept)."""
    work = copy_workflow(dst)
    shutil.copytree(seed / "results" / "mock", work / "results" / "mock", copy_function=shutil.copy2)
    _write_config(work, **overrides)
    return work


def _outputs(work: pathlib.Path) -> dict[str, bytes]:
    return {rel: (work / rel).read_bytes() for rel in COMPARED}


def _stray_temp_files(work: pathlib.Path) -> list[str]:
    return sorted(str(p.relative_to(work)) for p in (work / "results").rglob(".tmp-*"))


def _incomplete(work: pathlib.Path, rel: str) -> bool:
    marker = work / ".snakemake" / "incomplete" / base64.urlsafe_b64encode(rel.encode()).decode()
    return marker.exists()


def _assert_no_half_written_partials(work: pathlib.Path) -> None:
    """Every per-file output that Snakemake would take as done loads completely."""
    from agc_ttbar.histograms import HistogramSet

    for path in sorted((work / "results" / "partial").rglob("*.npz")):
        rel = str(path.relative_to(work))
        if _incomplete(work, rel):
            continue
        hs, meta = HistogramSet.load(str(path))
        assert meta["nevents"] > 0 and hs.hists, rel


def _job_processes(root: psutil.Process, script: str) -> list[psutil.Process]:
    """Running job scripts (the python processes, not their bash parents) under ``root``."""
    out = []
    for child in root.children(recursive=True):
        try:
            cmd = child.cmdline()
        except psutil.Error:
            continue
        if any(arg.endswith(f"workflow_scripts/{script}") for arg in cmd[1:]):
            out.append(child)
    return out


def _wait_for(proc: subprocess.Popen, condition, what: str, log: pathlib.Path, timeout: float = 900):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the run ended before {what}:\n{log.read_text()[-4000:]}")
        result = condition()
        if result:
            return result
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def _start(work: pathlib.Path, log: pathlib.Path) -> subprocess.Popen:
    with open(log, "w") as fh:
        return subprocess.Popen(_cmd(), cwd=work, env=snakemake_env(), stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL snakemake and every job process it started (as when a node or a session dies)."""
    try:
        victims = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        victims = []
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for p in victims:   # in case a job left the process group
        try:
            p.kill()
        except psutil.Error:
            pass
    proc.wait(timeout=60)


def _rerun_until_unlocked(work: pathlib.Path, *args: str) -> subprocess.CompletedProcess:
    """Rerun after a kill: unlock the dead run's lock; add --rerun-incomplete if Snakemake asks."""
    unlock = _run(work, "--unlock")
    assert unlock.returncode == 0, unlock.stderr[-3000:]
    proc = _run(work, *args)
    if proc.returncode != 0 and "IncompleteFilesException" in proc.stderr:
        proc = _run(work, "--rerun-incomplete", *args)
    return proc


# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def mock_seed(tmp_path_factory) -> pathlib.Path:
    """The workflow with only its mock dataset made (generated once for the module)."""
    require_workflow()
    from agc_ttbar import layout

    work = copy_workflow(tmp_path_factory.mktemp("seed"))
    _write_config(work)
    proc = _run(work, targets=[layout.mock_inputs("results")])
    assert proc.returncode == 0, proc.stderr[-5000:]
    assert len(list((work / "results" / "mock").rglob("*.root"))) == N_PER_FILE
    return work


@pytest.fixture(scope="module")
def reference(mock_seed, tmp_path_factory) -> dict[str, bytes]:
    """Outputs of an uninterrupted run with --cores 2."""
    from agc_ttbar import layout

    work = _workdir(tmp_path_factory.mktemp("reference"), mock_seed)
    t0 = time.monotonic()
    proc = _run(work, cores=2)
    assert proc.returncode == 0, proc.stderr[-6000:]
    print(f"\nreference run: {time.monotonic() - t0:.0f} s, jobs {_job_counts(proc.stderr)}")
    assert _job_counts(proc.stderr).get("process_file") == N_PER_FILE
    assert not _stray_temp_files(work)
    assert (work / layout.fit_provenance("results")).is_file()   # the dates live here, not in the result
    fit = json.loads((work / "results" / "fit_results.json").read_text())
    assert "started_utc" not in json.dumps(fit)
    return _outputs(work)


# ---------------------------------------------------------------------------------------------
# --keep-going and the failure summary


def test_keep_going_one_bad_file_other_jobs_finish_and_summary_names_it(mock_seed, tmp_path):
    from agc_ttbar import layout
    from agc_ttbar.histograms import HistogramSet

    work = _workdir(tmp_path / "kg", mock_seed, use_inference=False)
    bad_sample, bad_index = "ttbar__PS_var", 1
    bad = work / layout.mock_file("results", bad_sample, bad_index)
    st = bad.stat()
    data = bad.read_bytes()
    bad.write_bytes(data[:len(data) // 2])        # damaged on disk, same mtime: not regenerated
    os.utime(bad, ns=(st.st_atime_ns, st.st_mtime_ns))

    proc = _run(work, "--keep-going", targets=["results/histograms.root"])
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    bad_rel = layout.partial("results", bad_sample, bad_index)
    bad_log = layout.log("results", "process_file", f"{bad_sample}_{bad_index:05d}")
    # every other per-file job ran to the end, and the merges that could run did
    for sample in SAMPLES:
        for i in range(FILES_PER_SAMPLE):
            rel = layout.partial("results", sample, i)
            if rel == bad_rel:
                assert not (work / rel).exists()
            else:
                hs, meta = HistogramSet.load(str(work / rel))
                assert meta["nevents"] > 0, rel
        merged = work / layout.merged("results", sample)
        assert merged.exists() == (sample != bad_sample), sample
    assert not (work / "results" / "histograms.root").exists()
    # the summary at the end: the failed job, its log, and the cause naming the file
    summary = out[out.index("failed job(s)"):]
    assert "=== 1 failed job(s)" in out
    assert f"rule process_file: {bad_rel}" in summary
    assert f"log: {bad_log}" in summary
    assert f"ERROR: input file {layout.mock_file('results', bad_sample, bad_index)} is truncated" in summary
    assert "is truncated" in (work / bad_log).read_text()
    assert not _stray_temp_files(work)


# ---------------------------------------------------------------------------------------------
# kill and resume


def test_sigkill_at_several_points_then_resume_is_bitwise_identical(reference, mock_seed, tmp_path):
    work = _workdir(tmp_path / "killed", mock_seed)
    partials = [f"results/partial/{s}/{i:05d}.npz" for s in SAMPLES for i in range(FILES_PER_SAMPLE)]
    killed = []

    # 1. one running per-file job dies (OOM killer, node failure): the run stops with an error
    log1 = tmp_path / "run1.log"
    proc = _start(work, log1)
    try:
        victim = _wait_for(proc, lambda: _job_processes(psutil.Process(proc.pid), "process_file.py"),
                           "a per-file job started", log1)[0]
        victim.kill()
        killed.append("one process_file job")
        proc.wait(timeout=RUN_TIMEOUT)
    finally:
        if proc.poll() is None:
            _kill_group(proc)
    assert proc.returncode != 0
    text = log1.read_text()
    assert "Error in rule process_file" in text and "failed job(s)" in text
    _assert_no_half_written_partials(work)

    # 2. the whole workflow is killed in the middle of the per-file stage
    log2 = tmp_path / "run2.log"
    unlock = _run(work, "--unlock")
    assert unlock.returncode == 0, unlock.stderr[-2000:]
    proc = _start(work, log2)
    try:
        _wait_for(proc, lambda: sum((work / p).exists() for p in partials) >= 1
                  and _job_processes(psutil.Process(proc.pid), "process_file.py"),
                  "the per-file stage was under way", log2)
        _kill_group(proc)
        killed.append(f"workflow with {sum((work / p).exists() for p in partials)} partials done")
    finally:
        if proc.poll() is None:
            _kill_group(proc)
    _assert_no_half_written_partials(work)

    # 3. killed again while a job after the per-file stage runs
    late = ("write_histograms.py", "build_workspace.py", "fit.py")
    log3 = tmp_path / "run3.log"
    unlock = _run(work, "--unlock")
    assert unlock.returncode == 0, unlock.stderr[-2000:]
    proc = _start(work, log3)
    try:
        def late_job():
            root = psutil.Process(proc.pid)
            return [s for s in late if _job_processes(root, s)]
        running = _wait_for(proc, late_job, "a job after the per-file stage started", log3)
        _kill_group(proc)
        killed.append(f"workflow during {running[0]}")
    finally:
        if proc.poll() is None:
            _kill_group(proc)
    _assert_no_half_written_partials(work)

    # 4. the same command again (after --unlock) finishes; the outputs equal the uninterrupted run
    final = _rerun_until_unlocked(work)
    assert final.returncode == 0, final.stderr[-6000:]
    print(f"\nkilled: {'; '.join(killed)}; last rerun ran {_job_counts(final.stderr)}")
    assert _outputs(work) == reference
    assert not _stray_temp_files(work)
    again = _run(work, "-n")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


def test_killed_writer_leaves_no_output_and_the_rerun_cleans_up(tmp_path):
    """SIGKILL of the per-file script at several moments: its output is absent or complete, never
    partial; a rerun writes the same bytes (metadata aside) and no temporary file survives."""
    from agc_ttbar.histograms import HistogramSet

    events = synth.make_events(60_000, seed=3)
    path = tmp_path / "in.root"
    synth.write_nanoaod(str(path), events, basket_events=20_000)
    fs = tmp_path / "fileset.json"
    fs.write_text(json.dumps({"ttbar__nominal": {
        "process": "ttbar", "variation": "nominal", "xsec": 1.0, "lumi": 1.0, "nevts_total": 60_000,
        "weight": 1e-3, "files": [{"index": 0, "path": str(path), "nevts": 60_000}]}}))
    out = tmp_path / "partial" / "00000.npz"
    cmd = [sys.executable, str(REPO / "workflow_scripts" / "process_file.py"), "--fileset", str(fs),
           "--sample", "ttbar__nominal", "--index", "0", "--output", str(out), "--chunksize", "20000"]

    ok = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    reference, _ = HistogramSet.load(str(out))
    wall = float(re.search(r"done: \d+ events in ([0-9.]+) s", ok.stdout).group(1))
    out.unlink()

    # a temporary file of an earlier killed writer, as mkstemp names them
    stale = out.parent / ".tmp-00000-k1ll3d_x.npz"
    stale.write_bytes(b"half")
    outcomes = []
    for k, fraction in enumerate((0.1, 0.4, 0.7, 0.95, 1.5)):
        log = tmp_path / f"kill{k}.log"
        with open(log, "w") as fh:
            proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while "chunk(s) of" not in log.read_text() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)                       # imports done, the first chunk is being read
        time.sleep(wall * fraction)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if out.exists():   # finished before the kill: must be complete
            hs, _ = HistogramSet.load(str(out))
            assert {k: h.sumw.tobytes() for k, h in hs.hists.items()} == \
                   {k: h.sumw.tobytes() for k, h in reference.hists.items()}
            outcomes.append("complete")
            out.unlink()
        else:
            outcomes.append("absent")
    print(f"\nkill outcomes: {outcomes}")
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    hs, _ = HistogramSet.load(str(out))
    assert {k: (h.sumw.tobytes(), h.sumw2.tobytes()) for k, h in hs.hists.items()} == \
           {k: (h.sumw.tobytes(), h.sumw2.tobytes()) for k, h in reference.hists.items()}
    assert sorted(p.name for p in out.parent.iterdir()) == ["00000.npz"]
    assert "absent" in outcomes


# ---------------------------------------------------------------------------------------------
# determinism


def test_bitwise_identical_for_cores_repeat_runs_and_chunk_sizes(reference, mock_seed, tmp_path):
    work = _workdir(tmp_path / "det", mock_seed)
    one_core = _run(work, cores=1)
    assert one_core.returncode == 0, one_core.stderr[-6000:]
    got = _outputs(work)
    for rel in COMPARED:
        assert got[rel] == reference[rel], f"{rel}: --cores 1 differs from --cores 2"

    # another chunk size (the reference reads its files in chunks of 600, this in one piece):
    # the per-file jobs and the ML training data run again and give the same bytes
    chunksize = 5000
    _write_config(work, processing={"chunksize": chunksize})
    rerun = _run(work, cores=2)
    assert rerun.returncode == 0, rerun.stderr[-6000:]
    assert _job_counts(rerun.stderr).get("process_file") == N_PER_FILE, _job_counts(rerun.stderr)
    got = _outputs(work)
    for rel in COMPARED:
        assert got[rel] == reference[rel], f"{rel}: chunksize {chunksize} differs from 600"


# ---------------------------------------------------------------------------------------------
# memory


def _declared_mem_mb() -> int:
    """mem_mb the process_file rule declares: config processing.mem_mb, default from the schema."""
    text = (REPO / "rules" / "processing.smk").read_text()
    rule = text[text.index("rule process_file:"):text.index("rule merge_sample:")]
    assert re.search(r'mem_mb=config\["processing"\]\["mem_mb"\]', rule), "process_file mem_mb changed"
    from agc_ttbar.config import load_schema

    return load_schema()["properties"]["processing"]["properties"]["mem_mb"]["default"]


def _default_file_entries() -> int:
    """Entries of the largest default mock file (ttbar__nominal)."""
    from agc_ttbar.config import load_schema

    mock = load_schema()["properties"]["mock"]["properties"]
    return max([mock["events_per_file"]["default"], *mock["events_per_file_overrides"]["default"].values()])


def test_per_file_job_on_a_4x_file_stays_within_mem_mb(tmp_path):
    """Peak RSS of the per-file script (ML on, default chunk size) on 4x the largest default mock file."""
    import xgboost

    from agc_ttbar.config import load_schema

    mem_mb = _declared_mem_mb()
    chunksize = load_schema()["properties"]["processing"]["properties"]["chunksize"]["default"]
    n = 4 * _default_file_entries()
    path = tmp_path / "big.root"
    synth.write_nanoaod(str(path), synth.make_events(n, seed=7))
    # models of the published size (xgboost: 20 features, depth 6, a few hundred trees)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4000, 20))
    y = rng.random(4000) < 0.3
    models = []
    for parity in ("even", "odd"):
        booster = xgboost.train({"max_depth": 6, "nthread": 1, "seed": 1}, xgboost.DMatrix(x, label=y),
                                num_boost_round=250)
        models.append(str(tmp_path / f"bdt_{parity}.json"))
        booster.save_model(models[-1])
    fs = tmp_path / "fileset.json"
    fs.write_text(json.dumps({"ttbar__nominal": {
        "process": "ttbar", "variation": "nominal", "xsec": 1.0, "lumi": 1.0, "nevts_total": n,
        "weight": 1.0 / n, "files": [{"index": 0, "path": str(path), "nevts": n}]}}))
    out = tmp_path / "out.npz"
    cmd = [sys.executable, str(REPO / "workflow_scripts" / "process_file.py"), "--fileset", str(fs),
           "--sample", "ttbar__nominal", "--index", "0", "--output", str(out), "--chunksize", str(chunksize),
           "--ml-kind", "bdt", "--ml-models", *models]
    with open(tmp_path / "job.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        _, status, _ = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, (tmp_path / "job.log").read_text()[-3000:]
    from agc_ttbar.histograms import HistogramSet

    _, meta = HistogramSet.load(str(out))
    # The job's own VmHWM: wait4's ru_maxrss would include this pytest process's size (Linux keeps
    # the maximum across exec), hundreds of MB to GB after in-process tests (JAX).
    peak_mb = meta["peak_rss_mb"]
    assert meta["entries"] == n and meta["ml"] is True
    print(f"\n{n} events (4 x {n // 4}), chunksize {chunksize}, ML on: peak RSS {peak_mb:.0f} MB "
          f"(job's own figure {meta['peak_rss_mb']:.0f} MB), declared mem_mb {mem_mb}")
    assert peak_mb < mem_mb, f"peak RSS {peak_mb:.0f} MB exceeds the declared mem_mb {mem_mb}"


def test_histogram_files_have_reproducible_bytes(tmp_path):
    """Two writes of the same histograms, seconds apart and under other names: the same bytes
    (uproot would store the date, a random UUID and the temporary file name)."""
    from agc_ttbar.histograms import HistogramSet
    from agc_ttbar.output import write_histograms

    hs = HistogramSet()
    rng = np.random.default_rng(2)
    for key in ("4j1b_ttbar", "4j2b_ttbar", "4j1b_ttbar_ME_var", "4j1b_ttbar_PS_var", "4j1b_wjets"):
        hs.get(key, np.linspace(50, 550, 26)).fill(rng.uniform(0, 600, 500), 0.25)
    first = tmp_path / "a" / "histograms.root"
    second = tmp_path / "b" / "histograms.root"
    keys = write_histograms(hs, str(first))
    time.sleep(1.1)       # ROOT dates have one-second resolution
    write_histograms(hs, str(second))
    assert "4j1b_pseudodata" in keys
    assert first.read_bytes() == second.read_bytes()
    import uproot

    with uproot.open(first) as f:
        assert sorted(k.split(";")[0] for k in f.keys()) == keys
        assert f["4j1b_ttbar"].values().sum() > 0


def test_failure_summary_parses_snakemake_7_and_9_logs(tmp_path):
    from agc_ttbar.failure_summary import failed_jobs, print_failure_summary

    job_log = tmp_path / "process_file" / "wjets__nominal_00001.log"
    job_log.parent.mkdir()
    job_log.write_text("wjets__nominal: reading\nERROR: input file a.root is truncated: 10 bytes\n")
    v9 = tmp_path / "v9.log"
    v9.write_text(
        "Error in rule process_file:\n    message: None\n    jobid: 12\n"
        "    input: results/fileset.json, a.root\n    output: results/partial/wjets__nominal/00001.npz\n"
        f"    log: {job_log} (check log file(s) for error details)\n"
        "    shell:\n        python workflow_scripts/process_file.py ...\n"
        "        (command exited with non-zero exit code)\n"
        "Finished jobid: 3 (Rule: merge_sample)\n"
        "Error in rule fit:\n    jobid: 40\n    output: results/fit_results.json\n"
        "Exiting because a job execution failed. Look above for error messages\n")
    v7 = tmp_path / "v7.log"       # Snakemake 7: the same blocks, and `log` is one path
    v7.write_text(v9.read_text().replace("    message: None\n", ""))
    for logs in ([str(v9)], str(v7)):
        assert failed_jobs(logs) == [("process_file", "results/partial/wjets__nominal/00001.npz", str(job_log)),
                                     ("fit", "results/fit_results.json", "")]
    import io

    buf = io.StringIO()
    print_failure_summary([str(v9), str(tmp_path / "missing.log")], out=buf)
    text = buf.getvalue()
    assert "=== 2 failed job(s)" in text
    assert f"log: {job_log}\n      ERROR: input file a.root is truncated" in text
    assert "rule fit: results/fit_results.json\n      log: (none)" in text
