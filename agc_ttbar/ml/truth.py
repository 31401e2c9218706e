"""Truth labels of jets from the NanoAOD GenPart collection (spec §6.4, ``utils.ml.training_filter``).

Candidates are GenPart quarks (1 <= |pdgId| <= 6) that are the last copy (``statusFlags`` bit 13)
and whose *distinct parent* (the first ancestor with a different pdgId, coffea's ``distinctParent``)
has |pdgId| 6 or 24. Each jet is matched to the nearest candidate within delta-R 0.4 (coffea's
``jets.nearest(genparts, threshold=0.4)``: delta-phi wrapped, ``<=`` threshold). Its label is the
parent's |pdgId| (24: W quark, 6: b of a top), 100 when unmatched; it becomes -6 (b of the leptonic
top) when the parent has both an |pdgId| 11/13/15/17 and an |pdgId| 12/14/16/18 particle among its
grandchildren (``parent.distinctChildren.distinctChildren``, where a distinct child of X is any
particle whose distinct parent is X). Training events are those whose four leading jets' labels sum
to 48, i.e. are {24, 24, 6, -6}.

Everything works on the flattened GenPart arrays of a chunk with global indices: no per-event loop.
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from .permutations import LABEL_OTHER

#: statusFlags bit of isLastCopy (NanoAOD GenPart).
IS_LAST_COPY_BIT = 13
#: Matching radius jet - parton.
MATCH_DR = 0.4
#: Label sum of the four jets of a fully matched event (24 + 24 + 6 - 6).
FULL_MATCH_SUM = 48
#: Label of a jet slot beyond the event's jets.
LABEL_NO_JET = 0

GENPART_BRANCHES = ("GenPart_eta", "GenPart_phi", "GenPart_pdgId", "GenPart_genPartIdxMother",
                    "GenPart_statusFlags")


def distinct_parent(pdg: np.ndarray, mother: np.ndarray) -> np.ndarray:
    """Global index of each particle's distinct parent (-1 if none), walking up through copies.

    ``pdg`` and ``mother`` are flat arrays with global indices (``mother`` -1 for none).
    """
    parent = mother.copy()
    for _ in range(len(pdg) + 1):
        has = parent >= 0
        same = np.zeros(len(pdg), dtype=bool)
        same[has] = pdg[parent[has]] == pdg[has]
        if not same.any():
            return parent
        parent[same] = mother[parent[same]]
    raise ValueError("GenPart mother indices contain a cycle")


def _flat_genparts(genparts: dict) -> dict:
    counts = np.asarray(ak.to_numpy(ak.num(genparts["pdgId"], axis=1)), dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])[:-1]
    flat = {k: np.asarray(ak.to_numpy(ak.flatten(v, axis=1))) for k, v in genparts.items()}
    local_mother = flat["genPartIdxMother"].astype(np.int64)
    event_of = np.repeat(np.arange(len(counts)), counts)
    valid = (local_mother >= 0) & (local_mother < counts[event_of])
    flat["mother"] = np.where(valid, local_mother + offsets[event_of], -1)
    flat["counts"], flat["event_of"] = counts, event_of
    return flat


def parton_candidates(genparts: dict) -> dict:
    """Flat GenPart info plus the candidate mask and each candidate's label (24, 6 or -6).

    ``genparts``: jagged arrays ``eta``, ``phi``, ``pdgId``, ``genPartIdxMother``, ``statusFlags``.
    """
    g = _flat_genparts(genparts)
    pdg = g["pdgId"].astype(np.int64)
    apdg = np.abs(pdg)
    dpar = distinct_parent(pdg, g["mother"])
    has_parent = dpar >= 0
    parent_apdg = np.zeros_like(apdg)
    parent_apdg[has_parent] = apdg[dpar[has_parent]]
    last_copy = ((g["statusFlags"].astype(np.int64) >> IS_LAST_COPY_BIT) & 1).astype(bool)
    candidate = has_parent & ((parent_apdg == 6) | (parent_apdg == 24)) & (apdg >= 1) & (apdg <= 6) & last_copy

    # grandchildren of X: particles G with distinct_parent(distinct_parent(G)) == X
    grand = np.full_like(dpar, -1)
    grand[has_parent] = dpar[dpar[has_parent]]
    has_grand = grand >= 0
    in_range = (apdg > 10) & (apdg < 19)
    lep_flag = np.zeros(len(pdg), dtype=bool)
    nu_flag = np.zeros(len(pdg), dtype=bool)
    lep_flag[grand[has_grand & in_range & (apdg % 2 == 1)]] = True
    nu_flag[grand[has_grand & in_range & (apdg % 2 == 0)]] = True

    label = np.full(len(pdg), LABEL_OTHER, dtype=np.int64)
    label[has_parent] = parent_apdg[has_parent]
    leptonic = np.zeros(len(pdg), dtype=bool)
    leptonic[has_parent] = lep_flag[dpar[has_parent]] & nu_flag[dpar[has_parent]]
    label[leptonic] = -6
    g.update(candidate=candidate, label=label, distinct_parent=dpar)
    return g


def jet_labels(jet_eta: np.ndarray, jet_phi: np.ndarray, n_jets: np.ndarray, genparts: dict) -> np.ndarray:
    """Truth label of each jet slot, shape of ``jet_eta`` (n_events, J).

    ``jet_eta``/``jet_phi``: dense (n_events, J) arrays of the first J selected jets (NaN-padded),
    ``n_jets``: jets per event; slots beyond ``n_jets`` get :data:`LABEL_NO_JET`.
    """
    jet_eta = np.asarray(jet_eta, dtype=np.float64)
    jet_phi = np.asarray(jet_phi, dtype=np.float64)
    n_ev, n_slots = jet_eta.shape
    labels = np.full((n_ev, n_slots), LABEL_OTHER, dtype=np.int64)
    labels[np.arange(n_slots)[None, :] >= np.asarray(n_jets)[:, None]] = LABEL_NO_JET
    if n_ev == 0:
        return labels
    g = parton_candidates(genparts)
    cand = np.flatnonzero(g["candidate"])
    if len(cand) == 0:
        return labels
    ev = g["event_of"][cand]
    n_cand = np.bincount(ev, minlength=n_ev)
    width = int(n_cand.max())
    pos = np.arange(len(cand)) - np.concatenate([[0], np.cumsum(n_cand)])[:-1][ev]
    c_eta = np.full((n_ev, width), np.nan)
    c_phi = np.full((n_ev, width), np.nan)
    c_lab = np.full((n_ev, width), LABEL_OTHER, dtype=np.int64)
    c_eta[ev, pos] = g["eta"][cand]
    c_phi[ev, pos] = g["phi"][cand]
    c_lab[ev, pos] = g["label"][cand]

    deta = jet_eta[:, :, None] - c_eta[:, None, :]
    dphi = (jet_phi[:, :, None] - c_phi[:, None, :] + np.pi) % (2 * np.pi) - np.pi
    dr = np.sqrt(deta**2 + dphi**2)
    dr = np.where(np.isnan(dr), np.inf, dr)
    nearest = np.argmin(dr, axis=2)
    best = np.take_along_axis(dr, nearest[:, :, None], axis=2)[:, :, 0]
    matched = (best <= MATCH_DR) & (labels != LABEL_NO_JET)
    rows = np.broadcast_to(np.arange(n_ev)[:, None], nearest.shape)
    labels[matched] = c_lab[rows[matched], nearest[matched]]
    return labels


def fully_matched(labels: np.ndarray) -> np.ndarray:
    """Events whose four leading jets carry the labels {24, 24, 6, -6} (label sum 48)."""
    return labels[:, :4].sum(axis=1) == FULL_MATCH_SUM
