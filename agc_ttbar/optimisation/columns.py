"""Compact per-event columns for the differentiable analysis (config ``optimisation.enabled``).

The per-file job (:func:`agc_ttbar.processing.process_file`, argument ``columns``) hands every chunk
to :meth:`ColumnCollector.add_chunk`, which keeps the events that can enter either region for any
b-tag threshold: exactly one selected lepton and >= 4 selected jets (the jet selection does not
depend on the b-tag threshold, so this is the loosest setting). Per kinematic variation the sample
fills (nominal, ``pt_scale_up``, ``pt_res_up``; an alternative ttbar sample only its own label) it
stores, with the same selection code and the same varied jet pT as the histograms:

- ``ht``: H_T of all selected jets (float64, summed as :func:`agc_ttbar.observables.ht`), the 4j1b
  observable; it does not depend on the b-tag threshold.
- ``n_jets``: the number of selected jets.
- ``pt`` (float64, varied), ``eta``, ``phi``, ``mass``, ``btag`` (float32, as stored): the leading
  :data:`N_JETS` selected jets in stored order, padded with 0 (``btag`` with -1) beyond ``n_jets``.
- ``w/{label}``: the event weight under the variation's label and, in the nominal pass, every
  weight variation (``btag_var_*`` from the nominal pT of the first four selected jets,
  ``scale_var_*`` for W+jets), float64, as :class:`agc_ttbar.processing.FileProcessor` fills them.

Size: ~8 * (2 + 6 * N_JETS) bytes per stored event and variation (about 0.5 kB), only for the
events with one lepton and >= 4 jets. Written atomically with :func:`numpy.savez`.
"""

from __future__ import annotations

import json
from typing import Mapping

import awkward as ak
import numpy as np

from ..observables import event_index, ht, offsets_of
from ..processing import varied_jet_pt
from ..samples import BTAG_VARIATIONS, KINEMATIC_VARIATIONS, SCALE_VARIATIONS, variations_for
from ..selection import electron_mask, jet_base_mask, jet_pt_mask, muon_mask
from ..systematics import btag_weight_factor, scale_var_factor

#: Leading selected jets kept per event (events with more jets keep their exact H_T and n_jets).
N_JETS = 10
JET_FIELDS = ("pt", "eta", "phi", "mass", "btag")


def _jagged(arr) -> tuple[np.ndarray, np.ndarray]:
    counts = ak.to_numpy(ak.num(arr, axis=1)).astype(np.int64)
    return counts, ak.to_numpy(ak.flatten(arr, axis=1))


