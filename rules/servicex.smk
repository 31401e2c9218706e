# ServiceX delivery (config servicex.enabled, spec §8.3): one job submits the AGC skim of every input
# file (one ServiceX sample per file) and writes an input list pointing at the delivered files
# (tree "servicex", nevts of the original files). The fileset rule reads that list (inputs_list()),
# and the per-file jobs stay the ones of the original list: FILE_COUNTS comes from the original list
# at parse time, so `snakemake -n` shows the whole DAG before anything is delivered.


if config["servicex"]["enabled"]:

    rule servicex_deliver:
        input:
            inputs=original_inputs_list(),
            # the mock files when the workflow makes them; an AGC list names files it does not make
            sources=mock_files() if config["dataset"] == "mock" else [],
            sx_config=(
                [config["servicex"]["config_path"]]
                if config["servicex"]["config_path"]
                else []
            ),
        output:
            layout.servicex_inputs(R),
        log:
            layout.log(R, "servicex_deliver"),
        benchmark:
            layout.benchmark(R, "servicex_deliver")
        threads: 1
        resources:
            mem_mb=1000,
            runtime=240,
        params:
            samples=" ".join(SAMPLE_KEYS),
            n=config["n_files_max_per_sample"],
            tree=config["tree_name"],
            timeout=config["processing"]["remote_timeout_s"],
            retries=config["processing"]["remote_retries"],
            args=servicex_args(),
        shell:
            "python workflow_scripts/servicex_deliver.py --inputs {input.inputs} --output {output} "
            "--samples {params.samples} --n-files-max {params.n} --tree {params.tree} "
            "--timeout {params.timeout} --retries {params.retries} {params.args} > {log} 2>&1"
