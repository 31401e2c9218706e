"""ExactHistogram: sums are exact, so any fill order or split gives the same bits."""

import math

import hist
import numpy as np
import pytest

from agc_ttbar.histograms import ExactHistogram, ExactWeights, HistogramSet


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


# --- precomputed weights (ExactWeights) and fill_index -------------------------------------------

def _exact_sums(x, w, edges):
    """Reference: per flow bin, the exact sums of round(w * 2^64) and round(w^2 * 2^64) as Python ints
    (independent of the limb code; int(float) is exact, rounding half to even like np.rint)."""
    nflow = len(edges) + 1
    sumw, sumw2 = [0] * nflow, [0] * nflow
    for xi, wi in zip(np.asarray(x, dtype=np.float64).tolist(), np.asarray(w, dtype=np.float64).tolist()):
        if math.isnan(xi):
            b = nflow - 1
        else:
            b = sum(1 for e in edges.tolist() if e <= xi)
        sumw[b] += _units(wi)
        sumw2[b] += _units(wi * wi)
    return sumw, sumw2


def _units(v):
    """round(v * 2^64) as a Python int, half to even (v * 2^64 is exact in float64)."""
    return int(round(math.ldexp(v, 64)))


def _as_ints(limbs):
    return [int(limbs[0, i]) + (int(limbs[1, i]) << 32) + (int(limbs[2, i]) << 64) for i in range(limbs.shape[1])]


def _edge_case_data(n=3000, seed=5):
    rng = np.random.default_rng(seed)
    edges = np.linspace(50, 550, 26)
    x = np.concatenate([rng.uniform(0, 620, n), edges, np.nextafter(edges, -np.inf), np.nextafter(edges, np.inf),
                        [np.nan, np.nan, np.inf, -np.inf, -0.0]])
    w = rng.normal(0.3, 1.2, len(x))                   # about 40% negative
    # (-0.5, 0) is left out here: see test_small_negative_weights_are_not_exactly_rounded
    w[(w > -0.5) & (w < 0)] -= 0.5
    w[:50] = rng.uniform(-1e-25, 1e-25, 50)            # below 2^-64 resolution: rounded
    w[50:60] = 2.0**-65                                # exact ties: round half to even
    w[60:70] = rng.uniform(-3e5, 3e5, 10)              # large, with a square near 2^36
    return edges, x, w


def test_bin_index_equals_searchsorted():
    rng = np.random.default_rng(11)
    for edges in (np.linspace(50, 550, 26), np.linspace(0, 1, 21), np.linspace(-3.2, 3.2, 21),
                  np.linspace(0.1, 0.3, 7), np.array([0.0, 1.0, 5.0, 10.0, 100.0]), np.array([2.0, 3.0])):
        h = ExactHistogram(edges)
        span = edges[-1] - edges[0]
        x = np.concatenate([rng.uniform(edges[0] - span, edges[-1] + span, 20000), edges,
                            np.nextafter(edges, -np.inf), np.nextafter(edges, np.inf),
                            [np.nan, np.inf, -np.inf, 1e308, -1e308, 0.0, -0.0, 5e-324]])
        ref = np.searchsorted(edges, x, side="right")
        ref[np.isnan(x)] = len(edges)
        got = h.bin_index(x)
        assert got.dtype == ref.dtype and np.array_equal(got, ref)
        assert np.array_equal(h.bin_index(x[::3]), ref[::3])      # strided input


def test_fill_index_array_weights_are_exact():
    edges, x, w = _edge_case_data()
    h = ExactHistogram(edges)
    h.fill_index(h.bin_index(x), ExactWeights(w))
    ref_w, ref_w2 = _exact_sums(x, w, edges)
    assert _as_ints(h.sumw) == ref_w
    assert _as_ints(h.sumw2) == ref_w2
    assert h.values(flow=True)[-1] == math.fsum(w[(x >= 550) | np.isnan(x)])
    # fill() takes the same path
    g = ExactHistogram(edges)
    g.fill(x, w)
    assert np.array_equal(g.sumw, h.sumw) and np.array_equal(g.sumw2, h.sumw2)


