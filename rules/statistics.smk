# Statistical model and inference (spec §5): cabinetry config -> templates + workspace.json -> MLE fit
# (Asimov, ranking, goodness of fit) -> fit_results.json -> plots and the HTML summary of the report.
# With use_inference: workspace_ml.json (7 channels) and post-fit ML plots from the main fit.

from agc_ttbar.config import config_hash as _config_hash
from agc_ttbar.statistics.results import print_result_line as _print_result_line

STAT = config["statistics"]
PLOT_FORMATS = list(config["plots"]["formats"])
# The report shows one format per figure: PNG when made, else SVG, else PDF.
_REPORT_EXT = next(fmt for fmt in ("png", "svg", "pdf") if fmt in PLOT_FORMATS)
_REPORT_PATTERNS = [f"{{name}}.{_REPORT_EXT}"]
# Provenance hash: every setting that can change the fit. Plots and validation cannot, nor can where
# results go and how jobs run (chunk size, memory, remote timeouts, the container image and its
# runner): the histograms are exact, so fit_results.json stays bitwise identical across those
# (tests/test_reliability_workflow.py, tests/test_container.py).
_EXECUTION_ONLY = {
    "processing": ("chunksize", "mem_mb", "remote_timeout_s", "remote_retries")
}
_STAT_CONFIG_HASH = _config_hash(
    {
        k: (
            {
                kk: vv
                for kk, vv in v.items()
                if kk not in _EXECUTION_ONLY.get(k, ())
                # unset, the explicit-edges knob leaves the hash of the configs before it
                and not (k == "statistics" and kk == "fit_bin_edges" and vv is None)
            }
            if isinstance(v, dict)
            else v
        )
        for k, v in config.items()
        # optimisation: its own outputs only, never the ordinary fit
        if k
        not in (
            "plots",
            "validation",
            "results_dir",
            "staging",
            "container_image",
            "container_runner",
            "optimisation",
        )
    }
)


report: "../report/workflow.rst"


rule stat_config:
    output:
        layout.cabinetry_config(R),
    log:
        layout.log(R, "stat_config"),
    benchmark:
        layout.benchmark(R, "stat_config")
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        samples=" ".join(SAMPLE_KEYS),
        histograms=layout.histograms(R),
        folder=layout.stat_templates(R),
        binning=f"--fit-lower-edge {STAT['fit_lower_edge']} --fit-rebin {STAT['fit_rebin']}"
        + (
            ""
            if STAT["fit_bin_edges"] is None
            else " --fit-edges " + " ".join(str(e) for e in STAT["fit_bin_edges"])
        ),
    shell:
        "python workflow_scripts/stat_config.py --samples {params.samples} "
        "--histograms {params.histograms} --histogram-folder {params.folder} {params.binning} --output {output} "
        "> {log} 2>&1"


rule workspace:
    input:
        config=layout.cabinetry_config(R),
        histograms=layout.histograms(R),
    output:
        workspace=layout.workspace(R),
        templates=directory(layout.stat_templates(R)),
    log:
        layout.log(R, "workspace"),
    benchmark:
        layout.benchmark(R, "workspace")
    priority: PRIORITY_CRITICAL
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    shell:
        "python workflow_scripts/build_workspace.py --cabinetry-config {input.config} "
        "--output {output.workspace} > {log} 2>&1"


rule fit:
    input:
        layout.workspace(R),
    output:
        results=layout.fit_results(R),
        provenance=layout.fit_provenance(R),
    log:
        layout.log(R, "fit"),
    benchmark:
        layout.benchmark(R, "fit")
    priority: PRIORITY_CRITICAL
    threads: STAT["threads"]
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        strategy="null" if STAT["fit_strategy"] is None else STAT["fit_strategy"],
        retry=STAT["retry_strategy"],
        ranking=f'--ranking-strategy {STAT["ranking_strategy"]} '
        f'--ranking-tolerance {STAT["ranking_tolerance"]!r}',
        flags=" ".join(
            flag
            for flag, on in (
                ("--no-asimov", not STAT["asimov"]),
                ("--no-ranking", not STAT["ranking"]),
                ("--no-gof", not STAT["goodness_of_fit"]),
                ("--no-minos", not STAT["minos_poi"]),
            )
            if on
        ),
        config_hash=_STAT_CONFIG_HASH,
    shell:
        "python workflow_scripts/fit.py --workspace {input} --output {output.results} "
        "--provenance {output.provenance} --strategy {params.strategy} "
        "--retry-strategy {params.retry} {params.ranking} --threads {threads} --config-hash {params.config_hash} "
        "{params.flags} > {log} 2>&1"


