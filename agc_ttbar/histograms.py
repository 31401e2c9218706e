"""Exactly summable weighted histograms, and conversion to ``hist`` / ROOT.

Floating-point addition is not associative, so a histogram filled in chunks, or from a file split in
two, would differ in its last bits from one filled in one go. :class:`ExactHistogram` avoids that:
each weight is rounded once, per event, to an integer number of 2^-64 units (an order-independent
operation), and bin sums are kept as integers split into three int64 "limbs". Integer addition is
associative, so fills, chunking, per-file partials and merges give the same bits in any order.
:meth:`ExactHistogram.values` converts the exact integer sum to the nearest float64.

Weights are exact for |w| >= 2^-11 (every AGC weight) and otherwise rounded to 2^-64 absolute; the
range is |w| < 2^40 per event. The squares for sumw2 are treated the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_SCALE_EXP = 64          # weights are stored in units of 2^-64
_LIMB_BITS = 32          # limbs 0 and 1 hold 32 bits each, limb 2 the rest (signed)
_MAX_ABS_WEIGHT = 2.0**40
_MAX_FILL = 1 << 20      # entries per bincount call: keeps float64 sums of 2^32 limbs exact


def _limbs(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split float64 weights into three integer-valued float64 limbs (exact, per element)."""
    if w.size and not np.all(np.abs(w) < _MAX_ABS_WEIGHT):
        bad = w[~(np.abs(w) < _MAX_ABS_WEIGHT)][0]
        raise ValueError(f"histogram weight {bad!r} is not finite or exceeds 2^40")
    v = np.rint(np.ldexp(w, _SCALE_EXP))                 # integer-valued, |v| < 2^104
    hi = np.floor(np.ldexp(v, -2 * _LIMB_BITS))
    r = v - np.ldexp(hi, 2 * _LIMB_BITS)                 # exact: 0 <= r < 2^64
    mid = np.floor(np.ldexp(r, -_LIMB_BITS))
    lo = r - np.ldexp(mid, _LIMB_BITS)                   # exact: 0 <= lo < 2^32
    return lo, mid, hi


def _to_float(limbs: np.ndarray) -> np.ndarray:
    """Nearest float64 of sum_k limbs[k] * 2^(32k) * 2^-64, per bin (Python ints: exact)."""
    out = np.empty(limbs.shape[1], dtype=np.float64)
    for i in range(limbs.shape[1]):
        total = int(limbs[0, i]) + (int(limbs[1, i]) << _LIMB_BITS) + (int(limbs[2, i]) << 2 * _LIMB_BITS)
        # int / int is correctly rounded in Python; the scale is a power of two.
        out[i] = total / (1 << _SCALE_EXP)
    return out


