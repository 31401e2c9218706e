"""Branch schema of the synthetic NanoAOD files.

The names, dtypes and counters of every branch are those of real 2015 CMS Open Data NanoAOD
(the AGC input files). They are embedded in :mod:`agc_ttbar.mock.branches_2015`, extracted from a
real file with :func:`extract_branch_table`, so the project needs no real file to write mock ones.

:data:`CORE_BRANCHES` is what the mock always writes: every branch the analysis reads (selection,
ML, event identity, GenPart truth) plus a few cheap companions (flavour, charge, MET). The
"full layout" mode writes the other real branches as well (see :mod:`agc_ttbar.mock.full_layout`).
"""

from __future__ import annotations

import json
from typing import Iterable

import numpy as np

from . import branches_2015

#: Collections the generator simulates, with their counter branch.
COLLECTIONS = {"Jet": "nJet", "Electron": "nElectron", "Muon": "nMuon", "GenPart": "nGenPart"}

#: Branches written in every mode (the analysis needs them, or they are physics by-products).
CORE_BRANCHES: tuple[str, ...] = (
    "run", "luminosityBlock", "event", "genWeight", "PV_npvs", "Pileup_nTrueInt", "MET_pt", "MET_phi",
    "nJet", "Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass", "Jet_btagCSVV2", "Jet_qgl", "Jet_jetId",
    "Jet_hadronFlavour", "Jet_partonFlavour",
    "nElectron", "Electron_pt", "Electron_eta", "Electron_phi", "Electron_mass", "Electron_charge",
    "Electron_pdgId", "Electron_cutBased", "Electron_sip3d", "Electron_pfRelIso03_all",
    "Electron_jetIdx", "Electron_genPartIdx",
    "nMuon", "Muon_pt", "Muon_eta", "Muon_phi", "Muon_mass", "Muon_charge", "Muon_pdgId",
    "Muon_tightId", "Muon_mediumId", "Muon_looseId", "Muon_sip3d", "Muon_pfRelIso04_all",
    "Muon_jetIdx", "Muon_genPartIdx",
    "nGenPart", "GenPart_pt", "GenPart_eta", "GenPart_phi", "GenPart_mass", "GenPart_pdgId",
    "GenPart_genPartIdxMother", "GenPart_statusFlags", "GenPart_status",
)

#: GenPart_statusFlags bits (NanoAOD documentation string of the branch).
FLAG_BITS = {
    "isPrompt": 0, "isDecayedLeptonHadron": 1, "isTauDecayProduct": 2, "isPromptTauDecayProduct": 3,
    "isDirectTauDecayProduct": 4, "isDirectPromptTauDecayProduct": 5, "isDirectHadronDecayProduct": 6,
    "isHardProcess": 7, "fromHardProcess": 8, "isHardProcessTauDecayProduct": 9,
    "isDirectHardProcessTauDecayProduct": 10, "fromHardProcessBeforeFSR": 11, "isFirstCopy": 12,
    "isLastCopy": 13, "isLastCopyBeforeFSR": 14,
}


def flags(*names: str) -> int:
    """statusFlags value with the named bits set."""
    return int(sum(1 << FLAG_BITS[n] for n in names))


def branch_table() -> dict[str, dict]:
    """Real-file branch table: name -> {"dtype", "counter", "share"} in real-file order."""
    return {name: {"dtype": np.dtype(dt), "counter": counter, "share": share}
            for name, dt, counter, share in branches_2015.BRANCHES}


def dtype_of(name: str) -> np.dtype:
    """Big-endian numpy dtype of a real NanoAOD branch."""
    return branch_table()[name]["dtype"]


def counter_of(name: str) -> str | None:
    """Counter branch of a jagged real NanoAOD branch (None for a flat branch)."""
    return branch_table()[name]["counter"]


def core_branches(extra: Iterable[str] = ()) -> tuple[str, ...]:
    """Core branches plus ``extra``, in real-file order."""
    wanted = set(CORE_BRANCHES) | set(extra)
    unknown = wanted - set(branch_table())
    if unknown:
        raise KeyError(f"not a 2015 NanoAOD branch: {', '.join(sorted(unknown))}")
    return tuple(n for n in branch_table() if n in wanted)


def round_mantissa(x, bits: int) -> np.ndarray:
    """Round float32 values to ``bits`` mantissa bits, as NanoAOD's ``precision=`` does.

    Reduced precision is what real NanoAOD stores for angles, masses and discriminants; it also
    makes the files compress like real ones. ``bits >= 23`` returns the values unchanged.
    """
    a = np.ascontiguousarray(x, dtype=np.float32)
    if bits >= 23:
        return a
    shift = 23 - bits
    i = a.view(np.uint32).astype(np.uint64)
    i = (i + (1 << (shift - 1))) & ~np.uint64((1 << shift) - 1)
    out = i.astype(np.uint32).view(np.float32)
    return np.where(np.isfinite(a), out, a)


def extract_branch_table(real_file: str, ratios_json: str) -> list[tuple[str, str, str | None, float]]:
    """(name, dtype string, counter, byte share) of every branch of a real NanoAOD ``Events`` tree."""
    import uproot

    with open(ratios_json) as f:
        ratios = json.load(f)
    rows = []
    with uproot.open(real_file) as fh:
        tree = fh["Events"]
        for b in tree.branches:
            interp = b.interpretation
            inner = getattr(interp, "content", interp)
            counter = b.count_branch.name if b.count_branch is not None else None
            rows.append((b.name, inner.from_dtype.str, counter, float(ratios.get(b.name, 0.0))))
    return rows


def counter_means(real_file: str) -> dict[str, float]:
    """Mean multiplicity of every counter branch of a real file."""
    import uproot

    with uproot.open(real_file) as fh:
        tree = fh["Events"]
        counters = sorted({b.count_branch.name for b in tree.branches if b.count_branch is not None})
        arrays = tree.arrays(counters, library="np")
    return {c: float(np.mean(arrays[c])) for c in counters}


def render_table_module(real_file: str, ratios_json: str) -> str:
    """Source of :mod:`agc_ttbar.mock.branches_2015` (regenerate with ``python -m agc_ttbar.mock.schema``)."""
    rows = extract_branch_table(real_file, ratios_json)
    means = counter_means(real_file)
    lines = [
        '"""Branches of real 2015 CMS Open Data NanoAOD (AGC ttbar input files), generated by',
        "``python -m agc_ttbar.mock.schema REAL_FILE nanoaod_branch_ratios.json``. Do not edit.",
        "",
        "BRANCHES: (name, numpy dtype string, counter branch or None, byte share in real AGC files)",
        "in the order of the real tree. COUNTER_MEANS: mean multiplicity per counter in the real file.",
        '"""',
        "",
        "BRANCHES = (",
    ]
    lines += [f"    ({n!r}, {d!r}, {c!r}, {s!r})," for n, d, c, s in rows]
    lines += [")", "", "COUNTER_MEANS = {"]
    lines += [f"    {k!r}: {round(v, 4)!r}," for k, v in means.items()]
    lines += ["}", ""]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover - maintenance entry point
    import sys

    sys.stdout.write(render_table_module(sys.argv[1], sys.argv[2]))
