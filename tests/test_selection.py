"""Every cut of spec §2 pinned on hand-made values, alone and through the per-file job."""

import numpy as np
import pytest

from agc_ttbar.processing import FileProcessor, SampleInfo
from agc_ttbar.selection import btag_mask, electron_mask, jet_mask, muon_mask, region_masks

from handmade import chunk, electron, jet, muon

f32 = np.float32


def test_electron_cuts_edges():
    pt = np.array([30.0, 30.01, 45, 45, 45, 45, 45, 45], dtype=f32)
    eta = np.array([0, 0, 2.1, -2.09, 0, 0, 0, 0], dtype=f32)
    cut_based = np.array([4, 4, 4, 4, 3, 4, 4, 0], dtype=np.int32)
    sip3d = np.array([1, 1, 1, 1, 1, 4.0, 3.99, 1], dtype=f32)
    assert electron_mask(pt, eta, cut_based, sip3d).tolist() == [False, True, False, True, False, False, True, False]


def test_muon_cuts_edges():
    pt = np.array([30.0, 31, 31, 31, 31, 31, 31, 31], dtype=f32)
    eta = np.array([0, 2.1, 0, 0, 0, 0, 0, -2.0], dtype=f32)
    tight = np.array([True, True, False, True, True, True, True, True])
    sip3d = np.array([1, 1, 1, 4.0, 1, 1, 1, 1], dtype=f32)
    iso = np.array([0.0, 0.0, 0.0, 0.0, 0.15, 0.1499, 0.0, 0.0], dtype=f32)
    assert muon_mask(pt, eta, tight, sip3d, iso).tolist() == [False, False, False, False, False, True, True, True]


def test_jet_cuts_edges():
    pt = np.array([30.0, 30.001, 50, 50, 50, 50, 50, 50], dtype=np.float64)
    eta = np.array([0, 0, 2.4, -2.4, 2.3999, 0, 0, 0], dtype=f32)
    jet_id = np.array([6, 6, 6, 6, 6, 2, 4, 7], dtype=np.int32)
    # jetId is a bit field: bit 2 (value 4) = tight-lepton-veto; 2 fails, 4/6/7 pass
    assert jet_mask(pt, eta, jet_id).tolist() == [False, True, False, False, True, False, True, True]


def test_btag_threshold_is_strict():
    assert btag_mask(np.array([0.5, 0.50001, 0.49, 1.0], dtype=f32)).tolist() == [False, True, False, True]


def test_region_masks():
    n_lep = np.array([1, 1, 1, 1, 0, 2, 1])
    n_jet = np.array([4, 7, 3, 4, 4, 4, 5])
    n_b = np.array([1, 1, 1, 2, 1, 2, 0])
    r = region_masks(n_lep, n_jet, n_b)
    assert r["4j1b"].tolist() == [True, True, False, False, False, False, False]
    assert r["4j2b"].tolist() == [False, False, False, True, False, False, False]


def _run(events, sample="ttbar__nominal", weight=1.0):
    p = FileProcessor(SampleInfo.from_key(sample, weight, 100))
    p.process_chunk(chunk(events))
    return p


def _count(p, key):
    h = p.hists.hists.get(key)
    return 0.0 if h is None else float(h.values(flow=True).sum())


def _four_jets(**kw):
    """Four good jets, the first one b-tagged, plus overrides for jet 0."""
    return [jet(pt=100, btagCSVV2=0.9, **kw), jet(pt=80), jet(pt=60), jet(pt=40)]


def test_event_selection_through_the_job():
    e = [electron()]
    events = [
        {"jets": _four_jets(), "electrons": e},                                        # 4j1b
        {"jets": _four_jets() + [jet(pt=35)] * 3, "electrons": e},                      # 7 jets, 4j1b
        {"jets": _four_jets()[:3] + [jet(pt=30.0)], "electrons": e},                    # 4th jet pT == 30
        {"jets": _four_jets()[:3] + [jet(pt=40, eta=2.4)], "electrons": e},             # |eta| == 2.4
        {"jets": _four_jets()[:3] + [jet(pt=40, jetId=2)], "electrons": e},             # jetId 2 fails
        {"jets": _four_jets()[:3] + [jet(pt=40, jetId=6, btagCSVV2=0.5)], "electrons": e},  # btag 0.5: 1b
        {"jets": _four_jets()[:3] + [jet(pt=40, btagCSVV2=0.51)], "electrons": e},     # 2 b: 4j2b
        {"jets": _four_jets(), "electrons": e, "muons": [muon()]},                      # 2 leptons
        {"jets": _four_jets(), "muons": [muon()]},                                      # muon 4j1b
        {"jets": _four_jets(), "muons": [muon(tightId=False)]},                         # no lepton
        {"jets": _four_jets(), "electrons": [electron(cutBased=3)]},                    # no lepton
        {"jets": [jet(pt=40)] * 4, "electrons": e},                                     # 0 b-tags
    ]
    p = _run(events)
    cf = p.cutflow
    assert cf["steps"] == {"all": 12, "exactly_1l": 9, "atleast_4j": 6, "4j1b": 4, "4j2b": 1}
    assert cf["single"]["exactly_1l_electron"] == 8 and cf["single"]["exactly_1l_muon"] == 1
    assert cf["single"]["atleast_4j"] == 9  # all but the three 3-good-jet events
    assert _count(p, "4j1b_ttbar") == 4.0
    assert _count(p, "4j2b_ttbar") == 1.0
    # pT x 1.03 lifts the 30 GeV jet over the cut: that event enters 4j1b in pt_scale_up only
    assert _count(p, "4j1b_ttbar_pt_scale_up") == 5.0


def test_btag_threshold_through_the_job():
    e = [electron()]
    base = [jet(pt=100, btagCSVV2=0.9), jet(pt=80), jet(pt=60)]
    p = _run([{"jets": base + [jet(pt=40, btagCSVV2=0.5)], "electrons": e},
              {"jets": base + [jet(pt=40, btagCSVV2=0.5001)], "electrons": e}])
    assert _count(p, "4j1b_ttbar") == 1.0 and _count(p, "4j2b_ttbar") == 1.0


def test_jet_pt_exactly_30_after_variation():
    # 30 / 1.03 rounds to a float32 whose product with 1.03 (float64) is just below or above 30;
    # the cut is applied to that product, so the outcome follows the arithmetic, not the label.
    pt = f32(30.0 / 1.03)
    varied = np.float64(pt) * 1.03
    p = _run([{"jets": [jet(pt=100, btagCSVV2=0.9), jet(pt=80), jet(pt=60), jet(pt=float(pt))],
               "electrons": [electron()]}])
    assert _count(p, "4j1b_ttbar") == 0.0
    assert _count(p, "4j1b_ttbar_pt_scale_up") == (1.0 if varied > 30 else 0.0)


def test_alternative_sample_fills_only_its_label():
    p = _run([{"jets": _four_jets(), "electrons": [electron()]}], sample="ttbar__ME_var")
    assert sorted(p.hists.hists) == ["4j1b_ttbar_ME_var"]


@pytest.mark.parametrize("n_extra", [0, 3])
def test_ht_uses_all_selected_jets(n_extra):
    jets = _four_jets() + [jet(pt=35.25)] * n_extra + [jet(pt=200, eta=3.0)]   # forward jet dropped
    p = _run([{"jets": jets, "electrons": [electron()]}])
    h = p.hists.hists["4j1b_ttbar"]
    expected_ht = 100 + 80 + 60 + 40 + 35.25 * n_extra
    assert h.values(flow=True)[h.bin_index(np.array([expected_ht]))[0]] == 1.0
