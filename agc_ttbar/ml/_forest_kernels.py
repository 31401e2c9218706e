"""numba kernels of :mod:`agc_ttbar.ml.forest` (imported lazily: numba costs ~0.3 s to import).

Every floating-point expression mirrors :func:`agc_ttbar.ml.features.permutation_features` and
xgboost operation by operation; do not reorder sums or use ``fastmath``: results must be bitwise
equal (tests check it).
"""

from __future__ import annotations

import numpy as np

from .._jit import numba, warm_up

_NF = 20
_MAX_PERMUTATIONS = 180
_SIG_CLAMP = np.float32(88.7)
_ONE = np.float32(1.0)
_EPS = np.float32(1e-16)


@numba.njit(cache=True, nogil=True, inline="always")
def _sigmoid32(x):
    """xgboost ``common::Sigmoid(float)``: 1 / (expf(min(-x, 88.7)) + 1 + 1e-16), in float32."""
    y = -x
    if y > _SIG_CLAMP:
        y = _SIG_CLAMP
    denom = np.float32(np.exp(np.float32(y))) + _ONE + _EPS
    return _ONE / denom


#: Walk steps between two compactions of the active rows (measured best of 1, 2, 3).
_STEPS = 2
_FEATURE_MASK = np.uint32(31)
_NAN_RIGHT = np.uint32(32)


@numba.njit(cache=True, nogil=True, inline="always")
def _step(xt, r, n, ncode, nthreshold, nleft):
    """Node below ``n`` for row ``r``: left child ``nleft[n]``, plus 1 if the float32 feature is
    not below the threshold, or is NaN and the node's NaN direction is right. A leaf (NaN
    threshold, NaN direction left) returns itself."""
    c = ncode[n]
    x = xt[c & _FEATURE_MASK, r]
    right = (x >= nthreshold[n]) | ((c >= _NAN_RIGHT) & (x != x))
    return nleft[n] + np.uint32(right)


@numba.njit(cache=True, nogil=True)
def _walk_margins(xt, n_rows, roots, ncode, nthreshold, nleft, nleaf, cur, act, value, out):
    """Add to ``out[r]`` the leaf values of the node-layout trees (``NodeTrees``), tree by tree,
    for the rows r < ``n_rows`` of ``xt`` (20, rows); ``cur``, ``act`` (uint32) and ``value``
    (float32) are scratch of >= n_rows elements.

    A walk step is a chain of dependent loads (node -> feature value -> child) and a walk per row
    mispredicts its end once per tree, which bounds xgboost's own walk. Here all rows of the block
    walk level by level: a pass moves every active row (``act``, its node in ``cur``) one level
    down, with no branch, so the steps of different rows overlap; every ``_STEPS`` passes the rows
    that reached a leaf write its value to ``value`` and leave the active list (a branch-free
    compaction; a leaf maps to itself, so a row that got there earlier stays put). Each row gets
    exactly one leaf value per tree, added in tree order.
    """
    for t in range(roots.shape[0]):
        root = roots[t]
        for j in range(n_rows):
            cur[j] = root
            act[j] = j
        n_act = n_rows
        while n_act > 0:
            for _ in range(_STEPS):
                for j in range(n_act):
                    cur[j] = _step(xt, act[j], cur[j], ncode, nthreshold, nleft)
            k = 0
            for j in range(n_act):
                n = cur[j]
                r = act[j]
                value[r] = nleaf[n]
                act[k] = r
                cur[k] = n
                k += np.int64(nleft[n] != n)
            n_act = k
        for r in range(n_rows):
            out[r] += value[r]


