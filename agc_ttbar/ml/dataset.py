"""Training events for the jet-parton assignment: selection, truth labels, storage (spec §6.4).

Events pass the analysis selection of spec §2 with nominal jets (region 4j2b) and must be fully
matched: the four leading selected jets carry the truth labels {24, 24, 6, -6}. For each event the
first :data:`N_JET_SLOTS` selected jets are kept (stored order, NaN-padded) with their labels, so
that models can also be evaluated on up to six jets as in inference.

Files are read in order, in chunks, and reading stops once both parities have ``max_per_parity``
events; the first ``max_per_parity`` events of each parity in file order are kept (the AGC's
``N_EVENTS_TRAIN`` cap), so the result does not depend on the chunk size.
"""

from __future__ import annotations

import json
import os

import awkward as ak
import numpy as np

from .. import selection
from ..atomic import atomic_path
from .features import JET_COLUMNS, LEPTON_COLUMNS, dense_jets
from .truth import GENPART_BRANCHES, fully_matched, jet_labels

#: Jet slots stored per training event (MAX_N_JETS of inference).
N_JET_SLOTS = 6
#: NanoAOD branches read for training.
BRANCHES = tuple(dict.fromkeys(selection.BRANCHES + selection.ML_BRANCHES + GENPART_BRANCHES))


def selected_4j2b(arrays: ak.Array) -> tuple[ak.Array, dict, dict, np.ndarray]:
    """The 4j2b events of a chunk (nominal jets, spec §2) in the scorer interface.

    Returns (events in 4j2b, selected jets as jagged arrays, selected lepton as numpy arrays,
    region mask of the chunk).
    """
    ele, mu = selection.lepton_masks(arrays)
    jmask = selection.jet_mask(arrays.Jet_pt, arrays.Jet_eta, arrays.Jet_jetId)
    n_lep = ak.to_numpy(ak.sum(ele, axis=1) + ak.sum(mu, axis=1))
    n_jet = ak.to_numpy(ak.sum(jmask, axis=1))
    n_b = ak.to_numpy(ak.sum(selection.btag_mask(arrays.Jet_btagCSVV2[jmask]), axis=1))
    region = selection.region_masks(n_lep, n_jet, n_b)["4j2b"]

    ev = arrays[region]
    jm = jmask[region]
    jets = {"pt": ev.Jet_pt[jm], "eta": ev.Jet_eta[jm], "phi": ev.Jet_phi[jm], "mass": ev.Jet_mass[jm],
            "btag": ev.Jet_btagCSVV2[jm], "qgl": ev.Jet_qgl[jm]}
    e_sel, m_sel = ele[region], mu[region]
    lepton = {}
    for col in LEPTON_COLUMNS:
        both = ak.concatenate([ev[f"Electron_{col}"][e_sel], ev[f"Muon_{col}"][m_sel]], axis=1)
        lepton[col] = np.asarray(ak.to_numpy(ak.firsts(both)), dtype=np.float64)
    return ev, jets, lepton, region


def select_events(arrays: ak.Array) -> dict:
    """Selected, fully matched 4j2b events of a chunk as numpy arrays.

    Returns ``event`` (uint64), ``n_jets``, ``jet_{pt,eta,phi,mass,btag,qgl}`` (n, 6),
    ``labels`` (n, 6) and ``lepton_{pt,eta,phi,mass}`` (n,).
    """
    ev, jets, lepton, region = selected_4j2b(arrays)
    dense, counts = dense_jets(jets, N_JET_SLOTS)
    genparts = {b.removeprefix("GenPart_"): ev[b] for b in GENPART_BRANCHES}
    labels = jet_labels(dense["eta"], dense["phi"], counts, genparts)
    keep = fully_matched(labels)

    out = {"event": np.asarray(ak.to_numpy(ev.event), dtype=np.uint64)[keep],
           "n_jets": counts[keep], "labels": labels[keep]}
    for col in JET_COLUMNS:
        out[f"jet_{col}"] = dense[col][keep]
    for col in LEPTON_COLUMNS:
        out[f"lepton_{col}"] = lepton[col][keep]
    out["_cutflow"] = {"events": len(arrays), "4j2b": int(region.sum()), "fully_matched": int(keep.sum())}
    return out


