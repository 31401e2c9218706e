# Optional local staging of the input files (config staging.enabled): one job per input file copies
# it to {results_dir}/{staging.dir}/{sample}/{index}.root, and the per-file processing job reads that
# copy (input_file() in common.smk). Remote reads then happen once per file, with the timeouts and
# retries of processing.remote_timeout_s / remote_retries.

if config["staging"]["enabled"]:

    rule stage_file:
        input:
            fileset=layout.fileset(R),
        output:
            layout.staged_file(R, config["staging"]["dir"], "{sample}", "{index}"),
        log:
            layout.log(R, "stage_file", "{sample}_{index}"),
        benchmark:
            layout.benchmark(R, "stage_file", "{sample}_{index}")
        threads: 1
        resources:
            mem_mb=500,
            runtime=60,
        params:
            timeout=config["processing"]["remote_timeout_s"],
            retries=config["processing"]["remote_retries"],
            tree=config["tree_name"],
        shell:
            "python workflow_scripts/stage_file.py --fileset {input.fileset} --sample {wildcards.sample} "
            "--index {wildcards.index} --output {output} --tree {params.tree} "
            "--timeout {params.timeout} --retries {params.retries} > {log} 2>&1"
