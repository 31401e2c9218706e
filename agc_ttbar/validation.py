"""Comparison of ``histograms.root`` with an AGC reference JSON (spec §7.3).

The rule of the reference's ``validate_histograms.py``:

1. Every key of the ROOT file (latest cycle) is read as a TH1: ``edges`` and ``counts(flow=True)``.
2. Only the **reference** keys are checked; extra produced histograms are ignored. A missing key
   is an error, except ``4j1b_pseudodata`` and ``4j2b_pseudodata``.
3. Edges must agree with ``np.allclose`` (defaults); contents are compared bin by bin with
   ``np.isclose`` (defaults). Histograms whose name contains ``pt_res_up`` are not compared (the
   reference smearing is random).
4. Failing bins are grouped into runs of adjacent indices. A run is accepted as bin migration if
   ``np.allclose(h, ref, atol=2.0)`` on the run *and* the run sums agree (``np.allclose``);
   otherwise it is an error.

The result is a :class:`ValidationResult` with a readable report ("All good!" or the list of
mismatches).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import uproot

OPTIONAL_KEYS = ("4j1b_pseudodata", "4j2b_pseudodata")


@dataclass
class ValidationResult:
    ok: bool
    errors: list[str] = field(default_factory=list)
    migrations: list[str] = field(default_factory=list)
    compared: int = 0
    skipped: list[str] = field(default_factory=list)

    def report(self, histos: str = "", reference: str = "") -> str:
        lines = [f"Validation of {histos} against {reference}" if histos else "Validation"]
        lines.append(f"compared {self.compared} histogram(s); skipped (pt_res_up, random in the "
                     f"reference): {len(self.skipped)}")
        if self.migrations:
            lines.append(f"accepted as bin migration ({len(self.migrations)}):")
            lines += [f"  {m}" for m in self.migrations]
        if self.ok:
            lines.append("All good!")
        else:
            lines.append(f"FAILED: {len(self.errors)} mismatch(es):")
            lines += [f"  {e}" for e in self.errors]
        return "\n".join(lines) + "\n"


def read_root_histograms(path: str) -> dict[str, dict]:
    """``{key: {"edges", "contents"}}`` of every TH1 in a ROOT file (latest cycles)."""
    out = {}
    with uproot.open(path) as f:
        for key in f.keys(cycle=False):
            obj = f[key]
            if not hasattr(obj, "axis") or not hasattr(obj, "counts"):
                raise ValueError(f"{path}: object {key!r} is a {type(obj).__name__}, not a TH1")
            out[key] = {"edges": np.asarray(obj.axis().edges()), "contents": np.asarray(obj.counts(flow=True))}
    return out


def dump_reference(path: str) -> str:
    """A reference JSON (the ``--dump-json`` format) of the histograms in ``path``."""
    hists = read_root_histograms(path)
    data = {k: {"edges": v["edges"].tolist(), "contents": v["contents"].tolist()} for k, v in hists.items()}
    return json.dumps(data, sort_keys=True, indent=2)


def _runs(indices: np.ndarray) -> list[np.ndarray]:
    """Split sorted indices into runs of adjacent values."""
    if len(indices) == 0:
        return []
    breaks = np.flatnonzero(np.diff(indices) != 1) + 1
    return np.split(indices, breaks)


def compare(histos: dict[str, dict], reference: dict[str, dict]) -> ValidationResult:
    """Apply the tolerance rule to produced histograms against reference histograms."""
    res = ValidationResult(ok=True)
    for key in sorted(reference):
        ref = reference[key]
        if key not in histos:
            if key not in OPTIONAL_KEYS:
                res.errors.append(f"{key}: missing in the produced histograms")
            continue
        h = histos[key]
        ref_edges = np.asarray(ref["edges"], dtype=float)
        edges = np.asarray(h["edges"], dtype=float)
        if edges.shape != ref_edges.shape or not np.allclose(edges, ref_edges):
            res.errors.append(f"{key}: bin edges differ ({edges.tolist()} vs reference {ref_edges.tolist()})")
            continue
        if "pt_res_up" in key:
            res.skipped.append(key)
            continue
        res.compared += 1
        ref_c = np.asarray(ref["contents"], dtype=float)
        c = np.asarray(h["contents"], dtype=float)
        if c.shape != ref_c.shape:
            res.errors.append(f"{key}: {len(c)} bins (with flow) vs {len(ref_c)} in the reference")
            continue
        bad = np.flatnonzero(~np.isclose(c, ref_c))
        for run in _runs(bad):
            a, b = c[run], ref_c[run]
            where = f"bin(s) {run[0]}-{run[-1]}" if len(run) > 1 else f"bin {run[0]}"
            detail = f"{key} {where}: {np.round(a, 6).tolist()} vs reference {np.round(b, 6).tolist()}"
            if np.allclose(a, b, atol=2.0) and np.allclose(a.sum(), b.sum()):
                res.migrations.append(detail)
            else:
                res.errors.append(detail)
    res.ok = not res.errors
    return res


def validate_files(histos_path: str, reference_path: str) -> ValidationResult:
    """Compare a ``histograms.root`` with a reference ``histos_N_file_per_process.json``."""
    with open(reference_path) as f:
        reference = json.load(f)
    return compare(read_root_histograms(histos_path), reference)
