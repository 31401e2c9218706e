"""numba kernel of :func:`agc_ttbar.observables.m_bjj` (imported lazily).

It mirrors :func:`agc_ttbar.observables.m_bjj_numpy` operation by operation on the same
numpy-computed Cartesian components (no transcendental function is evaluated here): do not
reorder the sums or use ``fastmath``; tests compare the two bit for bit.
"""

from __future__ import annotations

import numpy as np

from ._jit import numba, warm_up


@numba.njit(cache=True, nogil=True)
def m_bjj_flat(px, py, pz, e, tagged, offsets, out):
    """Per event (jets offsets[i]..offsets[i+1]): the mass of the first highest-pT trijet with a
    b-tagged jet, over i < j < k in lexicographic order; NaN without a candidate."""
    for ev in range(offsets.shape[0] - 1):
        lo = offsets[ev]
        hi = offsets[ev + 1]
        best_pt = -np.inf
        found = False
        bx = 0.0
        by = 0.0
        bz = 0.0
        be = 0.0
        for a in range(lo, hi):
            for b in range(a + 1, hi):
                for c in range(b + 1, hi):
                    if not (tagged[a] or tagged[b] or tagged[c]):
                        continue
                    sx = px[a] + px[b] + px[c]
                    sy = py[a] + py[b] + py[c]
                    tpt = np.hypot(sx, sy)
                    if not found or tpt > best_pt:        # strict: the first maximum
                        found = True
                        best_pt = tpt
                        bx = sx
                        by = sy
                        bz = pz[a] + pz[b] + pz[c]
                        be = e[a] + e[b] + e[c]
        if found:
            m2 = be ** 2 - (bx ** 2 + by ** 2 + bz ** 2)
            out[ev] = np.copysign(np.sqrt(np.abs(m2)), m2)
        else:
            out[ev] = np.nan


def _warm_up() -> None:
    import numpy as np

    z = np.zeros(3)
    m_bjj_flat(z, z, z, z, np.zeros(3, dtype=bool), np.array([0, 3], dtype=np.int64), np.empty(1))


warm_up(_warm_up)