_ML_PLOT_INPUT, _ML_PLOT_ARGS, _ML_PLOT_OUTPUT = {}, "", {}  # without use_inference
if config["use_inference"]:

    rule ml_workspace:
        input:
            layout.histograms_ml(R),
        output:
            workspace=layout.workspace_ml(R),
            config=layout.cabinetry_config_ml(R),
            templates=directory(layout.stat_templates_ml(R)),
        log:
            layout.log(R, "ml_workspace"),
        benchmark:
            layout.benchmark(R, "ml_workspace")
        priority: PRIORITY_CRITICAL  # the statistics plots wait for it
        threads: 1
        resources:
            mem_mb=1500,
            runtime=15,
        params:
            samples=" ".join(SAMPLE_KEYS),
        shell:
            "python workflow_scripts/ml_workspace.py --samples {params.samples} "
            "--histograms-ml {input} --histogram-folder {output.templates} "
            "--config-output {output.config} --output {output.workspace} > {log} 2>&1"

    _ML_PLOT_INPUT = {
        "workspace_ml": layout.workspace_ml(R),
        "config_ml": layout.cabinetry_config_ml(R),
        "templates_ml": layout.stat_templates_ml(R),
    }
    _ML_PLOT_ARGS = (
        f"--workspace-ml {layout.workspace_ml(R)} "
        f"--cabinetry-config-ml {layout.cabinetry_config_ml(R)}"
    )
    _ML_PLOT_OUTPUT = {
        "ml": report(
            directory(layout.stat_plots_dir(R, "ml")),
            patterns=_REPORT_PATTERNS,
            caption="../report/captions/ml_data_mc.rst",
            category="5 ML validation",
        )
    }


rule template_plots:
    input:
        config=layout.cabinetry_config(R),
        templates=layout.stat_templates(R),
    output:
        index=layout.template_plots_done(R),
        templates=report(
            directory(layout.stat_plots_dir(R, "templates")),
            patterns=_REPORT_PATTERNS,
            caption="../report/captions/templates.rst",
            category="4 Systematic templates",
        ),
    log:
        layout.log(R, "template_plots"),
    benchmark:
        layout.benchmark(R, "template_plots")
    priority: PRIORITY_CRITICAL
    threads: 1
    resources:
        mem_mb=1500,
        runtime=20,
    params:
        formats=" ".join(PLOT_FORMATS),
    shell:
        "python workflow_scripts/template_plots.py --cabinetry-config {input.config} "
        "--outdir {output.templates} --formats {params.formats} --index {output.index} > {log} 2>&1"


rule stat_plots:
    input:
        **_ML_PLOT_INPUT,
        templates_index=layout.template_plots_done(R),
        workspace=layout.workspace(R),
        fit=layout.fit_results(R),
        config=layout.cabinetry_config(R),
        templates=layout.stat_templates(R),
    output:
        **_ML_PLOT_OUTPUT,
        index=layout.stat_plots_done(R),
        summary=report(
            layout.stat_summary(R),
            caption="../report/captions/summary.rst",
            category="1 Result",
        ),
        data_mc=report(
            directory(layout.stat_plots_dir(R, "data_mc")),
            patterns=_REPORT_PATTERNS,
            caption="../report/captions/data_mc.rst",
            category="2 Data and prediction",
        ),
        fit=report(
            directory(layout.stat_plots_dir(R, "fit")),
            patterns=_REPORT_PATTERNS,
            caption="../report/captions/fit.rst",
            category="3 Fit",
        ),
    log:
        layout.log(R, "stat_plots"),
    benchmark:
        layout.benchmark(R, "stat_plots")
    priority: PRIORITY_CRITICAL
    threads: config["plots"]["threads"]
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        formats=" ".join(PLOT_FORMATS),
        ml=_ML_PLOT_ARGS,
        dataset=config["dataset"],
    shell:
        "python workflow_scripts/stat_plots.py --workspace {input.workspace} --fit-results {input.fit} "
        "--cabinetry-config {input.config} {params.ml} --templates-index {input.templates_index} "
        "--formats {params.formats} --dataset {params.dataset} --processes {threads} "
        "--summary {output.summary} --index {output.index} "
        "> {log} 2>&1"


# The reference's closing line, `fit result for ttbar_norm: X +/- Y`, read from fit_results.json.
onsuccess:
    _print_result_line(layout.fit_results(R))
