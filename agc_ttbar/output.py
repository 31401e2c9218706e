"""``histograms.root`` and ``histograms_ml.root`` in the AGC format (spec §6.3, §7.1).

Input: the merged exact histograms of all samples (one :class:`HistogramSet` whose keys are AGC
key names). Output: uproot-written TH1D histograms (25 bins with under/overflow, variances = sumw2)
named ``{region}_{process}[_{variation}]`` and ``{region}_pseudodata``, as
``utils/file_output.save_histograms`` of the reference writes them:

- a histogram is written only if its in-range sum of weights is > 0 (for the ML file: > the empty
  yield 25 * 1e-6 * 1.01 after the offset, so effectively the same);
- ``{region}_pseudodata = (ttbar_ME_var + ttbar_PS_var) / 2 + wjets`` (no single top), written only
  if all three inputs are non-empty; variances follow the ``hist`` arithmetic
  ((var_ME + var_PS) / 4 + var_wjets);
- ML file (``add_offset``): 1e-6 is added to every bin, flow bins included, and 1e-12 to every
  variance, before anything else (what ``hist``'s ``h += 1e-6`` does on Weight storage); the
  pseudodata is built from the offset histograms.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import threading
import types
import uuid
from typing import Iterable

import hist
import numpy as np
import uproot

from .atomic import atomic_path
from .histograms import ExactHistogram, HistogramSet, merge_sets  # noqa: F401 (merge_sets: re-export)
from .ml.features import FEATURE_NAMES
from .samples import REGIONS

#: Offset the reference adds to every ML histogram bin (``add_offset=True``).
ML_OFFSET = 1e-6


def _as_hist(values: np.ndarray, variances: np.ndarray, edges: np.ndarray) -> hist.Hist:
    h = ExactHistogram(edges).to_hist()
    view = h.view(flow=True)
    view.value = values
    view.variance = variances
    return h


def channel_templates(hset: HistogramSet, channels: Iterable[str], offset: float = 0.0) -> dict[str, hist.Hist]:
    """The histograms to write for ``channels`` (regions or ML features), pseudodata included.

    Keys of ``hset`` are ``{channel}_{process}[_{variation}]``; each channel is matched by the
    prefix ``{channel}_``. ``offset`` is added to every bin (and ``offset**2`` to the variances).
    """
    threshold = 0.0 if offset == 0.0 else 25 * offset * 1.01
    out: dict[str, hist.Hist] = {}
    for channel in channels:
        prefix = channel + "_"
        found = {}
        for key in sorted(hset.hists):
            if not key.startswith(prefix):
                continue
            rest = key[len(prefix):]
            # a region prefix must not swallow a longer channel name (e.g. features sharing a prefix)
            if any(key.startswith(other + "_") and len(other) > len(channel) for other in channels):
                continue
            h = hset.hists[key]
            values = h.values(flow=True) + offset
            variances = h.variances(flow=True) + offset * offset
            found[rest] = (values, variances, h.edges)
        for rest, (values, variances, edges) in found.items():
            if np.sum(values[1:-1]) > threshold:
                out[f"{channel}_{rest}"] = _as_hist(values, variances, edges)
        parts = [found.get(k) for k in ("ttbar_ME_var", "ttbar_PS_var", "wjets")]
        if all(p is not None and np.sum(p[0][1:-1]) > threshold for p in parts):
            me, ps, wj = (_as_hist(*p) for p in parts)
            out[f"{channel}_pseudodata"] = (me + ps) / 2 + wj
    return out


#: Date written into every ROOT key and directory (uproot writes the current time otherwise):
#: SOURCE_DATE_EPOCH when set (the reproducible-builds convention), else 2000-01-01 00:00:00 UTC.
_FIXED_DATE_EPOCH = 946684800
_UPROOT_PATCH_LOCK = threading.Lock()


class _FixedDatetime(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        epoch = int(os.environ.get("SOURCE_DATE_EPOCH", _FIXED_DATE_EPOCH))
        return cls.fromtimestamp(epoch, tz or datetime.timezone.utc).replace(tzinfo=tz)


@contextlib.contextmanager
def _reproducible_uproot_dates():
    """While writing, uproot's "now" is a fixed date, so equal histograms give equal bytes."""
    from uproot.writing import _cascade, writable

    shim = types.SimpleNamespace(datetime=_FixedDatetime)
    # uproot 5 internals: _cascade stamps every key and directory with datetime.datetime.now().
    # If a new uproot moves that, fail here instead of writing dated (irreproducible) files;
    # tests/test_output.py reads the dates back and compares two writes made seconds apart.
    if not isinstance(getattr(_cascade, "datetime", None), types.ModuleType):
        raise RuntimeError(f"uproot {uproot.__version__}: uproot.writing._cascade.datetime is gone, so the "
                           "fixed ROOT dates of agc_ttbar.output cannot be applied; pin uproot==5.7.7 "
                           "(envs/requirements.txt) or update _reproducible_uproot_dates")
    modules = [m for m in (_cascade, writable) if isinstance(getattr(m, "datetime", None), types.ModuleType)]
    with _UPROOT_PATCH_LOCK:
        saved = [m.datetime for m in modules]
        for m in modules:
            m.datetime = shim
        try:
            yield
        finally:
            for m, original in zip(modules, saved):
                m.datetime = original


def _write(path: str, templates: dict[str, hist.Hist]) -> list[str]:
    """Write ``templates`` to ``path`` atomically and reproducibly: no date, a UUID derived from the
    file name, and the file handed to uproot as an object (else the random temporary name would be
    stored as the TFile name)."""
    file_uuid = uuid.uuid5(uuid.NAMESPACE_URL, "agc_ttbar/" + os.path.basename(path))
    with atomic_path(path) as tmp, _reproducible_uproot_dates():
        with open(tmp, "wb+") as fh, uproot.recreate(fh, uuid_function=lambda: file_uuid) as f:
            for key in sorted(templates):
                f[key] = templates[key]
    return sorted(templates)


def write_histograms(hset: HistogramSet, path: str, regions: Iterable[str] = REGIONS) -> list[str]:
    """Write ``histograms.root``; returns the keys written."""
    return _write(path, channel_templates(hset, list(regions)))


def write_histograms_ml(hset: HistogramSet, path: str, features: Iterable[str] = FEATURE_NAMES) -> list[str]:
    """Write ``histograms_ml.root`` (offset 1e-6 per bin); returns the keys written."""
    return _write(path, channel_templates(hset, list(features), offset=ML_OFFSET))
