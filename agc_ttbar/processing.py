"""The per-file job: NanoAOD events -> exact partial histograms and a cutflow (spec §2-4, §6.3).

:func:`process_file` reads only the branches the analysis needs (:func:`branches_needed`), in
chunks of ``chunksize`` entries so that memory stays bounded whatever the file size, and feeds each
chunk to :meth:`FileProcessor.process_chunk`. Per chunk:

1. Leptons are selected once (they do not depend on the jet variations); only events with
   exactly one selected lepton go on to the jet work.
2. For each jet kinematic variation the sample fills (nominal, ``pt_scale_up``, ``pt_res_up``; an
   alternative ttbar sample only its own label), the jet pT is varied *before* the cuts, jets and
   regions are selected, and the observables (H_T in 4j1b, m_bjj in 4j2b) are filled.
3. The weight variations (``btag_var_*``, ``scale_var_*``) reuse the nominal selection and
   observable: only the weights change, nothing is recomputed.
4. With an ML scorer, the 4j2b events of nominal and of each kinematic variation are scored and
   the 20 features filled with the same weights and labels (weight variations reuse the nominal
   features). Without one, the ML branches are not read.
5. Filling: per (kinematic variation, region) the weight sets (the sample weight under the
   variation's label and, in the nominal pass, each weight variation) are converted once to exact
   integer limbs (:class:`agc_ttbar.histograms.ExactWeights`), and each observable (the region's,
   and in 4j2b each ML feature) computes its bin indices once; every weight set is then added at
   those indices (:meth:`~agc_ttbar.histograms.ExactHistogram.fill_index`).

Histograms accumulate in :class:`agc_ttbar.histograms.ExactHistogram`, so the sums are bitwise the
same whatever the chunking or the file split; with the deterministic ``pt_res_up`` smearing of
:mod:`agc_ttbar.systematics` this holds for every variation.

**Why plain uproot + awkward + numpy and not coffea NanoEvents.** Measured on one core, alternating
runs on a shared machine, synthetic NanoAOD (ZLIB-1; ``benchmarks/`` and ``tests/synthetic_nanoaod.py``),
reading the 18 branches of the selection in 200k-event chunks and computing the object masks:
1M events took 1.50-1.99 s of CPU with ``uproot.TTree.arrays`` and 2.42-3.10 s with
``NanoEventsFactory.from_root(mode="virtual")`` (about 1.5x more), plus ~0.7 s to import
``coffea.nanoevents`` in every job. NanoEvents also insists on fields the analysis never reads
(``Electron_charge`` ...), and its behaviours (four-vectors, cross references) are not needed for a
dozen branches and two simple observables. An explicit branch list makes "reads only what it
needs" a fact that tests check. The core therefore works on flat numpy arrays plus per-event
counts, with awkward only for the trijet combinations; on 1M events its event loop runs at about
60% of the raw read rate of the same branches (the rest is decompression).

Arithmetic is float64 (stored float32 values convert exactly); see :mod:`agc_ttbar.observables`.
"""

from __future__ import annotations

import math
import resource
import sys
import time
from dataclasses import dataclass
from typing import Callable, Mapping

import awkward as ak
import numpy as np

from . import cutflow as cutflow_mod
from .histograms import ExactWeights, HistogramSet
from .io import InputFileError, check_branches, compressed_bytes, open_tree, read_chunk
from .ml.features import FEATURES, NUM_BINS as ML_NUM_BINS
from .observables import cartesian, event_index, ht, m_bjj, offsets_of
from .samples import (BIN_HIGH, BIN_LOW, BTAG_VARIATIONS, KINEMATIC_VARIATIONS, NUM_BINS, REGIONS,
                      SCALE_VARIATIONS, histogram_key, split_sample_key, variations_for)
from .selection import (B_TAG_THRESHOLD, BRANCHES, ID_BRANCHES, ML_BRANCHES, btag_mask, electron_mask, jet_base_mask,
                        jet_pt_mask, muon_mask, region_masks)