@numba.njit(cache=True, nogil=True)
def _margins(xt, n_rows, feature, threshold, nan_right, leaf, code_leaf, depth, base_margin, roots, ncode,
             nthreshold, nleft, nleaf, cond, node, code, cur, act, value, out):
    """float32 margins of the rows 0..n_rows-1 of ``xt`` (20, rows: features transposed).

    Tree by tree, as xgboost adds them. Every split condition of the tree is evaluated for all
    rows, in a contiguous loop over rows per split that the compiler vectorises. Shallow trees
    (``code_leaf`` not empty, depth <= 3) then set bit j of a row's uint8 ``code`` for split j and
    look the leaf value up in the tree's ``code_leaf`` table; deeper trees walk the conditions
    (``cond``, int8 (inner nodes, rows); ``node``, int64 per row). A forest in node layout
    (``roots`` not empty: trees deeper than ``Forest.MAX_DEPTH``) is walked by
    :func:`_walk_margins` instead (scratch ``cur``, ``act``, ``value``).
    """
    for r in range(n_rows):
        out[r] = base_margin
    if roots.shape[0] > 0:
        _walk_margins(xt, n_rows, roots, ncode, nthreshold, nleft, nleaf, cur, act, value, out)
        return
    n_inner = feature.shape[1]
    table = code_leaf.shape[1] > 0
    zero = np.uint8(0)
    for t in range(feature.shape[0]):
        if table:
            for r in range(n_rows):
                code[r] = zero
        for j in range(n_inner):
            x = xt[feature[t, j]]
            th = threshold[t, j]
            if table:
                bit = np.uint8(1 << j)
                if nan_right[t, j]:                  # NaN takes the default direction
                    for r in range(n_rows):
                        code[r] |= bit if not (x[r] < th) else zero
                else:
                    for r in range(n_rows):
                        code[r] |= bit if x[r] >= th else zero
            elif nan_right[t, j]:
                for r in range(n_rows):
                    cond[j, r] = np.int8(not (x[r] < th))
            else:
                for r in range(n_rows):
                    cond[j, r] = np.int8(x[r] >= th)
        if table:
            values = code_leaf[t]
            for r in range(n_rows):
                out[r] += values[code[r]]
            continue
        for r in range(n_rows):
            node[r] = 0
        for _ in range(depth):
            for r in range(n_rows):
                i = node[r]
                node[r] = 2 * i + 1 + cond[i, r]
        for r in range(n_rows):
            out[r] += leaf[t, node[r] - n_inner]


@numba.njit(cache=True, nogil=True)
def predict_rows(x, feature, threshold, nan_right, leaf, code_leaf, depth, base_margin, roots, ncode, nthreshold,
                 nleft, nleaf, out):
    """float32 probabilities of float64 feature rows x (n, 20), as ``Booster.inplace_predict``."""
    block = 256
    xt = np.empty((_NF, block), dtype=np.float32)
    m = np.empty(block, dtype=np.float32)
    value = np.empty(block, dtype=np.float32)
    cur = np.empty(block, dtype=np.uint32)
    act = np.empty(block, dtype=np.uint32)
    cond = np.empty((feature.shape[1], block), dtype=np.int8)
    node = np.empty(block, dtype=np.int64)
    code = np.empty(block, dtype=np.uint8)
    n = x.shape[0]
    for start in range(0, n, block):
        stop = min(n, start + block)
        for r in range(start, stop):
            for j in range(_NF):
                xt[j, r - start] = np.float32(x[r, j])
        _margins(xt, stop - start, feature, threshold, nan_right, leaf, code_leaf, depth, base_margin, roots,
                 ncode, nthreshold, nleft, nleaf, cond, node, code, cur, act, value, m)
        for r in range(start, stop):
            out[r] = _sigmoid32(m[r - start])


@numba.njit(cache=True, nogil=True, inline="always")
def _triplet(px, py, pz, e, j1, j2, j3):
    """(mass, pT) of jets j1 + j2 + j3 (flat indices), summed in that order."""
    tpx = px[j1] + px[j2] + px[j3]
    tpy = py[j1] + py[j2] + py[j3]
    tpz = pz[j1] + pz[j2] + pz[j3]
    te = e[j1] + e[j2] + e[j3]
    return np.sqrt(te * te - tpx * tpx - tpy * tpy - tpz * tpz), np.sqrt(tpx * tpx + tpy * tpy)


@numba.njit(cache=True, nogil=True, inline="always")
def _delta_r(eta1, phi1, eta2, phi2):
    d_eta = eta1 - eta2
    d_phi = phi1 - phi2
    return np.sqrt(d_eta * d_eta + d_phi * d_phi)


