"""Remote inputs: root:// and http:// reading, retries, staging, and the AGC input list (issue 7).

The integration tests start a real xrootd (Debian xrootd-server) and a real nginx on loopback; as
root they install the packages when missing, otherwise they are skipped.
"""

from __future__ import annotations

import json
import os
import pathlib
import socket
import threading
import time

import pytest

from agc_ttbar import layout
from agc_ttbar.fileset import build_fileset, load_inputs
from agc_ttbar.remote import RemoteOptions, RemoteReadError, describe_error, is_remote, with_retries
from servers import procs
from servers.workflow import copy_workflow, histogram_contents, mock_run, require_workflow, rewrite_inputs, snakemake

FAST = RemoteOptions(timeout_s=2, retries=2, backoff_s=0.1)


# ------------------------------------------------------------------------------------------------
# unit tests: retry logic


def test_with_retries_bounded_and_names_url():
    calls, sleeps = [], []

    def fail():
        calls.append(1)
        raise ConnectionRefusedError(111, "Connection refused")

    with pytest.raises(RemoteReadError) as exc:
        with_retries(fail, "root://host.example//f.root", RemoteOptions(5, 3, 0.5), sleep=sleeps.append)
    assert len(calls) == 3
    assert sleeps == [0.5, 1.0]  # exponential back-off between attempts, none after the last
    msg = str(exc.value)
    assert "root://host.example//f.root" in msg and "connection refused" in msg and "3 attempts" in msg
    assert exc.value.attempts == 3


def test_with_retries_recovers_and_does_not_retry_logic_errors():
    state = {"n": 0}

    def flaky():
        state["n"] += 1
        if state["n"] < 2:
            raise TimeoutError("timed out")
        return "ok"

    assert with_retries(flaky, "https://x/y.root", RemoteOptions(1, 3, 0), sleep=lambda s: None) == "ok"
    assert state["n"] == 2

    def missing_tree():
        state["n"] += 1
        raise KeyError("no tree")

    state["n"] = 0
    with pytest.raises(KeyError):
        with_retries(missing_tree, "https://x/y.root", RemoteOptions(1, 3, 0), sleep=lambda s: None)
    assert state["n"] == 1


def test_describe_error_and_is_remote():
    assert describe_error(FileNotFoundError("x")) == "file not found on the server"
    assert describe_error(TimeoutError("x")).startswith("timed out")
    assert describe_error(OSError("XRootD error: [FATAL] Connection error")).startswith("connection refused")
    # a port number that contains 404 is not an HTTP 404
    assert describe_error(OSError("Cannot connect to host 127.0.0.1:14041 [Connect call failed]")).startswith(
        "connection refused")
    assert describe_error(OSError("HTTP 403 Forbidden")) == "access denied by the server"
    assert is_remote("root://a//b") and is_remote("https://a/b") and is_remote("HTTP://a/b")
    assert not is_remote("/data/f.root") and not is_remote("file:///data/f.root")
    with pytest.raises(ValueError):
        RemoteOptions(retries=0)


# ------------------------------------------------------------------------------------------------
# real servers


@pytest.fixture(scope="module")
def served():
    folder = procs.served_folder()
    xrd = nginx = None
    try:
        xrd = procs.start_xrootd(folder)
        nginx = procs.start_nginx(folder)
        yield {"folder": folder, "root": xrd.url, "http": nginx.url, "xrootd": xrd, "nginx": nginx}
    finally:
        procs.stop_all(xrd, nginx)
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def real_served(served, real_nanoaod_path):
    name = procs.publish(str(real_nanoaod_path), served["folder"], "real/nanoAOD_2015.root")
    return {"root": f"{served['root']}/{name}", "http": f"{served['http']}{name}", "local": str(real_nanoaod_path)}


@pytest.fixture(scope="module")
def real_nanoaod_path():
    from conftest import data_path

    return data_path("real", "nanoAOD_2015_CMS_Open_Data_ttbar.root")


