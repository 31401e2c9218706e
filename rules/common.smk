# Shared paths and input functions. Every path a rule reads or writes is built here, so rule files
# stay short and agree with each other.

from agc_ttbar import layout
from agc_ttbar.fileset import (
    fetch_inputs,
    files_and_events,
    group_files,
    load_inputs,
    n_files_used,
)
from agc_ttbar.samples import split_sample_key

R = config["results_dir"]
SAMPLE_KEYS = list(config["samples"])
#: Scheduling priority of the jobs on the longest chain to the result (training of the model used
#: for inference, which the per-file jobs wait for; workspace -> fit -> plots; the ML workspace and
#: template plots, which the statistics plots also wait for): when more jobs are ready than cores
#: are free, these go first and the side jobs (the comparison models, ML plots, HEPData) fill the
#: cores beside them. Changes the order only, not a result.
PRIORITY_CRITICAL = 10
#: Of the side jobs, the ML plots (~4 s) go before HEPData (~2 s) when both wait for a core: the
#: shorter one then fills the gap before the two-thread statistics plots can start.
PRIORITY_SIDE_FIRST = 1


def ml_threads(kind):
    """Threads of the training or evaluation job of ML model `kind`: ml.threads for the model
    the per-file jobs use, ml.compare_threads for a comparison model (nothing else waits for it,
    so with one thread it runs beside the chain to the result instead of holding two cores).
    """
    ml = config["ml"]
    return ml["threads"] if kind == ml["model"] else ml["compare_threads"]


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


def mock_events(sample):
    """Entries per file of a sample: the per-sample override, else events_per_file; unskimmed
    files (mock.skim: false) hold mock.unskimmed_events_per_file events each."""
    if not config["mock"]["skim"]:
        return config["mock"]["unskimmed_events_per_file"]
    return config["mock"]["events_per_file_overrides"].get(
        sample, config["mock"]["events_per_file"]
    )


def mock_mem_mb():
    """Memory of one mock-generation job: skimmed files sit in memory at once; unskimmed ones are
    streamed in chunks of 50,000 events, whatever their size (benchmarks/scale.py: peak RSS
    1.1 GB core layout, 200k events; 1.3 GB full layout, 1M events)."""
    full = config["mock"]["full_layout"]
    if config["mock"]["skim"]:
        return 3000 if full else 1200
    return 3000 if full else 2500


def _file_events():
    """Entries of each file used, per sample, known at parse time (plain expand, full DAG in -n)."""
    if config["dataset"] == "mock":
        n = n_files_used(
            config["mock"]["files_per_sample"], config["n_files_max_per_sample"]
        )
        return {key: [mock_events(key)] * n for key in SAMPLE_KEYS}
    # ServiceX delivers one file per original file, so the original list fixes the DAG at parse time.
    inputs = load_inputs(original_inputs_list())
    events = {}
    for key in SAMPLE_KEYS:
        process, variation = split_sample_key(key)
        try:
            files = inputs[process][variation]["files"]
        except KeyError:
            raise ValueError(
                f"input list {config['inputs']} has no sample {key} (config key 'samples')"
            )
        events[key] = [
            int(f["nevts"])
            for f in files[: n_files_used(len(files), config["n_files_max_per_sample"])]
        ]
    return events


FILE_EVENTS = _file_events()
FILE_COUNTS = {key: len(ev) for key, ev in FILE_EVENTS.items()}
#: sample -> {job index: file indices}: the one fileset -> per-file-job mapping (processing.events_per_job).
JOBS = {
    key: {
        f"{g[0]:05d}": [f"{i:05d}" for i in g]
        for g in group_files(ev, config["processing"]["events_per_job"])
    }
    for key, ev in FILE_EVENTS.items()
}

if config["dataset"] == "agc":
    # What the run will read, printed while the DAG is built (before any job runs).
    _n_files, _n_events = files_and_events(
        load_inputs(original_inputs_list()),
        SAMPLE_KEYS,
        config["n_files_max_per_sample"],
    )
    sys.stderr.write(
        f"dataset agc: this run reads {_n_files} files with {_n_events:,} events "
        f"({len(SAMPLE_KEYS)} samples, n_files_max_per_sample="
        f"{config['n_files_max_per_sample']}; input list {config['inputs']})\n"
    )


def file_indices(sample):
    """Indices of every file of a sample (mock generation, staging, ServiceX: one per file)."""
    return [f"{i:05d}" for i in range(FILE_COUNTS[sample])]


def job_files(wildcards):
    """File indices read by the per-file job {sample}/{index} (one, or several small files)."""
    try:
        return JOBS[wildcards.sample][wildcards.index]
    except KeyError:
        raise ValueError(
            f"no per-file job {wildcards.sample}/{wildcards.index}: jobs of the sample start "
            f"at files {', '.join(JOBS.get(wildcards.sample, {}))} "
            f"(config processing.events_per_job)"
        ) from None


def all_partial_histograms(wildcards=None):
    """Partial histogram files of every per-file job of every sample."""
    return [layout.partial(R, s, i) for s in SAMPLE_KEYS for i in JOBS[s]]


def partial_histograms(wildcards):
    """Partial histogram files of one sample, one per per-file job."""
    return [layout.partial(R, wildcards.sample, i) for i in JOBS[wildcards.sample]]


def sample_histograms(wildcards=None):
    """Histograms of each sample, summed over its per-file jobs: the merge (merge_sample) of a
    sample with several jobs; for a sample of one job (the default dataset), that job's partial,
    which already is the sum, so no merge job runs for it."""
    return [
        (
            layout.merged(R, s)
            if len(JOBS[s]) > 1
            else layout.partial(R, s, next(iter(JOBS[s])))
        )
        for s in SAMPLE_KEYS
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
        layout.metrics(R),
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
        return [layout.mock_file(R, wildcards.sample, i) for i in job_files(wildcards)]
    if config["staging"]["enabled"]:
        return [
            layout.staged_file(R, config["staging"]["dir"], wildcards.sample, i)
            for i in job_files(wildcards)
        ]
    return []


# ---- Parameters and inputs of the stage files in rules/ (which hold only rules) ----

# Embedded dataset (mock.smk, servicex.smk)


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
    """The file indices of the job and, when the workflow made them, their local copies (mock or
    staged files) to read."""
    return f"--index {' '.join(job_files(wildcards))}" + (
        f" --input {' '.join(input.data)}" if input.data else ""
    )


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
    """Local copies of the training samples' original files when the workflow makes them, in
    fileset order: the mock files, or the staged copies (staging without ServiceX; with ServiceX
    the staged files are the skims, and training reads the originals through the reading layer).
    """
    keys = config["ml"]["training_samples"]
    if config["dataset"] == "mock":
        return [layout.mock_file(R, s, i) for s in keys for i in file_indices(s)]
    if config["staging"]["enabled"] and not config["servicex"]["enabled"]:
        return [
            layout.staged_file(R, config["staging"]["dir"], s, i)
            for s in keys
            for i in file_indices(s)
        ]
    return []


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
