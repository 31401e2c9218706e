"""The per-file job: real-file facts, an independent implementation, chunk/file-split invariance,
the ML hook and error handling."""

import importlib.util
import json
import math
import pathlib
import statistics

import awkward as ak
import hist
import numpy as np
import pytest
import uproot
import vector

from agc_ttbar.histograms import HistogramSet
from agc_ttbar.io import InputFileError
from agc_ttbar.ml.features import FEATURES
from agc_ttbar.processing import SampleInfo, branches_needed, process_file
from agc_ttbar.selection import ML_BRANCHES, jet_mask

import synthetic_nanoaod as synth
from handmade import FakeScorer

vector.register_awkward()


def load_script(name):
    """Import workflow_scripts/{name}.py (a plain script, not a package module)."""
    path = pathlib.Path(__file__).resolve().parent.parent / "workflow_scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"workflow_script_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
QUIET = lambda msg: None  # noqa: E731
N_EVENTS = 12_000


@pytest.fixture(scope="module")
def synth_events():
    return synth.make_events(N_EVENTS, seed=11)


@pytest.fixture(scope="module")
def synth_file(tmp_path_factory, synth_events):
    path = tmp_path_factory.mktemp("synth") / "events.root"
    synth.write_nanoaod(str(path), synth_events)
    return str(path)


# ---------------------------------------------------------------------------------------------
# the real 200-event file (spec §11)

def test_real_file_cutflow(real_nanoaod):
    info = SampleInfo.from_key("ttbar__nominal", 1.847533, 1_334_428)
    logs = []
    hists, meta = process_file(str(real_nanoaod), info, chunksize=64, log=logs.append, expected_entries=200)
    cf = meta["cutflow"]
    assert cf["steps"] == {"all": 200, "exactly_1l": 14, "atleast_4j": 0, "4j1b": 0, "4j2b": 0}
    assert cf["single"]["exactly_1l_electron"] == 14 and cf["single"]["exactly_1l_muon"] == 0
    assert cf["single"]["atleast_4j"] == 2
    assert hists.hists == {}                       # nothing to write
    assert sum(line.startswith("chunk ") for line in logs) == 4 and "chunk 4/4" in logs[-2]
    assert not any(b in meta["branches"] for b in ("Jet_qgl", "Electron_phi", "Muon_mass"))
    # >= 4 jets also with pT x 1.03 (spec §11)
    t = uproot.open(real_nanoaod)["Events"]
    a = t.arrays(["Jet_pt", "Jet_eta", "Jet_jetId"])
    n4 = ak.sum(jet_mask(a.Jet_pt * 1.03, a.Jet_eta, a.Jet_jetId), axis=1) >= 4
    assert int(ak.sum(n4)) == 2


def test_real_file_through_the_script(real_nanoaod, tmp_path, capsys):
    script = load_script("process_file")

    fileset = {"ttbar__nominal": {"process": "ttbar", "variation": "nominal", "xsec": 729.84, "lumi": 3378.0,
                                  "nevts_total": 200, "weight": 729.84 * 3378 / 200,
                                  "files": [{"index": 0, "path": str(real_nanoaod), "nevts": 200}]}}
    fs = tmp_path / "fileset.json"
    fs.write_text(json.dumps(fileset))
    out = tmp_path / "partial" / "00000.npz"
    rc = script.main(["--fileset", str(fs), "--sample", "ttbar__nominal", "--index", "0", "--output", str(out),
                      "--chunksize", "100"])
    assert rc == 0
    hs, meta = HistogramSet.load(str(out))
    assert hs.hists == {} and meta["cutflow"]["steps"]["exactly_1l"] == 14 and meta["index"] == 0
    assert "chunk 2/2" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# independent implementation (plain awkward + vector + hist, written from the spec)

def _mix(z):
    m = (1 << 64) - 1
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
    return z ^ (z >> 31)


