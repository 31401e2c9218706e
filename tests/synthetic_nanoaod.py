"""Small synthetic NanoAOD-like ROOT files for the processing tests (and the rate benchmark).

The files have the structure of real NanoAOD for the branches the analysis reads: a TTree
``Events`` with ``nJet``/``nElectron``/``nMuon`` counters, jagged ``Jet_*``/``Electron_*``/``Muon_*``
branches with the dtypes of the real 2015 files (float32, int32, bool), and ``run``,
``luminosityBlock`` and ``event``. The distributions are rough but put plenty of events into both
regions, and some values are quantised so that cut edges (pT exactly 30, b-tag exactly 0.5, |eta|
exactly 2.4) and bin edges occur.
"""

from __future__ import annotations

import awkward as ak
import numpy as np
import uproot

JET_FIELDS = {"pt": "float32", "eta": "float32", "phi": "float32", "mass": "float32",
              "btagCSVV2": "float32", "jetId": "int32", "qgl": "float32"}
ELECTRON_FIELDS = {"pt": "float32", "eta": "float32", "phi": "float32", "mass": "float32",
                   "cutBased": "int32", "sip3d": "float32", "charge": "int32"}
MUON_FIELDS = {"pt": "float32", "eta": "float32", "phi": "float32", "mass": "float32",
               "tightId": "bool", "sip3d": "float32", "pfRelIso04_all": "float32", "charge": "int32"}


def _jagged(counts, flat):
    return ak.unflatten(flat, counts)


