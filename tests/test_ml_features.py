"""The 20 features of a hand-made event (spec §6.2), computed independently here."""

import math

import awkward as ak
import numpy as np

from agc_ttbar.ml.features import FEATURE_NAMES, permutation_features
from agc_ttbar.ml.inference import all_permutation_features
from agc_ttbar.ml.permutations import permutations

# pt, eta, phi, mass, btag, qgl
JETS = [(100.0, 0.0, 0.0, 0.0, 0.9, 0.1),
        (50.0, 0.0, math.pi / 2, 0.0, 0.2, 0.3),
        (40.0, 1.0, 3.0, 10.0, 0.6, -0.5),
        (30.0, -0.5, -3.0, 5.0, 0.8, 0.7)]
LEPTON = (40.0, 0.5, 1.0, 0.0)
COLS = ("pt", "eta", "phi", "mass", "btag", "qgl")


def _dense():
    return ({c: np.array([[j[i] for j in JETS]]) for i, c in enumerate(COLS)},
            {c: np.array([LEPTON[i]]) for i, c in enumerate(COLS[:4])})


def _energy(pt, eta, m):
    return math.sqrt(m * m + (pt * math.cosh(eta)) ** 2)


def _dot(a, b):
    """Minkowski product of two (pt, eta, phi, m) vectors: E_a E_b - pt_a pt_b (cos dphi + sinh sinh)."""
    return (_energy(a[0], a[1], a[3]) * _energy(b[0], b[1], b[3])
            - a[0] * b[0] * (math.cos(a[2] - b[2]) + math.sinh(a[1]) * math.sinh(b[1])))


def _mass(*vs):
    m2 = sum(v[3] ** 2 for v in vs) + 2 * sum(_dot(vs[i], vs[j]) for i in range(len(vs)) for j in range(i + 1, len(vs)))
    return math.sqrt(m2)


def test_hand_computed_features_of_one_permutation():
    jets, lep = _dense()
    feats = permutation_features(jets, lep, permutations(4))
    assert feats.shape == (1, 12, 20) and feats.dtype == np.float64
    f = dict(zip(FEATURE_NAMES, feats[0, 0]))                     # permutation [1, 0, 2, 3]
    j0, j1, j2, j3 = JETS
    assert math.isclose(f["deltar_leptonbtoplep"], math.sqrt(17.0), rel_tol=1e-12)   # deta 1, dphi 4
    assert math.isclose(f["deltar_w1w2"], math.pi / 2, rel_tol=1e-12)
    assert math.isclose(f["deltar_w1btophad"], math.sqrt(1 + (math.pi / 2 - 3) ** 2), rel_tol=1e-12)
    assert math.isclose(f["deltar_w2btophad"], math.sqrt(10.0), rel_tol=1e-12)
    assert math.isclose(f["mass_w1w2"], 100.0, rel_tol=1e-12)     # sqrt(2 * 50 * 100 * (1 - cos 90deg))
    assert math.isclose(f["mass_leptonbtoplep"], _mass(LEPTON, j3), rel_tol=1e-12)
    assert math.isclose(f["mass_w1w2btophad"], _mass(j1, j0, j2), rel_tol=1e-12)
    tpx = 50 * 0 + 100 + 40 * math.cos(3.0)
    tpy = 50 + 0 + 40 * math.sin(3.0)
    assert math.isclose(f["pt_w1w2btophad"], math.hypot(tpx, tpy), rel_tol=1e-12)
    assert [f[f"pt_{n}"] for n in ("w1", "w2", "btophad", "btoplep")] == [50.0, 100.0, 40.0, 30.0]
    assert [f[f"btag_{n}"] for n in ("w1", "w2", "btophad", "btoplep")] == [0.2, 0.9, 0.6, 0.8]
    assert [f[f"qgl_{n}"] for n in ("w1", "w2", "btophad", "btoplep")] == [0.3, 0.1, -0.5, 0.7]


def test_delta_r_is_not_phi_wrapped():
    jets, lep = _dense()
    feats = permutation_features(jets, lep, np.array([[3, 2, 0, 1]]))
    # jets 2 and 3: deta 1.5, raw dphi 6.0 (wrapped it would be 0.28)
    assert math.isclose(feats[0, 0, 1], math.sqrt(1.5**2 + 6.0**2), rel_tol=1e-12)
    assert math.isclose(feats[0, 0, 0], math.sqrt(0.25 + (1.0 - math.pi / 2) ** 2), rel_tol=1e-12)


def test_reference_layout_uses_only_the_first_six_jets():
    # event 0 with 4 jets, event 1 with 7 jets: 12 + 180 rows
    j = JETS + [(35.0, 0.2, 0.4, 3.0, 0.1, 0.0), (32.0, -1.0, 2.0, 4.0, 0.3, 0.2), (31.0, 2.0, -1.0, 2.0, 0.4, 0.1)]
    counts = [4, 7]
    flat = JETS + j
    jets = {c: ak.unflatten(np.array([x[i] for x in flat]), counts) for i, c in enumerate(COLS)}
    lep = {c: np.array([LEPTON[i]] * 2) for i, c in enumerate(COLS[:4])}
    feats, perm_counts = all_permutation_features(jets, lep, max_n_jets=6)
    assert perm_counts.tolist() == [12, 180]
    assert feats.shape == (192, 20)
    assert 31.0 not in feats[12:, 8:12]                         # the 7th jet never enters
    assert sorted(set(feats[12:, 8].tolist())) == sorted(x[0] for x in j[1:6])   # w1 > w2 >= 0
    dense = {c: np.array([[x[i] for x in j[:6]]]) for i, c in enumerate(COLS)}
    np.testing.assert_array_equal(feats[12:], permutation_features(dense, {c: v[1:] for c, v in lep.items()},
                                                                   permutations(6))[0])