def _smear_factors(seed, run, lumi, event, counts):
    """pt_res_up factors with Python integers and statistics.NormalDist (the documented rule)."""
    m, g = (1 << 64) - 1, 0x9E3779B97F4A7C15
    nd = statistics.NormalDist(1.0, 0.05)
    out = []
    h0 = _mix((seed + g) & m)
    for r, lb, ev, n in zip(run.tolist(), lumi.tolist(), event.tolist(), counts.tolist()):
        h = _mix(((h0 + g) & m) ^ r)
        h = _mix(((h + g) & m) ^ lb)
        h = _mix(((h + g) & m) ^ ev)
        for j in range(n):
            hj = _mix(((h + g) & m) ^ j)
            out.append(nd.inv_cdf(((hj >> 11) + 0.5) * 2.0**-53))
    return np.array(out)


def independent_histograms(path, process, variation, weight, seed=0, btag_threshold=0.5):
    ev = uproot.open(path)["Events"].arrays()
    ele = ((ev.Electron_pt > 30) & (abs(ev.Electron_eta) < 2.1) & (ev.Electron_cutBased == 4)
           & (ev.Electron_sip3d < 4))
    mu = ((ev.Muon_pt > 30) & (abs(ev.Muon_eta) < 2.1) & ev.Muon_tightId & (ev.Muon_sip3d < 4)
          & (ev.Muon_pfRelIso04_all < 0.15))
    n_lep = ak.sum(ele, axis=1) + ak.sum(mu, axis=1)
    pt64 = ak.values_astype(ev.Jet_pt, np.float64)
    out = {}

    def fill(key, x, w):
        h = out.setdefault(key, hist.Hist.new.Reg(25, 50, 550).Weight())
        h.fill(ak.to_numpy(x), weight=w)

    def name(region, var):
        return f"{region}_{process}" if var == "nominal" else f"{region}_{process}_{var}"

    if variation == "nominal":
        factors = {"nominal": None, "pt_scale_up": 1.03,
                   "pt_res_up": ak.unflatten(_smear_factors(seed, ev.run, ev.luminosityBlock, ev.event,
                                                            ak.num(ev.Jet_pt)), ak.num(ev.Jet_pt))}
    else:
        factors = {variation: None}
    for var, f in factors.items():
        pt = pt64 if f is None else pt64 * f
        jets = ak.zip({"pt": pt, "eta": ev.Jet_eta, "phi": ev.Jet_phi, "mass": ev.Jet_mass,
                       "btag": ev.Jet_btagCSVV2}, with_name="Momentum4D")
        jets = jets[(pt > 30) & (abs(ev.Jet_eta) < 2.4) & ((ev.Jet_jetId & 4) != 0)]
        nb = ak.sum(jets.btag > btag_threshold, axis=1)
        base = (n_lep == 1) & (ak.num(jets.pt) >= 4)
        for region, sel in (("4j1b", base & (nb == 1)), ("4j2b", base & (nb >= 2))):
            rj = jets[sel]
            if region == "4j1b":
                obs = ak.sum(rj.pt, axis=-1)
            else:
                tri = ak.combinations(rj, 3, fields=["j1", "j2", "j3"])
                p4 = tri.j1 + tri.j2 + tri.j3
                maxb = np.maximum(np.maximum(tri.j1.btag, tri.j2.btag), tri.j3.btag)
                p4 = p4[maxb > btag_threshold]
                obs = ak.flatten(p4[ak.argmax(p4.pt, axis=1, keepdims=True)].mass)
            n = len(obs)
            fill(name(region, var), obs, np.full(n, weight))
            if var == "nominal" and variation == "nominal":
                for i in range(4):
                    pti = ak.to_numpy(rj.pt[:, i])
                    fill(name(region, f"btag_var_{i}_up"), obs, weight * (1 + pti * 0.075 / 50))
                    fill(name(region, f"btag_var_{i}_down"), obs, weight * (1 - pti * 0.075 / 50))
                if process == "wjets":
                    fill(name(region, "scale_var_up"), obs, np.full(n, weight * 1.025))
                    fill(name(region, "scale_var_down"), obs, np.full(n, weight * 0.975))
    return {k: h for k, h in out.items() if h.values(flow=True).any()}


