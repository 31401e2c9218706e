"""Generate one synthetic NanoAOD file of one AGC sample.

``generate_events`` draws events chunk by chunk inside the generation class of the process,
simulates the detector, applies the generator-level filter (the AGC skim of spec section 8.3 with
">= 1 lepton") and keeps the first ``n_events`` that pass. The pre-filter event count ``nevts`` is
what the sample would have needed without class and filter: the position (in the full event
stream) of the last kept event. Positions come from geometric gaps with the class probability, so
``nevts`` is an exact draw, and the event numbers show the gaps a real skim has.

Each (sample, file index) has its own random stream: ``numpy.random.SeedSequence`` of the master
seed, a stable code of the sample name and the file index.

``unskimmed_chunks`` (``mock.skim: false``) draws every event of the sample instead, without class
or filter, in chunks that the writer streams to disk: files of real size (>= 1M events) with the
real selection efficiencies.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass
from typing import Iterator

import awkward as ak
import numpy as np

from ..samples import split_sample_key
from ..selection import btag_mask, electron_mask, muon_mask
from . import detector
from .processes import GENERATORS, inclusive_model, sample_model
from .schema import round_mantissa

#: Event numbers of file ``index`` start at index * EVENT_STRIDE + 1, so they are unique per sample.
EVENT_STRIDE = 1_000_000_000
#: Simulated MC events per luminosity block (as in the real files: lumi = (event - 1) // 100 + 1).
EVENTS_PER_LUMI = 100
#: Skim jet threshold (below the analysis's 30 GeV so that pt variations keep their migrations).
SKIM_JET_PT = 25.0

#: NanoAOD storage precision (mantissa bits) of the float branches; others are full precision.
PRECISION = {
    "Jet_eta": 12, "Jet_phi": 12, "Jet_mass": 10, "Jet_btagCSVV2": 10, "Jet_qgl": 10,
    "Electron_eta": 12, "Electron_phi": 12, "Electron_mass": 10, "Electron_sip3d": 10,
    "Electron_pfRelIso03_all": 10, "Muon_eta": 12, "Muon_phi": 12, "Muon_sip3d": 10,
    "Muon_pfRelIso04_all": 6, "GenPart_pt": 8, "GenPart_eta": 8, "GenPart_phi": 8, "GenPart_mass": 8,
    "MET_pt": 10, "MET_phi": 12, "Pileup_nTrueInt": 8,
}


class MockConfigError(ValueError):
    """A generation parameter is invalid; the message says which and why."""


def sample_code(sample: str) -> int:
    """Stable 32-bit code of a sample name (CRC-32), used in the seed sequence."""
    return zlib.crc32(sample.encode())


def rng_for(seed: int, sample: str, index: int) -> np.random.Generator:
    """Independent random stream of one (sample, file index)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), sample_code(sample), int(index)]))


@dataclass
class GeneratedFile:
    """Kept events of one file and its bookkeeping."""

    branches: dict
    nevts: int                 # pre-filter event count (what the AGC inputs list calls nevts)
    n_class: int               # events generated inside the generation class
    n_kept: int
    seconds: float
    sum_genweight: float
    sum_genweight2: float


def skim_mask(reco) -> np.ndarray:
    """Generator-level filter: the AGC ServiceX skim (spec 8.3) with >= 1 lepton.

    >= 1 selected electron or muon (analysis cuts), >= 4 jets with pt > 25 GeV, |eta| < 2.4 and
    tight ID, at least one of them b-tagged. Events failing it cannot enter either region under any
    jet pt variation (x1.03 or the 5% resolution smearing).
    """
    e, m, j = reco["Electron"], reco["Muon"], reco["Jet"]
    n_e = np.sum(e["valid"] & electron_mask(e["pt"], e["eta"], e["cutBased"], e["sip3d"]), axis=1)
    n_m = np.sum(m["valid"] & muon_mask(m["pt"], m["eta"], m["tightId"], m["sip3d"], m["pfRelIso04_all"]), axis=1)
    jet_ok = j["valid"] & (j["pt"] > SKIM_JET_PT) & (np.abs(j["eta"]) < 2.4) & ((j["jetId"] & 4) != 0)
    return ((n_e + n_m) >= 1) & (np.sum(jet_ok, axis=1) >= 4) & (np.sum(jet_ok & btag_mask(j["btagCSVV2"]), axis=1) >= 1)


def _jagged(block: dict, valid, keys, sort_key="pt"):
    """Padded block -> dict of flat values and counts, objects sorted by decreasing pt."""
    order = np.argsort(-np.where(valid, block[sort_key], -np.inf), axis=1, kind="stable")
    v = np.take_along_axis(valid, order, axis=1)
    counts = v.sum(axis=1)
    out = {k: np.take_along_axis(np.asarray(block[k]), order, axis=1)[v] for k in keys}
    return out, counts, order, v


