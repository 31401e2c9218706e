"""Flags are booleans: an integer-typed Muon_tightId is read as ``!= 0`` (issue 14, point 7)."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import uproot

from agc_ttbar.io import InputFileError, check_branches, open_tree
from agc_ttbar.ml import dataset
from agc_ttbar.processing import SampleInfo, process_file

import synthetic_nanoaod as synth
from handmade import FakeScorer

QUIET = lambda msg: None  # noqa: E731


@pytest.fixture(scope="module")
def bool_and_int8_files(tmp_path_factory):
    """The same events twice: Muon_tightId stored as bool, and as int8 with assorted non-zero
    values for True (2 and -128 have bit 0 clear, so a bitwise ``&`` would drop them)."""
    ev = synth.make_events(8000, seed=23)
    folder = tmp_path_factory.mktemp("flags")
    ref, flagged = folder / "bool.root", folder / "int8.root"
    synth.write_nanoaod(str(ref), ev)
    tight = np.asarray(ev["Muon"]["tightId"], dtype=bool)
    values = np.array([1, 2, -1, 127, -128], dtype=np.int8)[np.arange(len(tight)) % 5]
    ev_int = dict(ev, Muon=dict(ev["Muon"], tightId=np.where(tight, values, np.int8(0)).astype(np.int8)))
    synth.write_nanoaod(str(flagged), ev_int, types={"Muon_tightId": "int8"})
    with uproot.open(flagged) as f:
        assert f["Events"]["Muon_tightId"].interpretation.content.to_dtype == np.dtype(">i1")
        stored = ak.flatten(f["Events"]["Muon_tightId"].array())
        assert set(np.unique(ak.to_numpy(stored))) == {0, 1, 2, -1, 127, -128}
    return str(ref), str(flagged)


def _limbs(hs):
    return {k: (h.sumw.copy(), h.sumw2.copy()) for k, h in hs.hists.items()}


def test_int8_tight_id_gives_the_histograms_of_the_bool_file(bool_and_int8_files):
    ref_path, int_path = bool_and_int8_files
    info = SampleInfo.from_key("ttbar__nominal", 1.847533, 10_000)
    ref, meta_ref = process_file(ref_path, info, chunksize=3000, scorer=FakeScorer(), log=QUIET)
    got, meta = process_file(int_path, info, chunksize=3000, scorer=FakeScorer(), log=QUIET)
    assert meta["cutflow"] == meta_ref["cutflow"]
    assert meta_ref["cutflow"]["single"]["exactly_1l_muon"] > 100
    a, b = _limbs(ref), _limbs(got)
    assert a.keys() == b.keys() and len(a) == 22 + 20 * 11
    for k in a:   # ML features too: they use the selected lepton's kinematics
        assert np.array_equal(a[k][0], b[k][0]) and np.array_equal(a[k][1], b[k][1]), k
    assert any(h[0].any() for h in a.values())


def test_int8_tight_id_in_the_training_selection(bool_and_int8_files):
    """The ML training selection (awkward arrays) reads the flag the same way."""
    out = []
    for path in bool_and_int8_files:
        with uproot.open(path) as f:
            arrays = f["Events"].arrays(list(dataset.selection.BRANCHES + dataset.selection.ML_BRANCHES))
        ev, jets, lepton, region = dataset.selected_4j2b(arrays)
        out.append((region, lepton))
    assert out[0][0].sum() > 50 and np.array_equal(out[0][0], out[1][0])
    for col in out[0][1]:
        assert np.array_equal(out[0][1][col], out[1][1][col]), col


def test_branch_type_check_accepts_integer_flags_only(tmp_path):
    ev = synth.make_events(50, seed=2)
    branches = ["Muon_tightId", "Electron_cutBased", "Jet_jetId", "Muon_pt"]
    for dtype in ("bool", "int8", "uint8", "int32"):
        path = tmp_path / f"{dtype}.root"
        synth.write_nanoaod(str(path), ev, types={"Muon_tightId": dtype})
        with open_tree(str(path), "Events") as tree:
            check_branches(tree, branches, str(path))
    bad = tmp_path / "float.root"
    synth.write_nanoaod(str(bad), ev, types={"Muon_tightId": "float32", "Electron_cutBased": "float32"})
    with open_tree(str(bad), "Events") as tree, pytest.raises(InputFileError) as exc:
        check_branches(tree, branches, str(bad))
    msg = str(exc.value)
    assert str(bad) in msg and "Muon_tightId (dtype float32, expected an integer or bool)" in msg
    assert "Electron_cutBased (dtype float32, expected an integer or bool)" in msg
    assert "Jet_jetId" not in msg