@pytest.mark.parametrize("sample,weight", [("wjets__nominal", 41.883472), ("ttbar__ME_var", 1.817069)])
def test_matches_independent_implementation(synth_file, sample, weight):
    info = SampleInfo.from_key(sample, weight, 10_000)
    hists, meta = process_file(synth_file, info, chunksize=5000, pt_res_seed=0, log=QUIET)
    ref = independent_histograms(synth_file, info.process, info.variation, weight, seed=0)
    assert sorted(hists.hists) == sorted(ref)
    n_expected = 2 * (1 if info.variation != "nominal" else 3 + 8 + 2)
    assert len(ref) == n_expected
    for key, h in ref.items():
        mine = hists.hists[key]
        assert np.allclose(mine.values(flow=True), h.values(flow=True), rtol=1e-12, atol=0), key
        assert np.allclose(mine.variances(flow=True), h.variances(flow=True), rtol=1e-12, atol=0), key
        assert h.values(flow=True).sum() > 0
    # the variations really differ from nominal
    if info.variation == "nominal":
        nom = hists.hists["4j2b_wjets"].values(flow=True)
        for v in ("pt_scale_up", "pt_res_up", "btag_var_0_up"):
            assert not np.array_equal(hists.hists[f"4j2b_wjets_{v}"].values(flow=True), nom)


def test_btag_threshold_knob_matches_independent_implementation(synth_file):
    """processing.btag_threshold moves the regions and the m_bjj trijet choice like a hard cut."""
    info = SampleInfo.from_key("wjets__nominal", 41.883472, 10_000)
    default, _ = process_file(synth_file, info, chunksize=5000, log=QUIET)
    hists, _ = process_file(synth_file, info, chunksize=5000, log=QUIET, btag_threshold=0.7)
    ref = independent_histograms(synth_file, "wjets", "nominal", 41.883472, btag_threshold=0.7)
    assert sorted(hists.hists) == sorted(ref)
    for key, h in ref.items():
        assert np.allclose(hists.hists[key].values(flow=True), h.values(flow=True), rtol=1e-12, atol=0), key
    assert not np.array_equal(hists.hists["4j2b_wjets"].values(flow=True),
                              default.hists["4j2b_wjets"].values(flow=True))


# ---------------------------------------------------------------------------------------------
# chunking and file splits give the same bits

def _limbs(hs):
    return {k: (h.sumw.copy(), h.sumw2.copy()) for k, h in hs.hists.items()}


def test_chunking_and_file_split_are_bitwise_identical(synth_file, synth_events, tmp_path):
    info = SampleInfo.from_key("ttbar__nominal", 1.847533, 10_000)
    base, _ = process_file(synth_file, info, chunksize=N_EVENTS, scorer=FakeScorer(), log=QUIET)
    ref = _limbs(base)
    assert len(ref) == 22 + 20 * 11          # 2 regions x 11 labels, 20 ML features x 11 labels
    for chunksize in (4999, 1234):
        hs, _ = process_file(synth_file, info, chunksize=chunksize, scorer=FakeScorer(), log=QUIET)
        got = _limbs(hs)
        assert got.keys() == ref.keys()
        for k in ref:
            assert np.array_equal(got[k][0], ref[k][0]) and np.array_equal(got[k][1], ref[k][1]), (chunksize, k)
    # the same events split into two files, merged in either order
    cut = 7321
    parts = []
    for i, (a, b) in enumerate(((0, cut), (cut, N_EVENTS))):
        p = tmp_path / f"part{i}.root"
        synth.write_nanoaod(str(p), synth.slice_events(synth_events, a, b))
        parts.append(process_file(str(p), info, chunksize=3000, scorer=FakeScorer(), log=QUIET)[0])
    for order in ((0, 1), (1, 0)):
        total = HistogramSet()
        for i in order:
            total += parts[i]
        got = _limbs(total)
        assert got.keys() == ref.keys()
        for k in ref:
            assert np.array_equal(got[k][0], ref[k][0]) and np.array_equal(got[k][1], ref[k][1]), k


# ---------------------------------------------------------------------------------------------
# ML hook