@dataclass
class ExactHistogram:
    """A 1D weighted histogram with regular or variable bins, underflow and overflow.

    ``edges`` has n+1 entries; bin 0 is the underflow, n+1 the overflow (the layout of
    ``hist``'s ``values(flow=True)``). A value ``x`` goes into bin i if ``edges[i-1] <= x < edges[i]``.
    NaN goes to the overflow, as in boost-histogram.
    """

    edges: np.ndarray
    sumw: np.ndarray | None = None      # int64 limbs, shape (3, nbins + 2)
    sumw2: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.edges = np.asarray(self.edges, dtype=np.float64)
        n = len(self.edges) + 1
        if self.sumw is None:
            self.sumw = np.zeros((3, n), dtype=np.int64)
        if self.sumw2 is None:
            self.sumw2 = np.zeros((3, n), dtype=np.int64)

    @classmethod
    def regular(cls, bins: int, low: float, high: float) -> "ExactHistogram":
        """A histogram with ``bins`` equal bins in [low, high) (hist ``Reg`` edges)."""
        return cls(np.linspace(low, high, bins + 1))

    @property
    def nbins(self) -> int:
        return len(self.edges) - 1

    def bin_index(self, x: np.ndarray) -> np.ndarray:
        """Flow-inclusive bin index of each value."""
        x = np.asarray(x, dtype=np.float64)
        idx = np.searchsorted(self.edges, x, side="right")
        idx[np.isnan(x)] = self.nbins + 1
        return idx

    def fill(self, x: np.ndarray, weight: np.ndarray | float) -> None:
        """Add entries at ``x`` with the given weights (a scalar applies to all)."""
        x = np.asarray(x, dtype=np.float64).ravel()
        w = np.broadcast_to(np.asarray(weight, dtype=np.float64), x.shape).ravel()
        n = len(self.edges) + 1
        idx = self.bin_index(x)
        for start in range(0, len(x), _MAX_FILL):
            sl = slice(start, start + _MAX_FILL)
            for target, ws in ((self.sumw, w[sl]), (self.sumw2, w[sl] * w[sl])):
                for k, limb in enumerate(_limbs(ws)):
                    target[k] += np.bincount(idx[sl], weights=limb, minlength=n).astype(np.int64)

    def __iadd__(self, other: "ExactHistogram") -> "ExactHistogram":
        if not np.array_equal(self.edges, other.edges):
            raise ValueError("cannot add histograms with different edges")
        self.sumw += other.sumw
        self.sumw2 += other.sumw2
        return self

    def __add__(self, other: "ExactHistogram") -> "ExactHistogram":
        out = self.copy()
        out += other
        return out

    def copy(self) -> "ExactHistogram":
        return ExactHistogram(self.edges.copy(), self.sumw.copy(), self.sumw2.copy())

    def values(self, flow: bool = False) -> np.ndarray:
        """Sum of weights per bin (float64, the nearest value to the exact sum)."""
        v = _to_float(self.sumw)
        return v if flow else v[1:-1]

    def variances(self, flow: bool = False) -> np.ndarray:
        """Sum of squared weights per bin."""
        v = _to_float(self.sumw2)
        return v if flow else v[1:-1]

    def to_hist(self, label: str = "observable [GeV]"):
        """The histogram as a ``hist.Hist`` with Weight storage (flow included)."""
        import hist

        uniform = np.allclose(np.diff(self.edges), self.edges[1] - self.edges[0], rtol=1e-12, atol=0)
        if uniform:
            axis = hist.axis.Regular(self.nbins, self.edges[0], self.edges[-1], name="observable", label=label)
        else:
            axis = hist.axis.Variable(self.edges, name="observable", label=label)
        h = hist.Hist(axis, storage=hist.storage.Weight())
        view = h.view(flow=True)
        view.value = self.values(flow=True)
        view.variance = self.variances(flow=True)
        return h


class HistogramSet:
    """Named :class:`ExactHistogram` objects that are saved to and merged from ``.npz`` files.

    Keys are free-form strings (the workflow uses AGC key names such as ``4j2b_ttbar_pt_res_up``).
    """

    def __init__(self) -> None:
        self.hists: dict[str, ExactHistogram] = {}

    def get(self, key: str, edges: np.ndarray) -> ExactHistogram:
        """The histogram for ``key``, created empty with ``edges`` on first use."""
        h = self.hists.get(key)
        if h is None:
            h = self.hists[key] = ExactHistogram(np.asarray(edges, dtype=np.float64))
        return h

    def __iadd__(self, other: "HistogramSet") -> "HistogramSet":
        for key, h in other.hists.items():
            if key in self.hists:
                self.hists[key] += h
            else:
                self.hists[key] = h.copy()
        return self

    def save(self, path: str, metadata: dict | None = None) -> None:
        """Write all histograms (exact limbs) and a JSON metadata string to ``path`` atomically."""
        import json

        from .atomic import atomic_path

        arrays = {"__metadata__": np.frombuffer(json.dumps(metadata or {}, sort_keys=True).encode(), dtype=np.uint8)}
        for i, key in enumerate(sorted(self.hists)):
            h = self.hists[key]
            arrays[f"k{i}_name"] = np.frombuffer(key.encode(), dtype=np.uint8)
            arrays[f"k{i}_edges"] = h.edges
            arrays[f"k{i}_sumw"] = h.sumw
            arrays[f"k{i}_sumw2"] = h.sumw2
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)

    @classmethod
    def load(cls, path: str) -> tuple["HistogramSet", dict]:
        """Read a file written by :meth:`save`; returns the set and its metadata."""
        import json

        out = cls()
        with np.load(path) as data:
            meta = json.loads(bytes(data["__metadata__"]).decode())
            i = 0
            while f"k{i}_name" in data:
                key = bytes(data[f"k{i}_name"]).decode()
                out.hists[key] = ExactHistogram(data[f"k{i}_edges"], data[f"k{i}_sumw"], data[f"k{i}_sumw2"])
                i += 1
        return out, meta
