# HEPData record of the fit (agc_ttbar/statistics/hepdata.py): written with hepdata-lib and
# validated with hepdata-validator in the same job, so an invalid record fails the rule.


rule hepdata:
    input:
        workspace=layout.workspace(R),
        fit=layout.fit_results(R),
        config=layout.cabinetry_config(R),
    output:
        archive=report(
            layout.hepdata_archive(R),
            caption="../report/captions/hepdata.rst",
            category="3 Fit",
        ),
        yaml=directory(os.path.join(layout.hepdata_dir(R), "yaml")),
    log:
        layout.log(R, "hepdata"),
    benchmark:
        layout.benchmark(R, "hepdata")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        folder=lambda wildcards, output: os.path.dirname(output.archive),
    shell:
        "python workflow_scripts/hepdata.py --workspace {input.workspace} --fit-results {input.fit} "
        "--cabinetry-config {input.config} --output-dir {params.folder} > {log} 2>&1"