@pytest.mark.parametrize("weight", [1.0, 0.75, -2.5, 0.1, 1e-30, 3.0e5, 2.0**-65])
def test_fill_index_scalar_weight_fast_path(weight):
    edges, x, _ = _edge_case_data(2000)
    h = ExactHistogram(edges)
    idx = h.bin_index(x)
    ew = ExactWeights(weight, len(x))
    assert ew.scalar and ew.sumw.dtype == np.int64
    h.fill_index(idx, ew)
    ref_w, ref_w2 = _exact_sums(x, np.full(len(x), weight), edges)
    assert _as_ints(h.sumw) == ref_w and _as_ints(h.sumw2) == ref_w2
    arr = ExactHistogram(edges)
    arr.fill_index(idx, ExactWeights(np.full(len(x), weight)))
    assert np.array_equal(arr.sumw, h.sumw) and np.array_equal(arr.sumw2, h.sumw2)
    plain = ExactHistogram(edges)
    plain.fill(x, weight)
    assert np.array_equal(plain.sumw, h.sumw) and np.array_equal(plain.sumw2, h.sumw2)


def _old_fill(edges, x, w):
    """The per-entry computation of the original ``ExactHistogram.fill`` (before ExactWeights): a
    searchsorted per fill, the three limbs of each weight and of its square summed per bin (here in
    Python ints, so without any chunking)."""
    from agc_ttbar.histograms import _limbs

    x = np.asarray(x, dtype=np.float64)
    w = np.broadcast_to(np.asarray(w, dtype=np.float64), x.shape)
    idx = np.searchsorted(edges, x, side="right")
    idx[np.isnan(x)] = len(edges)
    out = []
    for ws in (w, w * w):
        limbs = np.zeros((3, len(edges) + 1), dtype=object)
        for k, limb in enumerate(_limbs(ws)):
            for b, v in zip(idx.tolist(), limb.tolist()):
                limbs[k, b] += int(v)
        out.append(limbs.astype(np.int64))
    return out


@pytest.mark.parametrize("scalar", [None, 0.37, -0.21, 1.0])
def test_fill_index_equals_the_old_per_entry_fill(scalar):
    # all weights, including those in (-0.5, 0): bitwise the limbs of the original fill
    rng = np.random.default_rng(8)
    edges, x, w = _edge_case_data(2000)
    w = rng.normal(0.0, 0.6, len(x)) if scalar is None else scalar
    ref_sumw, ref_sumw2 = _old_fill(edges, x, w)
    h = ExactHistogram(edges)
    h.fill_index(h.bin_index(x), ExactWeights(w, len(x)))
    assert np.array_equal(h.sumw, ref_sumw) and np.array_equal(h.sumw2, ref_sumw2)


def test_small_negative_weights_are_exact():
    """-0.5 < w < 0: splitting v + 2^64 would round in float64; the sign-magnitude split does not."""
    w = np.array([-0.46008070165184106, -2.0**-60, -0.1, 0.3, -3.75])
    h = ExactHistogram(np.array([0.0, 1.0]))
    h.fill(np.full(len(w), 0.5), w)
    assert _as_ints(h.sumw)[1] == sum(_units(v) for v in w.tolist())


def test_weights_are_reusable_across_observables_and_fills():
    edges, x, w = _edge_case_data(1000)
    ew = ExactWeights(w)
    y = x[::-1].copy()
    a, b = ExactHistogram(edges), ExactHistogram(edges)
    for _ in range(2):
        a.fill_index(a.bin_index(x), ew)
        b.fill_index(b.bin_index(y), ew)
    ref_a, ref_b = ExactHistogram(edges), ExactHistogram(edges)
    for _ in range(2):
        ref_a.fill(x, w)
        ref_b.fill(y, w)
    assert np.array_equal(a.sumw, ref_a.sumw) and np.array_equal(a.sumw2, ref_a.sumw2)
    assert np.array_equal(b.sumw, ref_b.sumw) and np.array_equal(b.sumw2, ref_b.sumw2)


