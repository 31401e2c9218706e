"""Where every workflow output lives, relative to the results folder.

The Snakefile rules and the tests use these functions, so a path is spelled in one place only.
"""

from __future__ import annotations

import os


def mock_file(results: str, sample: str, index: int | str) -> str:
    """One synthetic NanoAOD file of the embedded dataset."""
    name = f"{int(index):05d}" if str(index).isdigit() else str(index)  # or a "{index}" wildcard
    return os.path.join(results, "mock", sample, f"{name}.root")


def mock_inputs(results: str) -> str:
    """Input list (nanoaod_inputs.json format) of the embedded dataset."""
    return os.path.join(results, "mock", "nanoaod_inputs.json")


def staged_file(results: str, staging_dir: str, sample: str, index: int | str) -> str:
    """Local copy of one remote input file (staging.enabled); a relative dir is under results."""
    name = f"{int(index):05d}" if str(index).isdigit() else str(index)  # or a "{index}" wildcard
    return os.path.join(results, staging_dir, sample, f"{name}.root")


def servicex_inputs(results: str) -> str:
    """Input list (nanoaod_inputs.json format) of the files ServiceX delivered (servicex.enabled)."""
    return os.path.join(results, "servicex", "nanoaod_inputs.json")


def servicex_cache(results: str) -> str:
    """ServiceX client cache: query database and downloaded files."""
    return os.path.join(results, "servicex", "cache")


def fileset(results: str) -> str:
    """Fileset with per-file metadata (process, variation, xsec, lumi, nevts_total)."""
    return os.path.join(results, "fileset.json")


def partial(results: str, sample: str, index: int | str) -> str:
    """Exact partial histograms (and cutflow) of one per-file job (one file, or several small files
    of the sample: config processing.events_per_job); named by its first file index."""
    name = f"{int(index):05d}" if str(index).isdigit() else str(index)  # or a "{index}" wildcard
    return os.path.join(results, "partial", sample, f"{name}.npz")


def merged(results: str, sample: str) -> str:
    """Exact histograms of one sample, summed over its files."""
    return os.path.join(results, "merged", f"{sample}.npz")


def histograms(results: str) -> str:
    """AGC histograms.root: 25-bin templates per region/process/variation and pseudodata."""
    return os.path.join(results, "histograms.root")


def histograms_ml(results: str) -> str:
    """AGC histograms_ml.root: the 20 ML feature templates."""
    return os.path.join(results, "histograms_ml.root")


def metrics(results: str) -> str:
    """Processing metrics per per-file job and summed (entries, times, bytes, rates, ML share), JSON."""
    return os.path.join(results, "metrics.json")


def cutflow(results: str) -> str:
    """Cutflow per sample (raw and weighted), JSON; a markdown table sits beside it."""
    return os.path.join(results, "cutflow.json")


def cutflow_table(results: str) -> str:
    """The cutflow as a readable markdown table, beside the JSON."""
    return os.path.join(results, "cutflow.md")


def validation_report(results: str) -> str:
    """Report of the comparison with an AGC reference JSON."""
    return os.path.join(results, "validation.txt")


def ml_dir(results: str) -> str:
    return os.path.join(results, "ml")


def ml_models(results: str, config: dict, kind: str | None = None) -> list[str]:
    """Model files [even, odd] used for inference: trained in the DAG, or the published AGC BDTs
    (config ml.published_models, by default the copies shipped in data/agc/models/).

    ``kind`` defaults to config ml.model; "even" is the model trained on even event numbers.
    """
    kind = kind or config["ml"]["model"]
    if kind == "published":
        from agc_ttbar import shipped_data

        paths = config["ml"]["published_models"]
        # null (the default): the copies shipped in data/agc/models/ (data/README.md)
        return [paths.get(p) or shipped_data.published_model(p) for p in ("even", "odd")]
    ext = "json" if kind == "bdt" else "pt"
    return [os.path.join(results, "ml", f"{kind}_even.{ext}"), os.path.join(results, "ml", f"{kind}_odd.{ext}")]


def ml_training_data(results: str) -> str:
    """Fully matched 4j2b training events (jets, lepton, truth labels), .npz."""
    return os.path.join(results, "ml", "training_data.npz")


def ml_metrics(results: str, kind: str) -> str:
    """Validation metrics of one model kind (AUC, assignment accuracy, trijet, random), JSON."""
    return os.path.join(results, "ml", f"{kind}_metrics.json")


def ml_validation(results: str, kind: str) -> str:
    """Validation scores and targets of the leading-4 permutations of one model kind, .npz."""
    return os.path.join(results, "ml", f"{kind}_validation.npz")


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


def hepdata_dir(results: str) -> str:
    """HEPData record of the fit: yaml/ (submission.yaml and the tables) and submission.tar.gz."""
    return os.path.join(results, "hepdata")


def hepdata_archive(results: str) -> str:
    """The HEPData submission archive, validated with hepdata-validator."""
    return os.path.join(results, "hepdata", "submission.tar.gz")


def fit_results(results: str) -> str:
    """MLE fit result: POI, parameters, correlations, NLL, status, provenance."""
    return os.path.join(results, "fit_results.json")


def stat_plots_done(results: str) -> str:
    """Marker listing the statistics plots (data/MC, pulls, correlations, ranking, templates)."""
    return os.path.join(results, "plots", "statistics", "index.json")


def stat_templates(results: str) -> str:
    """cabinetry's template folder (HistogramFolder) of the main model."""
    return os.path.join(results, "statistics", "templates")


def cabinetry_config_ml(results: str) -> str:
    return os.path.join(results, "statistics", "cabinetry_config_ml.yml")


def stat_templates_ml(results: str) -> str:
    """cabinetry's template folder of the ML validation model."""
    return os.path.join(results, "statistics", "templates_ml")


def fit_provenance(results: str) -> str:
    """Date, platform and timings of the fit (kept out of fit_results.json, which is reproducible)."""
    return os.path.join(results, "statistics", "fit_provenance.json")


def template_plots_done(results: str) -> str:
    """Index of the systematic-template figures (they depend on the model, not on the fit)."""
    return os.path.join(results, "plots", "statistics", "templates_index.json")


def stat_plots_dir(results: str, group: str) -> str:
    """Folder of one group of statistics figures: data_mc, fit, templates or ml."""
    return os.path.join(results, "plots", "statistics", group)


def stat_summary(results: str) -> str:
    """HTML summary (ttbar_norm, fit status, yields) shown in the Snakemake report."""
    return os.path.join(results, "statistics", "summary.html")


def log(results: str, rule: str, name: str = "") -> str:
    return os.path.join(results, "logs", rule, f"{name or rule}.log")


def benchmark(results: str, rule: str, name: str = "") -> str:
    return os.path.join(results, "benchmarks", rule, f"{name or rule}.tsv")
