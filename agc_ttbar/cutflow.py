"""Cutflow of the nominal selection (spec §2): event counts after each cut, raw and weighted.

A per-file job records integer raw counts; they add exactly over files. The weighted count of a
sample is the raw count times the sample weight ``xsec * lumi / nevts_total`` (constant within a
sample: no generator weights, spec §1.3).

Steps (each includes the previous ones, except that the two regions both follow ``atleast_4j``):

- ``all``: events read;
- ``exactly_1l``: exactly one selected lepton (electron or muon);
- ``atleast_4j``: and at least four selected jets;
- ``4j1b``: and exactly one b-tagged selected jet;
- ``4j2b``: and at least two b-tagged selected jets.

``single`` holds the events passing one cut alone (``exactly_1l``, ``atleast_4j``,
``exactly_1b``, ``atleast_2b``) and the lepton flavour of the one-lepton events
(``exactly_1l_electron``, ``exactly_1l_muon``).
"""

from __future__ import annotations

import json
from typing import Iterable, Mapping

from .atomic import atomic_write_text

STEPS: tuple[str, ...] = ("all", "exactly_1l", "atleast_4j", "4j1b", "4j2b")
SINGLE: tuple[str, ...] = ("exactly_1l", "exactly_1l_electron", "exactly_1l_muon", "atleast_4j",
                           "exactly_1b", "atleast_2b")

STEP_LABELS = {
    "all": "all events",
    "exactly_1l": "exactly 1 lepton",
    "atleast_4j": "+ >= 4 jets",
    "4j1b": "+ exactly 1 b-tag (4j1b)",
    "4j2b": "+ >= 2 b-tags (4j2b)",
}


def empty() -> dict:
    """A cutflow with every count zero."""
    return {"steps": {s: 0 for s in STEPS}, "single": {s: 0 for s in SINGLE}}


def add(total: dict, other: Mapping) -> dict:
    """Add ``other`` into ``total`` (in place) and return ``total``."""
    for part in ("steps", "single"):
        for key, value in other[part].items():
            total[part][key] = total[part].get(key, 0) + int(value)
    return total


def total(cutflows: Iterable[Mapping]) -> dict:
    out = empty()
    for c in cutflows:
        add(out, c)
    return out


def weighted(cutflow: Mapping, weight: float) -> dict:
    """The same structure with every count multiplied by the sample weight."""
    return {part: {k: v * weight for k, v in cutflow[part].items()} for part in ("steps", "single")}


def sample_entry(sample: str, cutflow: Mapping, weight: float, nevts_total: int, n_files: int) -> dict:
    """One sample's record in the cutflow JSON."""
    ordered = {"steps": _in_order(cutflow["steps"], STEPS), "single": _in_order(cutflow["single"], SINGLE)}
    return {"sample": sample, "weight": weight, "nevts_total": nevts_total, "n_files": n_files,
            "raw": ordered, "weighted": weighted(ordered, weight)}


def _in_order(counts: Mapping, names: Iterable[str]) -> dict:
    """``counts`` with the known cuts in their order, then any others sorted: the JSON's bytes do
    not depend on where the counts came from (a merged file's metadata is stored key-sorted)."""
    known = [k for k in names if k in counts]
    return {k: counts[k] for k in known + sorted(set(counts) - set(known))}


def markdown_table(entries: Iterable[Mapping]) -> str:
    """A readable table: one row per sample, raw count and weighted count after each step."""
    entries = list(entries)
    head = ["sample"] + [STEP_LABELS[s] for s in STEPS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in entries:
        cells = [e["sample"]]
        for s in STEPS:
            cells.append(f"{e['raw']['steps'][s]:,} ({e['weighted']['steps'][s]:,.2f})")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Entries: raw events (weighted events = raw x xsec x lumi / nevts_total).")
    lines.append("")
    head = ["sample"] + list(SINGLE)
    lines.append("Events passing a single cut:")
    lines.append("")
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for e in entries:
        lines.append("| " + " | ".join([e["sample"]] + [f"{e['raw']['single'][s]:,}" for s in SINGLE]) + " |")
    return "\n".join(lines) + "\n"


def write(entries: list[dict], json_path: str, markdown_path: str) -> None:
    """Write the cutflow JSON and its markdown table, both atomically."""
    atomic_write_text(json_path, json.dumps({"samples": entries}, indent=1) + "\n")
    atomic_write_text(markdown_path, "# Cutflow\n\n" + markdown_table(entries))