def _index_after_sort(order, valid_sorted):
    """Map old column -> new stored index (or -1) per event after sorting and dropping."""
    n, k = order.shape
    newpos = np.where(valid_sorted, np.cumsum(valid_sorted, axis=1) - 1, -1)
    inverse = np.empty_like(order)
    np.put_along_axis(inverse, order, np.broadcast_to(np.arange(k), (n, k)), axis=1)
    return np.take_along_axis(newpos, inverse, axis=1)


def _lookup(mapping, cols):
    """mapping[event, cols[event, i]] with -1 for cols < 0."""
    safe = np.maximum(cols, 0)
    return np.where(cols >= 0, np.take_along_axis(mapping, safe, axis=1), -1)


def build_branches(truth_gen, reco, keep, rng) -> dict:
    """Branch arrays (awkward for jagged, numpy for flat) of the kept events."""
    jets, ele, mu = reco["Jet"], reco["Electron"], reco["Muon"]
    sel = lambda d: {k: (v[keep] if isinstance(v, np.ndarray) and v.ndim >= 1 and v.shape[0] == len(keep) else v)  # noqa: E731
                     for k, v in d.items()}
    jets, ele, mu = sel(jets), sel(ele), sel(mu)
    gen, gcounts, gpos = truth_gen  # already restricted to the kept events

    jkeys = ("pt", "eta", "phi", "mass", "btagCSVV2", "qgl", "jetId", "hadronFlavour", "partonFlavour")
    jflat, jcounts, jorder, jv = _jagged(jets, jets["valid"], jkeys)
    jet_newpos = _index_after_sort(jorder, jv)

    def lepton_block(lep, extra_keys):
        lep = dict(lep)
        lep["jetIdx"] = _lookup(jet_newpos, lep["jetcol"])
        lep["genPartIdx"] = _lookup(gpos, lep["gencol"])
        keys = ("pt", "eta", "phi", "pdgId", "jetIdx", "genPartIdx") + extra_keys
        return _jagged(lep, lep["valid"], keys)[:2]

    eflat, ecounts = lepton_block(ele, ("cutBased", "sip3d", "pfRelIso03_all"))
    mflat, mcounts = lepton_block(mu, ("tightId", "sip3d", "pfRelIso04_all"))

    def jag(values, counts, dtype):
        return ak.unflatten(np.asarray(values).astype(dtype), counts)

    f4, i4 = np.float32, np.int32
    b = {}
    for k, dt in (("pt", f4), ("eta", f4), ("phi", f4), ("mass", f4), ("btagCSVV2", f4), ("qgl", f4),
                  ("jetId", i4), ("hadronFlavour", i4), ("partonFlavour", i4)):
        b[f"Jet_{k}"] = jag(jflat[k], jcounts, dt)
    # the 2015 files store slightly negative electron masses (-0.07 .. -0.01 GeV)
    e_mass = -np.abs(rng.normal(0.0, 0.02, len(eflat["pt"])))
    e = {"pt": (eflat["pt"], f4), "eta": (eflat["eta"], f4), "phi": (eflat["phi"], f4),
         "mass": (e_mass, f4), "charge": (-np.sign(eflat["pdgId"]), i4), "pdgId": (eflat["pdgId"], i4),
         "cutBased": (eflat["cutBased"], i4), "sip3d": (eflat["sip3d"], f4),
         "pfRelIso03_all": (eflat["pfRelIso03_all"], f4), "jetIdx": (eflat["jetIdx"], i4),
         "genPartIdx": (eflat["genPartIdx"], i4)}
    for k, (v, dt) in e.items():
        b[f"Electron_{k}"] = jag(v, ecounts, dt)
    tight = mflat["tightId"].astype(bool)
    m = {"pt": (mflat["pt"], f4), "eta": (mflat["eta"], f4), "phi": (mflat["phi"], f4),
         "mass": (np.full(len(mflat["pt"]), detector.MUON_MASS), f4),
         "charge": (-np.sign(mflat["pdgId"]), i4), "pdgId": (mflat["pdgId"], i4),
         "tightId": (tight, bool), "mediumId": (tight, bool), "looseId": (tight, bool),
         "sip3d": (mflat["sip3d"], f4), "pfRelIso04_all": (mflat["pfRelIso04_all"], f4),
         "jetIdx": (mflat["jetIdx"], i4), "genPartIdx": (mflat["genPartIdx"], i4)}
    for k, (v, dt) in m.items():
        b[f"Muon_{k}"] = jag(v, mcounts, dt)
    gvalid = np.arange(gen["pdg"].shape[1])[None, :] < gcounts[:, None]
    for k, name, dt in (("pt", "pt", f4), ("eta", "eta", f4), ("phi", "phi", f4), ("mass", "mass", f4),
                        ("pdg", "pdgId", i4), ("mother", "genPartIdxMother", i4), ("flags", "statusFlags", i4),
                        ("status", "status", i4)):
        b[f"GenPart_{name}"] = jag(gen[k][gvalid], gcounts, dt)
    b["MET_pt"] = reco["MET_pt"][keep].astype(f4)
    b["MET_phi"] = reco["MET_phi"][keep].astype(f4)
    return b


