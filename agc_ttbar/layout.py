"""Where every workflow output lives, relative to the results folder.

The Snakefile rules and the tests use these functions, so a path is spelled in one place only.
"""

from __future__ import annotations

import os


def mock_file(results: str, sample: str, index: int | str) -> str:
    """One synthetic NanoAOD file of the embedded dataset."""
    return os.path.join(results, "mock", sample, f"{int(index):05d}.root")


def mock_inputs(results: str) -> str:
    """Input list (nanoaod_inputs.json format) of the embedded dataset."""
    return os.path.join(results, "mock", "nanoaod_inputs.json")


def fileset(results: str) -> str:
    """Fileset with per-file metadata (process, variation, xsec, lumi, nevts_total)."""
    return os.path.join(results, "fileset.json")


def partial(results: str, sample: str, index: int | str) -> str:
    """Exact partial histograms (and cutflow) of one input file."""
    return os.path.join(results, "partial", sample, f"{int(index):05d}.npz")


def merged(results: str, sample: str) -> str:
    """Exact histograms of one sample, summed over its files."""
    return os.path.join(results, "merged", f"{sample}.npz")


def histograms(results: str) -> str:
    """AGC histograms.root: 25-bin templates per region/process/variation and pseudodata."""
    return os.path.join(results, "histograms.root")


def histograms_ml(results: str) -> str:
    """AGC histograms_ml.root: the 20 ML feature templates."""
    return os.path.join(results, "histograms_ml.root")


def cutflow(results: str) -> str:
    """Cutflow per sample (raw and weighted), JSON; a markdown table sits beside it."""
    return os.path.join(results, "cutflow.json")


def validation_report(results: str) -> str:
    """Report of the comparison with an AGC reference JSON."""
    return os.path.join(results, "validation.txt")


def ml_dir(results: str) -> str:
    return os.path.join(results, "ml")


def ml_models(results: str, config: dict) -> list[str]:
    """Model files used for inference: trained in the DAG, or the published AGC BDTs."""
    kind = config["ml"]["model"]
    if kind == "published":
        return [config["ml"]["published_models"]["even"], config["ml"]["published_models"]["odd"]]
    ext = "json" if kind == "bdt" else "pt"
    return [os.path.join(results, "ml", f"{kind}_even.{ext}"), os.path.join(results, "ml", f"{kind}_odd.{ext}")]


def ml_plots_done(results: str) -> str:
    """Marker listing the ML plots (score, ROC, accuracy table, features)."""
    return os.path.join(results, "plots", "ml", "index.json")


def stat_dir(results: str) -> str:
    return os.path.join(results, "statistics")


def cabinetry_config(results: str) -> str:
    return os.path.join(results, "statistics", "cabinetry_config.yml")


def workspace(results: str) -> str:
    return os.path.join(results, "statistics", "workspace.json")


def workspace_ml(results: str) -> str:
    return os.path.join(results, "statistics", "workspace_ml.json")


def fit_results(results: str) -> str:
    """MLE fit result: POI, parameters, correlations, NLL, status, provenance."""
    return os.path.join(results, "fit_results.json")


def stat_plots_done(results: str) -> str:
    """Marker listing the statistics plots (data/MC, pulls, correlations, ranking, templates)."""
    return os.path.join(results, "plots", "statistics", "index.json")


def log(results: str, rule: str, name: str = "") -> str:
    return os.path.join(results, "logs", rule, f"{name or rule}.log")


def benchmark(results: str, rule: str, name: str = "") -> str:
    return os.path.join(results, "benchmarks", rule, f"{name or rule}.tsv")