@pytest.mark.integration
@pytest.mark.parametrize("scheme", ["root", "http"])
def test_read_real_file_remote_equals_local(real_served, scheme):
    import awkward as ak
    import uproot

    from agc_ttbar.io import open_tree, read_chunk

    branches = ["Jet_pt", "Jet_eta", "Electron_cutBased", "Muon_tightId", "event"]
    url = real_served[scheme]
    with open_tree(url, "Events", FAST) as tree:
        assert tree.num_entries == 200
        remote = read_chunk(tree, url, branches, 0, 200, FAST)
    with uproot.open(real_served["local"]) as f:
        local = f["Events"].arrays(branches)
    for b in branches:
        assert ak.to_list(remote[b]) == ak.to_list(local[b])


@pytest.mark.integration
@pytest.mark.parametrize("scheme", ["root", "http"])
def test_missing_file_clear_error_after_retries(served, scheme):
    from agc_ttbar.remote import open_file

    url = f"{served[scheme]}{'/' if scheme == 'root' else ''}no/such/file.root"
    t0 = time.monotonic()
    with pytest.raises(RemoteReadError) as exc:
        open_file(url, FAST)
    assert time.monotonic() - t0 < 10
    msg = str(exc.value)
    assert url in msg and "file not found" in msg and "2 attempts" in msg


@pytest.mark.integration
@pytest.mark.parametrize("scheme", ["root", "http"])
def test_unreachable_server_clear_error(scheme):
    from agc_ttbar.remote import open_file

    port = procs.free_port()  # nothing listens there
    url = f"{scheme}://127.0.0.1:{port}//x.root"
    t0 = time.monotonic()
    with pytest.raises(RemoteReadError) as exc:
        open_file(url, FAST)
    assert time.monotonic() - t0 < 10
    assert url in str(exc.value) and "connection refused" in str(exc.value)


@pytest.mark.integration
@pytest.mark.parametrize("scheme", ["root", "http"])
def test_silent_server_times_out_bounded(scheme):
    """A server that accepts connections but never answers: each attempt ends at the timeout."""
    from agc_ttbar.remote import open_file

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held = []
    stop = threading.Event()

    def accept():
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    url = f"{scheme}://127.0.0.1:{sock.getsockname()[1]}//x.root"
    t0 = time.monotonic()
    try:
        with pytest.raises(RemoteReadError) as exc:
            open_file(url, RemoteOptions(timeout_s=1, retries=2, backoff_s=0.1))
    finally:
        stop.set()
        thread.join()
        for c in held:
            c.close()
        sock.close()
    elapsed = time.monotonic() - t0
    assert elapsed < 15, elapsed
    assert url in str(exc.value) and "timed out" in str(exc.value) and "2 attempts" in str(exc.value)


@pytest.mark.integration
@pytest.mark.parametrize("scheme", ["root", "http"])
def test_staging_copies_bytes(real_served, tmp_path, scheme):
    from agc_ttbar.fileset import sha256_file
    from agc_ttbar.staging import stage_file

    dest = tmp_path / "staged" / f"{scheme}.root"
    report = stage_file(real_served[scheme], str(dest), FAST, expected_entries=200, log=lambda m: None)
    assert report["entries"] == 200 and report["bytes"] == os.path.getsize(real_served["local"])
    assert sha256_file(str(dest)) == sha256_file(real_served["local"])
    assert [p.name for p in dest.parent.iterdir()] == [dest.name]  # no temporary left behind
    with pytest.raises(RemoteReadError, match="file not found"):
        stage_file(real_served[scheme].replace("nanoAOD_2015", "missing"), str(tmp_path / "x.root"), FAST)
    assert not (tmp_path / "x.root").exists()


# ------------------------------------------------------------------------------------------------
# the AGC input list (no network: the copy shipped in data/agc/)


def test_agc_inputs_n1_weights(agc_inputs):
    """N=1 fileset of the real AGC list: 9 files and the weights of spec §1.3."""
    from agc_ttbar.samples import SAMPLES

    keys = [f"{p}__{v}" for p, v in SAMPLES]
    fileset = build_fileset(load_inputs(str(agc_inputs)), keys, n_files_max=1)
    expected = {"ttbar__nominal": "1.847533", "single_top_s_chan__nominal": "0.0176084",
                "single_top_t_chan__nominal": "0.672922", "single_top_tW__nominal": "0.302258",
                "wjets__nominal": "41.883472", "ttbar__ME_var": "1.817069", "ttbar__PS_var": "1.881651",
                "ttbar__scaleup": "1.928059", "ttbar__scaledown": "1.943941"}
    assert sum(len(s["files"]) for s in fileset.values()) == 9
    for key, w in expected.items():  # equal to the digits the spec prints
        digits = len(w.split(".")[1])
        assert f"{fileset[key]['weight']:.{digits}f}" == w, key
    assert fileset["ttbar__nominal"]["nevts_total"] == 1334428


