"""Object and event selection of the AGC v2 analysis (spec §2).

All functions take NanoAOD branch arrays (awkward, one list per event for object branches) and
return boolean masks of the same structure. Jet pT is passed in explicitly so that the kinematic
variations (spec §4) can select on the varied pT.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:   # annotations only: the statistics jobs import the cuts without awkward (~0.2 s)
    import awkward as ak

#: A jet is b-tagged if Jet_btagCSVV2 > B_TAG_THRESHOLD (strict, spec §2).
B_TAG_THRESHOLD = 0.5
#: Jet cuts (spec §2): pT > JET_PT_MIN GeV (on the varied pT), |eta| < JET_ABS_ETA_MAX and bit
#: JET_ID_BIT of Jet_jetId set (tight-lepton-veto). Every jet selection uses these names.
JET_PT_MIN = 30
JET_ABS_ETA_MAX = 2.4
JET_ID_BIT = 2

#: Branches the selection and observables read (spec §2, "without ML").
BRANCHES = (
    "Electron_pt", "Electron_eta", "Electron_cutBased", "Electron_sip3d",
    "Muon_pt", "Muon_eta", "Muon_tightId", "Muon_sip3d", "Muon_pfRelIso04_all",
    "Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass", "Jet_btagCSVV2", "Jet_jetId",
)
#: Extra branches the ML step reads (spec §2, "added with USE_INFERENCE").
ML_BRANCHES = ("Electron_phi", "Electron_mass", "Muon_phi", "Muon_mass", "Jet_qgl", "event")
#: Event-identity branches (deterministic pT smearing, parity).
ID_BRANCHES = ("run", "luminosityBlock", "event")


def electron_mask(pt, eta, cut_based, sip3d):
    """Tight electrons: pT > 30 GeV, |eta| < 2.1, cutBased == 4, sip3d < 4."""
    return (pt > 30) & (abs(eta) < 2.1) & (cut_based == 4) & (sip3d < 4)


def muon_mask(pt, eta, tight_id, sip3d, pf_rel_iso04_all):
    """Tight isolated muons: pT > 30 GeV, |eta| < 2.1, tightId, sip3d < 4, pfRelIso04_all < 0.15.

    ``tight_id`` is a flag: NanoAOD stores it as bool, some productions as an integer; either is
    read as ``tight_id != 0`` (an integer combined with ``&`` would give a bitwise integer mask).
    """
    return (pt > 30) & (abs(eta) < 2.1) & (tight_id != 0) & (sip3d < 4) & (pf_rel_iso04_all < 0.15)


def jet_base_mask(eta, jet_id):
    """The pT-independent jet cuts: |eta| < 2.4 and tight-lepton-veto ID ((jetId & 4) != 0)."""
    return (abs(eta) < JET_ABS_ETA_MAX) & ((jet_id & (1 << JET_ID_BIT)) != 0)


def jet_pt_mask(pt):
    """The jet pT cut, pT > 30 GeV, on the (varied) pT."""
    return pt > JET_PT_MIN


def jet_mask(pt, eta, jet_id):
    """Jets: pT > 30 GeV (varied pT), |eta| < 2.4, tight-lepton-veto ID ((jetId & 4) != 0)."""
    return jet_pt_mask(pt) & jet_base_mask(eta, jet_id)


def btag_mask(btag, threshold: float = B_TAG_THRESHOLD):
    """b-tagged: Jet_btagCSVV2 > threshold (strict; AGC 0.5, config processing.btag_threshold)."""
    return btag > threshold


def lepton_masks(events: ak.Array) -> tuple[ak.Array, ak.Array]:
    """Selected-electron and selected-muon masks of a chunk of events."""
    ele = electron_mask(events.Electron_pt, events.Electron_eta, events.Electron_cutBased, events.Electron_sip3d)
    mu = muon_mask(events.Muon_pt, events.Muon_eta, events.Muon_tightId, events.Muon_sip3d,
                   events.Muon_pfRelIso04_all)
    return ele, mu


def region_masks(n_leptons: np.ndarray, n_jets: np.ndarray, n_btag: np.ndarray) -> dict[str, np.ndarray]:
    """Event masks of the two regions from per-event object counts.

    4j1b: exactly one lepton, >= 4 jets, exactly one b-tag. 4j2b: the same with >= 2 b-tags.
    """
    base = (n_leptons == 1) & (n_jets >= 4)
    return {"4j1b": base & (n_btag == 1), "4j2b": base & (n_btag >= 2)}
