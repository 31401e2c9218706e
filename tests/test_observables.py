"""H_T and m_bjj (spec §3.1) on hand-made jets, checked against `vector` four-vector sums."""

import itertools

import numpy as np
import vector

from agc_ttbar.observables import ht, m_bjj, trijet_combinations


def _vec(pt, eta, phi, m):
    return vector.obj(pt=pt, eta=eta, phi=phi, mass=m)


def test_ht_sums_every_jet_per_event():
    pt = np.array([100, 80, 60, 40, 31, 50, 40, 35, 30.5, 30.25, 30.125], dtype=np.float64)
    counts = np.array([5, 0, 6])
    assert ht(pt, counts).tolist() == [311.0, 0.0, 50 + 40 + 35 + 30.5 + 30.25 + 30.125]


def test_combinations_in_index_order():
    i, j, k, n = trijet_combinations(np.array([4, 3, 0, 5]))
    assert n.tolist() == [4, 1, 0, 10]
    first = list(zip(i[:4], j[:4], k[:4]))
    assert first == [(0, 1, 2), (0, 1, 3), (0, 2, 3), (1, 2, 3)]
    assert (i[4], j[4], k[4]) == (4, 5, 6)
    assert list(zip(i[5:], j[5:], k[5:])) == [tuple(7 + x for x in c) for c in itertools.combinations(range(5), 3)]


def test_highest_pt_trijet_without_btag_is_skipped():
    # jets 0,1,2 (untagged) form the highest-pT trijet; the best candidate with a b-tag uses jet 3
    pt = np.array([200.0, 180.0, 150.0, 40.0])
    eta = np.array([0.1, -0.3, 0.5, 1.2])
    phi = np.array([0.0, 0.4, -0.3, 2.8])
    mass = np.array([12.0, 10.0, 8.0, 5.0])
    btag = np.array([0.1, 0.3, 0.5, 0.9])   # 0.5 is not a b-tag
    jets = [_vec(*x) for x in zip(pt, eta, phi, mass)]
    cands = []
    for c in itertools.combinations(range(4), 3):
        p4 = jets[c[0]] + jets[c[1]] + jets[c[2]]
        cands.append((c, p4.pt, p4.mass, max(btag[list(c)]) > 0.5))
    top = max(cands, key=lambda c: c[1])
    assert top[0] == (0, 1, 2) and not top[3]
    best = max((c for c in cands if c[3]), key=lambda c: c[1])
    got = m_bjj(pt, eta, phi, mass, btag, np.array([4]))
    assert np.isclose(got[0], best[2], rtol=1e-12)
    assert not np.isclose(got[0], top[2], rtol=1e-3)


def test_m_bjj_several_events_and_no_candidate():
    rng = np.random.default_rng(4)
    counts = np.array([4, 7, 3, 5])
    n = counts.sum()
    pt = rng.uniform(30, 300, n)
    eta = rng.uniform(-2.4, 2.4, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    mass = rng.uniform(2, 30, n)
    btag = rng.uniform(0, 1, n)
    btag[7:7 + 3] = 0.2  # third event (3 jets) has no b-tag -> NaN
    starts = np.concatenate([[0], np.cumsum(counts)])
    btag[starts[2]:starts[3]] = 0.2
    got = m_bjj(pt, eta, phi, mass, btag, counts)
    for e in range(4):
        s = slice(starts[e], starts[e + 1])
        jets = [_vec(*x) for x in zip(pt[s], eta[s], phi[s], mass[s])]
        b = btag[s]
        best = None
        for c in itertools.combinations(range(counts[e]), 3):
            if max(b[list(c)]) <= 0.5:
                continue
            p4 = jets[c[0]] + jets[c[1]] + jets[c[2]]
            if best is None or p4.pt > best[0]:
                best = (p4.pt, p4.mass)
        if best is None:
            assert np.isnan(got[e])
        else:
            assert np.isclose(got[e], best[1], rtol=1e-12)


def test_segmented_argmax_follows_ak_argmax():
    """First maximum per segment, -1 for empty segments, ties and -inf included (m_bjj's argmax)."""
    import awkward as ak
    import numpy as np

    from agc_ttbar.observables import segmented_argmax

    rng = np.random.default_rng(7)
    for _ in range(100):
        counts = rng.integers(0, 8, size=40)
        values = rng.integers(0, 4, size=counts.sum()).astype(float)
        values[rng.random(len(values)) < 0.2] = -np.inf
        expected = ak.to_numpy(ak.fill_none(ak.argmax(ak.unflatten(values, counts), axis=1), -1))
        assert np.array_equal(segmented_argmax(values, counts), expected)
    assert segmented_argmax(np.array([1.0, 3.0, 3.0, -np.inf]), np.array([0, 3, 1])).tolist() == [-1, 1, 0]


def test_trijet_combinations_equal_ak_combinations():
    import awkward as ak
    import numpy as np

    counts = np.random.default_rng(2).integers(0, 10, size=500)
    i, j, k, n = trijet_combinations(counts)
    combos = ak.combinations(ak.unflatten(np.arange(counts.sum()), counts), 3)
    flat = ak.flatten(combos)
    assert np.array_equal(n, ak.to_numpy(ak.num(combos, axis=1)))
    for got, field in ((i, "0"), (j, "1"), (k, "2")):
        assert np.array_equal(got, ak.to_numpy(flat[field]))


def test_compiled_m_bjj_is_bitwise_the_numpy_one():
    """The numba loop and the numpy combination-table version: the same bits, including exact pT
    ties between trijets of different mass (jet 4 = jet 3 mirrored in eta: same px, py, other pz;
    the first candidate wins), events with 0-2 jets or without a b-tag, and collinear massless
    jets (m^2 ~ 0, either sign)."""
    rng = np.random.default_rng(12)
    counts = rng.integers(0, 10, 3000)
    n = int(counts.sum())
    pt = rng.exponential(60, n) + 30
    eta = rng.normal(0, 1.3, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    mass = rng.uniform(0, 25, n)
    btag = rng.uniform(0, 1, n)
    starts = np.concatenate([[0], np.cumsum(counts)])
    for ev in np.flatnonzero(counts >= 5)[:200]:        # exact pT ties, different masses
        s = starts[ev]
        for arr in (pt, phi, mass, btag):
            arr[s + 4] = arr[s + 3]
        eta[s + 4] = -eta[s + 3]
    for ev in np.flatnonzero(counts >= 3)[200:260]:     # collinear massless jets
        s = starts[ev]
        eta[s:s + 3], phi[s:s + 3], mass[s:s + 3], btag[s] = 0.7, 1.1, 0.0, 0.9
    got = m_bjj(pt, eta, phi, mass, btag, counts, compiled=True)
    want = m_bjj(pt, eta, phi, mass, btag, counts, compiled=False)
    np.testing.assert_array_equal(got.view(np.int64), want.view(np.int64))
    assert np.isnan(got).sum() > 100