@numba.njit(cache=True, nogil=True, inline="always")
def _pair_mass(ax, ay, az, ae, i, bx, by, bz, be, j):
    """Invariant mass of vector i of the (a) arrays plus vector j of the (b) arrays, a + b."""
    sx = ax[i] + bx[j]
    sy = ay[i] + by[j]
    sz = az[i] + bz[j]
    se = ae[i] + be[j]
    return np.sqrt(se * se - sx * sx - sy * sy - sz * sz)


@numba.njit(cache=True, nogil=True)
def best_rows(rows, n_used, offsets, px, py, pz, e, pt, eta, phi, btag, qgl, lpx, lpy, lpz, le, leta, lphi,
              table, table_offsets, feature, threshold, nan_right, leaf, code_leaf, depth, base_margin,
              roots, ncode, nthreshold, nleft, nleaf, out_index, out_score, out_features):
    """For each event ``i`` in ``rows``: features of every permutation of its first ``n_used[i]``
    jets (flat jet arrays, event i's jets from ``offsets[i]``), their scores, and the first best
    permutation, written to row ``i`` of the outputs.

    Events are taken in blocks of >= 512 permutations, so that the tree loops run over many rows
    (most events have 4 jets: 12 permutations). Per event, the per-jet, lepton-jet and jet-pair
    quantities are computed once (float64, rounded to float32 once) and a permutation only gathers
    them and sums its three-jet system. The float64 features of the chosen permutation are then
    computed again, by the same operations, for that permutation alone.
    """
    block = 512
    cap = block + _MAX_PERMUTATIONS
    f32t = np.empty((_NF, cap), dtype=np.float32)
    margin = np.empty(cap, dtype=np.float32)
    value = np.empty(cap, dtype=np.float32)
    cur = np.empty(cap, dtype=np.uint32)
    act = np.empty(cap, dtype=np.uint32)
    cond = np.empty((feature.shape[1], cap), dtype=np.int8)
    node = np.empty(cap, dtype=np.int64)
    code = np.empty(cap, dtype=np.uint8)
    ev_start = np.empty(cap, dtype=np.int64)             # events of the block: first row
    jet32 = np.empty((3, 6), dtype=np.float32)           # pt, btag, qgl
    lep32 = np.empty((2, 6), dtype=np.float32)           # lepton-jet dR, mass
    pair32 = np.empty((2, 6, 6), dtype=np.float32)       # jet-pair dR, mass
    n_rows_total = rows.shape[0]
    first = 0
    while first < n_rows_total:
        # 1. features of the permutations of a block of events
        n_block = 0
        last = first
        while last < n_rows_total and n_block < block:
            i = rows[last]
            k = n_used[i]
            o = offsets[i]
            for a in range(k):
                ja = o + a
                lep32[0, a] = np.float32(_delta_r(leta[i], lphi[i], eta[ja], phi[ja]))
                lep32[1, a] = np.float32(_pair_mass(lpx, lpy, lpz, le, i, px, py, pz, e, ja))
                jet32[0, a] = np.float32(pt[ja])
                jet32[1, a] = np.float32(btag[ja])
                jet32[2, a] = np.float32(qgl[ja])
                for b in range(k):
                    jb = o + b
                    pair32[0, a, b] = np.float32(_delta_r(eta[ja], phi[ja], eta[jb], phi[jb]))
                    pair32[1, a, b] = np.float32(_pair_mass(px, py, pz, e, ja, px, py, pz, e, jb))
            p0 = table_offsets[k]
            n_p = table_offsets[k + 1] - p0
            ev_start[last - first] = n_block
            for p in range(n_p):
                w1 = table[p0 + p, 0]
                w2 = table[p0 + p, 1]
                bh = table[p0 + p, 2]
                bl = table[p0 + p, 3]
                m3, pt3 = _triplet(px, py, pz, e, o + w1, o + w2, o + bh)
                q = n_block + p
                f32t[0, q] = lep32[0, bl]
                f32t[1, q] = pair32[0, w1, w2]
                f32t[2, q] = pair32[0, w1, bh]
                f32t[3, q] = pair32[0, w2, bh]
                f32t[4, q] = lep32[1, bl]
                f32t[5, q] = pair32[1, w1, w2]
                f32t[6, q] = np.float32(m3)
                f32t[7, q] = np.float32(pt3)
                for c in range(3):
                    f32t[8 + 4 * c, q] = jet32[c, w1]
                    f32t[9 + 4 * c, q] = jet32[c, w2]
                    f32t[10 + 4 * c, q] = jet32[c, bh]
                    f32t[11 + 4 * c, q] = jet32[c, bl]
            n_block += n_p
            last += 1
        # 2. the trees, on all rows of the block
        _margins(f32t, n_block, feature, threshold, nan_right, leaf, code_leaf, depth, base_margin, roots,
                 ncode, nthreshold, nleft, nleaf, cond, node, code, cur, act, value, margin)
        # 3. per event: the first best permutation and its float64 features
        for ev in range(first, last):
            i = rows[ev]
            k = n_used[i]
            o = offsets[i]
            p0 = table_offsets[k]
            n_p = table_offsets[k + 1] - p0
            s0 = ev_start[ev - first]
            best = 0
            best_score = _sigmoid32(margin[s0])
            for p in range(1, n_p):
                sc = _sigmoid32(margin[s0 + p])
                if sc > best_score:                 # strict: the first maximum, as np.argmax
                    best_score = sc
                    best = p
            out_index[i] = best
            out_score[i] = best_score
            w1 = o + table[p0 + best, 0]
            w2 = o + table[p0 + best, 1]
            bh = o + table[p0 + best, 2]
            bl = o + table[p0 + best, 3]
            m3, pt3 = _triplet(px, py, pz, e, w1, w2, bh)
            out_features[i, 0] = _delta_r(leta[i], lphi[i], eta[bl], phi[bl])
            out_features[i, 1] = _delta_r(eta[w1], phi[w1], eta[w2], phi[w2])
            out_features[i, 2] = _delta_r(eta[w1], phi[w1], eta[bh], phi[bh])
            out_features[i, 3] = _delta_r(eta[w2], phi[w2], eta[bh], phi[bh])
            out_features[i, 4] = _pair_mass(lpx, lpy, lpz, le, i, px, py, pz, e, bl)
            out_features[i, 5] = _pair_mass(px, py, pz, e, w1, px, py, pz, e, w2)
            out_features[i, 6] = m3
            out_features[i, 7] = pt3
            for c, col in enumerate((pt, btag, qgl)):
                out_features[i, 8 + 4 * c] = col[w1]
                out_features[i, 9 + 4 * c] = col[w2]
                out_features[i, 10 + 4 * c] = col[bh]
                out_features[i, 11 + 4 * c] = col[bl]
        first = last