from .systematics import PT_SCALE_UP, btag_weight_factor, pt_resolution_factors, scale_var_factor

#: Bin edges of the region histograms (25 bins of 20 GeV, 50-550 GeV; flow bins kept).
EDGES = np.linspace(BIN_LOW, BIN_HIGH, NUM_BINS + 1)
#: Bin edges of each ML feature histogram.
ML_EDGES = {name: np.linspace(lo, hi, ML_NUM_BINS + 1) for name, lo, hi in FEATURES}


@dataclass(frozen=True)
class SampleInfo:
    """What a per-file job needs to know about its sample (from the fileset stage)."""

    sample: str
    process: str
    variation: str
    weight: float
    nevts_total: int = 0

    @classmethod
    def from_fileset(cls, fileset: Mapping, sample: str) -> "SampleInfo":
        try:
            s = fileset[sample]
        except KeyError:
            raise KeyError(f"fileset has no sample {sample!r} (has: {', '.join(fileset)})") from None
        return cls(sample, s["process"], s["variation"], float(s["weight"]), int(s["nevts_total"]))

    @classmethod
    def from_key(cls, sample: str, weight: float, nevts_total: int = 0) -> "SampleInfo":
        process, variation = split_sample_key(sample)
        return cls(sample, process, variation, weight, nevts_total)


def branches_needed(variation: str, with_ml: bool) -> list[str]:
    """Branches a job reads: the selection branches, the event identity for ``pt_res_up`` (nominal
    samples only), and the ML branches only when ML is on."""
    out = list(BRANCHES)
    if variation == "nominal":
        out += list(ID_BRANCHES)
    if with_ml:
        out += list(ML_BRANCHES)
    return list(dict.fromkeys(out))


def _jagged(arr) -> tuple[np.ndarray, np.ndarray]:
    """(counts, flat content) of a one-level jagged awkward array."""
    counts = ak.to_numpy(ak.num(arr, axis=1)).astype(np.int64)
    flat = ak.to_numpy(ak.flatten(arr, axis=1))
    return counts, flat


