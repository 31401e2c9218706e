"""Systematic variations of the AGC ttbar analysis (spec §4).

Jet kinematic variations multiply the jet pT *before* the selection (only pT changes; the mass is
not scaled and the jets are not re-sorted):

- ``pt_scale_up``: every jet pT x 1.03 (:data:`PT_SCALE_UP`).
- ``pt_res_up``: every jet pT x r with r ~ Normal(1, 0.05) (:func:`pt_resolution_factors`).

Event-weight variations reuse the nominal selection and observable:

- ``btag_var_{i}_{up,down}``, i = 0..3: ``w * (1 +- 0.075 * pT_i / 50)`` with pT_i the *nominal*
  pT of the i-th selected jet in stored order (:func:`btag_weight_factor`). The AGC evaluates the
  same formula through correctionlib (``corrections.json``, key ``btag_var``); the down weight
  turns negative above 666.7 GeV, as in the reference (not guarded).
- ``scale_var_{up,down}`` (W+jets only): ``w * 1.025`` / ``w * 0.975``.

**The one deliberate difference from the reference.** The AGC draws the resolution factors with
``np.random.normal(1, 0.05)`` and no seed, so ``pt_res_up`` differs per chunk and per run (its
validator therefore never compares ``pt_res_up``). Here the factor of a jet is a pure function of
``(seed, run, luminosityBlock, event, jet index in the event)``: the five integers are mixed with
the splitmix64 finaliser (a bijective 64-bit hash with full avalanche), the top 53 bits of the hash
give a uniform ``u`` in (0, 1), and ``r = 1 + 0.05 * Phi^-1(u)`` (``scipy.special.ndtri``, which
evaluates each element independently). The factors are therefore the same whatever the chunking,
the file split, the process or the rerun, and the distribution is the reference's Normal(1, 0.05).
"""

from __future__ import annotations

import numpy as np

#: Jet energy scale variation factor (``pt_scale_up``).
PT_SCALE_UP = 1.03
#: Width of the jet pT resolution smearing (``pt_res_up``).
PT_RES_SIGMA = 0.05
#: b-tag weight variation: ``1 +- BTAG_VAR_SLOPE * pt / BTAG_VAR_PT_REF``.
BTAG_VAR_SLOPE, BTAG_VAR_PT_REF = 0.075, 50.0
#: W+jets scale variation factors.
SCALE_VAR = {"up": 1.025, "down": 0.975}

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on a uint64 array (wrap-around arithmetic, element by element)."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def counter_hash(seed: int, *keys: np.ndarray) -> np.ndarray:
    """A 64-bit hash of ``(seed, *keys)`` per element; keys broadcast against each other.

    Each step is ``h = mix(h + gamma ^ key)``, so the hash of an element depends only on its own
    key values.
    """
    arrays = [np.atleast_1d(np.asarray(k)).astype(np.uint64) for k in keys]
    shape = np.broadcast_shapes(*(a.shape for a in arrays)) if arrays else (1,)
    with np.errstate(over="ignore"):
        h = _mix(np.full(shape, np.uint64(seed & 0xFFFFFFFFFFFFFFFF), dtype=np.uint64) + _GAMMA)
        for a in arrays:
            h = _mix((h + _GAMMA) ^ a)
    return h


def uniform_from_hash(h: np.ndarray) -> np.ndarray:
    """Map uint64 hashes to doubles uniform in the open interval (0, 1).

    The top 53 bits k give (k + 0.5) * 2**-53; for k = 2**53 - 1 that sum rounds up to 2**53, so
    the largest value is clipped to the largest double below 1 (else ndtri(1) = inf).
    """
    u = ((h >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53
    return np.minimum(u, np.nextafter(1.0, 0.0))


def pt_resolution_factors(seed: int, run: np.ndarray, lumi: np.ndarray, event: np.ndarray,
                          jet_index: np.ndarray, sigma: float = PT_RES_SIGMA) -> np.ndarray:
    """Deterministic Normal(1, sigma) factor per jet (flat arrays, one entry per jet)."""
    from scipy.special import ndtri   # imported here: ~0.2 s that only nominal-sample jobs need

    u = uniform_from_hash(counter_hash(seed, run, lumi, event, jet_index))
    return 1.0 + sigma * ndtri(u)


def btag_weight_factor(pt_i: np.ndarray, direction: str) -> np.ndarray:
    """``1 +- 0.075 * pt_i / 50`` (the AGC ``btag_var`` correction)."""
    pt_i = np.asarray(pt_i, dtype=np.float64)
    if direction == "up":
        return 1.0 + pt_i * BTAG_VAR_SLOPE / BTAG_VAR_PT_REF
    if direction == "down":
        return 1.0 - pt_i * BTAG_VAR_SLOPE / BTAG_VAR_PT_REF
    raise ValueError(f"direction must be 'up' or 'down', got {direction!r}")


def scale_var_factor(direction: str) -> float:
    """W+jets scale variation factor (1.025 up, 0.975 down)."""
    try:
        return SCALE_VAR[direction]
    except KeyError:
        raise ValueError(f"direction must be 'up' or 'down', got {direction!r}") from None
