"""RNTuple inputs (mock.format: rntuple): the same events written as TTree and as RNTuple read back
under the same branch names, dtypes and values, and give bitwise-identical histograms (ML on) and
ML training data; other RNTuple NanoAOD layouts (ROOT's importer, plain vector fields) map too."""

from __future__ import annotations

import os
import subprocess
import sys

import awkward as ak
import numpy as np
import pytest
import uproot

from agc_ttbar import rntuple
from agc_ttbar.io import InputFileError, check_branches, open_tree, read_chunk
from agc_ttbar.ml import dataset
from agc_ttbar.mock.generator import generate_events
from agc_ttbar.mock.writer import read_counts, write_file
from agc_ttbar.processing import SampleInfo, branches_needed, process_file

from handmade import FakeScorer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUIET = lambda msg: None  # noqa: E731
N = 3000


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """One generated ttbar file (muons on, so every branch matters) as TTree and as RNTuple."""
    tmp = tmp_path_factory.mktemp("rntuple")
    gen = generate_events("ttbar__nominal", 0, N, 4242, 0.9)
    out = {}
    for fmt in ("ttree", "rntuple"):
        out[fmt] = str(tmp / f"{fmt}.root")
        write_file(out[fmt], gen, "ZLIB:4", basket_entries=1000, seed_seq=[1, 2], fmt=fmt)
    return out


def test_file_kinds(pair):
    with uproot.open(pair["rntuple"]) as f:
        assert {k.split(";")[0]: c for k, c in f.classnames().items()} == {"Events": "ROOT::RNTuple",
                                                                           "Runs": "ROOT::RNTuple"}
        ev = f["Events"]
        # uproot 5.7.7 writes the RNTuple 1.x on-disk format (anchor epoch 1; ROOT 6.34+)
        assert rntuple.format_version(ev)[0] == rntuple.SUPPORTED_EPOCH == 1
        assert {"Jet", "Electron", "Muon", "GenPart", "run", "event"} <= set(ev.keys())
        assert "nJet" not in ev.keys()                      # counters are the collection lengths
        assert len(ev.cluster_summaries) == N // 1000
    with uproot.open(pair["ttree"]) as f:
        assert isinstance(f["Events"], uproot.TTree)
    assert read_counts(pair["rntuple"]) == read_counts(pair["ttree"])


def test_same_branches_dtypes_and_values(pair):
    with open_tree(pair["ttree"]) as t, open_tree(pair["rntuple"]) as r:
        assert isinstance(r, rntuple.NanoAODView) and r.num_entries == t.num_entries == N
        names = list(t.keys())
        assert sorted(r.keys()) == sorted(names)
        needed = branches_needed("nominal", True)
        check_branches(t, needed, pair["ttree"])
        check_branches(r, needed, pair["rntuple"])
        a = read_chunk(t, pair["ttree"], names, 700, 2300)
        b = read_chunk(r, pair["rntuple"], names, 700, 2300)
    for name in names:
        assert str(a[name].type) == str(b[name].type), name
        assert a[name].layout.form.type == b[name].layout.form.type, name
        flat_a, flat_b = (ak.flatten(x[name], axis=None) for x in (a, b))
        assert ak.to_numpy(flat_a).dtype == ak.to_numpy(flat_b).dtype, name
        assert np.array_equal(ak.to_numpy(flat_a).view(np.uint8), ak.to_numpy(flat_b).view(np.uint8)), name
        if a[name].ndim == 2:
            assert np.array_equal(ak.to_numpy(ak.num(a[name])), ak.to_numpy(ak.num(b[name]))), name
    assert b["nJet"].type.content == ak.types.NumpyType("uint32")   # NanoAOD counters are UInt_t


def test_histograms_bitwise_identical_with_ml(pair):
    info = SampleInfo("ttbar__nominal", "ttbar", "nominal", 0.37, N)
    results = {}
    for fmt, path in pair.items():
        hists, meta = process_file(path, info, chunksize=1100, scorer=FakeScorer(), log=QUIET)
        results[fmt] = (hists, meta)
    (ht, mt), (hr, mr) = results["ttree"], results["rntuple"]
    assert mt["cutflow"] == mr["cutflow"] and mt["cutflow"]["steps"]["all"] == N
    assert sorted(ht.hists) == sorted(hr.hists) and any(k.startswith("4j2b") for k in ht.hists)
    assert any("_ttbar" in k and not k.startswith("4j") for k in ht.hists)   # ML feature histograms
    for key in ht.hists:
        x, y = ht.hists[key], hr.hists[key]
        assert x.edges.tobytes() == y.edges.tobytes(), key
        assert x.sumw.tobytes() == y.sumw.tobytes() and x.sumw2.tobytes() == y.sumw2.tobytes(), key


