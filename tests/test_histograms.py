"""ExactHistogram: sums are exact, so any fill order or split gives the same bits."""

import math

import hist
import numpy as np
import pytest

from agc_ttbar.histograms import ExactHistogram, HistogramSet


def _data(n=20000, seed=3):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 620, n), rng.normal(1.8, 0.9, n)


def test_split_fills_are_bitwise_identical():
    x, w = _data()
    one = ExactHistogram.regular(25, 50, 550)
    one.fill(x, w)
    for cut in (1, 777, 15000):
        a = ExactHistogram.regular(25, 50, 550)
        a.fill(x[:cut], w[:cut])
        b = ExactHistogram.regular(25, 50, 550)
        b.fill(x[cut:], w[cut:])
        assert np.array_equal((b + a).values(flow=True), one.values(flow=True))
        assert np.array_equal((a + b).variances(flow=True), one.variances(flow=True))


def test_values_are_correctly_rounded_sums():
    x, w = _data()
    h = ExactHistogram.regular(25, 50, 550)
    h.fill(x, w)
    for i in (0, 5, 26):
        lo = -np.inf if i == 0 else 50 + 20 * (i - 1)
        hi = 50 if i == 0 else (np.inf if i == 26 else lo + 20)
        sel = (x >= lo) & (x < hi)
        assert h.values(flow=True)[i] == math.fsum(w[sel])
        assert h.variances(flow=True)[i] == math.fsum(w[sel] ** 2)


def test_matches_hist_and_flow_layout():
    x, w = _data()
    h = ExactHistogram.regular(25, 50, 550)
    h.fill(x, w)
    ref = hist.Hist.new.Reg(25, 50, 550).Weight()
    ref.fill(x, weight=w)
    assert np.allclose(h.values(flow=True), ref.values(flow=True), rtol=1e-12)
    converted = h.to_hist()
    assert np.array_equal(converted.values(flow=True), h.values(flow=True))
    assert np.array_equal(converted.variances(flow=True), h.variances(flow=True))


def test_edges_and_negative_weights():
    h = ExactHistogram.regular(25, 50, 550)
    h.fill(np.array([49.999, 50.0, 70.0, 549.999, 550.0, np.nan]), np.array([1.0, 2.0, 3.0, 4.0, 5.0, -6.5]))
    v = h.values(flow=True)
    assert v[0] == 1.0 and v[1] == 2.0 and v[2] == 3.0 and v[25] == 4.0 and v[26] == 5.0 - 6.5


def test_rejects_nonfinite_weight():
    h = ExactHistogram.regular(2, 0, 1)
    with pytest.raises(ValueError, match="not finite"):
        h.fill(np.array([0.5]), np.array([np.inf]))


def test_set_roundtrip(tmp_path):
    x, w = _data(500)
    s = HistogramSet()
    s.get("4j1b_ttbar", np.linspace(50, 550, 26)).fill(x, w)
    s.save(str(tmp_path / "a.npz"), {"nevents": 500})
    loaded, meta = HistogramSet.load(str(tmp_path / "a.npz"))
    assert meta == {"nevents": 500}
    assert np.array_equal(loaded.hists["4j1b_ttbar"].values(flow=True), s.hists["4j1b_ttbar"].values(flow=True))
    loaded += s
    assert np.array_equal(loaded.hists["4j1b_ttbar"].sumw, 2 * s.hists["4j1b_ttbar"].sumw)
    assert not list(tmp_path.glob(".tmp-*"))
