"""Tests of the embedded synthetic NanoAOD dataset (agc_ttbar.mock, workflow_scripts/generate_mock.py,
workflow_scripts/mock_inputs.py).

Small files are generated in a temporary folder; the selection comes from agc_ttbar.selection.
The comparison with real 2015 NanoAOD uses the 200 real events shipped in data/real/.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import awkward as ak
import numpy as np
import pytest
import uproot

from agc_ttbar import layout, selection
from agc_ttbar.config import ConfigError, validate_config
from agc_ttbar.fileset import build_fileset
from agc_ttbar.mock import validation as V
from agc_ttbar.mock.generator import EVENT_STRIDE, MockConfigError, generate_events
from agc_ttbar.mock.schema import CORE_BRANCHES, branch_table, round_mantissa
from agc_ttbar.mock.writer import read_counts, write_file
from agc_ttbar.samples import LUMI_PB, XSEC_PB

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GENPART = ("GenPart_pt", "GenPart_eta", "GenPart_phi", "GenPart_mass", "GenPart_pdgId",
           "GenPart_genPartIdxMother", "GenPart_statusFlags")
ANALYSIS_BRANCHES = tuple(dict.fromkeys(selection.BRANCHES + selection.ML_BRANCHES + selection.ID_BRANCHES + GENPART))
SEED = 12345


def _write(tmp, sample, index, n, **kw):
    full = kw.pop("full_layout", False)
    gen = generate_events(sample, index, n, SEED, **kw)
    path = layout.mock_file(str(tmp), sample, index)
    write_file(path, gen, "ZLIB:4", full_layout=full, seed_seq=[SEED, index])
    return path, gen


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mock")
    out = {}
    for sample, n in (("ttbar__nominal", 2500), ("single_top_s_chan__nominal", 700),
                      ("single_top_t_chan__nominal", 700), ("single_top_tW__nominal", 700),
                      ("wjets__nominal", 700)):
        out[sample] = _write(tmp, sample, 0, n)
    out["ttbar__nominal#1"] = _write(tmp, "ttbar__nominal", 1, 300)
    out["tmp"] = tmp
    return out


def _branch_info(tree, name):
    b = tree[name]
    interp = b.interpretation
    inner = getattr(interp, "content", interp)
    return inner.from_dtype.str, (b.count_branch.name if b.count_branch is not None else None)


# --- schema ----------------------------------------------------------------------------------

def test_embedded_table_matches_real_file(real_nanoaod):
    table = branch_table()
    with uproot.open(real_nanoaod) as f:
        tree = f["Events"]
        assert list(table) == list(tree.keys())
        for name, info in table.items():
            assert _branch_info(tree, name) == (info["dtype"].str, info["counter"]), name


def test_mock_schema_matches_real_nanoaod(files, real_nanoaod):
    path, _ = files["ttbar__nominal"]
    with uproot.open(path) as f:
        tree = f["Events"]
        names = set(tree.keys())
        assert set(ANALYSIS_BRANCHES) <= names
        assert set(CORE_BRANCHES) == names
        for counter in ("nJet", "nElectron", "nMuon", "nGenPart"):
            assert tree[counter].interpretation.from_dtype == np.dtype(">u4")
        mock_info = {n: _branch_info(tree, n) for n in names}
    table = branch_table()
    for name in names:  # against the embedded real table
        assert mock_info[name] == (table[name]["dtype"].str, table[name]["counter"]), name
    with uproot.open(real_nanoaod) as f:  # and against the real file itself, branch by branch
        real = f["Events"]
        for name in names:
            assert mock_info[name] == _branch_info(real, name), name


def test_full_layout_has_every_real_branch(tmp_path):
    path, gen = _write(tmp_path, "ttbar__nominal", 0, 40, full_layout=True)
    table = branch_table()
    with uproot.open(path) as f:
        tree = f["Events"]
        assert list(tree.keys()) == list(table)
        for name in ("Jet_pt", "nJet", "Muon_tightId", "LHEPdfWeight", "HLT_IsoMu20", "FatJet_pt"):
            assert _branch_info(tree, name) == (table[name]["dtype"].str, table[name]["counter"])
        arrays = tree.arrays(["nLHEPdfWeight", "LHEPdfWeight", "Jet_pt"])
    assert np.all(arrays["nLHEPdfWeight"] == 102)
    assert ak.all(ak.num(arrays["LHEPdfWeight"]) == 102)
    assert ak.all(arrays["Jet_pt"] == gen.branches["Jet_pt"])


def test_round_mantissa():
    x = np.array([1.0, 1.2345678, -3.3e-3, 1234.5678], dtype=np.float32)
    r = round_mantissa(x, 8)
    assert np.all(np.abs(r - x) <= np.abs(x) * 2.0 ** -8)
    assert np.all(r.view(np.uint32) & ((1 << 15) - 1) == 0)


# --- bookkeeping ---------------------------------------------------------------------------------

def test_runs_tree_event_numbers_and_determinism(files, tmp_path):
    path, gen = files["ttbar__nominal"]
    nevts, nentries = read_counts(path)
    assert (nevts, nentries) == (gen.nevts, 2500)
    assert gen.nevts > 5 * gen.n_kept  # the generator-level filter is far from transparent
    with uproot.open(path) as f:
        ev = f["Events"].arrays(["run", "luminosityBlock", "event"], library="np")
    assert np.all(ev["run"] == 1)
    assert np.all(np.diff(ev["event"].astype(np.int64)) > 0)
    assert ev["event"].max() <= gen.nevts and ev["event"].min() >= 1
    assert np.all(ev["luminosityBlock"] == (ev["event"] - 1) // 100 + 1)
    with uproot.open(files["ttbar__nominal#1"][0]) as f:
        ev1 = f["Events"]["event"].array(library="np")
    assert ev1.min() > EVENT_STRIDE  # file 1 numbers never collide with file 0
    # same seed and (sample, index): same physics content; another index: another stream
    again = generate_events("ttbar__nominal", 1, 300, SEED)
    first = files["ttbar__nominal#1"][1]
    for name in ("Jet_pt", "Electron_eta", "GenPart_pdgId", "event"):
        assert ak.all(again.branches[name] == first.branches[name]), name
    assert again.nevts == first.nevts
    other = generate_events("ttbar__nominal", 2, 300, SEED)
    assert not np.array_equal(ak.to_numpy(ak.flatten(other.branches["Jet_pt"]))[:50],
                              ak.to_numpy(ak.flatten(first.branches["Jet_pt"]))[:50])


def test_mock_inputs_and_fileset(files):
    tmp = str(files["tmp"])
    out = os.path.join(tmp, "inputs.json")
    cmd = [sys.executable, os.path.join(ROOT, "workflow_scripts", "mock_inputs.py"), "--files",
           layout.mock_file(tmp, "ttbar__nominal", 0), layout.mock_file(tmp, "wjets__nominal", 0), "--output", out]
    subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
    with open(out) as f:
        inputs = json.load(f)
    entry = inputs["ttbar"]["nominal"]["files"][0]
    assert entry == {"path": layout.mock_file(tmp, "ttbar__nominal", 0), "nevts": files["ttbar__nominal"][1].nevts,
                     "nentries": 2500}
    assert inputs["wjets"]["nominal"]["nevts_total"] == files["wjets__nominal"][1].nevts
    fs = build_fileset(inputs, ["ttbar__nominal", "wjets__nominal"])
    assert fs["wjets__nominal"]["files"][0]["nentries"] == 700
    assert fs["ttbar__nominal"]["weight"] == pytest.approx(XSEC_PB["ttbar"] * LUMI_PB / entry["nevts"])


# --- physics -------------------------------------------------------------------------------------

def _yields(files, sample):
    path, gen = files[sample]
    ev = V.read(path)
    reg, jets = V.regions(ev)
    w = XSEC_PB[sample.split("__")[0]] * LUMI_PB / gen.nevts
    return ev, reg, jets, (reg["4j1b"].sum() * w, reg["4j2b"].sum() * w)


@pytest.mark.parametrize("sample,factor", [("ttbar__nominal", 2), ("wjets__nominal", 2),
                                           ("single_top_tW__nominal", 2), ("single_top_t_chan__nominal", 2),
                                           ("single_top_s_chan__nominal", 3)])
def test_yields_within_factor_of_agc_reference(files, sample, factor):
    _, _, _, y = _yields(files, sample)
    ref = V.REFERENCE_YIELDS_N1[sample]
    for got, want in zip(y, ref):
        assert want / factor < got < want * factor, (sample, y, ref)


def test_ttbar_regions_trijet_peak_and_truth_matching(files):
    ev, reg, jets, _ = _yields(files, "ttbar__nominal")
    n1, n2 = int(reg["4j1b"].sum()), int(reg["4j2b"].sum())
    assert 0.12 < n1 / 2500 < 0.4 and 0.3 < n2 / 2500 < 0.7 and n2 > n1  # 4j2b dominates, as in the AGC
    m = V.trijet_mass(ev, reg["4j2b"], jets)
    assert len(m) == n2
    assert 160 <= V.peak_position(m) <= 185
    labels = V.truth_labels(ev, reg["4j2b"], jets)
    kept = labels.sum(axis=1) == 48
    assert 0.15 < kept.mean() < 0.7  # reference: ~22% of 4j2b events
    # a kept event has one W pair, one hadronic-top b and one leptonic-top b
    assert np.all(np.sort(labels[kept], axis=1) == [-6, 6, 24, 24])
    # W+jets has no top: nothing passes
    evw, regw, jetsw, _ = _yields(files, "wjets__nominal")
    assert not np.any(V.truth_labels(evw, regw["4j2b"], jetsw).sum(axis=1) == 48)


def test_truth_matching_agrees_with_coffea(files):
    pytest.importorskip("coffea")
    from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

    path, _ = files["ttbar__nominal#1"]
    with pytest.warns(RuntimeWarning) if False else _nowarn():
        events = NanoEventsFactory.from_root({path: "Events"}, schemaclass=NanoAODSchema, mode="eager").events()
    ev = V.read(path)
    reg, jets = V.regions(ev)
    mine = V.truth_labels(ev, reg["4j2b"], jets)
    # the AGC training filter (jetassignment_training.py) with coffea's GenParticle methods
    sel = events[reg["4j2b"]]
    j = sel.Jet[jets[reg["4j2b"]]][:, :4]
    g = sel.GenPart
    g = g[~ak.is_none(g.distinctParent, axis=1)]
    g = g[(abs(g.distinctParent.pdgId) == 6) | (abs(g.distinctParent.pdgId) == 24)]
    g = g[(abs(g.pdgId) < 7) & (abs(g.pdgId) > 0)]
    g = g[g.hasFlags("isLastCopy")]
    near = j.nearest(g, threshold=0.4)
    parent = near.distinctParent
    gc = abs(ak.flatten(parent.distinctChildren.distinctChildren.pdgId, axis=-1))
    lep = ak.sum((gc % 2 == 0) & (gc > 10) & (gc < 19), axis=-1) > 0
    nu = ak.sum((gc % 2 == 1) & (gc > 10) & (gc < 19), axis=-1) > 0
    labels = np.abs(ak.to_numpy(ak.fill_none(ak.pad_none(ak.fill_none(parent.pdgId, 100), 4), 100)))
    both = ak.to_numpy(ak.fill_none(ak.pad_none(ak.fill_none(lep & nu, False), 4), False))
    labels[both] = -6
    assert labels.shape == mine.shape
    assert np.array_equal(labels, mine)
    assert (labels.sum(axis=1) == 48).sum() > 0


class _nowarn:
    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc):
        self._w.__exit__(*exc)


def test_variations_differ_physically():
    n = 1200
    nom = generate_events("ttbar__nominal", 0, n, SEED)
    up = generate_events("ttbar__scaleup", 0, n, SEED)
    down = generate_events("ttbar__scaledown", 0, n, SEED)
    ps = generate_events("ttbar__PS_var", 0, n, SEED)
    me = generate_events("ttbar__ME_var", 0, n, SEED)

    def njets(g):
        return float(ak.mean(ak.num(g.branches["Jet_pt"][g.branches["Jet_pt"] > 30])))

    assert njets(up) > njets(nom) > njets(down)  # more / less radiation

    def top_pt(g):
        pdg, fl = g.branches["GenPart_pdgId"], g.branches["GenPart_statusFlags"]
        return float(ak.mean(g.branches["GenPart_pt"][(abs(pdg) == 6) & ((fl & (1 << 13)) != 0)]))

    assert abs(top_pt(me) / top_pt(nom) - 1) > 0.04  # ME_var: different top pt spectrum

    def b_response(g):
        j = g.branches
        sel = (j["Jet_hadronFlavour"] == 5) & (j["Jet_pt"] > 30) & (abs(j["Jet_eta"]) < 2.4)
        return float(ak.mean(j["Jet_btagCSVV2"][sel] > 0.5)), float(ak.mean(j["Jet_pt"][sel]))

    assert b_response(ps)[0] < b_response(nom)[0] - 0.02  # PS_var: softer b fragmentation, lower tag rate


def test_muon_path_knob():
    tight = generate_events("ttbar__nominal", 0, 400, SEED, muon_tight_fraction=1.0)
    b = tight.branches
    ev = ak.Array({k: v for k, v in b.items() if k.startswith(("Electron_", "Muon_"))})
    ele, mu = selection.lepton_masks(ev)
    n_mu = int(ak.sum(ak.sum(mu, axis=1) == 1) )
    assert n_mu > 100  # muon events enter when muons can be tight
    assert ak.any(b["Muon_tightId"])
    real_like = generate_events("ttbar__nominal", 0, 200, SEED)
    assert not ak.any(real_like.branches["Muon_tightId"])  # the 2015 files: tightId False for every muon
    assert real_like.nevts > tight.nevts  # electron-only selection: lower filter efficiency


# --- errors --------------------------------------------------------------------------------------

def test_bad_parameters_fail_clearly(tmp_path):
    with pytest.raises(MockConfigError, match="unknown sample"):
        generate_events("ttbar__weird", 0, 10, 1)
    with pytest.raises(MockConfigError, match=">= 0"):
        generate_events("ttbar__nominal", 0, -5, 1)
    script = os.path.join(ROOT, "workflow_scripts", "generate_mock.py")
    r = subprocess.run([sys.executable, script, "--sample", "zz__nominal", "--index", "0", "--events", "5",
                        "--seed", "1", "--output", str(tmp_path / "x.root")], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "unknown sample 'zz__nominal'" in r.stderr
    r = subprocess.run([sys.executable, script, "--sample", "wjets__nominal", "--index", "0", "--events", "-3",
                        "--seed", "1", "--output", str(tmp_path / "x.root")], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "must be >= 0" in r.stderr
    assert not (tmp_path / "x.root").exists()
    with pytest.raises(ConfigError, match="mock.events_per_file"):
        validate_config({"mock": {"events_per_file": -1}})
    with pytest.raises(ConfigError, match="events_per_file_overrides"):
        validate_config({"mock": {"events_per_file_overrides": {"ttbar__foo": 10}}})


def test_empty_file(tmp_path):
    path, gen = _write(tmp_path, "single_top_tW__nominal", 0, 0)
    assert read_counts(path) == (0, 0)
    with uproot.open(path) as f:
        assert set(CORE_BRANCHES) == set(f["Events"].keys())
