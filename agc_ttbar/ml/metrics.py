"""Quality of a jet-parton assignment: AUC, fully correct events, per-jet accuracy, top_had triplet.

Conventions (used for every method, so the numbers compare):

- An assignment is a permutation index into :func:`agc_ttbar.ml.permutations.permutations` of the
  event's ``k`` considered jets. Truth labels per jet are 24 (W), 6 (b_top_had), -6 (b_top_lep) and
  100 (other); the two W jets are interchangeable (both 24).
- ``all_correct``: the four assigned jets carry the truth labels (24, 24, 6, -6).
- ``per_jet``: fraction of the considered jets whose assigned label equals the truth label
  (the reference's "jet score"; with k = 4 the four labelled jets).
- ``top_had_triplet``: the three jets assigned to the hadronic top (W1, W2, b_top_had) are the true
  hadronic-top jets {24, 24, 6}, in any order (the docs' "correct top_had triplet").
- ``random``: the expectation of each quantity for a uniformly random permutation (exact average
  over all permutations, not a draw).
- ``trijet``: the m_bjj method of the analysis (spec §3.1) restricted to the considered jets: of
  the 3-jet combinations, those with a b-tagged jet (btag > 0.5), the one with the largest pT of the
  sum (the highest-pT combination if none has a b-tag); within it the highest-btag jet is
  b_top_had and the other two are the W jets; b_top_lep is the highest-btag remaining jet.
"""

from __future__ import annotations

import itertools

import numpy as np

from ..selection import B_TAG_THRESHOLD
from ..observables import cartesian
from .permutations import LABEL_TOP_HAD, LABEL_TOP_LEP, LABEL_W, permutation_labels, permutations


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x`` (1-d), ties sharing the mean of their ranks: ``scipy.stats.rankdata``
    with ``method="average"``, the same values. Own code because importing ``scipy.stats`` takes
    ~0.6 s, a third of the BDT training job that every per-file job waits for."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    first = np.concatenate([[True], xs[1:] != xs[:-1]])      # first element of each run of ties
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    dense = np.cumsum(first)[inverse]                        # tie group of each element, from 1
    bounds = np.concatenate([np.nonzero(first)[0], [len(x)]])  # start of each group, then the end
    return 0.5 * (bounds[dense] + bounds[dense - 1] + 1)


def auc(scores: np.ndarray, target: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties); NaN if one class."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    target = np.asarray(target, dtype=bool).ravel()
    n_pos, n_neg = int(target.sum()), int((~target).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = average_ranks(scores)
    return float((ranks[target].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_curve(scores: np.ndarray, target: np.ndarray, n_points: int = 201) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) at ``n_points`` score quantile thresholds."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    target = np.asarray(target, dtype=bool).ravel()
    thresholds = np.unique(np.quantile(scores, np.linspace(0, 1, n_points)))
    pos, neg = np.sort(scores[target]), np.sort(scores[~target])
    tpr = 1 - np.searchsorted(pos, thresholds, side="left") / max(len(pos), 1)
    fpr = 1 - np.searchsorted(neg, thresholds, side="left") / max(len(neg), 1)
    return np.concatenate([[1.0], fpr, [0.0]]), np.concatenate([[1.0], tpr, [0.0]])


def _correctness(chosen_perms: np.ndarray, truth: np.ndarray) -> dict[str, np.ndarray]:
    """Per-event correctness of the given assignments (rows of [w1, w2, bh, bl] jet indices)."""
    rows = np.arange(len(truth))[:, None]
    lab = truth[rows, chosen_perms]                                   # (n, 4) truth of assigned jets
    want = np.array([LABEL_W, LABEL_W, LABEL_TOP_HAD, LABEL_TOP_LEP])
    triplet = np.sort(lab[:, :3], axis=1) == np.array([LABEL_TOP_HAD, LABEL_W, LABEL_W])
    return {"all_correct": (lab == want).all(axis=1), "top_had_triplet": triplet.all(axis=1)}


def assignment_quality(choice: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Quality of one chosen permutation per event; ``truth``: (n, k) labels of the k jets."""
    k = truth.shape[1]
    perms = permutations(k)
    c = _correctness(perms[choice], truth)
    per_jet = permutation_labels(k)[choice] == truth
    return {"all_correct": float(c["all_correct"].mean()) if len(truth) else float("nan"),
            "per_jet": float(per_jet.mean()) if len(truth) else float("nan"),
            "top_had_triplet": float(c["top_had_triplet"].mean()) if len(truth) else float("nan")}


def random_quality(truth: np.ndarray) -> dict[str, float]:
    """Expected quality of a uniformly random permutation (exact average over permutations)."""
    k = truth.shape[1]
    perms = permutations(k)
    tot = {"all_correct": 0.0, "per_jet": 0.0, "top_had_triplet": 0.0}
    for p in range(len(perms)):
        choice = np.full(len(truth), p)
        q = assignment_quality(choice, truth)
        for key in tot:
            tot[key] += q[key] / len(perms)
    return tot


def trijet_choice(jets: dict) -> np.ndarray:
    """Permutation index chosen by the trijet method for events with k jets (dense (n, k))."""
    pt, eta, phi, mass, btag = (np.asarray(jets[c], dtype=np.float64) for c in ("pt", "eta", "phi", "mass", "btag"))
    n, k = pt.shape
    px, py, _, _ = cartesian(pt, eta, phi, mass)
    combos = np.array(list(itertools.combinations(range(k), 3)))      # ak.combinations order
    tpt = np.hypot(px[:, combos].sum(axis=2), py[:, combos].sum(axis=2))
    tagged = (btag[:, combos] > B_TAG_THRESHOLD).any(axis=2)
    any_tagged = tagged.any(axis=1)
    key = np.where(tagged | ~any_tagged[:, None], tpt, -np.inf)
    best = combos[np.argmax(key, axis=1)]                            # (n, 3)
    rows = np.arange(n)[:, None]
    order = np.argsort(-btag[rows, best], axis=1, kind="stable")
    bh = best[np.arange(n), order[:, 0]]
    w = np.sort(best[rows, order[:, 1:]], axis=1)                    # w2 < w1
    rest_mask = np.ones((n, k), dtype=bool)
    rest_mask[rows, best] = False
    rest_btag = np.where(rest_mask, btag, -np.inf)
    bl = np.argmax(rest_btag, axis=1)
    chosen = np.stack([w[:, 1], w[:, 0], bh, bl], axis=1)
    perms = permutations(k)
    code = lambda p: ((p[:, 0] * k + p[:, 1]) * k + p[:, 2]) * k + p[:, 3]  # noqa: E731
    lookup = np.full(k**4, -1)
    lookup[code(perms)] = np.arange(len(perms))
    return lookup[code(chosen)]
