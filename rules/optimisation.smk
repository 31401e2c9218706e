# Differentiable analysis (issue 17, config optimisation.enabled; agc_ttbar/optimisation/): the
# per-file jobs also write per-event columns -> soft JAX model, gradient optimisation of the b-tag
# threshold and the fit bin edges -> hard re-check: a second run of the ordinary rules (nested
# Snakemake, its own results folder) with the optimised choices -> result.json and two plots.

import json as _json
import shlex as _shlex

from agc_ttbar import optimisation as opt_layout
from agc_ttbar.optimisation import dag as opt_dag

OPT = config["optimisation"]
#: Extra named output of the per-file job (rules/processing.smk): its columns, only when enabled.
OPT_COLUMN_OUTPUT = opt_dag.column_output(config, R)
opt_columns_arg = opt_dag.columns_arg(config)
opt_outputs = opt_dag.outputs(config, R)

_OPT_FORMATS = list(config["plots"]["formats"])
# The report shows one format per figure: PNG when made, else SVG, else PDF (as rules/statistics.smk).
_OPT_REPORT_EXT = next(fmt for fmt in ("png", "svg", "pdf") if fmt in _OPT_FORMATS)
_OPT_PLOTS = {
    "path": [f"{opt_layout.plots_dir(R)}/objective_path.{fmt}" for fmt in _OPT_FORMATS],
    "scan": [f"{opt_layout.plots_dir(R)}/btag_scan.{fmt}" for fmt in _OPT_FORMATS],
}


if OPT["enabled"]:

    rule optimise:
        input:
            columns=opt_dag.all_columns(R, JOBS, SAMPLE_KEYS),
            config=layout.cabinetry_config(R),
        output:
            result=opt_layout.soft_result(R),
            hard_config=opt_layout.hard_config(R),
        log:
            layout.log(R, "optimise"),
        benchmark:
            layout.benchmark(R, "optimise")
        threads: 1
        resources:
            mem_mb=4000,
            runtime=30,
        params:
            opt=f"--btag-steepness {OPT['btag_steepness']} --bin-steepness {OPT['bin_steepness']} "
            f"--steps {OPT['steps']} --learning-rate {OPT['learning_rate']} "
            f"--min-lower-edge {OPT['min_lower_edge']} "
            f"--scan-half-width {OPT['scan_half_width']} --scan-points {OPT['scan_points']}",
            start=f"--btag-threshold {config['processing']['btag_threshold']} "
            f"--fit-edges {' '.join(str(e) for e in opt_dag.start_edges(config))}",
            workflow_config=_shlex.quote(_json.dumps(config, sort_keys=True)),
            hard_dir=opt_layout.hard_dir(R),
        shell:
            "python workflow_scripts/optimise.py --columns {input.columns} --cabinetry-config {input.config} "
            "{params.opt} {params.start} --output {output.result} --hard-config {output.hard_config} "
            "--hard-results-dir {params.hard_dir} --workflow-config {params.workflow_config} > {log} 2>&1"

    # The hard re-check: the ordinary rules (mock or input files -> per-file jobs -> histograms.root
    # -> workspace -> fit with Asimov MINOS) run again by a nested Snakemake in their own results
    # folder, with the optimised processing.btag_threshold and statistics.fit_bin_edges.
    rule optimisation_hard:
        input:
            opt_layout.hard_config(R),
        output:
            layout.fit_results(opt_layout.hard_dir(R)),
        log:
            layout.log(R, "optimisation_hard"),
        benchmark:
            layout.benchmark(R, "optimisation_hard")
        threads: 2
        resources:
            mem_mb=4000,
            runtime=60,
        params:
            snakefile=os.path.join(workflow.basedir, "Snakefile"),
        shell:
            "python -m snakemake --snakefile {params.snakefile} --cores {threads} --nolock "
            "--configfile {input} -- {output} > {log} 2>&1"

    rule optimisation_result:
        input:
            soft=opt_layout.soft_result(R),
            hard=layout.fit_results(opt_layout.hard_dir(R)),
            default=layout.fit_results(R),
        output:
            result=opt_layout.result(R),
            path=report(
                _OPT_PLOTS["path"][_OPT_FORMATS.index(_OPT_REPORT_EXT)],
                caption="../report/captions/optimisation_path.rst",
                category="6 Optimisation",
            ),
            scan=report(
                _OPT_PLOTS["scan"][_OPT_FORMATS.index(_OPT_REPORT_EXT)],
                caption="../report/captions/optimisation_scan.rst",
                category="6 Optimisation",
            ),
            other=[
                p
                for p in _OPT_PLOTS["path"] + _OPT_PLOTS["scan"]
                if not p.endswith(f".{_OPT_REPORT_EXT}")
            ],
        log:
            layout.log(R, "optimisation_result"),
        benchmark:
            layout.benchmark(R, "optimisation_result")
        threads: 1
        resources:
            mem_mb=1000,
            runtime=10,
        params:
            formats=" ".join(_OPT_FORMATS),
            plots=opt_layout.plots_dir(R),
        shell:
            "python workflow_scripts/optimisation_result.py --soft {input.soft} --hard-fit {input.hard} "
            "--default-fit {input.default} --output {output.result} --plots {params.plots} "
            "--formats {params.formats} > {log} 2>&1"
