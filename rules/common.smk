# Shared paths and input functions. Every path a rule reads or writes is built here, so rule files
# stay short and agree with each other.

from agc_ttbar import layout
from agc_ttbar.fileset import fetch_inputs, load_inputs, n_files_used
from agc_ttbar.samples import split_sample_key

R = config["results_dir"]
SAMPLE_KEYS = list(config["samples"])
PY = "python"  # the interpreter of the environment snakemake runs in (venv, conda env, container)

wildcard_constraints:
    sample=r"[A-Za-z0-9_]+__[A-Za-z0-9_]+",
    index=r"\d{5}",


def original_inputs_list():
    """Path of the configured AGC-format input list (a workflow output for mock)."""
    if config["dataset"] == "mock":
        return layout.mock_inputs(R)
    return fetch_inputs(config["inputs"], os.path.join(R, "inputs"), config["inputs_sha256"])


def inputs_list():
    """Path of the input list the fileset rule reads: the ServiceX-delivered list (a workflow
    output, rules/servicex.smk) with servicex.enabled, else the configured one."""
    if config["servicex"]["enabled"]:
        return layout.servicex_inputs(R)
    return original_inputs_list()


def _file_counts():
    """Number of per-file jobs of each sample, known at parse time (plain expand, full DAG in -n)."""
    if config["dataset"] == "mock":
        n = config["mock"]["files_per_sample"]
        return {key: n_files_used(n, config["n_files_max_per_sample"]) for key in SAMPLE_KEYS}
    # ServiceX delivers one file per original file, so the original list fixes the DAG at parse time.
    inputs = load_inputs(original_inputs_list())
    counts = {}
    for key in SAMPLE_KEYS:
        process, variation = split_sample_key(key)
        try:
            files = inputs[process][variation]["files"]
        except KeyError:
            raise ValueError(f"input list {config['inputs']} has no sample {key} (config key 'samples')")
        counts[key] = n_files_used(len(files), config["n_files_max_per_sample"])
    return counts


FILE_COUNTS = _file_counts()


def file_indices(sample):
    return [f"{i:05d}" for i in range(FILE_COUNTS[sample])]


def partial_histograms(wildcards):
    """Per-file partial histogram files of one sample."""
    return [layout.partial(R, wildcards.sample, i) for i in file_indices(wildcards.sample)]


def ml_models():
    """Model files the per-file job needs for inference ([] without ML)."""
    if not config["use_inference"]:
        return []
    return layout.ml_models(R, config)


def final_outputs():
    """Targets of `rule all`: histograms, fit results, plots and (optionally) ML and validation."""
    out = [layout.histograms(R), layout.cutflow(R), layout.fit_results(R), layout.stat_plots_done(R)]
    if config["use_inference"]:
        out += [layout.histograms_ml(R), layout.workspace_ml(R), layout.ml_plots_done(R)]
    if config["validation"]["reference"]:
        out.append(layout.validation_report(R))
    return out


def input_file(wildcards):
    """The local input file of a per-file job when the workflow makes it (mock dataset, or a staged
    copy with staging.enabled, rules/staging.smk), else [] (the job reads the fileset path)."""
    if config["dataset"] == "mock" and not config["servicex"]["enabled"]:
        return [layout.mock_file(R, wildcards.sample, wildcards.index)]
    if config["staging"]["enabled"]:
        return [layout.staged_file(R, config["staging"]["dir"], wildcards.sample, wildcards.index)]
    return []
