"""Permutations of the jet-parton assignment (spec §6.1)."""

import itertools

import numpy as np
import pytest

from agc_ttbar.ml.permutations import n_permutations, permutation_labels, permutations

SPEC_4 = [[1, 0, 2, 3], [1, 0, 3, 2], [2, 0, 1, 3], [2, 0, 3, 1], [2, 1, 0, 3], [2, 1, 3, 0],
          [3, 0, 1, 2], [3, 0, 2, 1], [3, 1, 0, 2], [3, 1, 2, 0], [3, 2, 0, 1], [3, 2, 1, 0]]


def reference_algorithm(n):
    """The reference's get_permutations_dict, restated: argcartesian of 4 copies of range(n) in
    lexicographic order, keep tuples of distinct indices, then drop a tuple when its label vector
    (24, 24, 6, -6, 100) appears again later (keep the last duplicate)."""
    perms = [list(p) for p in itertools.product(range(n), repeat=4) if len(set(p)) == 4]
    labels = []
    for p in perms:
        lab = [100] * n
        lab[p[0]] = lab[p[1]] = 24
        lab[p[2]] = 6
        lab[p[3]] = -6
        labels.append(lab)
    return [p for i, p in enumerate(perms) if labels[i] not in labels[i + 1:]]


def test_four_jets_equal_the_spec_list():
    assert permutations(4).tolist() == SPEC_4


@pytest.mark.parametrize("n,count", [(4, 12), (5, 60), (6, 180)])
def test_counts_and_reference_order(n, count):
    perms = permutations(n)
    assert perms.shape == (count, 4)
    assert n_permutations(n) == count
    assert perms.tolist() == reference_algorithm(n)
    assert (perms[:, 0] > perms[:, 1]).all()
    assert len({tuple(p) for p in perms}) == count


def test_five_jets_start_as_in_the_spec():
    assert permutations(5)[:4].tolist() == [[1, 0, 2, 3], [1, 0, 2, 4], [1, 0, 3, 2], [1, 0, 3, 4]]


def test_labels_and_small_counts():
    lab = permutation_labels(5)
    assert lab[1].tolist() == [24, 24, 6, 100, -6]          # [1, 0, 2, 4]
    assert (np.sort(lab, axis=1) == [-6, 6, 24, 24, 100]).all()
    assert n_permutations(3) == 0 and n_permutations(7) == 420
    with pytest.raises(ValueError):
        permutations(3)
