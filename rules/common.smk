# Shared paths and input functions. Every path a rule reads or writes is built here, so rule files
# stay short and agree with each other.

from agc_ttbar import layout
from agc_ttbar.fileset import fetch_inputs, load_inputs, n_files_used
from agc_ttbar.samples import split_sample_key

R = config["results_dir"]
SAMPLE_KEYS = list(config["samples"])


wildcard_constraints:
    sample=r"[A-Za-z0-9_]+__[A-Za-z0-9_]+",
    index=r"\d{5}",


def original_inputs_list():
    """Path of the configured AGC-format input list (a workflow output for mock)."""
    if config["dataset"] == "mock":
        return layout.mock_inputs(R)
    return fetch_inputs(
        config["inputs"], os.path.join(R, "inputs"), config["inputs_sha256"]
    )


def inputs_list():
    """Path of the input list that the fileset stage reads: the ServiceX-delivered list (a workflow
    output, rules/servicex.smk) with servicex.enabled, else the configured one."""
    if config["servicex"]["enabled"]:
        return layout.servicex_inputs(R)
    return original_inputs_list()


def _file_counts():
    """Number of per-file jobs of each sample, known at parse time (plain expand, full DAG in -n)."""
    if config["dataset"] == "mock":
        n = config["mock"]["files_per_sample"]
        return {
            key: n_files_used(n, config["n_files_max_per_sample"])
            for key in SAMPLE_KEYS
        }
    # ServiceX delivers one file per original file, so the original list fixes the DAG at parse time.
    inputs = load_inputs(original_inputs_list())
    counts = {}
    for key in SAMPLE_KEYS:
        process, variation = split_sample_key(key)
        try:
            files = inputs[process][variation]["files"]
        except KeyError:
            raise ValueError(
                f"input list {config['inputs']} has no sample {key} (config key 'samples')"
            )
        counts[key] = n_files_used(len(files), config["n_files_max_per_sample"])
    return counts


FILE_COUNTS = _file_counts()


def file_indices(sample):
    return [f"{i:05d}" for i in range(FILE_COUNTS[sample])]


def partial_histograms(wildcards):
    """Per-file partial histogram files of one sample."""
    return [
        layout.partial(R, wildcards.sample, i) for i in file_indices(wildcards.sample)
    ]


def ml_models():
    """Model files the per-file job needs for inference ([] without ML)."""
    if not config["use_inference"]:
        return []
    return layout.ml_models(R, config)


def final_outputs():
    """Targets of the default target: histograms, fit results, plots and (optionally) ML and validation."""
    out = [
        layout.histograms(R),
        layout.cutflow(R),
        layout.fit_results(R),
        layout.stat_plots_done(R),
    ]
    out.append(layout.hepdata_archive(R))  # rules/hepdata.smk
    if config["use_inference"]:
        out += [
            layout.histograms_ml(R),
            layout.workspace_ml(R),
            layout.ml_plots_done(R),
        ]
    if config["validation"]["reference"]:
        out.append(layout.validation_report(R))
    return out


def input_file(wildcards):
    """The local input file of a per-file job when the workflow makes it (mock dataset, or a staged
    copy with staging.enabled, rules/staging.smk), else [] (the job reads the fileset path).
    """
    if config["dataset"] == "mock" and not config["servicex"]["enabled"]:
        return [layout.mock_file(R, wildcards.sample, wildcards.index)]
    if config["staging"]["enabled"]:
        return [
            layout.staged_file(
                R, config["staging"]["dir"], wildcards.sample, wildcards.index
            )
        ]
    return []


# ---- Parameters and inputs of the stage files in rules/ (which hold only rules) ----

# Embedded dataset (mock.smk, servicex.smk)


def mock_events(sample):
    """Entries per file of a sample: the per-sample override, else events_per_file."""
    return config["mock"]["events_per_file_overrides"].get(
        sample, config["mock"]["events_per_file"]
    )


def mock_files(wildcards=None):
    """Every mock file the workflow uses (the first n_files_max_per_sample of each sample)."""
    return [layout.mock_file(R, s, i) for s in SAMPLE_KEYS for i in file_indices(s)]


# Processing (processing.smk)


def ml_job_args(wildcards, input):
    """Scorer arguments of the per-file job; empty without ML (the ML branches are then not read)."""
    if not config["use_inference"]:
        return ""
    return (
        f"--ml-kind {config['ml']['model']} --ml-models {' '.join(input.models)} "
        f"--max-n-jets {config['ml']['max_n_jets']} --bdt-engine {config['ml']['bdt_engine']}"
    )


def input_file_arg(wildcards, input):
    """Read the local copy (mock or staged file) when the workflow made one."""
    return f"--input {input.data[0]}" if input.data else ""


# ServiceX (servicex.smk)


def servicex_args():
    """Command-line options of the ServiceX delivery script from the config."""
    sx = config["servicex"]
    args = [f"--delivery {sx['delivery']}", f"--cache-dir {layout.servicex_cache(R)}"]
    if sx["config_path"]:
        args.append(f"--config-path '{sx['config_path']}'")
    if sx["backend"]:
        args.append(f"--backend '{sx['backend']}'")
    if sx["ignore_cache"]:
        args.append("--ignore-cache")
    if config["use_inference"]:
        args.append("--use-inference")
    if config["input_from_eos"]:
        args.append("--input-from-eos")
    if config["xcache"]:
        args.append(f"--xcache '{config['xcache']}'")
    args += [f"--rewrite '{r['from']}' '{r['to']}'" for r in config["prefix_rewrites"]]
    return " ".join(args)


# ML (ml.smk)


def ml_training_files(wildcards=None):
    """Input files of the training samples when the workflow makes them (mock dataset)."""
    if config["dataset"] != "mock":
        return []
    return [
        layout.mock_file(R, s, i)
        for s in config["ml"]["training_samples"]
        for i in file_indices(s)
    ]


def ml_train_params(kind):
    """Command-line hyperparameters of the training script for one model kind."""
    if kind == "bdt":
        b = config["ml"]["bdt"]
        return (
            f"--num-boost-round {b['num_boost_round']} --max-depth {b['max_depth']} "
            f"--learning-rate {b['learning_rate']} --min-child-weight {b['min_child_weight']}"
        )
    t = config["ml"]["torch"]
    return (
        f"--hidden {' '.join(str(h) for h in t['hidden'])} --epochs {t['epochs']} "
        f"--batch-size {t['batch_size']} --learning-rate {t['learning_rate']}"
    )