def test_more_entries_than_one_bincount_call():
    from agc_ttbar.histograms import _MAX_FILL

    n = _MAX_FILL + 12345
    rng = np.random.default_rng(2)
    x = rng.uniform(40, 560, n)
    x[:200000] = 123.0                                   # one bin with many entries
    w = rng.uniform(-1.5, 4.0, n)
    # weights with all 64 fraction bits set: the lo and mid limbs are near 2^32 in every entry
    w[:200000] = 1.0 - 2.0**-53
    edges = np.linspace(50, 550, 26)
    h = ExactHistogram(edges)
    idx = h.bin_index(x)
    h.fill_index(idx, ExactWeights(w))
    ref_w, ref_w2 = [0] * 27, [0] * 27
    for b, uw, uw2 in zip(idx.tolist(), np.rint(np.ldexp(w, 64)).tolist(), np.rint(np.ldexp(w * w, 64)).tolist()):
        ref_w[b] += int(uw)
        ref_w2[b] += int(uw2)
    assert _as_ints(h.sumw) == ref_w and _as_ints(h.sumw2) == ref_w2
    s = ExactHistogram(edges)
    s.fill_index(idx, ExactWeights(0.3, n))
    assert _as_ints(s.sumw) == [int(c) * _units(0.3) for c in np.bincount(idx, minlength=27)]
    assert _as_ints(s.sumw2) == [int(c) * _units(0.3 * 0.3) for c in np.bincount(idx, minlength=27)]


def test_large_weights_stay_exact():
    # w^2 >= 2^32 makes the top limb of sumw2 >= 2^32 (up to 2^40): fewer entries per float bincount
    # keep its partial sums below 2^53, so they stay exact
    rng = np.random.default_rng(4)
    w = rng.uniform(0.9, 1.0, 100001) * 2.0**19.99
    w[::7] *= -1
    x = np.full(len(w), 100.0)
    h = ExactHistogram.regular(25, 50, 550)
    h.fill(x, w)
    assert _as_ints(h.sumw)[3] == sum(_units(v) for v in w.tolist())
    assert _as_ints(h.sumw2)[3] == sum(_units(v * v) for v in w.tolist())


def test_bad_weights_are_rejected_with_their_value():
    h = ExactHistogram.regular(2, 0, 1)
    for bad in (np.nan, np.inf, -np.inf, 2.0**40, -3e12):
        with pytest.raises(ValueError, match="not finite or exceeds 2\\^40") as err:
            ExactWeights(np.array([0.5, bad, 1.0]))
        assert f"histogram weight {bad!r} " in str(err.value)
        with pytest.raises(ValueError, match="not finite or exceeds 2\\^40"):
            ExactWeights(bad, 3)
        with pytest.raises(ValueError, match="not finite or exceeds 2\\^40"):
            h.fill(np.array([0.5, 0.5]), bad)
    with pytest.raises(ValueError, match="2000000.0 is too large: its square exceeds 2\\^40"):
        ExactWeights(np.array([1.0, 2.0e6]))
    assert not h.sumw.any() and not h.sumw2.any()          # nothing half-filled
    h.fill(np.array([]), np.inf)                            # no entries: nothing to check, as before


def test_fill_index_checks_its_inputs():
    h = ExactHistogram.regular(2, 0, 1)
    with pytest.raises(ValueError, match="3 bin indices for 2 weights"):
        h.fill_index(np.array([0, 1, 2]), ExactWeights(np.array([1.0, 2.0])))
    with pytest.raises(ValueError, match="out of range"):
        h.fill_index(np.array([0, 4]), ExactWeights(1.0, 2))
    with pytest.raises(ValueError, match="2 weights for 3 entries"):
        ExactWeights(np.array([1.0, 2.0]), 3)
    with pytest.raises(TypeError):
        ExactWeights(1.0)