def test_ml_training_data_identical(pair):
    data = {fmt: dataset.extract([path], chunksize=1300, max_per_parity=10_000, log=QUIET)
            for fmt, path in pair.items()}
    (dt, st), (dr, sr) = data["ttree"], data["rntuple"]
    assert {k: v for k, v in st.items() if k != "files"} == {k: v for k, v in sr.items() if k != "files"}
    assert st["4j2b"] > 0 and sorted(dt) == sorted(dr)
    for k in dt:
        assert np.asarray(dt[k]).tobytes() == np.asarray(dr[k]).tobytes(), k


def _layouts(path, n=50):
    """The same NanoAOD jets in the layouts of ROOT's RNTupleImporter and of plain vector fields."""
    rng = np.random.default_rng(3)
    counts = rng.integers(0, 5, n).astype(np.uint32)
    pt = ak.unflatten(rng.uniform(20, 90, int(counts.sum())).astype(np.float32), counts)
    jid = ak.unflatten(rng.integers(0, 7, int(counts.sum())).astype(np.int32), counts)
    lhe = ak.unflatten(rng.uniform(size=3 * n).astype(np.float32), np.full(n, 3))
    with uproot.recreate(path) as f:
        f.mkrntuple("Importer", {"event": np.arange(n, dtype=np.uint64),
                                 "_collection0": ak.zip({"Jet_pt": pt, "Jet_jetId": jid})})
        f.mkrntuple("Vectors", {"event": np.arange(n, dtype=np.uint64), "nJet": counts, "Jet_pt": pt,
                                "Jet_jetId": jid, "LHEPdfWeight": lhe,
                                "MET": ak.zip({"pt": np.arange(n, dtype=np.float32)})})
    return counts, pt, jid, lhe


def test_importer_and_vector_layouts(tmp_path):
    path = str(tmp_path / "layouts.root")
    counts, pt, jid, lhe = _layouts(path)
    for name in ("Importer", "Vectors"):
        with open_tree(path, name) as r:
            assert {"nJet", "Jet_pt", "Jet_jetId", "event"} <= set(r.keys())
            a = read_chunk(r, path, ["nJet", "Jet_pt", "Jet_jetId"], 10, 40)
            assert a["nJet"].type.content == ak.types.NumpyType("uint32")
            assert np.array_equal(ak.to_numpy(a["nJet"]), counts[10:40])
            assert ak.all(a["Jet_pt"] == pt[10:40]) and str(a["Jet_pt"].type) == "30 * var * float32"
            assert ak.all(a["Jet_jetId"] == jid[10:40])
            only_counts = read_chunk(r, path, ["nJet"], 0, 50)["nJet"]
            assert np.array_equal(ak.to_numpy(only_counts), counts)
    with open_tree(path, "Vectors") as r:
        a = read_chunk(r, path, ["nLHEPdfWeight", "LHEPdfWeight", "MET_pt"], 0, 50)
        assert np.all(ak.to_numpy(a["nLHEPdfWeight"]) == 3) and ak.all(a["LHEPdfWeight"] == lhe)
        assert np.array_equal(ak.to_numpy(a["MET_pt"]), np.arange(50, dtype=np.float32))


def test_errors_name_the_file_and_branch(pair, tmp_path):
    with open_tree(pair["rntuple"]) as r:
        with pytest.raises(InputFileError, match=r"missing branch\(es\) Jet_foo"):
            check_branches(r, ["Jet_pt", "Jet_foo"], pair["rntuple"])
    bad = str(tmp_path / "bad.root")
    with uproot.recreate(bad) as f:
        f.mkrntuple("Events", {"Jet_pt": np.zeros(3, np.float32), "event": np.zeros(3, np.float32)})
    with open_tree(bad) as r:
        with pytest.raises(InputFileError, match=r"bad.root.*Jet_pt \(one value per event, expected a list\)"
                                                 r".*event \(dtype float32"):
            check_branches(r, ["Jet_pt", "event"], bad)
    with pytest.raises(InputFileError, match=r"no tree 'Evts' \(TTrees/RNTuples in the file: Events, Runs"):
        with open_tree(pair["rntuple"], "Evts"):
            pass