@pytest.mark.slow
def test_agc_inputs_n1_dry_run_dag(agc_inputs, tmp_path):
    """`snakemake -n` on the real AGC list with N=1 shows 9 per-file jobs; with ServiceX as well
    (the DAG comes from the original list at parse time), plus the one delivery job."""
    wd = copy_workflow(tmp_path / "wf")
    require_workflow(wd)
    base = {"dataset": "agc", "inputs": str(agc_inputs), "n_files_max_per_sample": 1}
    for extra, jobs in (({}, {"process_file": 9}),
                        ({"servicex": {"enabled": True}}, {"process_file": 9, "servicex_deliver": 1}),
                        ({"staging": {"enabled": True}}, {"process_file": 9, "stage_file": 9})):
        proc = snakemake(wd, dict(base, **extra), [layout.histograms("results")], "-n", "--quiet", "rules",
                         cores=1)
        counts = _job_counts(proc.stdout + proc.stderr)
        for rule, n in jobs.items():
            assert counts.get(rule) == n, (extra, rule, counts)
        if "servicex" not in extra:
            assert "servicex_deliver" not in counts
    # the fileset rule computes the spec §1.3 weights from the list
    snakemake(wd, base, [layout.fileset("results")], cores=1)
    fs = json.loads((wd / layout.fileset("results")).read_text())
    assert fs["ttbar__nominal"]["weight"] == pytest.approx(1.847533, rel=2e-6)
    assert fs["wjets__nominal"]["weight"] == pytest.approx(41.883472, rel=2e-6)
    assert fs["ttbar__nominal"]["files"][0]["path"].startswith("https://xrootd-local.unl.edu:1094/")


def _job_counts(text: str) -> dict:
    counts = {}
    in_table = False
    for line in text.splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            in_table = True
            continue
        if in_table and len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts


# ------------------------------------------------------------------------------------------------
# workflow runs over root:// and http:// (acceptance of issue 7)


@pytest.fixture(scope="module")
def mock_dataset(tmp_path_factory):
    return mock_run(tmp_path_factory.getbasetemp())


def _publish_inputs(mock, served, ttbar_scheme: str) -> dict:
    """The mock input list with every file published on the servers: the ttbar samples as
    ``ttbar_scheme`` URLs, the others with the other protocol (root:// or http://)."""
    inputs = load_inputs(str(mock["inputs"]))
    other = {"root": "http", "http": "root"}[ttbar_scheme]

    def to_url(process, variation, i, path):
        src = pathlib.Path(path)
        src = src if src.is_absolute() else mock["workdir"] / src
        name = procs.publish(str(src), served["folder"], f"mock/{process}__{variation}/{i:05d}.root")
        scheme = ttbar_scheme if process == "ttbar" else other
        return f"{served['root']}/{name}" if scheme == "root" else f"{served['http']}{name}"

    return rewrite_inputs(inputs, to_url)


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize("ttbar_scheme,staging", [("root", False), ("http", True)])
def test_workflow_remote_histograms_identical(mock_dataset, served, ttbar_scheme, staging):
    """dataset agc on an input list of root:// and http:// URLs (each sample over both protocols
    across the two runs; the second run stages the files first): histograms.root contents are
    bitwise identical to the local-file run."""
    wd = mock_dataset["workdir"]
    name = f"results_remote_{ttbar_scheme}{'_staged' if staging else ''}"
    inputs_path = wd / f"inputs_{name}.json"
    inputs_path.write_text(json.dumps(_publish_inputs(mock_dataset, served, ttbar_scheme), indent=1))
    cfg = {"dataset": "agc", "inputs": str(inputs_path), "use_inference": False, "results_dir": name,
           "processing": {"remote_timeout_s": 20, "remote_retries": 2},
           "staging": {"enabled": staging}}
    snakemake(wd, cfg, [layout.histograms(name), layout.cutflow(name)])
    remote = histogram_contents(wd / layout.histograms(name))
    local = histogram_contents(mock_dataset["histograms"])
    assert remote.keys() == local.keys() and len(local) > 50
    assert remote == local
    fileset = json.loads((wd / layout.fileset(name)).read_text())
    schemes = {key: s["files"][0]["path"].split("://")[0] for key, s in fileset.items()}
    assert len(schemes) == 9 and set(schemes.values()) == {"root", "http"}
    assert schemes["ttbar__nominal"] == ttbar_scheme
    if staging:
        assert len(list((wd / name / "staged").rglob("*.root"))) == 9
    # the per-file logs show where each file was read from (URL, or its staged copy)
    for key in ("ttbar__nominal", "wjets__nominal"):
        log = (wd / layout.log(name, "process_file", f"{key}_00000")).read_text()
        assert ("staged" in log) if staging else (f"{schemes[key]}://127.0.0.1:" in log)


