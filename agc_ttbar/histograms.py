"""Exactly summable weighted histograms, and conversion to ``hist`` / ROOT.

Floating-point addition is not associative, so a histogram filled in chunks, or from a file split in
two, would differ in its last bits from one filled in one go. :class:`ExactHistogram` avoids that:
each weight is rounded once, per event, to an integer number of 2^-64 units (an order-independent
operation), and bin sums are kept as integers split into three int64 "limbs". Integer addition is
associative, so fills, chunking, per-file partials and merges give the same bits in any order.
:meth:`ExactHistogram.values` converts the exact integer sum to the nearest float64.

Weights are exact for |w| >= 2^-11 (every AGC weight) and otherwise rounded to 2^-64 absolute; the
squares for sumw2 are treated the same way, and both must stay below 2^40, so |w| < 2^20 per event.
Negative weights (b-tag "down" weights of very hard jets) are split by magnitude and sign, so they
are exact too.

A weight set used for several fills is converted once (:class:`ExactWeights`) and added at bin
indices computed once per observable (:meth:`ExactHistogram.bin_index`,
:meth:`ExactHistogram.fill_index`); :meth:`ExactHistogram.fill` does both in one call.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

_SCALE_EXP = 64          # weights are stored in units of 2^-64
_LIMB_BITS = 32          # limbs 0 and 1 hold 32 bits each, limb 2 the rest (signed)
_MAX_ABS_WEIGHT = 2.0**40
_MAX_FILL = 1 << 20      # entries per bincount call: keeps float64 sums of 2^32 limbs exact


def _limbs(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split float64 weights into three integer-valued float64 limbs (exact, per element).

    The magnitude is split and the sign applied to every limb (a negative weight has three
    non-positive limbs): splitting a negative value directly would need v + 2^64, which float64
    rounds for -2^63 < v < 0.
    """
    if w.size and not np.all(np.abs(w) < _MAX_ABS_WEIGHT):
        bad = w[~(np.abs(w) < _MAX_ABS_WEIGHT)][0]
        raise ValueError(f"histogram weight {float(bad)!r} is not finite or exceeds 2^40")
    v = np.rint(np.ldexp(np.abs(w), _SCALE_EXP))         # integer-valued, 0 <= v < 2^104
    hi = np.floor(np.ldexp(v, -2 * _LIMB_BITS))
    r = np.subtract(v, np.ldexp(hi, 2 * _LIMB_BITS), out=v)    # exact: 0 <= r < 2^64
    mid = np.floor(np.ldexp(r, -_LIMB_BITS))
    lo = np.subtract(r, np.ldexp(mid, _LIMB_BITS), out=r)      # exact: 0 <= lo < 2^32
    negative = np.signbit(w)
    if negative.any():
        for limb in (lo, mid, hi):
            np.negative(limb, out=limb, where=negative)
    return lo, mid, hi