def _count(mask: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    return np.diff(np.searchsorted(np.flatnonzero(mask), offsets))


def pad_leading(values: np.ndarray, counts: np.ndarray, n: int, fill: float, dtype) -> np.ndarray:
    """(events, n) array of the first ``n`` entries of each event of a flat jagged array, padded."""
    out = np.full((len(counts), n), fill, dtype=dtype)
    local = np.arange(len(values), dtype=np.int64) - offsets_of(counts)[:-1][event_index(counts)]
    take = local < n
    out[event_index(counts)[take], local[take]] = values[take]
    return out


class ColumnCollector:
    """Accumulates the optimisation columns of one sample over chunks (see the module docstring).

    ``weight``: the sample's event weight (xsec * lumi / nevts_total); ``pt_res_seed`` as the
    per-file job's.
    """

    def __init__(self, process: str, variation: str, weight: float, pt_res_seed: int = 0) -> None:
        self.process, self.variation = process, variation
        self.weight = float(weight)
        self.pt_res_seed = int(pt_res_seed)
        labels = variations_for(process, variation)
        self.kinematic = (["nominal"] + [v for v in KINEMATIC_VARIATIONS if v in labels]
                          if variation == "nominal" else [variation])
        self.btag_vars = [v for v in BTAG_VARIATIONS if v in labels]
        self.scale_vars = [v for v in SCALE_VARIATIONS if v in labels]
        self.parts: dict[str, list[dict[str, np.ndarray]]] = {k: [] for k in self.kinematic}

    def add_chunk(self, a: Mapping[str, ak.Array]) -> None:
        """Select and store the events of one chunk (branch name -> awkward array)."""
        e_counts, e_pt = _jagged(a["Electron_pt"])
        e_mask = electron_mask(e_pt, _jagged(a["Electron_eta"])[1], _jagged(a["Electron_cutBased"])[1],
                               _jagged(a["Electron_sip3d"])[1])
        m_counts, m_pt = _jagged(a["Muon_pt"])
        m_mask = muon_mask(m_pt, _jagged(a["Muon_eta"])[1], _jagged(a["Muon_tightId"])[1],
                           _jagged(a["Muon_sip3d"])[1], _jagged(a["Muon_pfRelIso04_all"])[1])
        one_l = (_count(e_mask, offsets_of(e_counts)) + _count(m_mask, offsets_of(m_counts))) == 1
        if not one_l.any():
            return
        j_counts, j_pt32 = _jagged(a["Jet_pt"])
        ev_idx = np.flatnonzero(one_l)
        keep = np.repeat(one_l, j_counts)
        s_counts = j_counts[ev_idx]
        s_off = offsets_of(s_counts)
        s_ev = event_index(s_counts)
        s_pt = j_pt32[keep].astype(np.float64)
        s_base = jet_base_mask(_jagged(a["Jet_eta"])[1], _jagged(a["Jet_jetId"])[1])[keep]
        fields = {"eta": _jagged(a["Jet_eta"])[1][keep], "phi": _jagged(a["Jet_phi"])[1][keep],
                  "mass": _jagged(a["Jet_mass"])[1][keep], "btag": _jagged(a["Jet_btagCSVV2"])[1][keep]}
        for label in self.kinematic:
            ptv = varied_jet_pt(label, s_pt, a, ev_idx, s_ev, s_off, self.pt_res_seed)
            jm = s_base & jet_pt_mask(ptv)
            nj = _count(jm, s_off)
            r = nj >= 4
            if not r.any():
                continue
            sel = jm & r[s_ev]
            rc = nj[r]
            pt_sel = ptv[sel]
            part = {"ht": ht(pt_sel, rc), "n_jets": rc.astype(np.int32),
                    "pt": pad_leading(pt_sel, rc, N_JETS, 0.0, np.float64)}
            for name, values in fields.items():
                part[name] = pad_leading(values[sel], rc, N_JETS, -1.0 if name == "btag" else 0.0, np.float32)
            n = len(rc)
            part[f"w/{label}"] = np.full(n, self.weight)
            if label == "nominal":
                starts = offsets_of(rc)[:-1]
                for var in self.btag_vars:
                    _, _, i, direction = var.split("_")
                    part[f"w/{var}"] = self.weight * btag_weight_factor(pt_sel[starts + int(i)], direction)
                for var in self.scale_vars:
                    part[f"w/{var}"] = np.full(n, self.weight * scale_var_factor(var.rsplit("_", 1)[1]))
            self.parts[label].append(part)

    def arrays(self) -> dict[str, np.ndarray]:
        """``{kinematic label}/{column}`` -> array, chunks concatenated in order."""
        out: dict[str, np.ndarray] = {}
        for label, parts in self.parts.items():
            if not parts:
                continue
            for key in parts[0]:
                out[f"{label}/{key}"] = np.concatenate([p[key] for p in parts])
        return out

    def save(self, path: str) -> None:
        """Write the columns and their description (``__metadata__``, JSON) to ``path`` atomically."""
        from ..atomic import atomic_path

        meta = {"process": self.process, "variation": self.variation, "weight": self.weight,
                "kinematic": self.kinematic, "n_jets_kept": N_JETS, "pt_res_seed": self.pt_res_seed}
        arrays = {"__metadata__": np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)}
        arrays.update(self.arrays())
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)


def load_columns(paths: list[str]) -> tuple[dict, dict[str, dict[str, np.ndarray]]]:
    """Read and concatenate column files of one sample (several per-file jobs), in the given order.

    Returns (metadata of the first file, {kinematic label: {column: array}}).
    """
    meta, out = None, {}
    for path in paths:
        with np.load(path) as data:
            m = json.loads(bytes(data["__metadata__"]).decode())
            meta = meta or m
            for key in data.files:
                if key == "__metadata__":
                    continue
                label, _, col = key.partition("/")
                out.setdefault(label, {}).setdefault(col, []).append(data[key])
    return meta or {}, {lab: {c: np.concatenate(v) for c, v in cols.items()} for lab, cols in out.items()}