def test_generate_mock_script_writes_rntuple(tmp_path):
    out = tmp_path / "f.root"
    res = subprocess.run([sys.executable, os.path.join(ROOT, "workflow_scripts", "generate_mock.py"),
                          "--sample", "wjets__nominal", "--index", "0", "--events", "200", "--seed", "1",
                          "--format", "rntuple", "--output", str(out)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "rntuple" in res.stdout
    with uproot.open(out) as f:
        assert f.classnames()["Events;1"] == "ROOT::RNTuple" and f["Events"].num_entries == 200


DATA = os.path.join(ROOT, "tests", "data", "rntuple")


@pytest.mark.parametrize("name", ["rntuple_root_importer.root", "rntuple_root_snapshot.root"])
def test_files_written_by_root(name):
    """RNTuples written by ROOT 6.40 (importer and RDataFrame snapshot of the TTree next to them):
    same branches, dtypes and values as the TTree, and bitwise-identical histograms (ML on)."""
    src, path = os.path.join(DATA, "ttree_uproot.root"), os.path.join(DATA, name)
    with uproot.open(path) as f:
        assert rntuple.format_version(f["Events"]) == (1, 0, 2, 0)      # what ROOT 6.40 writes
    with open_tree(src) as t, open_tree(path) as r:
        names = list(t.keys())
        assert set(names) <= set(r.keys())
        a, b = read_chunk(t, src, names, 0, t.num_entries), read_chunk(r, path, names, 0, r.num_entries)
    for n in names:
        assert str(a[n].type) == str(b[n].type), n
        assert ak.to_list(a[n]) == ak.to_list(b[n]), n
    info = SampleInfo("ttbar__nominal", "ttbar", "nominal", 0.37, 150)
    ht, mt = process_file(src, info, chunksize=70, scorer=FakeScorer(), log=QUIET)
    hr, mr = process_file(path, info, chunksize=70, scorer=FakeScorer(), log=QUIET)
    assert mt["cutflow"] == mr["cutflow"] and sorted(ht.hists) == sorted(hr.hists)
    for key in ht.hists:
        assert ht.hists[key].sumw.tobytes() == hr.hists[key].sumw.tobytes(), key
        assert ht.hists[key].sumw2.tobytes() == hr.hists[key].sumw2.tobytes(), key


def test_workflow_with_rntuple_mock_files(tmp_path):
    """The DAG with ``mock.format: rntuple`` (and the default ttree): the mock files are RNTuples,
    the per-file job reads them, and its partial histograms are bitwise those of the TTree run."""
    from agc_ttbar import layout
    from scaleout_helpers import copy_workflow, snakemake_env, write_config

    target = layout.partial("results", "ttbar__nominal", 0)
    partials = {}
    for fmt in ("ttree", "rntuple"):
        work = copy_workflow(tmp_path / fmt)
        mock = {"files_per_sample": 1, "events_per_file": 150, "events_per_file_overrides": {"ttbar__nominal": 1200}}
        if fmt == "rntuple":
            mock["format"] = "rntuple"                       # the default run leaves the key out
        write_config(work, {"use_inference": False, "mock": mock})
        res = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", target], cwd=work,
                             env=snakemake_env(), capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        with uproot.open(work / layout.mock_file("results", "ttbar__nominal", 0)) as f:
            kind = f.classnames()["Events;1"]
        assert kind == ("TTree" if fmt == "ttree" else "ROOT::RNTuple")
        with np.load(work / target, allow_pickle=False) as z:
            partials[fmt] = {k: z[k].tobytes() for k in z.files}
    assert sorted(partials["ttree"]) == sorted(partials["rntuple"]) and len(partials["ttree"]) > 10
    differ = [k for k in partials["ttree"] if partials["ttree"][k] != partials["rntuple"][k]]
    # only the metadata (file path, timing) may differ; every histogram array is the same bytes
    assert all("meta" in k for k in differ), differ


def test_pre_1_0_rntuple_hint():
    """A pre-1.0 RNTuple (class ROOT::Experimental::RNTuple, ROOT <= 6.32) is named in the error."""
    from agc_ttbar.io import _old_rntuple_hint

    class File:
        def classnames(self):
            return {"Events;1": "ROOT::Experimental::RNTuple"}

    assert "pre-1.0 ROOT::Experimental::RNTuple" in _old_rntuple_hint(File(), "Events")
    assert "ROOT 6.34" in _old_rntuple_hint(File(), "Events")
    assert _old_rntuple_hint(File(), "Runs") == ""


def test_unsupported_epoch_is_refused(pair, monkeypatch):
    monkeypatch.setattr(rntuple, "SUPPORTED_EPOCH", 2)
    with pytest.raises(InputFileError, match=r"rntuple.root: RNTuple 'Events' has on-disk format version 1\.0\.0\.1"):
        with open_tree(pair["rntuple"]):
            pass


@pytest.mark.integration
def test_rntuple_over_http_and_xrootd(pair):
    """An RNTuple served by real nginx and xrootd on loopback reads as the local file does."""
    import shutil

    from servers import procs

    folder = procs.served_folder()
    xrd = nginx = None
    try:
        xrd, nginx = procs.start_xrootd(folder), procs.start_nginx(folder)
        name = procs.publish(pair["rntuple"], folder, "rntuple/events.root")
        branches = ["Jet_pt", "nJet", "Muon_tightId", "event"]
        with open_tree(pair["rntuple"]) as r:
            local = read_chunk(r, pair["rntuple"], branches, 0, N)
        for url in (f"{xrd.url}/{name}", f"{nginx.url}{name}"):
            with open_tree(url) as r:
                assert isinstance(r, rntuple.NanoAODView) and r.num_entries == N
                remote = read_chunk(r, url, branches, 0, N)
            for b in branches:
                assert ak.to_list(remote[b]) == ak.to_list(local[b]), (url, b)
    finally:
        procs.stop_all(*(s for s in (xrd, nginx) if s is not None))
        shutil.rmtree(folder, ignore_errors=True)