@pytest.mark.slow
@pytest.mark.integration
def test_workflow_real_file_remote(served, real_served, mock_dataset):
    """The real 200-event 2015 file over root:// (ttbar) and http:// (wjets): the cutflow facts of
    spec §11 (14 one-lepton events, 2 with >= 4 jets, none in the regions)."""
    wd = mock_dataset["workdir"]
    name = "results_real"
    inputs = {"ttbar": {"nominal": {"nevts_total": 200, "files": [{"path": real_served["root"], "nevts": 200}]}},
              "wjets": {"nominal": {"nevts_total": 200, "files": [{"path": real_served["http"], "nevts": 200}]}}}
    (wd / "inputs_real.json").write_text(json.dumps(inputs))
    cfg = {"dataset": "agc", "inputs": str(wd / "inputs_real.json"), "use_inference": False, "results_dir": name,
           "samples": ["ttbar__nominal", "wjets__nominal"],
           "processing": {"remote_timeout_s": 20, "remote_retries": 2}}
    snakemake(wd, cfg, [layout.cutflow(name), layout.histograms(name)])
    cutflow = json.loads((wd / layout.cutflow(name)).read_text())
    for key in ("ttbar__nominal", "wjets__nominal"):
        raw = _raw_cutflow(cutflow, key)
        assert raw["steps"]["all"] == 200
        assert raw["single"]["exactly_1l"] == 14
        assert raw["single"]["atleast_4j"] == 2
        assert raw["steps"]["atleast_4j"] == 0
        assert raw["steps"]["4j1b"] == 0 and raw["steps"]["4j2b"] == 0


def _raw_cutflow(cutflow: dict, key: str) -> dict:
    """The raw counts of one sample in cutflow.json (``{"samples": [{"sample", "raw"}, ...]}``)."""
    for entry in cutflow["samples"]:
        if entry["sample"] == key:
            return entry["raw"]
    raise AssertionError(f"no sample {key} in the cutflow")


@pytest.mark.slow
@pytest.mark.integration
def test_workflow_missing_remote_file_fails_with_url(served, mock_dataset):
    wd = mock_dataset["workdir"]
    name = "results_missing"
    url = f"{served['http']}mock/does-not-exist.root"
    inputs = {"ttbar": {"nominal": {"nevts_total": 10, "files": [{"path": url, "nevts": 10}]}}}
    (wd / "inputs_missing.json").write_text(json.dumps(inputs))
    cfg = {"dataset": "agc", "inputs": str(wd / "inputs_missing.json"), "use_inference": False,
           "results_dir": name, "samples": ["ttbar__nominal"],
           "processing": {"remote_timeout_s": 2, "remote_retries": 2}}
    t0 = time.monotonic()
    proc = snakemake(wd, cfg, [layout.partial(name, "ttbar__nominal", 0)], check=False)
    assert proc.returncode != 0
    assert time.monotonic() - t0 < 120
    log = (wd / layout.log(name, "process_file", "ttbar__nominal_00000")).read_text()
    assert f"ERROR: cannot open {url}: file not found on the server (2 attempts" in log