def _empty() -> dict:
    out = {"event": np.empty(0, np.uint64), "n_jets": np.empty(0, np.int64),
           "labels": np.empty((0, N_JET_SLOTS), np.int64)}
    for col in JET_COLUMNS:
        out[f"jet_{col}"] = np.empty((0, N_JET_SLOTS))
    for col in LEPTON_COLUMNS:
        out[f"lepton_{col}"] = np.empty(0)
    return out


def concatenate(parts: list[dict]) -> dict:
    out = _empty()
    return {k: np.concatenate([v] + [p[k] for p in parts]) for k, v in out.items()}


def take(data: dict, index) -> dict:
    """Subset of the events (every per-event array)."""
    return {k: (v[index] if isinstance(v, np.ndarray) else v) for k, v in data.items()}


def cap_per_parity(data: dict, max_per_parity: int) -> dict:
    """Keep the first ``max_per_parity`` events of each parity (file order)."""
    even = data["event"] % 2 == 0
    rank = np.where(even, np.cumsum(even) - 1, np.cumsum(~even) - 1)
    return take(data, rank < max_per_parity)


def extract(paths: list[str], tree_name: str = "Events", chunksize: int = 200_000,
            max_per_parity: int = 20_000, log=print, remote_options=None) -> tuple[dict, dict]:
    """Training events from the files, in order, until each parity has ``max_per_parity``.

    Files are read through :mod:`agc_ttbar.io` like the per-file job's: a URL with the timeouts
    and bounded retries of ``remote_options`` (:class:`agc_ttbar.remote.RemoteOptions`). A missing, damaged or unsuitable file raises :class:`agc_ttbar.io.InputFileError` naming it
    (and the branches it lacks), as in the per-file job.
    """
    from ..io import InputFileError, check_branches, open_tree, read_chunk

    parts: list[dict] = []
    n_even = n_odd = 0
    summary = {"files": [], "events_read": 0, "4j2b": 0, "fully_matched": 0}
    for path in paths:
        if n_even >= max_per_parity and n_odd >= max_per_parity:
            break
        with open_tree(path, tree_name, remote_options) as tree:
            try:
                check_branches(tree, list(BRANCHES), path)
            except InputFileError as err:
                raise InputFileError(f"{err} (ML training: the truth labels need GenPart)") from None
            for lo in range(0, tree.num_entries, max(1, chunksize)):
                chunk = read_chunk(tree, path, list(BRANCHES), lo, min(tree.num_entries, lo + chunksize),
                                   remote_options)
                part = select_events(ak.zip(chunk, depth_limit=1))
                cut = part.pop("_cutflow")
                for k in ("4j2b", "fully_matched"):
                    summary[k] += cut[k]
                summary["events_read"] += cut["events"]
                parts.append(part)
                even = int(np.sum(part["event"] % 2 == 0))
                n_even += even
                n_odd += len(part["event"]) - even
                if n_even >= max_per_parity and n_odd >= max_per_parity:
                    break
        summary["files"].append(path)
        log(f"{path}: {n_even} even / {n_odd} odd training events so far")
    data = cap_per_parity(concatenate(parts), max_per_parity)
    summary["n_even"] = int(np.sum(data["event"] % 2 == 0))
    summary["n_odd"] = int(len(data["event"]) - summary["n_even"])
    return data, summary


def save(data: dict, summary: dict, path: str) -> None:
    """Write the events (``.npz``) atomically; the summary goes in as JSON."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, summary=np.array(json.dumps(summary)), **data)


def load(path: str) -> tuple[dict, dict]:
    if not os.path.exists(path):
        raise FileNotFoundError(f"ML training data {path} does not exist")
    with np.load(path, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files if k != "summary"}
        summary = json.loads(str(z["summary"]))
    return data, summary


def parity_split(data: dict) -> tuple[dict, dict]:
    """(even events, odd events)."""
    even = data["event"] % 2 == 0
    return take(data, even), take(data, ~even)


def jagged_jets(data: dict, n_max: int = N_JET_SLOTS) -> dict:
    """The stored jets as jagged awkward arrays (first min(n_jets, n_max) jets), scorer layout."""
    n = np.minimum(data["n_jets"], n_max)
    mask = np.arange(data["jet_pt"].shape[1])[None, :n_max] < n[:, None]
    return {col: ak.unflatten(data[f"jet_{col}"][:, :n_max][mask], n) for col in JET_COLUMNS}


def lepton_dict(data: dict) -> dict:
    return {col: data[f"lepton_{col}"] for col in LEPTON_COLUMNS}
