"""Gradient optimisation of the analysis choices (optax Adam) and the hard-cut evaluations.

:class:`Problem` ties the columns (:mod:`.columns`), the soft model (:mod:`.soft_model`) and the
objective (:mod:`.objective`). Parameters ``theta = [b-tag threshold, lower edge / 100 GeV,
B width logits]`` (:func:`.soft_model.params_from_edges`); the optimiser starts from the configured
choices (AGC: 0.5 and 11 bins of 40 GeV from 110 GeV) and records every step. The optimised edges
are then put on the processor's 20 GeV grid (:func:`snap_edges`) for the hard re-check, since
histograms.root has that binning.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..samples import BIN_HIGH, BIN_LOW, NUM_BINS
from . import soft_model
from .columns import load_columns
from .objective import ModelStructure, expected_uncertainty


def load_data(paths: list[str], k: int = soft_model.N_TRIJETS) -> soft_model.EventData:
    """The events of column files ``.../{sample}/{index}.npz`` (several jobs of a sample are joined)."""
    by_sample: dict[str, list[str]] = {}
    for p in sorted(paths):
        by_sample.setdefault(os.path.basename(os.path.dirname(p)), []).append(p)
    return soft_model.build_data({s: load_columns(ps) for s, ps in by_sample.items()}, k)


class Problem:
    """The soft and hard objective of the stored events under a model structure."""

    def __init__(self, data: soft_model.EventData, structure: ModelStructure,
                 btag_steepness: float | None, bin_steepness: float | None) -> None:
        import jax

        soft_model.enable_x64()
        self.data = data
        self.arrays = soft_model.device_arrays(data)
        self.structure = structure
        self.btag_steepness, self.bin_steepness = btag_steepness, bin_steepness
        self._vg = jax.jit(jax.value_and_grad(self._objective_theta))
        self._hard = jax.jit(self._objective_hard)

    def templates(self, threshold, edges, arrays=None, hard: bool = False) -> dict:
        """{(region, process, label): (sumw, sumw2)} for a threshold and edges (soft, or hard)."""
        return soft_model.histograms(self.data, self.arrays if arrays is None else arrays, threshold, edges,
                                     None if hard else self.btag_steepness, None if hard else self.bin_steepness)

    def _objective_theta(self, theta, arrays):
        threshold, edges = soft_model.split_params(theta)
        return expected_uncertainty(self.structure, self.templates(threshold, edges, arrays))

    def _objective_hard(self, threshold, edges, arrays):
        return expected_uncertainty(self.structure, self.templates(threshold, edges, arrays, hard=True))

    def value_and_grad(self, theta) -> tuple[float, np.ndarray]:
        """Soft objective and its gradient at ``theta``."""
        import jax.numpy as jnp

        v, g = self._vg(jnp.asarray(theta, dtype=jnp.float64), self.arrays)
        return float(v), np.asarray(g)

    def soft(self, theta) -> float:
        return self.value_and_grad(theta)[0]

    def hard(self, threshold: float, edges) -> float:
        """The objective with hard cuts and hard histograms (T -> infinity) for explicit edges."""
        import jax.numpy as jnp

        return float(self._hard(jnp.float64(threshold), jnp.asarray(edges, dtype=jnp.float64), self.arrays))


def optimise(problem: Problem, theta0, steps: int, learning_rate: float, log=print,
             min_lower_edge: float | None = None) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Adam from ``theta0`` for ``steps`` steps; returns (best theta, path). The path has one entry
    per evaluated point (step 0 = start): threshold, edges, soft objective, gradient norm.
    ``min_lower_edge`` (GeV): the lower edge is projected back to it after a step below it; the
    threshold stays in [0, 1]."""
    import optax

    opt = optax.adam(learning_rate)
    theta = np.asarray(theta0, dtype=np.float64)
    state = opt.init(theta)
    path = []
    best = (np.inf, theta)
    for step in range(steps + 1):
        value, grad = problem.value_and_grad(theta)
        threshold, edges = soft_model.split_params(theta)
        path.append({"step": step, "btag_threshold": float(threshold),
                     "edges": [float(e) for e in np.asarray(edges)], "objective": value,
                     "grad_norm": float(np.linalg.norm(grad))})
        log(f"step {step}: objective {value:.6f}, b-tag threshold {float(threshold):.4f}, "
            f"lower edge {float(edges[0]):.1f} GeV, |grad| {np.linalg.norm(grad):.3g}")
        if not np.isfinite(value):
            raise FloatingPointError(f"the soft objective is {value} at step {step} (theta {theta.tolist()})")
        if value < best[0]:
            best = (value, theta.copy())
        if step == steps:
            break
        updates, state = opt.update(grad, state, theta)
        theta = np.array(optax.apply_updates(theta, updates))
        theta[0] = min(max(theta[0], 0.0), 1.0)
        if min_lower_edge is not None:
            theta[1] = max(theta[1], min_lower_edge / soft_model.EDGE_SCALE)
    return best[1], path


def snap_edges(edges) -> list[float]:
    """Edges on the processor's grid (50 + n*20 GeV, up to 550): each rounded to the nearest grid
    edge; edges that fall together merge (one bin fewer)."""
    width = (BIN_HIGH - BIN_LOW) / NUM_BINS
    grid = np.rint((np.asarray(edges, dtype=np.float64) - BIN_LOW) / width)
    grid = np.clip(grid, 0, NUM_BINS)
    return [float(BIN_LOW + width * k) for k in sorted(set(int(g) for g in grid))]


def threshold_scan(problem: Problem, center: float, half_width: float, points: int, edges) -> list[dict]:
    """Hard objective at ``points`` b-tag thresholds in [center - half_width, center + half_width],
    kept within [0, 0.99] (at 1 nothing is b-tagged); a non-finite value (an empty bin) is None."""
    out = []
    for t in np.linspace(max(0.0, center - half_width), min(0.99, center + half_width), points):
        v = problem.hard(float(t), edges)
        out.append({"btag_threshold": round(float(t), 6), "objective": v if np.isfinite(v) else None})
    return out