def _apply_precision(b: dict) -> dict:
    for name, bits in PRECISION.items():
        if name not in b:
            continue
        v = b[name]
        if isinstance(v, ak.Array):
            counts = ak.num(v)
            b[name] = ak.unflatten(round_mantissa(ak.to_numpy(ak.flatten(v)), bits), counts)
        else:
            b[name] = round_mantissa(v, bits)
    return b


def _event_rng(seed: int, sample: str, index: int) -> np.random.Generator:
    """Random stream of the event-level branches (weights, pile-up) of one file."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), sample_code(sample), int(index), 1]))


def _add_event_branches(b: dict, pos: np.ndarray, index: int, erng, neg_weight_fraction: float) -> dict:
    """Event identity, genWeight and pile-up branches of the events at stream positions ``pos``
    (1-based, int64, shape (n,)); float branches rounded to their NanoAOD precision."""
    n = len(pos)
    event = np.uint64(index) * np.uint64(EVENT_STRIDE) + pos.astype(np.uint64)
    b["event"] = event
    b["run"] = np.ones(n, dtype=np.uint32)
    b["luminosityBlock"] = ((event - np.uint64(1)) // np.uint64(EVENTS_PER_LUMI) + np.uint64(1)).astype(np.uint32)
    neg = erng.uniform(size=n) < neg_weight_fraction
    b["genWeight"] = np.where(neg, -1.0, 1.0).astype(np.float32)
    b["PV_npvs"] = (erng.poisson(12.0, n) + 1).astype(np.int32)
    b["Pileup_nTrueInt"] = np.clip(erng.normal(13.0, 4.0, n), 0.5, None).astype(np.float32)
    if n:
        b = _apply_precision(b)
    return b


def _resolve_model(sample: str, n_events: int, index: int, muon_tight_fraction: float):
    if n_events < 0:
        raise MockConfigError(f"number of events per file must be >= 0, got {n_events}")
    if index < 0:
        raise MockConfigError(f"file index must be >= 0, got {index}")
    if not 0.0 <= muon_tight_fraction <= 1.0:
        raise MockConfigError(f"muon_tight_fraction must be within [0, 1], got {muon_tight_fraction}")
    try:
        process, variation = split_sample_key(sample)
        model = sample_model(process, variation, with_muons=muon_tight_fraction > 0)
    except (KeyError, ValueError) as err:
        raise MockConfigError(f"unknown sample {sample!r}: {err.args[0]}") from None
    return process, model


#: Events simulated per chunk of an unskimmed file: bounds the generator's memory (~1 GB with the
#: full layout) and fixes the random streams (a file depends on it; do not change it lightly).
UNSKIMMED_CHUNK = 50_000


def unskimmed_chunks(sample: str, index: int, n_events: int, seed: int, muon_tight_fraction: float = 0.0,
                     chunk_size: int = UNSKIMMED_CHUNK) -> Iterator[GeneratedFile]:
    """Every event of file ``index`` of ``sample``, unskimmed (``mock.skim: false``), chunk by chunk.

    No generation class and no filter: every ttbar decay mode, single top with any W decay,
    W(-> l nu) + 0..9 partons; all events are simulated and written, so the selection efficiency is
    the sample's real one (about 1% of ttbar events in 4j1b, 2% in 4j2b). Each yielded
    :class:`GeneratedFile` holds ``chunk_size`` consecutive events (the last one fewer) with
    ``nevts == n_kept`` (its own events); event numbers are ``index * EVENT_STRIDE + 1 ..``, so a
    file is the first ``n_events`` events of the sample's stream. The random streams are
    :func:`rng_for` and the event-branch stream, drawn chunk after chunk: deterministic for a
    given ``chunk_size``.
    """
    process, model = _resolve_model(sample, n_events, index, muon_tight_fraction)
    if n_events >= EVENT_STRIDE:
        raise MockConfigError(f"{sample}: {n_events} events exceed the event-number stride {EVENT_STRIDE}")
    if chunk_size < 1:
        raise MockConfigError(f"chunk size must be >= 1, got {chunk_size}")
    model = inclusive_model(model)
    rng = rng_for(seed, sample, index)
    erng = _event_rng(seed, sample, index)
    generate = GENERATORS[process]
    for start in range(0, n_events, chunk_size):
        t0 = time.perf_counter()
        m = min(chunk_size, n_events - start)
        truth = generate(rng, m, model)
        leps, _ = detector.reconstruct_leptons(rng, truth, muon_tight_fraction)
        leps = detector.identify_leptons(rng, truth, leps, muon_tight_fraction)
        reco = detector.simulate(rng, truth, leps, model.detector, muon_tight_fraction)
        b = build_branches(truth.gen.build(), reco, np.ones(m, dtype=bool), rng)
        pos = np.arange(start + 1, start + m + 1, dtype=np.int64)
        b = _add_event_branches(b, pos, index, erng, model.neg_weight_fraction)
        gw = b["genWeight"].astype(np.float64)
        yield GeneratedFile(branches=b, nevts=m, n_class=m, n_kept=m, seconds=time.perf_counter() - t0,
                            sum_genweight=float(gw.sum()), sum_genweight2=float((gw * gw).sum()))


def generate_events(sample: str, index: int, n_events: int, seed: int, muon_tight_fraction: float = 0.0,
                    chunk_size: int = 50_000, max_class_events: int = 200_000_000) -> GeneratedFile:
    """Generate the kept events of file ``index`` of ``sample`` (fileset key ``process__variation``)."""
    process, model = _resolve_model(sample, n_events, index, muon_tight_fraction)
    t0 = time.perf_counter()
    rng = rng_for(seed, sample, index)
    p_class = model.class_probability()
    generate = GENERATORS[process]
    parts, positions, n_class, last_pos, kept = [], [], 0, 0, 0
    chunk = int(min(chunk_size, max(2_000, 20 * n_events)))  # small files: no oversized first chunk
    while kept < n_events:
        if n_class > max_class_events:
            raise MockConfigError(f"{sample}: generated {n_class} events without reaching {n_events} "
                                  "that pass the filter")
        truth = generate(rng, chunk, model)
        gaps = rng.geometric(p_class, chunk)
        pos = last_pos + np.cumsum(gaps)
        last_pos = int(pos[-1])
        n_class += chunk
        # stage 1: prompt leptons for every event; stage 2: the rest for events with a lepton candidate
        leps, accepted = detector.reconstruct_leptons(rng, truth, muon_tight_fraction)
        cand = np.nonzero(accepted)[0]
        sub = truth.subset(cand)
        leps = detector.identify_leptons(rng, sub, {k: v[cand] for k, v in leps.items()}, muon_tight_fraction)
        ok = np.nonzero(detector.lepton_candidates(leps))[0]
        cand, sub = cand[ok], sub.subset(ok)
        leps = {k: v[ok] for k, v in leps.items()}
        reco = detector.simulate(rng, sub, leps, model.detector, muon_tight_fraction)
        keep = skim_mask(reco)
        idx = np.nonzero(keep)[0][: n_events - kept]
        if len(idx):
            mask = np.zeros(len(cand), dtype=bool)
            mask[idx] = True
            parts.append(build_branches(sub.subset(idx).gen.build(), reco, mask, rng))
            positions.append(pos[cand[idx]])
            kept += len(idx)
        # adapt the chunk to the remaining need (bounded), keeping memory modest
        eff = max(kept / n_class, 1e-4)
        chunk = int(min(chunk_size, max(5_000, 1.2 * (n_events - kept) / eff)))
    if parts:
        b = {k: (ak.concatenate([p[k] for p in parts]) if isinstance(parts[0][k], ak.Array)
                 else np.concatenate([p[k] for p in parts])) for k in parts[0]}
        pos = np.concatenate(positions)
    else:  # zero events requested: an empty tree with every branch
        b = {}
        pos = np.zeros(0, dtype=np.int64)
    n = len(pos)
    nevts = int(pos[-1]) if n else 0
    if nevts >= EVENT_STRIDE:
        raise MockConfigError(f"{sample}: {nevts} pre-filter events exceed the event-number stride "
                              f"{EVENT_STRIDE} of a file; write fewer events per file")
    erng = _event_rng(seed, sample, index)
    b = _add_event_branches(b, pos, index, erng, model.neg_weight_fraction)
    gw = b["genWeight"].astype(np.float64)
    # the pre-filter events have the same weight mix as the kept ones
    scale = nevts / n if n else 0.0
    return GeneratedFile(branches=b, nevts=nevts, n_class=n_class, n_kept=n, seconds=time.perf_counter() - t0,
                         sum_genweight=float(gw.sum() * scale), sum_genweight2=float((gw * gw).sum() * scale))
