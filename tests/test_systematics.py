"""Systematic variations (spec §4.2): deterministic pt_res_up, b-tag and W+jets scale weights."""

import numpy as np
import pytest
from scipy import stats

from agc_ttbar.processing import FileProcessor, SampleInfo
from agc_ttbar.systematics import (btag_weight_factor, counter_hash, pt_resolution_factors,
                                   scale_var_factor)

from handmade import chunk, electron, jet

MASK64 = (1 << 64) - 1


def _splitmix_ref(z: int) -> int:
    """The splitmix64 finaliser with Python integers (independent of the numpy code)."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def test_hash_matches_python_integer_reference():
    gamma = 0x9E3779B97F4A7C15
    keys = [(1, 7, 123456789012, 0), (258000, 3000, 2**63 + 5, 13)]
    for seed in (0, 42):
        for key in keys:
            h = _splitmix_ref((seed + gamma) & MASK64)
            for k in key:
                h = _splitmix_ref(((h + gamma) & MASK64) ^ k)
            got = counter_hash(seed, *[np.array([k], dtype=np.uint64) for k in key])
            assert int(got[0]) == h


def test_factors_are_a_function_of_the_jet_identity_only():
    rng = np.random.default_rng(1)
    n = 5000
    run = rng.integers(1, 3, n).astype(np.uint32)
    lumi = rng.integers(1, 50, n).astype(np.uint32)
    event = rng.integers(0, 2**40, n).astype(np.uint64)
    idx = rng.integers(0, 10, n)
    r = pt_resolution_factors(0, run, lumi, event, idx)
    perm = rng.permutation(n)
    assert np.array_equal(pt_resolution_factors(0, run[perm], lumi[perm], event[perm], idx[perm]), r[perm])
    # pieces of the array give the same bits (no dependence on chunking)
    assert np.array_equal(pt_resolution_factors(0, run[:17], lumi[:17], event[:17], idx[:17]), r[:17])
    # every key and the seed matter
    for changed in (pt_resolution_factors(1, run, lumi, event, idx),
                    pt_resolution_factors(0, run + 1, lumi, event, idx),
                    pt_resolution_factors(0, run, lumi + 1, event, idx),
                    pt_resolution_factors(0, run, lumi, event + 1, idx),
                    pt_resolution_factors(0, run, lumi, event, idx + 1)):
        assert np.mean(changed == r) < 0.01


def test_factors_are_normal_1_005():
    n = 200_000
    r = pt_resolution_factors(7, np.ones(n, np.uint32), np.ones(n, np.uint32),
                              np.arange(n, dtype=np.uint64), np.zeros(n, np.int64))
    assert abs(r.mean() - 1.0) < 4 * 0.05 / np.sqrt(n)
    assert abs(r.std() / 0.05 - 1.0) < 0.01
    assert stats.kstest((r - 1.0) / 0.05, "norm").pvalue > 1e-3


def test_btag_and_scale_factors():
    pt = np.array([50.0, 100.0, 700.0])
    assert np.allclose(btag_weight_factor(pt, "up"), [1.075, 1.15, 2.05], rtol=1e-15)
    assert np.allclose(btag_weight_factor(pt, "down"), [0.925, 0.85, -0.05], rtol=1e-12)  # negative: as reference
    assert scale_var_factor("up") == 1.025 and scale_var_factor("down") == 0.975
    with pytest.raises(ValueError):
        btag_weight_factor(pt, "sideways")


def test_weight_variations_use_nominal_jets_in_stored_order():
    # stored order is not pT order here: jet i of the *selected* jets, in stored order, sets btag_var_i;
    # a rejected jet (jetId 2) in front shifts the indices
    jets = [jet(pt=300, jetId=2), jet(pt=60, btagCSVV2=0.9), jet(pt=120), jet(pt=45), jet(pt=90), jet(pt=33)]
    w = 0.75
    p = FileProcessor(SampleInfo.from_key("wjets__nominal", w, 10))
    p.process_chunk(chunk([{"jets": jets, "electrons": [electron()]}]))
    sel_pt = [60, 120, 45, 90]
    for i, pti in enumerate(sel_pt):
        for d, sign in (("up", 1), ("down", -1)):
            h = p.hists.hists[f"4j1b_wjets_btag_var_{i}_{d}"]
            assert np.isclose(h.values(flow=True).sum(), w * (1 + sign * 0.075 * pti / 50), rtol=1e-15)
    assert np.isclose(p.hists.hists["4j1b_wjets_scale_var_up"].values(flow=True).sum(), w * 1.025)
    assert np.isclose(p.hists.hists["4j1b_wjets_scale_var_down"].values(flow=True).sum(), w * 0.975)
    # weight variations reuse the nominal observable: same bin as nominal
    nominal_bin = np.flatnonzero(p.hists.hists["4j1b_wjets"].values(flow=True))
    assert np.array_equal(np.flatnonzero(p.hists.hists["4j1b_wjets_btag_var_2_down"].values(flow=True)), nominal_bin)
    # ttbar has no scale_var
    p = FileProcessor(SampleInfo.from_key("ttbar__nominal", w, 10))
    p.process_chunk(chunk([{"jets": jets, "electrons": [electron()]}]))
    assert not any("scale_var" in k for k in p.hists.hists)


def test_pt_res_up_applies_per_jet_factors():
    jets = [jet(pt=100, btagCSVV2=0.9), jet(pt=80), jet(pt=60), jet(pt=40), jet(pt=35)]
    ev = chunk([{"jets": jets, "electrons": [electron()]}], first_event=11)
    p = FileProcessor(SampleInfo.from_key("ttbar__nominal", 1.0, 10), pt_res_seed=3)
    p.process_chunk(ev)
    r = pt_resolution_factors(3, np.ones(5, np.uint32), np.ones(5, np.uint32),
                              np.full(5, 11, np.uint64), np.arange(5))
    varied = np.array([100, 80, 60, 40, 35.0]) * r
    expected_ht = varied[varied > 30].sum()
    h = p.hists.hists["4j1b_ttbar_pt_res_up"]
    assert h.values(flow=True)[h.bin_index(np.array([expected_ht]))[0]] == 1.0
