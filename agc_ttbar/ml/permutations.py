"""Jet-parton assignment permutations (spec §6.1).

A permutation assigns four of the first ``n`` selected jets to the labels
``[W1, W2, b_top_had, b_top_lep]``; the other jets are "other". The two W jets are interchangeable,
so of each pair that differs only by swapping W1 and W2 the reference keeps the one that comes
*second* in lexicographic order of ``argcartesian``: always ``index(W1) > index(W2)``. The
permutations of ``n`` jets are therefore the 4-tuples of distinct jet indices with ``W1 > W2``, in
lexicographic order: 12 for 4 jets, 60 for 5, 180 for 6.

The reference's labels per jet are 24 (W), 6 (b of the hadronic top), -6 (b of the leptonic top)
and 100 (other).
"""

from __future__ import annotations

import functools
import itertools

import numpy as np

#: Jet labels of the reference (``utils/ml.py``).
LABEL_W, LABEL_TOP_HAD, LABEL_TOP_LEP, LABEL_OTHER = 24, 6, -6, 100
#: Smallest jet multiplicity that has an assignment.
MIN_N_JETS = 4


def n_permutations(n_jets: int) -> int:
    """N!/(2 (N-4)!): the number of distinct assignments of ``n_jets`` jets (0 below 4 jets)."""
    if n_jets < MIN_N_JETS:
        return 0
    out = 1
    for k in range(n_jets - 3, n_jets + 1):
        out *= k
    return out // 2


@functools.lru_cache(maxsize=None)
def _permutations(n_jets: int) -> np.ndarray:
    rows = [p for p in itertools.permutations(range(n_jets), 4) if p[0] > p[1]]
    arr = np.array(rows, dtype=np.int64).reshape(-1, 4)
    arr.setflags(write=False)
    return arr


def permutations(n_jets: int) -> np.ndarray:
    """Jet indices ``[w1, w2, b_top_had, b_top_lep]`` of every permutation, shape (P, 4), int64.

    ``itertools.permutations`` yields the 4-tuples of distinct indices in lexicographic order, the
    order of the reference's ``argcartesian`` after removing tuples with repeated indices; keeping
    ``w1 > w2`` is the reference's keep-the-last-duplicate rule. The array is read-only (cached).
    """
    if n_jets < MIN_N_JETS:
        raise ValueError(f"a jet-parton assignment needs at least {MIN_N_JETS} jets, got {n_jets}")
    return _permutations(int(n_jets))


def permutation_labels(n_jets: int) -> np.ndarray:
    """Per-jet labels (24, 24, 6, -6 and 100 for the rest) of every permutation, shape (P, n_jets)."""
    perms = permutations(n_jets)
    labels = np.full((len(perms), n_jets), LABEL_OTHER, dtype=np.int64)
    rows = np.arange(len(perms))
    labels[rows, perms[:, 0]] = LABEL_W
    labels[rows, perms[:, 1]] = LABEL_W
    labels[rows, perms[:, 2]] = LABEL_TOP_HAD
    labels[rows, perms[:, 3]] = LABEL_TOP_LEP
    return labels