def make_events(n: int, seed: int = 1, first_event: int = 1, muon_tight_fraction: float = 0.7) -> dict:
    """Columns of ``n`` synthetic events: {"run", "luminosityBlock", "event", "Jet": {...}, ...}."""
    rng = np.random.default_rng(seed)
    out: dict = {
        "run": np.full(n, 1, dtype=np.uint32) + (np.arange(n) // 5000).astype(np.uint32),
        "luminosityBlock": (np.arange(n) // 700 + 1).astype(np.uint32),
        "event": (np.uint64(first_event) + np.arange(n, dtype=np.uint64)) * np.uint64(7) + np.uint64(3),
    }
    # jets, stored in decreasing nominal pT as in NanoAOD
    nj = np.minimum(rng.poisson(5.5, n), 14).astype(np.int64)
    m = int(nj.sum())
    pt = 18 + rng.exponential(40, m)
    quant = rng.random(m) < 0.3
    pt[quant] = np.round(pt[quant] * 4) / 4          # quarter-GeV values: exact ties and 30.0
    pt[rng.random(m) < 0.02] = 30.0
    order = np.lexsort((-pt, np.repeat(np.arange(n), nj)))
    pt = pt[order]
    eta = rng.normal(0, 1.4, m)
    edge = rng.random(m) < 0.02
    eta[edge] = 2.4 * np.where(rng.random(int(edge.sum())) < 0.5, -1, 1)
    btag = np.where(rng.random(m) < 0.3, rng.uniform(0.5, 1.0, m), rng.uniform(0.0, 0.5, m))
    btag = np.round(btag, 2)                           # includes exactly 0.5
    out["Jet"] = {
        "pt": pt.astype(np.float32),
        "eta": eta.astype(np.float32),
        "phi": rng.uniform(-np.pi, np.pi, m).astype(np.float32),
        "mass": (pt * rng.uniform(0.03, 0.25, m)).astype(np.float32),
        "btagCSVV2": btag.astype(np.float32),
        "jetId": rng.choice(np.array([0, 2, 6, 7], dtype=np.int32), size=m, p=[0.08, 0.1, 0.77, 0.05]),
        "qgl": rng.uniform(-1, 1, m).astype(np.float32),
    }
    out["nJet"] = nj
    # electrons
    ne = rng.choice([0, 1, 2], size=n, p=[0.45, 0.45, 0.10])
    k = int(ne.sum())
    ept = 12 + rng.exponential(30, k)
    ept[rng.random(k) < 0.03] = 30.0
    eeta = rng.normal(0, 1.2, k)
    eeta[rng.random(k) < 0.03] = 2.1
    out["Electron"] = {
        "pt": ept.astype(np.float32),
        "eta": eeta.astype(np.float32),
        "phi": rng.uniform(-np.pi, np.pi, k).astype(np.float32),
        "mass": np.full(k, 0.000511, dtype=np.float32),
        "cutBased": rng.choice(np.arange(5, dtype=np.int32), size=k, p=[0.1, 0.1, 0.1, 0.2, 0.5]),
        "sip3d": np.where(rng.random(k) < 0.03, 4.0, rng.exponential(1.5, k)).astype(np.float32),
        "charge": rng.choice(np.array([-1, 1], dtype=np.int32), size=k),
    }
    out["nElectron"] = ne
    # muons
    nm = rng.choice([0, 1, 2], size=n, p=[0.5, 0.42, 0.08])
    k = int(nm.sum())
    mpt = 12 + rng.exponential(30, k)
    out["Muon"] = {
        "pt": mpt.astype(np.float32),
        "eta": rng.normal(0, 1.2, k).astype(np.float32),
        "phi": rng.uniform(-np.pi, np.pi, k).astype(np.float32),
        "mass": np.full(k, 0.10566, dtype=np.float32),
        "tightId": rng.random(k) < muon_tight_fraction,
        "sip3d": rng.exponential(1.5, k).astype(np.float32),
        "pfRelIso04_all": np.where(rng.random(k) < 0.03, 0.15, rng.exponential(0.08, k)).astype(np.float32),
        "charge": rng.choice(np.array([-1, 1], dtype=np.int32), size=k),
    }
    out["nMuon"] = nm
    return out


def slice_events(ev: dict, start: int, stop: int) -> dict:
    """Events [start, stop) of a column dict from :func:`make_events`."""
    out = {k: ev[k][start:stop] for k in ("run", "luminosityBlock", "event")}
    for coll in ("Jet", "Electron", "Muon"):
        counts = np.asarray(ev["n" + coll])
        offsets = np.concatenate([[0], np.cumsum(counts)])
        a, b = offsets[start], offsets[stop]
        out[coll] = {f: v[a:b] for f, v in ev[coll].items()}
        out["n" + coll] = counts[start:stop]
    return out


def _types(fields: dict) -> str:
    return "var * {" + ", ".join(f"{k}: {v}" for k, v in fields.items()) + "}"


def write_nanoaod(path, ev: dict, compression=None, basket_events: int = 50_000,
                  drop: tuple[str, ...] = (), types: dict | None = None) -> None:
    """Write a column dict as a NanoAOD-style TTree ``Events`` (mktree with counters, then extend).

    ``drop``: branch names (e.g. ``Jet_qgl``) to leave out of the file. ``types``: stored types of
    some branches instead of the NanoAOD ones, e.g. ``{"Muon_tightId": "int8"}``.
    """
    compression = compression if compression is not None else uproot.ZLIB(1)
    types = types or {}
    fields = {c: {k: types.get(f"{c}_{k}", v) for k, v in f.items() if f"{c}_{k}" not in drop}
              for c, f in (("Jet", JET_FIELDS), ("Electron", ELECTRON_FIELDS), ("Muon", MUON_FIELDS))}
    with uproot.recreate(path, compression=compression) as f:
        tree = f.mktree(
            "Events",
            {"run": "uint32", "luminosityBlock": "uint32", "event": "uint64",
             **{c: _types(fields[c]) for c in fields}},
            field_name=lambda outer, inner: f"{outer}_{inner}",
            counter_name=lambda counted: f"n{counted}",
        )
        n = len(ev["run"])
        for start in range(0, max(n, 1), basket_events):
            stop = min(n, start + basket_events)
            part = slice_events(ev, start, stop)
            data = {k: part[k] for k in ("run", "luminosityBlock", "event")}
            for coll in ("Jet", "Electron", "Muon"):
                counts = part["n" + coll]
                data[coll] = ak.zip({f: _jagged(counts, v) for f, v in part[coll].items() if f in fields[coll]})
            tree.extend(data)
            if n == 0:
                break
