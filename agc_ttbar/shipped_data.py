"""The reference data shipped with the workflow (``data/`` next to the Snakefile).

``data/`` holds small public files: the AGC reference histograms, the published AGC BDTs, the AGC
input list and 200 real NanoAOD events (provenance, licences and checksums: ``data/README.md``,
``data/SHA256SUMS``). They live beside the package rather than inside it because they are inputs of
the analysis, not code; the workflow always imports ``agc_ttbar`` from its own folder (the Snakefile
puts ``workflow.basedir`` first on ``sys.path``), so the folder above the package is the workflow's.
"""

from __future__ import annotations

import hashlib
import os

DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")
CHECKSUMS = os.path.join(DATA_DIR, "SHA256SUMS")


def path(*parts: str) -> str:
    """Absolute path of a shipped file, e.g. ``path("agc", "models", "model_even.json")``."""
    full = os.path.join(DATA_DIR, *parts)
    if not os.path.isfile(full):
        raise FileNotFoundError(
            f"shipped data file {full} is missing: the workflow folder is incomplete (data/ comes with "
            "the repository; restore it with `git checkout -- data/`), see data/README.md")
    return full


def published_model(parity: str) -> str:
    """The published AGC BDT trained on ``parity`` ("even" or "odd") event numbers."""
    if parity not in ("even", "odd"):
        raise ValueError(f"parity must be 'even' or 'odd', not {parity!r}")
    return path("agc", "models", f"model_{parity}.json")


def branch_ratios() -> dict[str, float]:
    """Byte share of every branch in the real AGC NanoAOD files (947 branches, sum 1), from the
    AGC's ``nanoaod_branch_ratios.json``."""
    import json

    with open(path("agc", "nanoaod_branch_ratios.json")) as f:
        return json.load(f)


def checksums() -> dict[str, str]:
    """``{relative path: sha256}`` as listed in data/SHA256SUMS."""
    out = {}
    with open(CHECKSUMS) as fh:
        for line in fh:
            if line.strip():
                digest, rel = line.split(maxsplit=1)
                out[rel.strip()] = digest
    return out


def verify() -> list[str]:
    """Shipped files whose content differs from data/SHA256SUMS (or that are missing)."""
    bad = []
    for rel, digest in checksums().items():
        full = os.path.join(DATA_DIR, rel)
        if not os.path.isfile(full):
            bad.append(f"{rel}: missing")
            continue
        with open(full, "rb") as fh:
            actual = hashlib.sha256(fh.read()).hexdigest()
        if actual != digest:
            bad.append(f"{rel}: sha256 {actual}, expected {digest}")
    return bad