def test_ml_hook_fills_features_like_4j2b(synth_file):
    info = SampleInfo.from_key("ttbar__nominal", 2.0, 10_000)
    scorer = FakeScorer()
    hists, meta = process_file(synth_file, info, chunksize=6000, scorer=scorer, log=QUIET)
    assert meta["ml"] and all(b in meta["branches"] for b in ML_BRANCHES)
    assert len(scorer.calls) == 2 * 3            # 2 chunks x (nominal, pt_scale_up, pt_res_up)
    n_4j2b = hists.hists["4j2b_ttbar"].values(flow=True).sum() / 2.0
    assert sum(c["n"] for c in scorer.calls[0::3]) == n_4j2b
    c = scorer.calls[0]
    assert set(c["jets"]) == {"pt", "eta", "phi", "mass", "btag", "qgl"}
    assert ak.all(ak.num(c["jets"]["pt"]) >= 4) and ak.all(c["jets"]["pt"] > 30)
    assert ak.all(ak.sum(c["jets"]["btag"] > 0.5, axis=1) >= 2)
    assert set(c["lepton"]) == {"pt", "eta", "phi", "mass"} and np.all(c["lepton"]["pt"] > 30)
    assert c["event"].dtype == np.uint64
    for name, lo, hi in FEATURES:
        for label in ("", "_pt_scale_up", "_pt_res_up", "_btag_var_3_down"):
            h = hists.hists[f"{name}_ttbar{label}"]
            assert h.edges[0] == lo and h.edges[-1] == hi and h.nbins == 25
        # same total weight as the 4j2b histogram, for nominal and weight variations
        for label in ("", "_btag_var_1_up"):
            assert np.isclose(hists.hists[f"{name}_ttbar{label}"].values(flow=True).sum(),
                              hists.hists[f"4j2b_ttbar{label}"].values(flow=True).sum(), rtol=1e-12)
    # the pt_scale_up call sees varied jet pT
    assert ak.all(ak.min(scorer.calls[1]["jets"]["pt"], axis=1) > 30)


def test_without_ml_the_ml_branches_are_not_read(synth_events, tmp_path):
    path = tmp_path / "no_ml_branches.root"
    synth.write_nanoaod(str(path), synth.slice_events(synth_events, 0, 2000),
                        drop=("Jet_qgl", "Electron_phi", "Electron_mass", "Muon_phi", "Muon_mass"))
    info = SampleInfo.from_key("ttbar__nominal", 1.0, 2000)
    hists, meta = process_file(str(path), info, log=QUIET)
    assert hists.hists and not any(b in meta["branches"] for b in ML_BRANCHES if b != "event")
    with pytest.raises(InputFileError, match=r"missing branch\(es\) Electron_phi, Electron_mass, Muon_phi, "
                                             r"Muon_mass, Jet_qgl"):
        process_file(str(path), info, scorer=FakeScorer(), log=QUIET)
    # alternative samples do not need the event identity (no pt_res_up)
    assert "event" not in branches_needed("ME_var", False)


# ---------------------------------------------------------------------------------------------
# errors and checks

def test_input_errors(tmp_path, synth_file):
    info = SampleInfo.from_key("ttbar__nominal", 1.0, 10)
    with pytest.raises(InputFileError, match="does not exist"):
        process_file(str(tmp_path / "nope.root"), info, log=QUIET)
    bad = tmp_path / "bad.root"
    bad.write_bytes(b"not a root file")
    with pytest.raises(InputFileError, match="cannot open input file .*bad.root"):
        process_file(str(bad), info, log=QUIET)
    with pytest.raises(InputFileError, match="has no tree 'Tree'.*TTrees/RNTuples in the file: Events"):
        process_file(synth_file, info, tree_name="Tree", log=QUIET)
    logs = []
    process_file(synth_file, info, expected_entries=N_EVENTS + 1, log=logs.append, entry_stop=10)
    assert any(line.startswith("WARNING") and "the fileset says" in line for line in logs)
    with pytest.raises(InputFileError, match="nevts_mismatch"):
        process_file(synth_file, info, expected_entries=5, nevts_mismatch="fail", log=QUIET)


def test_empty_file(tmp_path, synth_events):
    path = tmp_path / "empty.root"
    synth.write_nanoaod(str(path), synth.slice_events(synth_events, 0, 0))
    hists, meta = process_file(str(path), SampleInfo.from_key("wjets__nominal", 1.0, 1), log=QUIET)
    assert hists.hists == {} and meta["nevents"] == 0 and meta["entries"] == 0
    assert math.isfinite(meta["peak_rss_mb"])
