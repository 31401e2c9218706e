"""Compiled best-assignment search for xgboost models (spec §6.3), bitwise equal to xgboost.

The per-file job scores up to 180 permutations of each 4j2b event and keeps the best one. Done with
numpy + ``Booster.inplace_predict`` that means materialising a (permutations, 20) float64 feature
matrix, converting it to float32 inside xgboost, predicting, and an argmax pass: on the skimmed
default dataset about 57 predictions per stored ttbar event. :func:`best_assignments` fuses these
steps in one numba-compiled loop per event: the lepton-jet and jet-pair tables of the event's <= 6
jets, the 20 features of each permutation, the trees, the sigmoid and the first-maximum argmax,
with no intermediate arrays.

Exactness is the contract, not an approximation:

- features: the same float64 operations in the same order as
  :func:`agc_ttbar.ml.features.permutation_features`, from the same numpy-computed Cartesian
  components (so no transcendental function is evaluated by a different library); only +, -, *
  and sqrt, which IEEE 754 rounds correctly everywhere;
- trees: xgboost's rules: the float64 feature is rounded to float32, ``value < split`` goes left,
  NaN takes the default direction, the leaf values are added in float32 in tree order to the base
  margin, and the probability is xgboost's float32 ``Sigmoid`` (``1 / (expf(min(-x, 88.7)) + 1)``);
- :meth:`Forest.from_booster` *proves* the equality on probe rows (random, NaN-containing and
  split-threshold values) against ``Booster.inplace_predict`` and returns ``None`` when any bit
  differs (an unsupported model, another xgboost rounding): callers then use xgboost itself.

Tests compare the selected permutation, its score and its 20 features with the numpy + xgboost
path on mock events.

**Deep trees (the published AGC BDTs, ``ml.model: published``).** 251 trees of depth up to 37
(``model_even``) and 41 (``model_odd``), ~27k nodes, of which 192 and 195 are single leaves of value
-0.0 (left out, see :class:`NodeTrees`). Padding such trees to complete ones is impossible, so
forests deeper than :attr:`Forest.MAX_DEPTH` take a node layout that the same fused kernel walks
(``_forest_kernels._walk_margins``): features, trees, sigmoid and argmax stay in one pass, and the
load-time probe is the same. Measured on 100k real permutation rows of the ttbar file (``model_even``,
one core, CPU time, loaded 2-core machine, 3 alternating runs): ``Booster.inplace_predict`` 2.15-2.23
us/row; this walk 0.77-0.80 us/row (2.8x), bitwise equal; tl2cgen 1.0.0 + treelite 4.4.1
(``export_lib``, gcc, default parameters) 1.45-1.54 us/row (1.5x) and *not* bitwise (margins up to
2.9e-6 off, so the chosen permutation could differ), after 93 s of gcc per model, a compiler that
every job or container would need at run time (or a build step and a cache of shared libraries
keyed by model). PyPI's ``fastforest`` is an unrelated approximate-forest package; the C++
FastForest of ROOT's RBDT has no Python binding there. Hence our own code: faster, exact, and no
compiler beyond numba. The steps of the walk, measured the same way: one row at a time to its leaf
3.1 us/row (slower than xgboost); rows in lock step to the deepest leaf of 16 3.7; 16 lanes that
take a new row when theirs reaches a leaf 2.4 (the leaf branch mispredicts); level by level over
the whole block, compacting the active rows every 2 levels, no branch per row 1.2; the same with
unsigned indices (no negative-index wrap-around code) 0.8. LLVM does not vectorise the walk with
AVX-512 gathers here (its cost model for this AMD CPU avoids them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import numpy as np

from .features import N_FEATURES
from .permutations import MIN_N_JETS, permutations

#: Largest jet multiplicity with a permutation table (spec: at most 6 jets).
MAX_N_JETS = 6


@dataclass(frozen=True)
class Forest:
    """A binary:logistic xgboost tree ensemble in complete-tree layout.

    Every tree is padded to a complete binary tree of depth ``depth`` (a leaf above the last level
    becomes a split whose descendants all carry its value), so a walk is ``depth`` steps of
    ``node = 2 node + 1 + go_right`` with no child pointers. Per tree (rows) and internal node
    (columns, level order): ``feature`` (int64), ``threshold`` (float32) and ``nan_right`` (bool:
    NaN takes the right branch); ``leaf`` (float32, (n_trees, 2**depth)) holds the leaf values.
    """

    feature: np.ndarray
    threshold: np.ndarray
    nan_right: np.ndarray
    leaf: np.ndarray
    depth: int
    base_margin: np.float32
    #: For depth <= :attr:`CODE_TABLE_DEPTH`: (n_trees, 2**(2**depth - 1)) float32, the leaf value
    #: reached for each combination of split outcomes (bit j = split j goes right); else (n, 0).
    code_leaf: np.ndarray = None
    #: Node layout (forests deeper than :attr:`MAX_DEPTH`; empty otherwise), see :class:`NodeTrees`.
    nodes: "NodeTrees" = None

    CODE_TABLE_DEPTH = 3

    def __post_init__(self):
        if self.code_leaf is None:
            object.__setattr__(self, "code_leaf", _code_leaf_table(self.leaf, self.depth, self.CODE_TABLE_DEPTH))
        if self.nodes is None:
            object.__setattr__(self, "nodes", NodeTrees.empty())

    #: Deeper trees take the node layout: the complete layout evaluates all 2**depth - 1 splits of
    #: a padded tree, which beats a walk for shallow trees only (measured: 2.2x faster than
    #: xgboost's walk at depth 3, 1.35x slower at depth 6).
    MAX_DEPTH = 5

    @property
    def n_trees(self) -> int:
        """Trees evaluated (node layout: without the single-leaf trees of value +0, see
        :class:`NodeTrees`)."""
        return len(self.leaf) + self.nodes.n_trees

    @property
    def layout(self) -> str:
        """"complete" (padded trees, depth <= :attr:`MAX_DEPTH`) or "nodes" (a walk)."""
        return "nodes" if self.nodes.n_trees or self.depth > self.MAX_DEPTH else "complete"

    @classmethod
    def from_json(cls, model: dict, base_margin: np.float32, max_depth: int = 64) -> "Forest":
        """The forest of a parsed xgboost JSON model (``Booster.save_raw("json")``): complete
        layout up to depth :attr:`MAX_DEPTH`, node layout (:class:`NodeTrees`) above.

        Raises ``ValueError`` for what the kernel does not implement: objectives other than
        ``binary:logistic``, several targets or parallel trees, categorical splits, depth above
        ``max_depth``.
        """
        learner = model["learner"]
        objective = learner["objective"]["name"]
        if objective != "binary:logistic":
            raise ValueError(f"objective {objective!r} (compiled scoring supports binary:logistic)")
        params = learner["learner_model_param"]
        if int(params.get("num_class", "0")) > 1 or int(params.get("num_target", "1")) != 1:
            raise ValueError("multi-class or multi-target model")
        booster = learner["gradient_booster"]
        if booster.get("name", "gbtree") != "gbtree":
            raise ValueError(f"booster {booster.get('name')!r} (compiled scoring supports gbtree)")
        gbtree = booster["model"]
        if int(gbtree["gbtree_model_param"].get("num_parallel_tree", "1")) != 1:
            raise ValueError("random-forest (num_parallel_tree > 1) model")
        trees = gbtree["trees"]
        for tree in trees:
            if any(int(s) != 0 for s in tree.get("split_type", [])):
                raise ValueError("categorical splits")
        depth = max([_tree_depth(t["left_children"], t["right_children"]) for t in trees] + [1])
        if depth > max_depth:
            raise ValueError(f"tree depth {depth} above {max_depth}")
        if depth > cls.MAX_DEPTH:
            empty = np.zeros((0, 0))
            return cls(feature=empty.astype(np.int64), threshold=empty.astype(np.float32),
                       nan_right=empty.astype(bool), leaf=empty.astype(np.float32), depth=int(depth),
                       base_margin=np.float32(base_margin), nodes=NodeTrees.from_trees(trees))
        n_inner, n_leaf = 2**depth - 1, 2**depth
        feature = np.zeros((len(trees), n_inner), dtype=np.int64)
        threshold = np.zeros((len(trees), n_inner), dtype=np.float32)
        nan_right = np.zeros((len(trees), n_inner), dtype=bool)
        leaf = np.zeros((len(trees), n_leaf), dtype=np.float32)
        for t, tree in enumerate(trees):
            left, right = tree["left_children"], tree["right_children"]
            split, index, default_left = tree["split_conditions"], tree["split_indices"], tree["default_left"]
            stack = [(0, 0, 0)]                          # (xgboost node, complete-layout position, level)
            while stack:
                node, pos, level = stack.pop()
                if left[node] < 0:                       # a leaf: all its padded descendants
                    first = pos
                    for _ in range(depth - level):
                        first = 2 * first + 1
                    span = 2 ** (depth - level)
                    leaf[t, first - n_inner:first - n_inner + span] = np.float32(split[node])
                    continue
                if not 0 <= int(index[node]) < N_FEATURES:
                    raise ValueError(f"split on feature {index[node]}; the assignment has {N_FEATURES}")
                feature[t, pos] = int(index[node])
                threshold[t, pos] = np.float32(split[node])
                nan_right[t, pos] = not bool(default_left[node])
                stack.append((left[node], 2 * pos + 1, level + 1))
                stack.append((right[node], 2 * pos + 2, level + 1))
        return cls(feature=feature, threshold=threshold, nan_right=nan_right, leaf=leaf, depth=int(depth),
                   base_margin=np.float32(base_margin))

    @classmethod
    def from_booster(cls, booster, probe_rows: int = 4096, seed: int = 0) -> "Forest | None":
        """The compiled form of ``booster``, or ``None`` if it does not reproduce
        ``booster.inplace_predict`` bit for bit on probe rows (or the model is unsupported)."""
        try:
            model = json.loads(bytes(booster.save_raw("json")).decode())
            probe = _probe_rows(model, probe_rows, seed)
            expected = np.asarray(booster.inplace_predict(probe), dtype=np.float32)
            forest = cls.from_json(model, np.float32(0))
            for base in _base_margin_candidates(model):
                forest = replace(forest, base_margin=np.float32(base))
                if np.array_equal(forest.predict(probe).view(np.uint32), expected.view(np.uint32)):
                    return forest
        except ValueError:
            return None
        return None

    def without_trees(self) -> "Forest":
        """The same forest with no trees (every score is sigmoid(base_margin)): timing the search
        with it measures everything but the trees (benchmarks)."""
        return replace(self, feature=self.feature[:0], threshold=self.threshold[:0],
                       nan_right=self.nan_right[:0], leaf=self.leaf[:0], code_leaf=self.code_leaf[:0],
                       nodes=NodeTrees.empty())

    def arrays(self) -> tuple:
        """The kernel arguments describing the forest."""
        return (self.feature, self.threshold, self.nan_right, self.leaf, self.code_leaf, self.depth,
                self.base_margin, *self.nodes.arrays())

    def predict(self, features: np.ndarray) -> np.ndarray:
        """float32 probabilities of rows of float64 features (n, 20), as ``inplace_predict``."""
        x = np.ascontiguousarray(features, dtype=np.float64).reshape(-1, N_FEATURES)
        out = np.empty(len(x), dtype=np.float32)
        _kernels().predict_rows(x, *self.arrays(), out)
        return out


@dataclass(frozen=True)
class NodeTrees:
    """Trees of any depth as flat node arrays, walked from the root (the kernel's deep layout).

    Nodes of all trees are numbered tree by tree in breadth-first order, so that the two children
    of a split are adjacent: a split ``n`` goes to ``left[n] + go_right``. Per node: ``code``
    (uint32: the feature index, plus 32 if NaN goes right), ``threshold`` (float32), ``left``
    (uint32, the left child) and ``leaf`` (float32, the leaf value; 0 for a split). A leaf points
    to itself (``left[n] == n``) with code 0 (feature 0, NaN left) and a NaN threshold (no value is
    >= NaN), so a walk that goes on past it stays there. ``roots`` (uint32, (n_trees,)): the root
    of each tree, in xgboost's tree order.

    A tree that is a single leaf of value zero is left out (the published AGC models end in 192
    and 195 single leaves of value -0.0): ``m + (-0.0f)`` is ``m`` for every float32 margin ``m``,
    and ``m + 0.0f`` is ``m`` but for ``m = -0.0``, which becomes +0.0 of the same sigmoid, so the
    probabilities keep their bits (and the load-time probe checks it).
    """

    code: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    leaf: np.ndarray
    roots: np.ndarray

    NAN_RIGHT = 32

    @classmethod
    def empty(cls) -> "NodeTrees":
        return cls(code=np.zeros(0, np.uint32), threshold=np.zeros(0, np.float32), left=np.zeros(0, np.uint32),
                   leaf=np.zeros(0, np.float32), roots=np.zeros(0, np.uint32))

    @property
    def n_trees(self) -> int:
        return len(self.roots)

    @property
    def n_nodes(self) -> int:
        return len(self.code)

    @classmethod
    def from_trees(cls, trees: list) -> "NodeTrees":
        """Node arrays of xgboost JSON trees (``gradient_booster.model.trees``)."""
        code: list[int] = []
        threshold: list[float] = []
        left_of: list[int] = []
        leaf: list[float] = []
        roots: list[int] = []
        for tree in trees:
            left, right = tree["left_children"], tree["right_children"]
            split, index, default_left = tree["split_conditions"], tree["split_indices"], tree["default_left"]
            if left[0] < 0 and np.float32(split[0]) == 0:              # a single leaf of value +-0
                continue
            base = len(code)
            roots.append(base)
            order = [0]                                   # breadth-first: children adjacent
            new = {0: base}
            head = 0
            while head < len(order):
                node = order[head]
                head += 1
                if left[node] >= 0:
                    new[left[node]] = base + len(order)
                    new[right[node]] = base + len(order) + 1
                    order += [left[node], right[node]]
            for node in order:
                if left[node] < 0:
                    code.append(0)
                    threshold.append(np.nan)
                    left_of.append(new[node])
                    leaf.append(split[node])
                else:
                    if not 0 <= int(index[node]) < N_FEATURES:
                        raise ValueError(f"split on feature {index[node]}; the assignment has {N_FEATURES}")
                    code.append(int(index[node]) + (0 if default_left[node] else cls.NAN_RIGHT))
                    threshold.append(split[node])
                    left_of.append(new[left[node]])
                    leaf.append(0.0)
        return cls(code=np.asarray(code, np.uint32), threshold=np.asarray(threshold, np.float32),
                   left=np.asarray(left_of, np.uint32), leaf=np.asarray(leaf, np.float32),
                   roots=np.asarray(roots, np.uint32))

    def arrays(self) -> tuple:
        return (self.roots, self.code, self.threshold, self.left, self.leaf)


def _code_leaf_table(leaf: np.ndarray, depth: int, max_depth: int) -> np.ndarray:
    """Leaf value of each tree for every code of split outcomes (bit j: split j goes right)."""
    n_trees = leaf.shape[0]
    if depth > max_depth:
        return np.zeros((n_trees, 0), dtype=np.float32)
    n_inner = 2**depth - 1
    codes = np.arange(2**n_inner, dtype=np.int64)
    node = np.zeros_like(codes)
    for _ in range(depth):
        node = 2 * node + 1 + ((codes >> node) & 1)
    return np.ascontiguousarray(leaf[:, node - n_inner], dtype=np.float32)


def _tree_depth(left, right) -> int:
    """Number of splits on the longest root-to-leaf path."""
    best, stack = 0, [(0, 0)]
    while stack:
        node, level = stack.pop()
        if left[node] < 0:
            best = max(best, level)
        else:
            stack += [(left[node], level + 1), (right[node], level + 1)]
    return best


def _base_margin_candidates(model: dict) -> list[np.float32]:
    """float32 margins near logit(base_score): xgboost's own rounding is checked by the probe."""
    text = model["learner"]["learner_model_param"]["base_score"]
    p = float(str(text).strip("[]"))
    p32 = np.float32(p)
    centre = [np.float32(-np.log(np.float32(1) / p32 - np.float32(1))), np.float32(-np.log(1.0 / p - 1.0))]
    out: list[np.float32] = []
    for c in centre:
        for step in (0, 1, -1, 2, -2):
            v = c
            for _ in range(abs(step)):
                v = np.nextafter(v, np.float32(np.inf if step > 0 else -np.inf), dtype=np.float32)
            if v not in out:
                out.append(np.float32(v))
    return out


def _probe_rows(model: dict, n: int, seed: int) -> np.ndarray:
    """Rows that exercise every split: thresholds themselves, their float32 neighbours, NaN,
    and random values spread over each feature's split range."""
    rng = np.random.default_rng(seed)
    splits = [[] for _ in range(N_FEATURES)]
    for tree in model["learner"]["gradient_booster"]["model"]["trees"]:
        for left, f, s in zip(tree["left_children"], tree["split_indices"], tree["split_conditions"]):
            if left >= 0 and 0 <= f < N_FEATURES:
                splits[f].append(np.float32(s))
    rows = np.empty((n, N_FEATURES), dtype=np.float64)
    for f in range(N_FEATURES):
        s = np.asarray(splits[f], dtype=np.float32)
        if len(s) == 0:
            rows[:, f] = rng.normal(size=n)
            continue
        lo, hi = float(s.min()), float(s.max())
        pad = 0.1 * (hi - lo) + 1.0
        choice = rng.integers(0, 4, size=n)
        pick = s[rng.integers(0, len(s), size=n)]
        up = np.nextafter(pick, np.float32(np.inf))
        down = np.nextafter(pick, np.float32(-np.inf))
        rows[:, f] = np.select([choice == 0, choice == 1, choice == 2],
                               [pick.astype(np.float64), up.astype(np.float64), down.astype(np.float64)],
                               rng.uniform(lo - pad, hi + pad, size=n))
    rows[rng.random((n, N_FEATURES)) < 0.02] = np.nan
    return rows


def permutation_tables() -> tuple[np.ndarray, np.ndarray]:
    """All permutation tables stacked: (sum of P_k for k = 4..6, 4) int32 and offsets by k."""
    offsets = np.zeros(MAX_N_JETS + 2, dtype=np.int64)
    tables = []
    for k in range(MAX_N_JETS + 1):
        offsets[k + 1] = offsets[k]
        if k >= MIN_N_JETS:
            tables.append(permutations(k))
            offsets[k + 1] += len(tables[-1])
    return np.concatenate(tables).astype(np.int32), offsets


def best_assignments(forest: Forest, rows: np.ndarray, n_used: np.ndarray, offsets: np.ndarray,
                     jets: dict, cartesian: tuple, lepton: dict, lepton_cartesian: tuple,
                     index: np.ndarray, score: np.ndarray, features: np.ndarray) -> None:
    """Best permutation under ``forest`` of each event ``i`` in ``rows``, written to ``index[i]``
    (into :func:`permutations` of ``n_used[i]`` jets; ties keep the first permutation, as
    ``np.argmax``), ``score[i]`` (float32 probability) and ``features[i]`` (float64, (n, 20)).

    Jets are flat arrays over all events, event i's from ``offsets[i]``: ``jets`` holds float64
    ``pt``, ``eta``, ``phi``, ``btag``, ``qgl``, and ``cartesian`` their (px, py, pz, E) as
    :func:`agc_ttbar.observables.cartesian` computes them. ``n_used[i]`` (4..6): jets considered.
    ``lepton``: per-event ``eta``, ``phi``; ``lepton_cartesian``: its (px, py, pz, E).
    """
    n_used = np.ascontiguousarray(n_used, dtype=np.int64)
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    if rows.size and (n_used[rows].min() < MIN_N_JETS or n_used[rows].max() > MAX_N_JETS):
        raise ValueError(f"jets per event must be between {MIN_N_JETS} and {MAX_N_JETS}")
    table, table_offsets = permutation_tables()
    f64 = lambda a: np.ascontiguousarray(a, dtype=np.float64)  # noqa: E731
    _kernels().best_rows(rows, n_used, np.ascontiguousarray(offsets, dtype=np.int64),
                         *(f64(c) for c in cartesian), f64(jets["pt"]), f64(jets["eta"]),
                         f64(jets["phi"]), f64(jets["btag"]), f64(jets["qgl"]),
                         *(f64(c) for c in lepton_cartesian), f64(lepton["eta"]), f64(lepton["phi"]),
                         table, table_offsets, *forest.arrays(), index, score, features)


_KERNELS = None


def _kernels():
    """The numba kernels, compiled on first use (cached on disk by numba)."""
    global _KERNELS
    if _KERNELS is None:
        from . import _forest_kernels

        _KERNELS = _forest_kernels
    return _KERNELS