class ExactWeights:
    """The exact limbs of one weight set, for sumw and for sumw2, computed once for any number of fills.

    ``ExactWeights(w, size)`` with a scalar ``w`` gives every one of ``size`` entries the weight
    ``w``; ``ExactWeights(w)`` with a 1D array gives one weight per entry (``size``, if given, must
    match). Each weight (and its square, for sumw2) is rounded once to 2^-64 units and split into
    three limbs (:func:`_limbs`); :meth:`ExactHistogram.fill_index` then adds them at precomputed
    bin indices, so the histograms of several observables filled with the same weights share the
    conversion. The result is bitwise that of :meth:`ExactHistogram.fill` with the plain weights.

    Raises ``ValueError`` (naming the weight) for a weight that is not finite or whose magnitude or
    square reaches 2^40.
    """

    __slots__ = ("size", "scalar", "sumw", "sumw2", "step")

    def __init__(self, weight: np.ndarray | float, size: int | None = None) -> None:
        w = np.asarray(weight, dtype=np.float64)
        self.scalar = w.ndim == 0
        if self.scalar:
            if size is None:
                raise TypeError("ExactWeights: a scalar weight needs the number of entries (size)")
            self.size = int(size)
            w = np.full(1 if self.size else 0, w)      # no entries: nothing to check, as in fill
        else:
            w = w.ravel()
            if size is not None and int(size) != w.size:
                raise ValueError(f"ExactWeights: {w.size} weights for {size} entries")
            self.size = w.size
        lw = _limbs(w)                                 # checks w
        w2 = w * w
        try:
            lw2 = _limbs(w2)
        except ValueError:
            bad = w[~(w2 < _MAX_ABS_WEIGHT)][0]
            raise ValueError(f"histogram weight {float(bad)!r} is too large: its square exceeds 2^40") from None
        if self.scalar:
            # The limbs of the single weight as int64 (zeros for no entries): fill_index multiplies
            # them by per-bin counts, exact since counts per call are <= 2^20 and |limb| < 2^40.
            self.sumw = np.array([l.sum() for l in lw], dtype=np.int64)
            self.sumw2 = np.array([l.sum() for l in lw2], dtype=np.int64)
            self.step = _MAX_FILL
        else:
            self.sumw, self.sumw2 = lw, lw2
            # Entries per float64 bincount: its sums are exact while they stay below 2^53. lo and
            # mid are < 2^32, and so is hi, except in sumw2 when w^2 >= 2^32: then fewer per call.
            big = float(np.max(w2, initial=0.0))
            self.step = _MAX_FILL if big < 2.0**_LIMB_BITS else max(1, int(2.0**52 // big))


def _to_float(limbs: np.ndarray) -> np.ndarray:
    """Nearest float64 of sum_k limbs[k] * 2^(32k) * 2^-64, per bin (Python ints: exact)."""
    out = np.empty(limbs.shape[1], dtype=np.float64)
    for i in range(limbs.shape[1]):
        total = int(limbs[0, i]) + (int(limbs[1, i]) << _LIMB_BITS) + (int(limbs[2, i]) << 2 * _LIMB_BITS)
        # int / int is correctly rounded in Python; the scale is a power of two.
        out[i] = total / (1 << _SCALE_EXP)
    return out


@functools.lru_cache(maxsize=256)
def _search_table(edges: bytes) -> tuple[np.ndarray, float] | None:
    """For :meth:`ExactHistogram.bin_index`: (``[-inf, *edges, nan]``, bins per unit) when the
    arithmetic guess applies (finite, increasing, nearly uniform edges), else None."""
    e = np.frombuffer(edges, dtype=np.float64)
    if len(e) < 2 or not np.all(np.isfinite(e)):
        return None
    width = np.diff(e)
    span = e[-1] - e[0]
    if not (np.all(width > 0) and np.isfinite(span) and np.all(np.abs(width - span / len(width)) <= 1e-9 * span)):
        return None
    ext = np.concatenate(([-np.inf], e, [np.nan]))
    ext.flags.writeable = False
    return ext, len(width) / span


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
        """Flow-inclusive bin index of each value (``searchsorted(edges, x, side="right")``; NaN -> overflow).

        For (nearly) uniform edges the index is first guessed arithmetically and then corrected by
        comparing with the actual edges until ``edges[i-1] <= x < edges[i]`` holds for every value,
        so the result is exactly that of ``searchsorted``, several times faster for unsorted ``x``.
        """
        x = np.asarray(x, dtype=np.float64)
        table = _search_table(self.edges.tobytes()) if self.edges.ndim == 1 else None
        if table is None or x.ndim == 0:
            idx = np.searchsorted(self.edges, x, side="right")
            idx[np.isnan(x)] = self.nbins + 1
            return idx
        ext, scale = table
        with np.errstate(over="ignore", invalid="ignore"):
            t = x - self.edges[0]
            t *= scale
            np.floor(t, out=t)
            np.fmin(t, self.nbins, out=t)       # NaN -> nbins (fmin ignores NaN), +inf -> nbins
            np.fmax(t, -1.0, out=t)
        idx = t.astype(np.intp)
        idx += 1
        # ext[i] = edges[i-1], ext[0] = -inf, ext[nbins+2] = NaN: the bounds of flow bin i are
        # ext[i] <= x < ext[i+1]; no value is below -inf or at/above NaN, so the flow bins (and NaN
        # in the overflow) never move. Each pass moves a wrong index one bin toward the right one.
        lower, upper = ext[:-1], ext[1:]
        while True:
            down = x < lower.take(idx)
            up = x >= upper.take(idx)
            if not (down.any() or up.any()):
                return idx
            idx -= down
            idx += up

    def fill_index(self, idx: np.ndarray, weights: ExactWeights) -> None:
        """Add the entries of ``weights`` at the flow-inclusive bin indices ``idx`` (from :meth:`bin_index`)."""
        idx = np.asarray(idx).ravel()
        if len(idx) != weights.size:
            raise ValueError(f"fill_index: {len(idx)} bin indices for {weights.size} weights")
        n = len(self.edges) + 1
        for start in range(0, len(idx), weights.step):
            sl = slice(start, start + weights.step)
            if weights.scalar:
                # count * limb in int64 is the exact integer sum of the per-entry limbs
                counts = self._bincount(idx[sl], None, n)
                self.sumw += counts * weights.sumw[:, None]
                self.sumw2 += counts * weights.sumw2[:, None]
                continue
            for target, limbs in ((self.sumw, weights.sumw), (self.sumw2, weights.sumw2)):
                for k in range(3):
                    target[k] += self._bincount(idx[sl], limbs[k][sl], n).astype(np.int64)

    @staticmethod
    def _bincount(idx: np.ndarray, weights: np.ndarray | None, n: int) -> np.ndarray:
        out = np.bincount(idx, weights=weights, minlength=n)
        if len(out) != n:
            raise ValueError(f"fill_index: bin index {int(idx.max())} out of range for {n} flow-inclusive bins")
        return out

    def fill(self, x: np.ndarray, weight: np.ndarray | float) -> None:
        """Add entries at ``x`` with the given weights (a scalar applies to all)."""
        x = np.asarray(x, dtype=np.float64).ravel()
        w = np.asarray(weight, dtype=np.float64)
        if w.ndim == 0:
            weights = ExactWeights(w, x.size)
        else:
            weights = ExactWeights(np.broadcast_to(w, x.shape))
        self.fill_index(self.bin_index(x), weights)

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


def merge_sets(paths) -> tuple[HistogramSet, list[dict]]:
    """Sum the :class:`HistogramSet` files at ``paths``; returns the sum and their metadata.

    Lives here, not in :mod:`agc_ttbar.output`, so that a merge job imports numpy only (no uproot,
    hist, awkward: ~0.4 s less per merge process)."""
    total = HistogramSet()
    metas = []
    for p in paths:
        hs, meta = HistogramSet.load(p)
        total += hs
        metas.append(meta)
    return total, metas


# --------------------------------------------------------------------------------------------
# Samples: the histograms of all per-file jobs of one sample


def sample_meta(sample: str, metas: list[dict]) -> dict:
    """Sample-level metadata from the metadata of its per-file-job partials (any order).

    Raises ``ValueError`` naming the files when a partial belongs to another sample.
    """
    from . import cutflow

    wrong = [m.get("file") for m in metas if m.get("sample") != sample]
    if wrong:
        raise ValueError(f"partials of other samples given for {sample}: {wrong}")
    first = metas[0]
    files = [part.get("file") for m in metas for part in m.get("parts", [m])]   # a job may read several
    return {
        "sample": sample, "process": first["process"], "variation": first["variation"],
        "weight": first["weight"], "nevts_total": first["nevts_total"],
        "n_files": len(files), "files": files,
        "nevents": sum(m["nevents"] for m in metas),
        "cutflow": cutflow.total(m["cutflow"] for m in metas),
        "process_s": sum(m.get("timing", {}).get("wall_s", 0.0) for m in metas),
        "peak_rss_mb_max": max(m.get("peak_rss_mb", 0.0) for m in metas),
    }


def merge_sample(sample: str, paths) -> tuple[HistogramSet, dict]:
    """Sum the partials of one sample (exact: any order gives the same bits); the sum and the
    sample-level metadata (:func:`sample_meta`)."""
    total, metas = merge_sets(paths)
    return total, sample_meta(sample, metas)


def load_sample(path: str) -> tuple[HistogramSet, dict]:
    """One sample's histograms and sample-level metadata (:func:`sample_meta`).

    ``path`` is the sample's merged file or, for a sample that is one per-file job, that job's
    partial (the workflow then runs no merge job for it: the file already is the sum).
    """
    hs, meta = HistogramSet.load(path)
    if "n_files" in meta:          # a merged file: sample_meta wrote it
        return hs, meta
    return hs, sample_meta(meta["sample"], [meta])
