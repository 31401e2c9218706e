"""The 20 jet-parton assignment features (spec §6.2): names, histogram ranges and computation."""

from __future__ import annotations

import numpy as np

from ..observables import cartesian

#: (name, low, high) of each feature; every ML histogram has 25 bins.
FEATURES: tuple[tuple[str, float, float], ...] = (
    ("deltar_leptonbtoplep", 0.0, 6.0),
    ("deltar_w1w2", 0.0, 6.0),
    ("deltar_w1btophad", 0.0, 6.0),
    ("deltar_w2btophad", 0.0, 6.0),
    ("mass_leptonbtoplep", 50.0, 300.0),
    ("mass_w1w2", 50.0, 300.0),
    ("mass_w1w2btophad", 50.0, 550.0),
    ("pt_w1w2btophad", 50.0, 550.0),
    ("pt_w1", 25.0, 300.0),
    ("pt_w2", 25.0, 300.0),
    ("pt_btophad", 25.0, 300.0),
    ("pt_btoplep", 25.0, 300.0),
    ("btag_w1", 0.0, 1.0),
    ("btag_w2", 0.0, 1.0),
    ("btag_btophad", 0.0, 1.0),
    ("btag_btoplep", 0.0, 1.0),
    ("qgl_w1", -1.0, 1.0),
    ("qgl_w2", -1.0, 1.0),
    ("qgl_btophad", -1.0, 1.0),
    ("qgl_btoplep", -1.0, 1.0),
)
FEATURE_NAMES: tuple[str, ...] = tuple(f[0] for f in FEATURES)
NUM_BINS = 25

# --------------------------------------------------------------------------------------------------
# Feature computation (spec §6.2), vectorised over events and permutations.
#
# Jets enter as dense float64 arrays of shape (n_events, k): the first k selected jets of events that
# all have at least k jets. Four-vectors are built from (pt, eta, phi, mass) with the varied pt; sums
# are taken in Cartesian components and the invariant mass is sqrt(E^2 - |p|^2) (NaN if negative,
# as coffea's LorentzVector.mass). Delta-R is sqrt(deta^2 + dphi^2) with the raw dphi: no wrapping.
# --------------------------------------------------------------------------------------------------


#: Jet columns the features read (keys of the ``jets`` dict of the scorer interface).
JET_COLUMNS: tuple[str, ...] = ("pt", "eta", "phi", "mass", "btag", "qgl")
#: Lepton columns the features read.
LEPTON_COLUMNS: tuple[str, ...] = ("pt", "eta", "phi", "mass")
N_FEATURES = len(FEATURES)


def _invariant_mass(px, py, pz, e):
    m2 = e * e - px * px - py * py - pz * pz
    with np.errstate(invalid="ignore"):
        return np.sqrt(m2)


def _delta_r_unwrapped(eta1, phi1, eta2, phi2):
    return np.sqrt((eta1 - eta2) ** 2 + (phi1 - phi2) ** 2)


def permutation_features(jets: dict, lepton: dict, perms: np.ndarray,
                         out: np.ndarray | None = None) -> np.ndarray:
    """The 20 features of every permutation of every event, shape (n_events, P, 20), float64.

    ``jets``: dense arrays (n_events, k) per column of :data:`JET_COLUMNS` (jet i of an event in
    column i, stored order); ``lepton``: arrays (n_events,) per column of :data:`LEPTON_COLUMNS`;
    ``perms``: (P, 4) jet indices ``[w1, w2, b_top_had, b_top_lep]`` below k (see
    :mod:`agc_ttbar.ml.permutations`). Pair and lepton-jet quantities are computed once per event
    in small tables and gathered per permutation.
    """
    pt = np.asarray(jets["pt"], dtype=np.float64)
    eta = np.asarray(jets["eta"], dtype=np.float64)
    phi = np.asarray(jets["phi"], dtype=np.float64)
    mass = np.asarray(jets["mass"], dtype=np.float64)
    btag = np.asarray(jets["btag"], dtype=np.float64)
    qgl = np.asarray(jets["qgl"], dtype=np.float64)
    n, k = pt.shape
    perms = np.asarray(perms, dtype=np.int64)
    n_perm = len(perms)
    if out is None:
        out = np.empty((n, n_perm, N_FEATURES), dtype=np.float64)
    if n == 0:
        return out
    w1, w2, bh, bl = perms[:, 0], perms[:, 1], perms[:, 2], perms[:, 3]

    px, py, pz, e = cartesian(pt, eta, phi, mass)
    l_eta = np.asarray(lepton["eta"], dtype=np.float64)[:, None]
    l_phi = np.asarray(lepton["phi"], dtype=np.float64)[:, None]
    lpx, lpy, lpz, le = (c[:, None] for c in cartesian(
        np.asarray(lepton["pt"], dtype=np.float64), np.asarray(lepton["eta"], dtype=np.float64),
        np.asarray(lepton["phi"], dtype=np.float64), np.asarray(lepton["mass"], dtype=np.float64)))

    # lepton-jet tables (n, k) and jet-pair tables (n, k, k)
    lep_dr = _delta_r_unwrapped(l_eta, l_phi, eta, phi)
    lep_mass = _invariant_mass(lpx + px, lpy + py, lpz + pz, le + e)
    pair_dr = _delta_r_unwrapped(eta[:, :, None], phi[:, :, None], eta[:, None, :], phi[:, None, :])
    pair_mass = _invariant_mass(px[:, :, None] + px[:, None, :], py[:, :, None] + py[:, None, :],
                                pz[:, :, None] + pz[:, None, :], e[:, :, None] + e[:, None, :])

    out[:, :, 0] = lep_dr[:, bl]
    out[:, :, 1] = pair_dr[:, w1, w2]
    out[:, :, 2] = pair_dr[:, w1, bh]
    out[:, :, 3] = pair_dr[:, w2, bh]
    out[:, :, 4] = lep_mass[:, bl]
    out[:, :, 5] = pair_mass[:, w1, w2]
    tpx = px[:, w1] + px[:, w2] + px[:, bh]
    tpy = py[:, w1] + py[:, w2] + py[:, bh]
    tpz = pz[:, w1] + pz[:, w2] + pz[:, bh]
    te = e[:, w1] + e[:, w2] + e[:, bh]
    out[:, :, 6] = _invariant_mass(tpx, tpy, tpz, te)
    out[:, :, 7] = np.sqrt(tpx * tpx + tpy * tpy)
    for base, col in ((8, pt), (12, btag), (16, qgl)):
        for j in range(4):
            out[:, :, base + j] = col[:, perms[:, j]]
    return out


def dense_jets(jets: dict, n_max: int) -> tuple[dict, np.ndarray]:
    """Jagged jet columns -> dense (n_events, n_max) float64 arrays (NaN-padded) and jet counts.

    Only the first ``n_max`` jets of each event are kept, in stored order.
    """
    import awkward as ak

    counts = np.asarray(ak.to_numpy(ak.num(jets["pt"], axis=1)), dtype=np.int64)
    dense = {}
    for col in JET_COLUMNS:
        arr = ak.pad_none(jets[col][:, :n_max], n_max, axis=1, clip=True)
        dense[col] = np.asarray(ak.to_numpy(ak.fill_none(arr, np.nan)), dtype=np.float64).reshape(-1, n_max)
    return dense, counts
