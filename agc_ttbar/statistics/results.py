"""Reading fit_results.json back: the closing line of a run."""

from __future__ import annotations

import json
import os


def result_line(doc: dict) -> str:
    """The reference's printed line: ``fit result for ttbar_norm: X +/- Y``."""
    p = doc["poi"]
    return f"fit result for {p['name']}: {p['value']:.3f} +/- {p['uncertainty']:.3f}"


def print_result_line(path: str) -> str | None:
    """Print the result line of ``path`` (a fit_results.json) if it exists; return it."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        line = result_line(json.load(f))
    print(f"{line}  ({path})", flush=True)
    return line