def _warm_up() -> None:
    """First calls with the argument types :mod:`agc_ttbar.ml.forest` passes (loads the cache)."""
    f1 = np.zeros(4)
    i1 = np.zeros(1, dtype=np.int64)
    feature = np.zeros((1, 1), dtype=np.int64)
    threshold = np.zeros((1, 1), dtype=np.float32)
    nan_right = np.zeros((1, 1), dtype=np.bool_)
    leaf = np.zeros((1, 2), dtype=np.float32)
    nodes = (np.zeros(0, np.uint32), np.zeros(0, np.uint32), np.zeros(0, np.float32), np.zeros(0, np.uint32),
             np.zeros(0, np.float32))
    forest = (feature, threshold, nan_right, leaf, leaf, 1, np.float32(0), *nodes)
    predict_rows(np.zeros((1, _NF)), *forest, np.empty(1, dtype=np.float32))
    from .forest import permutation_tables

    table, table_offsets = permutation_tables()
    best_rows(np.zeros(0, dtype=np.int64), i1, i1, f1, f1, f1, f1, f1, f1, f1, f1, f1,
              f1, f1, f1, f1, f1, f1, table, table_offsets, *forest,
              i1, np.empty(1, dtype=np.float32), np.empty((1, _NF)))


warm_up(_warm_up)
