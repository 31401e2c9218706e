"""Region observables of the AGC ttbar analysis (spec §3.1), on flat per-jet arrays.

Both functions take the *selected* jets of the events of a region as flat numpy arrays in stored
order plus the number of selected jets per event (``counts``), so that a chunk needs no jagged
arithmetic:

- :func:`ht`: H_T, the scalar sum of the (varied) pT of **all** selected jets (4j1b).
- :func:`m_bjj`: the mass of the highest-pT trijet with at least one b-tagged jet, over all
  3-jet combinations of **all** selected jets in index order (4j2b).

Four-vectors are built from (pt, eta, phi, mass) with the varied pT and the unvaried mass, as the
reference's ``vector`` PtEtaPhiM objects: ``px = pt cos(phi)``, ``py = pt sin(phi)``,
``pz = pt sinh(eta)``, ``E = sqrt(px^2 + py^2 + pz^2 + m^2)``; the trijet mass is
``copysign(sqrt(|m^2|), m^2)`` with ``m^2 = E^2 - |p|^2`` (``vector``'s convention). Arithmetic is
float64 throughout (the stored float32 values convert exactly); the reference works partly in
float32, which can move an event across a bin edge only when its observable lies within ~1e-5
relative of that edge.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np

from .selection import B_TAG_THRESHOLD


def event_index(counts: np.ndarray) -> np.ndarray:
    """Event number (0-based, within the chunk) of every flat entry."""
    counts = np.asarray(counts, dtype=np.int64)
    return np.repeat(np.arange(len(counts), dtype=np.int64), counts)


def offsets_of(counts: np.ndarray) -> np.ndarray:
    """Offsets (length n+1) of a jagged array with the given counts."""
    out = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=out[1:])
    return out


def ht(pt: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Scalar sum of the jet pT per event (events with no jets give 0).

    Each event's terms are added one by one in stored order, so the value of an event does not
    depend on the other events in the chunk.
    """
    pt = np.asarray(pt, dtype=np.float64)
    return np.bincount(event_index(counts), weights=pt, minlength=len(counts))


@functools.lru_cache(maxsize=None)
def _combination_table(n: int) -> np.ndarray:
    """(C(n,3), 3) local jet indices of the 3-jet combinations of n jets, in lexicographic order."""
    return np.array(list(itertools.combinations(range(n), 3)), dtype=np.int64).reshape(-1, 3)


def trijet_combinations(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Flat indices (i, j, k) of all 3-jet combinations, i < j < k, in ``ak.combinations`` order.

    Returns the three index arrays (into the flat jet arrays) and the number of combinations per
    event. Events are handled in groups of equal jet multiplicity with a cached index table.
    """
    counts = np.asarray(counts, dtype=np.int64)
    n_comb = counts * (counts - 1) * (counts - 2) // 6
    jet_offsets = offsets_of(counts)[:-1]
    comb_offsets = offsets_of(n_comb)[:-1]
    out = np.empty((int(n_comb.sum()), 3), dtype=np.int64)
    for n in np.unique(counts[counts >= 3]):
        events = np.flatnonzero(counts == n)
        table = _combination_table(int(n))
        rows = (comb_offsets[events][:, None] + np.arange(len(table))).ravel()
        out[rows] = (jet_offsets[events][:, None, None] + table[None, :, :]).reshape(-1, 3)
    return out[:, 0], out[:, 1], out[:, 2], n_comb


def segmented_argmax(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Index, within each consecutive segment of ``values`` (lengths ``counts``), of its first
    maximum; -1 for an empty segment. The rule of ``ak.argmax(axis=1)``, in plain numpy (the values
    here are finite or -inf: NaN is not expected).
    """
    counts = np.asarray(counts, dtype=np.int64)
    out = np.full(len(counts), -1, dtype=np.int64)
    nonempty = counts > 0
    if not nonempty.any():
        return out
    starts = offsets_of(counts)[:-1][nonempty]
    group_max = np.maximum.reduceat(values, starts)
    at_max = np.flatnonzero(values == np.repeat(group_max, counts[nonempty]))
    out[nonempty] = at_max[np.searchsorted(at_max, starts)] - starts
    return out


def cartesian(pt, eta, phi, mass) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(px, py, pz, E) of PtEtaPhiM vectors, float64 (numpy's cos, sin, sinh): the components every
    four-vector sum of the analysis (m_bjj, the ML features) starts from."""
    pt = np.asarray(pt, dtype=np.float64)
    eta = np.asarray(eta, dtype=np.float64)
    phi = np.asarray(phi, dtype=np.float64)
    mass = np.asarray(mass, dtype=np.float64)
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    return px, py, pz, np.sqrt(px * px + py * py + pz * pz + mass * mass)


def m_bjj(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray, mass: np.ndarray, btag: np.ndarray,
          counts: np.ndarray, compiled: bool = False, components: tuple | None = None,
          btag_threshold: float = B_TAG_THRESHOLD) -> np.ndarray:
    """Mass of the highest-pT trijet that contains at least one b-tagged jet, per event.

    Ties in the trijet pT keep the first candidate (``ak.argmax``). Events without any candidate
    (fewer than 3 jets or no b-tag) give NaN; the 4j2b region always has one.

    ``compiled=False``: numpy, over a table of all combinations (:func:`trijet_combinations`) and
    :func:`segmented_argmax`. ``compiled=True``: a numba loop over each event's combinations
    (``agc_ttbar._observable_kernels``), the same float64 operations on the same numpy-computed
    components, hence the same bits (tests); ~10x faster, but loading numba costs ~0.3 s per
    process, so the per-file job uses it only when its ML scorer has loaded numba anyway.
    ``components``: :func:`cartesian` of these jets when the caller has it already.
    ``btag_threshold``: a jet is b-tagged above it (config processing.btag_threshold).
    """
    px, py, pz, e = components if components is not None else cartesian(pt, eta, phi, mass)
    if compiled:
        from ._observable_kernels import m_bjj_flat

        tagged = np.ascontiguousarray(np.asarray(btag) > btag_threshold)
        out = np.empty(len(counts), dtype=np.float64)
        m_bjj_flat(px, py, pz, e, tagged, offsets_of(counts), out)
        return out
    tagged = np.asarray(btag) > btag_threshold

    i, j, k, n_comb = trijet_combinations(counts)
    spx = px[i] + px[j] + px[k]
    spy = py[i] + py[j] + py[k]
    spz = pz[i] + pz[j] + pz[k]
    se = e[i] + e[j] + e[k]
    tpt = np.hypot(spx, spy)
    has_b = tagged[i] | tagged[j] | tagged[k]
    score = np.where(has_b, tpt, -np.inf)

    out = np.full(len(n_comb), np.nan)
    ok = np.zeros(len(n_comb), dtype=bool)
    if len(score):
        best_local = segmented_argmax(score, n_comb)
        comb_offsets = offsets_of(n_comb)
        ok = best_local >= 0
        best = comb_offsets[:-1][ok] + best_local[ok]
        valid = has_b[best]
        m2 = se[best] ** 2 - (spx[best] ** 2 + spy[best] ** 2 + spz[best] ** 2)
        m = np.copysign(np.sqrt(np.abs(m2)), m2)
        vals = np.where(valid, m, np.nan)
        out[ok] = vals
    return out