def _count(mask: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Number of True entries per event of a flat boolean mask (exact integer arithmetic)."""
    return np.diff(np.searchsorted(np.flatnonzero(mask), offsets))


class FileProcessor:
    """Accumulates the histograms and the cutflow of one sample over chunks of events.

    ``scorer``: ``None`` (no ML) or an object with ``best_features(jets, lepton, event)`` returning a
    float64 array (n_events, 20) in the order of :data:`agc_ttbar.ml.features.FEATURES`
    (:class:`agc_ttbar.ml.inference.AssignmentScorer`); ``jets`` are jagged awkward arrays. A scorer
    that also has ``best_features_flat(counts, jets, lepton, event, components)`` gets the flat jet
    arrays, the jet counts and the jets' Cartesian components (shared with m_bjj) instead.
    """

    def __init__(self, info: SampleInfo, pt_res_seed: int = 0, scorer=None,
                 btag_threshold: float = B_TAG_THRESHOLD) -> None:
        self.info = info
        self.btag_threshold = float(btag_threshold)
        self.pt_res_seed = int(pt_res_seed)
        self.scorer = scorer
        # numba is loaded already when the scorer is compiled: then m_bjj uses its kernel too
        self.compiled = bool(getattr(scorer, "compiled", False))
        self.hists = HistogramSet()
        self.cutflow = cutflow_mod.empty()
        labels = variations_for(info.process, info.variation)
        if info.variation == "nominal":
            self.kinematic = ["nominal"] + [v for v in KINEMATIC_VARIATIONS if v in labels]
        else:
            self.kinematic = [info.variation]
        self.btag_vars = [v for v in BTAG_VARIATIONS if v in labels]
        self.scale_vars = [v for v in SCALE_VARIATIONS if v in labels]

    # ------------------------------------------------------------------------------------------
    def _weight_sets(self, label: str, pt_sel: np.ndarray, counts: np.ndarray) -> list[tuple[str, ExactWeights]]:
        """(histogram label, exact weights) of the selected events of one region and kinematic pass:
        the sample weight under ``label`` and, for the nominal pass, every weight variation."""
        n = len(counts)
        out = [(label, ExactWeights(self.info.weight, n))]
        if label == "nominal":
            out += [(var, ExactWeights(w, n)) for var, w in self._weight_variations(pt_sel, counts).items()]
        return out

    def _fill_all(self, name: str, x: np.ndarray, edges: np.ndarray,
                  weight_sets: list[tuple[str, ExactWeights]]) -> None:
        """Fill observable ``name`` (values ``x``) with every weight set: the bins are found once."""
        idx = None
        for label, weights in weight_sets:
            h = self.hists.get(histogram_key(name, self.info.process, label), edges)
            if idx is None:
                idx = h.bin_index(x)             # the same edges for every histogram of ``name``
            h.fill_index(idx, weights)

    def _weight_variations(self, pt_sel: np.ndarray, counts: np.ndarray) -> dict[str, np.ndarray | float]:
        """Weights of the b-tag (per event, from the nominal jets, >= 4 per event) and scale
        (one value for all events) variations."""
        w = self.info.weight
        starts = offsets_of(counts)[:-1]
        out: dict[str, np.ndarray | float] = {}
        for var in self.btag_vars:
            _, _, i, direction = var.split("_")
            out[var] = w * btag_weight_factor(pt_sel[starts + int(i)], direction)
        for var in self.scale_vars:
            out[var] = w * scale_var_factor(var.rsplit("_", 1)[1])
        return out

    # ------------------------------------------------------------------------------------------
    def process_chunk(self, a: Mapping[str, ak.Array]) -> None:
        """Select, vary and fill one chunk (a mapping branch name -> awkward/numpy array)."""
        e_counts, e_pt = _jagged(a["Electron_pt"])
        e_off = offsets_of(e_counts)
        n = len(e_counts)
        e_mask = electron_mask(e_pt, _jagged(a["Electron_eta"])[1], _jagged(a["Electron_cutBased"])[1],
                               _jagged(a["Electron_sip3d"])[1])
        m_counts, m_pt = _jagged(a["Muon_pt"])
        m_off = offsets_of(m_counts)
        m_mask = muon_mask(m_pt, _jagged(a["Muon_eta"])[1], _jagged(a["Muon_tightId"])[1],
                           _jagged(a["Muon_sip3d"])[1], _jagged(a["Muon_pfRelIso04_all"])[1])
        n_e, n_m = _count(e_mask, e_off), _count(m_mask, m_off)
        one_l = (n_e + n_m) == 1

        j_counts, j_pt32 = _jagged(a["Jet_pt"])
        j_off = offsets_of(j_counts)
        j_eta = _jagged(a["Jet_eta"])[1]
        j_id = _jagged(a["Jet_jetId"])[1]
        j_btag = _jagged(a["Jet_btagCSVV2"])[1]
        j_base = jet_base_mask(j_eta, j_id)      # pT-independent jet cuts
        j_isb = btag_mask(j_btag, self.btag_threshold)

        # cutflow of the nominal selection (all events)
        jm_nom = j_base & jet_pt_mask(j_pt32)
        nj_all = _count(jm_nom, j_off)
        nb_all = _count(jm_nom & j_isb, j_off)
        four_j = nj_all >= 4
        cf = {"steps": {"all": n, "exactly_1l": int(one_l.sum()),
                        "atleast_4j": int((one_l & four_j).sum()),
                        "4j1b": int((one_l & four_j & (nb_all == 1)).sum()),
                        "4j2b": int((one_l & four_j & (nb_all >= 2)).sum())},
              "single": {"exactly_1l": int(one_l.sum()),
                         "exactly_1l_electron": int((one_l & (n_e == 1)).sum()),
                         "exactly_1l_muon": int((one_l & (n_m == 1)).sum()),
                         "atleast_4j": int(four_j.sum()),
                         "exactly_1b": int((nb_all == 1).sum()),
                         "atleast_2b": int((nb_all >= 2).sum())}}
        cutflow_mod.add(self.cutflow, cf)
        if not one_l.any():
            return

        # restrict the jet work to events with exactly one lepton
        ev_idx = np.flatnonzero(one_l)
        keep = np.repeat(one_l, j_counts)
        s_counts = j_counts[ev_idx]
        s_off = offsets_of(s_counts)
        s_ev = event_index(s_counts)
        s_pt = j_pt32[keep].astype(np.float64)
        s_base, s_isb = j_base[keep], j_isb[keep]
        s_eta = j_eta[keep]
        s_phi = _jagged(a["Jet_phi"])[1][keep]
        s_mass = _jagged(a["Jet_mass"])[1][keep]
        s_btag = j_btag[keep]
        ones = np.ones(len(ev_idx), dtype=np.int64)

        ml = self.scorer is not None
        if ml:
            s_qgl = _jagged(a["Jet_qgl"])[1][keep]
            lepton = self._lepton(a, e_mask, e_counts, m_mask, m_counts, one_l, n)
            lepton = {k: v[ev_idx] for k, v in lepton.items()}
            s_event_no = ak.to_numpy(a["event"])[ev_idx].astype(np.uint64)

        for label in self.kinematic:
            ptv = varied_jet_pt(label, s_pt, a, ev_idx, s_ev, s_off, self.pt_res_seed)
            jm = s_base & jet_pt_mask(ptv)
            nj = _count(jm, s_off)
            nb = _count(jm & s_isb, s_off)
            regions = region_masks(ones, nj, nb)
            for region in REGIONS:
                r = regions[region]
                if not r.any():
                    continue
                sel = jm & r[s_ev]
                rc = nj[r]
                pt_sel = ptv[sel]
                weight_sets = self._weight_sets(label, pt_sel, rc)
                if region == "4j1b":
                    x = ht(pt_sel, rc)
                else:
                    comps = cartesian(pt_sel, s_eta[sel], s_phi[sel], s_mass[sel])   # m_bjj and ML
                    x = m_bjj(pt_sel, s_eta[sel], s_phi[sel], s_mass[sel], s_btag[sel], rc,
                              compiled=self.compiled, components=comps, btag_threshold=self.btag_threshold)
                self._fill_all(region, x, EDGES, weight_sets)
                if ml and region == "4j2b":
                    jets = {"pt": pt_sel, "eta": s_eta[sel], "phi": s_phi[sel], "mass": s_mass[sel],
                            "btag": s_btag[sel], "qgl": s_qgl[sel]}
                    lep = {k: v[r] for k, v in lepton.items()}
                    if hasattr(self.scorer, "best_features_flat"):       # flat arrays + counts
                        feats = self.scorer.best_features_flat(rc, jets, lep, s_event_no[r], components=comps)
                    else:
                        jets = {k: ak.unflatten(v, rc) for k, v in jets.items()}
                        feats = self.scorer.best_features(jets, lep, s_event_no[r])
                    feats = np.asarray(feats, dtype=np.float64)
                    if feats.shape != (int(r.sum()), len(FEATURES)):
                        raise ValueError(f"ML scorer returned features of shape {feats.shape}, "
                                         f"expected ({int(r.sum())}, {len(FEATURES)})")
                    for i, (name, _, _) in enumerate(FEATURES):
                        self._fill_all(name, feats[:, i], ML_EDGES[name], weight_sets)

    @staticmethod
    def _lepton(a, e_mask, e_counts, m_mask, m_counts, one_l, n) -> dict[str, np.ndarray]:
        """(pt, eta, phi, mass) of the single selected lepton of each one-lepton event."""
        out = {k: np.zeros(n, dtype=np.float64) for k in ("pt", "eta", "phi", "mass")}
        for prefix, mask, counts in (("Electron", e_mask, e_counts), ("Muon", m_mask, m_counts)):
            ev = event_index(counts)
            pick = mask & one_l[ev]
            for k in out:
                out[k][ev[pick]] = _jagged(a[f"{prefix}_{k}"])[1][pick]
        return out

    def metadata(self) -> dict:
        i = self.info
        return {"sample": i.sample, "process": i.process, "variation": i.variation, "weight": i.weight,
                "nevts_total": i.nevts_total, "cutflow": self.cutflow,
                "nevents": self.cutflow["steps"]["all"], "pt_res_seed": self.pt_res_seed,
                "ml": self.scorer is not None}


def _ml_seconds(scorer) -> float:
    """Seconds the scorer has spent so far (features, model, fused search); 0 without ML."""
    stats = getattr(scorer, "stats", None)
    if stats is None:
        return 0.0
    return float(stats.seconds_features + stats.seconds_model + stats.seconds_fused)


def varied_jet_pt(label: str, pt: np.ndarray, arrays, ev_idx: np.ndarray, jet_event: np.ndarray,
                  offsets: np.ndarray, pt_res_seed: int) -> np.ndarray:
    """Jet pT (flat, GeV) under the kinematic variation ``label``: ``pt_scale_up`` scales it,
    ``pt_res_up`` smears it by the per-jet factor of (run, lumi, event, jet index in its event),
    anything else is nominal. ``ev_idx`` picks the chunk's events that ``pt`` belongs to,
    ``jet_event`` (per jet) indexes those events, ``offsets`` are their jet offsets."""
    if label == "pt_scale_up":
        return pt * PT_SCALE_UP
    if label == "pt_res_up":
        local = np.arange(len(pt), dtype=np.int64) - offsets[jet_event]
        ids = [ak.to_numpy(arrays[b])[ev_idx][jet_event] for b in ID_BRANCHES]
        return pt * pt_resolution_factors(pt_res_seed, *ids, local)
    return pt


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB.

    Linux: ``VmHWM`` of /proc/self/status, the high-water mark of this program's own memory.
    ``ru_maxrss`` is not that: Linux carries it over ``exec``, so a job started by a large parent
    (a pytest process, a driver) reports the parent's size. Elsewhere ``ru_maxrss`` (KiB on Linux,
    bytes on macOS).
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024.0 / (1024.0 if sys.platform == "darwin" else 1.0)


def _sum_known(values) -> int | None:
    """Sum of the values, None when any is unknown (an RNTuple input has no per-branch sizes)."""
    values = list(values)
    return None if any(v is None for v in values) else sum(values)


def combined_metadata(metas: list[dict]) -> dict:
    """Metadata of one job that read several files of a sample: the sample's fields, summed counts
    and timings, and each file's own metadata under ``parts`` (what a one-file job writes)."""
    first = metas[0]
    timing = {k: sum(m["timing"][k] for m in metas) for k in ("wall_s", "cpu_s", "read_s", "process_s")}
    n = sum(m["entries"] for m in metas)
    timing["events_per_s"] = n / timing["wall_s"] if timing["wall_s"] > 0 else None
    timing["events_per_cpu_s"] = n / timing["cpu_s"] if timing["cpu_s"] > 0 else None
    out = {k: first[k] for k in ("sample", "process", "variation", "weight", "nevts_total", "pt_res_seed",
                                 "ml", "tree", "branches", "chunksize")}
    out.update({"cutflow": cutflow_mod.total(m["cutflow"] for m in metas),
                "nevents": sum(m["nevents"] for m in metas), "entries": n,
                "file": [m["file"] for m in metas], "index": [m["index"] for m in metas],
                "fileset_path": [m["fileset_path"] for m in metas], "timing": timing,
                "peak_rss_mb": max(m["peak_rss_mb"] for m in metas),
                "bytes_read": _sum_known(m["bytes_read"] for m in metas), "ml_s": sum(m["ml_s"] for m in metas),
                "parts": metas})
    return out


def process_file(path: str, info: SampleInfo, tree_name: str = "Events", chunksize: int = 200_000,
                 pt_res_seed: int = 0, scorer=None, expected_entries: int | None = None,
                 nevts_mismatch: str = "warn", log: Callable[[str], None] | None = None,
                 entry_start: int = 0, entry_stop: int | None = None,
                 remote_options=None, btag_threshold: float = B_TAG_THRESHOLD,
                 columns=None) -> tuple[HistogramSet, dict]:
    """Process one file in chunks; returns its histograms and metadata (cutflow, timing, ...).

    ``expected_entries``: the entry count the fileset promises; a mismatch is logged
    (``nevts_mismatch="warn"``) or raises :class:`InputFileError` (``"fail"``).
    ``entry_start``/``entry_stop`` restrict the range (tests, benchmarks).
    ``remote_options``: :class:`agc_ttbar.remote.RemoteOptions` (timeout, attempts) for a URL.
    ``columns``: an :class:`agc_ttbar.optimisation.columns.ColumnCollector` that also gets every chunk
    (optimisation.enabled), else None.
    """
    if chunksize < 1:
        raise ValueError(f"chunksize must be positive, got {chunksize}")
    log = log or (lambda msg: print(msg, flush=True))
    proc = FileProcessor(info, pt_res_seed, scorer, btag_threshold)
    branches = branches_needed(info.variation, scorer is not None)
    t0, c0 = time.perf_counter(), time.process_time()
    read_s = 0.0
    ml_s0 = _ml_seconds(scorer)
    with open_tree(path, tree_name, remote_options) as tree:
        check_branches(tree, branches, path)
        n_entries = tree.num_entries
        compressed = compressed_bytes(tree, branches)
        if expected_entries is not None and expected_entries != n_entries:
            msg = (f"input file {path}: tree {tree_name!r} has {n_entries} entries, "
                   f"the fileset says {expected_entries}")
            if nevts_mismatch == "fail":
                raise InputFileError(msg + " (config key processing.nevts_mismatch: fail)")
            log("WARNING: " + msg)
        start = max(0, entry_start)
        stop = n_entries if entry_stop is None else min(entry_stop, n_entries)
        n_total = max(0, stop - start)
        n_chunks = math.ceil(n_total / chunksize) if n_total else 0
        log(f"{info.sample}: {path}: {n_total} entries in {n_chunks} chunk(s) of {chunksize}, "
            f"{len(branches)} branches, ML {'on' if scorer is not None else 'off'}")
        done = 0
        for c in range(n_chunks):
            lo = start + c * chunksize
            hi = min(stop, lo + chunksize)
            t_read = time.perf_counter()
            arrays = read_chunk(tree, path, branches, lo, hi, remote_options)
            t_proc = time.perf_counter()
            read_s += t_proc - t_read
            proc.process_chunk(arrays)
            if columns is not None:
                columns.add_chunk(arrays)
            del arrays
            done += hi - lo
            now = time.perf_counter()
            log(f"chunk {c + 1}/{n_chunks}: entries {lo}-{hi}, {hi - lo} events "
                f"in {now - t_read:.2f} s ({(hi - lo) / max(now - t_read, 1e-9):,.0f} ev/s); "
                f"{done}/{n_total} done, {done / max(now - t0, 1e-9):,.0f} ev/s overall")
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    meta = proc.metadata()
    meta.update({
        "file": path, "tree": tree_name, "entries": n_total, "branches": branches, "chunksize": chunksize,
        "timing": {"wall_s": wall, "cpu_s": cpu, "read_s": read_s, "process_s": wall - read_s,
                   "events_per_s": n_total / wall if wall > 0 else None,
                   "events_per_cpu_s": n_total / cpu if cpu > 0 else None},
        "peak_rss_mb": peak_rss_mb(),
        "bytes_read": int(round(compressed * n_total / n_entries)) if n_entries and compressed is not None else None,
        "ml_s": _ml_seconds(scorer) - ml_s0,
    })
    log(f"done: {n_total} events in {wall:.2f} s ({meta['timing']['events_per_s'] or 0:,.0f} ev/s; "
        f"read {read_s:.2f} s), {len(proc.hists.hists)} histograms, peak RSS {meta['peak_rss_mb']:.0f} MB")
    return proc.hists, meta

