"""Soft (differentiable) model of the AGC selection and histograms in JAX, from the optimisation columns.

Tuned parameters: the b-tag threshold ``c`` and the fit bin edges (shared by both regions, as the
ordinary knobs are). Per event, with ``p_j = sigmoid(T_b (btag_j - c))`` the soft b-tag of jet j:

- soft b-tag counts: P(n_b = 0), P(n_b = 1) by the exact Poisson-binomial recursion over the jets;
  4j1b membership P(n_b = 1), 4j2b membership P(n_b >= 2) = 1 - P(0) - P(1);
- the trijet choice "first trijet in pT order with a b-tag" as a product of sigmoids: with the
  trijets sorted by pT, ``q_k = 1 - prod_{j in k} (1 - p_j)`` and the weight of trijet k is
  ``q_k prod_{l<k} (1 - q_l)`` (normalised over the :data:`N_TRIJETS` leading trijets kept);
- soft histograms: an entry x adds ``sigmoid(T_x (x - e_i)) - sigmoid(T_x (x - e_{i+1}))`` to bin i.

``T -> infinity`` (``steepness=None`` here) gives the hard analysis: ``btag > c``, the first b-tagged
trijet, ``e_i <= x < e_{i+1}`` bins; tests check that the histograms are then those of
histograms.root. The trijet four-vectors do not depend on the parameters: they are built once in
numpy, with the float64 operations of :mod:`agc_ttbar.observables`, and sorted by trijet pT (stable,
so ties keep the first combination as ``ak.argmax`` does).

Why own code and not ``relaxed``: relaxed's ``hist`` is a KDE histogram and its cuts are single
sigmoids; the analysis needs the Poisson-binomial b-tag count, the ordered trijet choice and a
per-event mixture of trijet masses, which are a few lines of jax.numpy here. JAX runs in float64.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from ..samples import BIN_HIGH

#: Leading trijets (in trijet pT order) kept per event. In 4j2b (>= 2 b-tags among n jets) the hard
#: choice is within the first C(n-2, 3) + 1 trijets: all of them for n <= 8 jets.
N_TRIJETS = 12


def enable_x64() -> None:
    """Switch JAX to float64 (the histograms and the Hessian need it)."""
    import jax

    jax.config.update("jax_enable_x64", True)


@dataclass
class EventData:
    """Every stored event of every sample and kinematic pass, concatenated.

    ``group``: (n,) index of the event's (process, kinematic pass); ``weights``: (n, L) float64, the
    weight sets filled from that pass (column l of group g is histogram ``keys[g][l]`` =
    (process, label); unused columns 0); ``ht``: (n,) GeV; ``btag``: (n, J) scores (-1 beyond the
    event's jets), ``jet_valid``: (n, J); ``tri_idx``: (n, K, 3) local jet indices and
    ``tri_mass``: (n, K) GeV of the leading trijets in pT order, ``tri_valid``: (n, K).
    """

    keys: list[list[tuple[str, str]]]
    group: np.ndarray
    weights: np.ndarray
    ht: np.ndarray
    btag: np.ndarray
    jet_valid: np.ndarray
    tri_idx: np.ndarray
    tri_mass: np.ndarray
    tri_valid: np.ndarray

    @property
    def n_events(self) -> int:
        return len(self.ht)

    @property
    def bounds(self) -> list[tuple[int, int]]:
        """(start, stop) rows of each group (consecutive by construction)."""
        edges = np.searchsorted(self.group, np.arange(len(self.keys) + 1))
        return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def trijets(pt, eta, phi, mass, n_jets, k: int = N_TRIJETS):
    """Leading ``k`` trijets of each event in pT order (stable), from (n, J) jet arrays padded beyond
    ``n_jets``. Returns (idx (n, k, 3), mass (n, k), valid (n, k)) with the float64 arithmetic of
    :func:`agc_ttbar.observables.m_bjj`."""
    pt = np.asarray(pt, np.float64)
    eta = np.asarray(eta, np.float64)
    phi = np.asarray(phi, np.float64)
    m = np.asarray(mass, np.float64)
    n, nj = pt.shape
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    e = np.sqrt(px * px + py * py + pz * pz + m * m)
    comb = np.array(list(itertools.combinations(range(nj), 3)), dtype=np.int64)   # lexicographic
    i, j, l = comb[:, 0], comb[:, 1], comb[:, 2]
    spx = px[:, i] + px[:, j] + px[:, l]
    spy = py[:, i] + py[:, j] + py[:, l]
    spz = pz[:, i] + pz[:, j] + pz[:, l]
    se = e[:, i] + e[:, j] + e[:, l]
    tpt = np.hypot(spx, spy)
    valid = l[None, :] < np.asarray(n_jets)[:, None]
    tpt = np.where(valid, tpt, -np.inf)
    order = np.argsort(-tpt, axis=1, kind="stable")[:, :k]
    rows = np.arange(n)[:, None]
    m2 = se[rows, order] ** 2 - (spx[rows, order] ** 2 + spy[rows, order] ** 2 + spz[rows, order] ** 2)
    tri_mass = np.copysign(np.sqrt(np.abs(m2)), m2)
    return comb[order], np.where(valid[rows, order], tri_mass, 0.0), valid[rows, order]


def build_data(samples: dict[str, tuple[dict, dict]], k: int = N_TRIJETS) -> EventData:
    """Concatenated events from :func:`agc_ttbar.optimisation.columns.load_columns` output per
    sample: ``{sample key: (metadata, {kinematic: {column: array}})}``."""
    keys, parts = [], []
    for key in sorted(samples):
        meta, passes = samples[key]
        for kin in meta.get("kinematic", []):
            cols = passes.get(kin)
            if cols is None:
                continue
            labels = sorted(c[2:] for c in cols if c.startswith("w/"))
            n_j = cols["n_jets"].astype(np.int64)
            idx, tmass, tvalid = trijets(cols["pt"], cols["eta"], cols["phi"], cols["mass"],
                                         np.minimum(n_j, cols["pt"].shape[1]), k)
            btag = cols["btag"].astype(np.float64)
            parts.append({"group": np.full(len(n_j), len(keys), dtype=np.int32),
                          "weights": np.stack([cols[f"w/{lab}"] for lab in labels], axis=1),
                          "ht": cols["ht"].astype(np.float64), "btag": btag,
                          "jet_valid": np.arange(btag.shape[1])[None, :] < n_j[:, None],
                          "tri_idx": idx.astype(np.int32), "tri_mass": tmass, "tri_valid": tvalid})
            keys.append([(meta["process"], lab) for lab in labels])
    if not parts:
        raise ValueError("the optimisation columns hold no event with one lepton and >= 4 jets")
    n_l = max(len(k_) for k_ in keys)
    for part in parts:
        w = part["weights"]
        part["weights"] = np.pad(w, ((0, 0), (0, n_l - w.shape[1])))
    return EventData(keys=keys, **{f: np.concatenate([p[f] for p in parts]) for f in parts[0]})


def _gate(x, c, steepness):
    """sigmoid(steepness (x - c)); the hard step (x > c) for steepness None."""
    import jax
    import jax.numpy as jnp

    if steepness is None:
        return (x > c).astype(jnp.float64)
    return jax.nn.sigmoid(steepness * (x - c))


def soft_bins(x, edges, steepness):
    """(..., B) soft bin contents of entries ``x`` for ``edges`` (B + 1); hard for steepness None
    (``e_i <= x < e_{i+1}``, as hist)."""
    import jax
    import jax.numpy as jnp

    if steepness is None:
        cdf = (x[..., None] >= edges).astype(jnp.float64)
    else:
        cdf = jax.nn.sigmoid(steepness * (x[..., None] - edges))
    return cdf[..., :-1] - cdf[..., 1:]


def btag_counts(p, valid):
    """(P(n_b = 0), P(n_b = 1)) per event from per-jet b-tag probabilities ``p`` (n, J)."""
    import jax.numpy as jnp

    p = jnp.where(valid, p, 0.0)
    a0 = jnp.ones(p.shape[0])
    a1 = jnp.zeros(p.shape[0])
    for j in range(p.shape[1]):
        a0, a1 = a0 * (1 - p[:, j]), a1 * (1 - p[:, j]) + a0 * p[:, j]
    return a0, a1


def event_bins(arrays: dict, threshold, edges, btag_steepness, bin_steepness):
    """Per-event soft bin contents (n, B) of 4j1b (H_T) and 4j2b (m_bjj), membership included."""
    import jax.numpy as jnp

    p = _gate(arrays["btag"], threshold, btag_steepness) * arrays["jet_valid"]
    p0, p1 = btag_counts(p, arrays["jet_valid"])
    p2 = jnp.clip(1.0 - p0 - p1, 0.0, 1.0)
    s1 = p1[:, None] * soft_bins(arrays["ht"], edges, bin_steepness)
    # trijet choice: q_k = P(trijet k has a b-tag); weight q_k prod_{l<k} (1 - q_l), normalised
    pj = p[jnp.arange(p.shape[0])[:, None, None], arrays["tri_idx"]]          # (n, K, 3)
    q = (1.0 - jnp.prod(1.0 - pj, axis=2)) * arrays["tri_valid"]
    before = jnp.cumprod(1.0 - q, axis=1)
    before = jnp.concatenate([jnp.ones((q.shape[0], 1)), before[:, :-1]], axis=1)
    c = q * before
    norm = jnp.sum(c, axis=1)
    c = c / jnp.where(norm > 0, norm, 1.0)[:, None]
    s2 = p2[:, None] * jnp.einsum("nk,nkb->nb", c, soft_bins(arrays["tri_mass"], edges, bin_steepness))
    return s1, s2


def device_arrays(d: EventData) -> dict:
    """The numeric fields as jax arrays."""
    import jax.numpy as jnp

    return {"group": jnp.asarray(d.group), "weights": jnp.asarray(d.weights), "ht": jnp.asarray(d.ht),
            "btag": jnp.asarray(d.btag), "jet_valid": jnp.asarray(d.jet_valid, dtype=jnp.float64),
            "tri_idx": jnp.asarray(d.tri_idx), "tri_mass": jnp.asarray(d.tri_mass),
            "tri_valid": jnp.asarray(d.tri_valid, dtype=jnp.float64)}


def histogram_arrays(bounds: list[tuple[int, int]], arrays: dict, threshold, edges, btag_steepness,
                     bin_steepness):
    """{region: (sumw (G, L, B), sumw2 (G, L, B))}: the histograms of every (group, weight column);
    ``bounds``: the (start, stop) rows of each group (groups are consecutive)."""
    import jax.numpy as jnp

    out = {}
    w = arrays["weights"]
    for region, s in zip(("4j1b", "4j2b"), event_bins(arrays, threshold, edges, btag_steepness, bin_steepness)):
        sw = jnp.stack([w[a:b].T @ s[a:b] for a, b in bounds])
        sw2 = jnp.stack([(w[a:b] ** 2).T @ (s[a:b] ** 2) for a, b in bounds])
        out[region] = (sw, sw2)
    return out


def histograms(data: EventData, arrays: dict, threshold, edges, btag_steepness,
               bin_steepness) -> dict[tuple[str, str, str], tuple]:
    """{(region, process, label): (sumw (B,), sumw2 (B,))} (soft, or hard for steepness None)."""
    h = histogram_arrays(data.bounds, arrays, threshold, edges, btag_steepness, bin_steepness)
    out = {}
    for region, (sw, sw2) in h.items():
        for g, keys in enumerate(data.keys):
            for l, (process, label) in enumerate(keys):
                out[(region, process, label)] = (sw[g, l], sw2[g, l])
    return out


# ---- parametrisation of the bin edges -----------------------------------------------------------
#: The upper edge stays at the processor's (the histograms end there).
UPPER_EDGE = float(BIN_HIGH)
#: Scale of the lower-edge parameter (GeV per unit), so that one Adam learning rate fits all.
EDGE_SCALE = 100.0


def edges_from_params(lower, logits):
    """Bin edges (B + 1) from the scaled lower edge and B width logits (softmax widths up to 550)."""
    import jax
    import jax.numpy as jnp

    lo = lower * EDGE_SCALE
    widths = (UPPER_EDGE - lo) * jax.nn.softmax(logits)
    return jnp.concatenate([jnp.reshape(lo, (1,)), lo + jnp.cumsum(widths)])


def params_from_edges(threshold: float, edges) -> np.ndarray:
    """Parameter vector [threshold, lower / EDGE_SCALE, log widths] of given edges ending at 550."""
    edges = np.asarray(edges, dtype=np.float64)
    if abs(edges[-1] - UPPER_EDGE) > 1e-9:
        raise ValueError(f"the optimisation keeps the upper fit edge at {UPPER_EDGE:g} GeV; got {edges[-1]:g}")
    w = np.diff(edges)
    return np.concatenate([[threshold, edges[0] / EDGE_SCALE], np.log(w / w.sum())])


def split_params(theta):
    """(threshold, edges) of a parameter vector."""
    return theta[0], edges_from_params(theta[1], theta[2:])
