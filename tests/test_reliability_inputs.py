"""Bad inputs (issue 8): each gives a clear error naming the file / branch / key, and no output.

The per-file job is driven through its script (``workflow_scripts/process_file.py``), in process for
speed and once as a subprocess to check that the user sees an ``ERROR:`` line and no traceback. An
empty file is valid (empty histograms); a sample that selects no events is absent from
``histograms.root`` and the statistical model then fails naming the missing templates, or builds
once the sample is removed from the configuration.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import uproot

import synthetic_nanoaod as synth
from agc_ttbar.config import ConfigError, validate_config
from agc_ttbar.histograms import HistogramSet
from agc_ttbar.io import InputFileError
from agc_ttbar.output import merge_sets, write_histograms
from agc_ttbar.processing import SampleInfo, process_file

REPO = pathlib.Path(__file__).resolve().parent.parent
N_EVENTS = 1500
QUIET = lambda msg: None  # noqa: E731


def load_script(name):
    path = REPO / "workflow_scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"reliability_script_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def events():
    return synth.make_events(N_EVENTS, seed=21)


@pytest.fixture(scope="module")
def good_file(tmp_path_factory, events):
    path = tmp_path_factory.mktemp("good") / "good.root"
    synth.write_nanoaod(str(path), events, basket_events=500)
    return path


def _fileset(tmp: pathlib.Path, path, nevts: int, sample: str = "ttbar__nominal") -> pathlib.Path:
    process, variation = sample.split("__")
    fs = {sample: {"process": process, "variation": variation, "xsec": 1.0, "lumi": 1.0,
                   "nevts_total": max(nevts, 1), "weight": 1.0 / max(nevts, 1),
                   "files": [{"index": 0, "path": str(path), "nevts": nevts}]}}
    out = tmp / "fileset.json"
    out.write_text(json.dumps(fs))
    return out


def _run_job(tmp: pathlib.Path, path, nevts: int, *extra: str, sample: str = "ttbar__nominal"):
    """Run the per-file script in process; returns (rc, output path)."""
    script = load_script("process_file")
    out = tmp / "partial" / sample / "00000.npz"
    rc = script.main(["--fileset", str(_fileset(tmp, path, nevts, sample)), "--sample", sample,
                      "--index", "0", "--output", str(out), "--chunksize", "400", *extra])
    return rc, out


def _assert_failed_cleanly(rc, out: pathlib.Path, err: str, *needles: str) -> None:
    assert rc == 1
    assert err.startswith("ERROR: "), err
    for needle in needles:
        assert needle in err, f"{needle!r} not in the error message: {err}"
    assert not out.exists(), "a failed job wrote its output"
    if out.parent.exists():
        assert os.listdir(out.parent) == [], f"left-overs: {os.listdir(out.parent)}"


# ---------------------------------------------------------------------------------------------
# unreadable files


@pytest.mark.parametrize("fraction", [0.001, 0.3, 0.7, 0.995])
def test_truncated_file(tmp_path, good_file, fraction, capsys):
    data = good_file.read_bytes()
    bad = tmp_path / "truncated.root"
    bad.write_bytes(data[:int(len(data) * fraction)])
    rc, out = _run_job(tmp_path, bad, N_EVENTS)
    err = capsys.readouterr().err
    _assert_failed_cleanly(rc, out, err, str(bad))
    # a cut inside the data says "truncated" with both sizes; a cut inside the header cannot
    if fraction > 0.01:
        assert "is truncated" in err and str(len(data)) in err


def test_truncated_file_through_the_command_line(tmp_path, good_file):
    """What the user sees in the job log: one ERROR line naming the file, no traceback."""
    data = good_file.read_bytes()
    bad = tmp_path / "cut.root"
    bad.write_bytes(data[:len(data) // 2])
    out = tmp_path / "out.npz"
    proc = subprocess.run([sys.executable, str(REPO / "workflow_scripts" / "process_file.py"),
                           "--fileset", str(_fileset(tmp_path, bad, N_EVENTS)), "--sample", "ttbar__nominal",
                           "--index", "0", "--output", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr, proc.stderr
    assert f"ERROR: input file {bad} is truncated" in proc.stderr
    assert not out.exists() and not list(tmp_path.glob(".tmp-*"))


def test_not_a_root_file(tmp_path, capsys):
    bad = tmp_path / "notes.root"
    bad.write_text("this is a text file that someone named .root\n" * 20)
    rc, out = _run_job(tmp_path, bad, 10)
    _assert_failed_cleanly(rc, out, capsys.readouterr().err, str(bad), "as a ROOT file")


def test_missing_file(tmp_path, capsys):
    rc, out = _run_job(tmp_path, tmp_path / "gone.root", 10)
    _assert_failed_cleanly(rc, out, capsys.readouterr().err, str(tmp_path / "gone.root"), "does not exist")


def test_file_without_events_tree(tmp_path, events, capsys):
    bad = tmp_path / "other_tree.root"
    with uproot.recreate(bad) as f:
        f.mktree("Runs", {"run": "uint32"}).extend({"run": np.arange(3, dtype=np.uint32)})
    rc, out = _run_job(tmp_path, bad, 3)
    _assert_failed_cleanly(rc, out, capsys.readouterr().err, str(bad), "no tree 'Events'", "Runs",
                           "tree_name")


def test_missing_required_branch(tmp_path, events, capsys):
    bad = tmp_path / "no_btag.root"
    synth.write_nanoaod(str(bad), events, drop=("Jet_btagCSVV2", "Muon_sip3d"))
    rc, out = _run_job(tmp_path, bad, N_EVENTS)
    _assert_failed_cleanly(rc, out, capsys.readouterr().err, str(bad), "Muon_sip3d, Jet_btagCSVV2",
                           "missing branch")


@pytest.mark.parametrize("collection, field, dtype, expected", [
    ("Jet", "jetId", "float32", "dtype float32, expected an integer"),
    ("Jet", "pt", "int32", "dtype int32, expected a float"),
    ("Electron", "cutBased", "float64", "dtype float64, expected an integer"),
])
def test_branch_with_wrong_dtype(tmp_path, events, monkeypatch, collection, field, dtype, expected, capsys):
    fields = {"Jet": synth.JET_FIELDS, "Electron": synth.ELECTRON_FIELDS}[collection]
    monkeypatch.setitem(fields, field, dtype)
    ev = dict(events)
    ev[collection] = dict(events[collection])
    ev[collection][field] = events[collection][field].astype(dtype)
    bad = tmp_path / "wrong_dtype.root"
    synth.write_nanoaod(str(bad), ev)
    with uproot.open(bad) as f:      # the file really has the wrong type
        assert f["Events"][f"{collection}_{field}"].interpretation.content.to_dtype == np.dtype(dtype)
    rc, out = _run_job(tmp_path, bad, N_EVENTS)
    _assert_failed_cleanly(rc, out, capsys.readouterr().err, str(bad), f"{collection}_{field}", expected)


def test_flat_branch_where_a_list_is_expected(tmp_path, events, capsys):
    """Jet_pt stored as one number per event (a broken skim): named, not a numpy error later."""
    bad = tmp_path / "flat.root"
    data = {k: events[k] for k in ("run", "luminosityBlock", "event")}
    for prefix, fields in (("Jet", synth.JET_FIELDS), ("Electron", synth.ELECTRON_FIELDS),
                           ("Muon", synth.MUON_FIELDS)):
        for name, dtype in fields.items():
            data[f"{prefix}_{name}"] = np.zeros(N_EVENTS, dtype=dtype)
    with uproot.recreate(bad) as f:
        f.mktree("Events", {k: v.dtype for k, v in data.items()}).extend(data)
    rc, out = _run_job(tmp_path, bad, N_EVENTS)
    _assert_failed_cleanly(rc, out, capsys.readouterr().err, str(bad), "Jet_pt (one value per event, expected a list)")


def test_corrupt_basket_names_file_and_entries(tmp_path, events):
    """Damage inside compressed data: the read of that chunk fails naming the file and entry range."""
    path = tmp_path / "basket.root"
    synth.write_nanoaod(str(path), events, basket_events=300)
    with uproot.open(path) as f:
        branch = f["Events"]["Jet_pt"]
        seek = int(branch.member("fBasketSeek")[2])       # third basket: entries 600-899
        size = int(branch.member("fBasketBytes")[2])
    data = bytearray(path.read_bytes())
    for i in range(seek + size // 2, seek + size // 2 + 20):   # middle of the compressed payload
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    info = SampleInfo.from_key("ttbar__nominal", 1.0, N_EVENTS)
    with pytest.raises(InputFileError) as exc:
        process_file(str(path), info, chunksize=300, log=QUIET)
    msg = str(exc.value)
    assert str(path) in msg and "entries 600-900" in msg and "damaged" in msg


# ---------------------------------------------------------------------------------------------
# valid but unusual inputs


def test_empty_file_gives_valid_empty_output(tmp_path, events, capsys):
    empty = tmp_path / "empty.root"
    synth.write_nanoaod(str(empty), synth.slice_events(events, 0, 0))
    rc, out = _run_job(tmp_path, empty, 0, sample="wjets__nominal")
    assert rc == 0, capsys.readouterr().err
    hs, meta = HistogramSet.load(str(out))
    assert hs.hists == {} and meta["nevents"] == 0 and meta["cutflow"]["steps"]["all"] == 0
    # and the merge / histograms.root steps accept it: the sample is simply absent
    total, _ = merge_sets([str(out)])
    keys = write_histograms(total, str(tmp_path / "histograms.root"))
    assert keys == []
    with uproot.open(tmp_path / "histograms.root") as f:
        assert f.keys() == []


@pytest.mark.parametrize("policy", ["warn", "fail"])
def test_nevts_mismatch_warns_or_fails_by_config(tmp_path, good_file, policy, capsys):
    rc, out = _run_job(tmp_path, good_file, N_EVENTS + 7, "--nevts-mismatch", policy)
    captured = capsys.readouterr()
    detail = f"has {N_EVENTS} entries, the fileset says {N_EVENTS + 7}"
    if policy == "warn":
        assert rc == 0 and out.is_file()
        assert f"WARNING: input file {good_file}" in captured.out and detail in captured.out
    else:
        _assert_failed_cleanly(rc, out, captured.err, str(good_file), detail, "processing.nevts_mismatch")


def test_nevts_mismatch_key_exists_in_schema():
    cfg = validate_config({"processing": {"nevts_mismatch": "fail"}})
    assert cfg["processing"]["nevts_mismatch"] == "fail"
    with pytest.raises(ConfigError, match=r"processing.nevts_mismatch.*allowed values: 'warn', 'fail'"):
        validate_config({"processing": {"nevts_mismatch": "ignore"}})


# ---------------------------------------------------------------------------------------------
# a sample whose files select no event


def _all_samples():
    from agc_ttbar.config import load_schema

    return load_schema()["properties"]["samples"]["default"]


def test_sample_selecting_no_events_is_absent_and_the_model_names_it(tmp_path, events, capsys):
    from agc_ttbar.statistics import MissingHistogramError
    from agc_ttbar.statistics import model, workspace

    # a file whose events all fail the lepton selection (no electron or muon above 30 GeV)
    ev = dict(events)
    ev["Electron"] = dict(events["Electron"], pt=np.full_like(events["Electron"]["pt"], 12.0))
    ev["Muon"] = dict(events["Muon"], pt=np.full_like(events["Muon"]["pt"], 12.0))
    dead = tmp_path / "dead.root"
    synth.write_nanoaod(str(dead), ev)
    good = tmp_path / "good.root"
    synth.write_nanoaod(str(good), events)

    empty_sample = "single_top_s_chan__nominal"
    partials = []
    for sample in _all_samples():
        path = dead if sample == empty_sample else good
        hs, meta = process_file(str(path), SampleInfo.from_key(sample, 0.5, N_EVENTS), log=QUIET)
        if sample == empty_sample:
            assert hs.hists == {} and meta["cutflow"]["steps"]["all"] == N_EVENTS
            assert meta["cutflow"]["steps"]["exactly_1l"] == 0
        p = tmp_path / "merged" / f"{sample}.npz"
        hs.save(str(p), meta)
        partials.append(str(p))
    total, _ = merge_sets(partials)
    hpath = tmp_path / "histograms.root"
    keys = write_histograms(total, str(hpath))
    assert not any("single_top_s_chan" in k for k in keys)
    assert {"4j1b_pseudodata", "4j2b_pseudodata", "4j2b_single_top_t_chan"} <= set(keys)

    # with the sample configured: a named error before anything is built
    cfg = model.cabinetry_config(_all_samples(), str(hpath), str(tmp_path / "templates"))
    with pytest.raises(MissingHistogramError) as exc:
        workspace.workspace_from_histograms(cfg)
    msg = str(exc.value)
    assert f"{hpath}:4j1b_single_top_s_chan" in msg and f"{hpath}:4j2b_single_top_s_chan" in msg
    assert "config key 'samples'" in msg
    assert not (tmp_path / "templates").exists() or not any((tmp_path / "templates").iterdir())

    # the build_workspace script: ERROR line, exit 1, no workspace
    cfg_path = tmp_path / "cabinetry.yml"
    cfg_path.write_text(model.to_yaml(cfg))
    ws_path = tmp_path / "workspace.json"
    rc = load_script("build_workspace").main(["--cabinetry-config", str(cfg_path), "--output", str(ws_path)])
    err = capsys.readouterr().err
    assert rc == 1 and "ERROR:" in err and "4j1b_single_top_s_chan" in err and not ws_path.exists()

    # without it, the model builds from the same histograms.root
    rest = [s for s in _all_samples() if s != empty_sample]
    cfg = model.cabinetry_config(rest, str(hpath), str(tmp_path / "templates2"))
    ws = workspace.workspace_from_histograms(cfg)
    info = workspace.summary(ws)
    assert "single top, s-channel" not in info["samples"] and "tW" in info["samples"]
    assert set(info["channels"]) == {"4j1b CR", "4j2b SR"}


# ---------------------------------------------------------------------------------------------
# configuration and model files


def test_config_unknown_sample_and_bad_type_name_the_key():
    with pytest.raises(ConfigError, match=r"config key samples\[1\]: 'ttbar__nomnal' is not one of"):
        validate_config({"samples": ["ttbar__nominal", "ttbar__nomnal"]})
    with pytest.raises(ConfigError, match=r"config key processing.chunksize: 'big' is not of type 'integer'"):
        validate_config({"processing": {"chunksize": "big"}})
    with pytest.raises(ConfigError, match=r"unknown key\(s\) 'chunk_size'"):
        validate_config({"processing": {"chunk_size": 1000}})


def test_snakemake_refuses_a_bad_config_naming_the_key(tmp_path):
    """Validation runs when the Snakefile is read: nothing is scheduled, the key is named."""
    env = dict(os.environ, PATH=os.pathsep.join([str(pathlib.Path(sys.executable).parent),
                                                 os.environ.get("PATH", "")]))
    env.pop("SNAKEMAKE_PROFILE", None)
    for arg, needle in ((['samples=["ttbar__nominal","wjets__nomnal"]'], "config key samples[1]: 'wjets__nomnal'"),
                        (['processing={"chunksize": "big"}'], "config key processing.chunksize: 'big'")):
        proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1",
                               "--directory", str(tmp_path), "--snakefile", str(REPO / "Snakefile"),
                               "--configfile", str(REPO / "config.yaml"), "--config", *arg],
                              capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0 and f"Invalid configuration: {needle}" in out, out[-3000:]
        assert "Traceback" not in out
        assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("kind", ["bdt", "torch"])
def test_missing_or_corrupt_model_file(tmp_path, good_file, kind, capsys):
    ext = "json" if kind == "bdt" else "pt"
    missing = [str(tmp_path / f"{kind}_even.{ext}"), str(tmp_path / f"{kind}_odd.{ext}")]
    rc, out = _run_job(tmp_path, good_file, N_EVENTS, "--ml-kind", kind, "--ml-models", *missing)
    _assert_failed_cleanly(rc, out, capsys.readouterr().err, missing[0], "does not exist")

    garbage = tmp_path / f"garbage.{ext}"
    garbage.write_bytes(b"{ this is not a model")
    rc, out = _run_job(tmp_path, good_file, N_EVENTS, "--ml-kind", kind, "--ml-models", str(garbage), str(garbage))
    _assert_failed_cleanly(rc, out, capsys.readouterr().err, str(garbage), "cannot load ML model file")
