"""Hand-made events for unit tests: a chunk in the form the per-file job reads from uproot."""

from __future__ import annotations

import awkward as ak
import numpy as np

from agc_ttbar.ml.features import FEATURES

JET_DEFAULTS = {"pt": 50.0, "eta": 0.0, "phi": 0.0, "mass": 10.0, "btagCSVV2": 0.1, "jetId": 6, "qgl": 0.5}
ELE_DEFAULTS = {"pt": 40.0, "eta": 0.5, "phi": 1.0, "mass": 0.000511, "cutBased": 4, "sip3d": 1.0}
MU_DEFAULTS = {"pt": 40.0, "eta": 0.5, "phi": 1.0, "mass": 0.10566, "tightId": True, "sip3d": 1.0,
               "pfRelIso04_all": 0.05}
DTYPES = {"jetId": np.int32, "cutBased": np.int32, "tightId": np.bool_}


def jet(**kw) -> dict:
    return {**JET_DEFAULTS, **kw}


def electron(**kw) -> dict:
    return {**ELE_DEFAULTS, **kw}


def muon(**kw) -> dict:
    return {**MU_DEFAULTS, **kw}


def chunk(events: list[dict], first_event: int = 1) -> dict:
    """``events``: list of {"jets": [jet(...)], "electrons": [...], "muons": [...]}; returns a dict
    of branch name -> awkward array (float32 kinematics, as in NanoAOD)."""
    out = {}
    for coll, key, defaults in (("Jet", "jets", JET_DEFAULTS), ("Electron", "electrons", ELE_DEFAULTS),
                                ("Muon", "muons", MU_DEFAULTS)):
        counts = np.array([len(e.get(key, [])) for e in events], dtype=np.int64)
        for field in defaults:
            flat = np.array([obj[field] for e in events for obj in e.get(key, [])],
                            dtype=DTYPES.get(field, np.float32))
            out[f"{coll}_{field}"] = ak.unflatten(flat, counts)
    n = len(events)
    out["run"] = ak.Array(np.full(n, 1, dtype=np.uint32))
    out["luminosityBlock"] = ak.Array(np.full(n, 1, dtype=np.uint32))
    out["event"] = ak.Array(np.arange(first_event, first_event + n, dtype=np.uint64))
    return out


class FakeScorer:
    """Duck-typed stand-in for agc_ttbar.ml.inference.AssignmentScorer: a pure per-event function
    of the jets, the lepton and the event number, spread over each feature's range (and beyond)."""

    def __init__(self):
        self.calls = []

    def best_features(self, jets, lepton, event):
        self.calls.append({"n": len(event), "jets": jets, "lepton": lepton, "event": event})
        s = ak.to_numpy(ak.sum(jets["pt"], axis=1)) * 0.0137 + ak.to_numpy(ak.max(jets["btag"], axis=1))
        s = s + lepton["pt"] * 0.001 + (np.asarray(event) % np.uint64(5)).astype(float) * 0.1
        cols = []
        for i, (_, lo, hi) in enumerate(FEATURES):
            frac = np.mod(s * (i + 1), 1.2) - 0.1
            cols.append(lo + (hi - lo) * frac)
        return np.stack(cols, axis=1)
