# Processing stage (spec §2-4, §6.3, §7): per-file jobs -> exact partial histograms, per-sample merge
# (of samples with several per-file jobs: sample_histograms in common.smk), histograms.root /
# histograms_ml.root, cutflow, and the optional validation against an AGC reference.


rule process_file:
    input:
        fileset=layout.fileset(R),
        data=input_file,
        models=ml_models(),
    output:
        **OPT_COLUMN_OUTPUT,  # rules/optimisation.smk: none unless optimisation.enabled
        partial=layout.partial(R, "{sample}", "{index}"),
    log:
        layout.log(R, "process_file", "{sample}_{index}"),
    benchmark:
        layout.benchmark(R, "process_file", "{sample}_{index}")
    threads: 1
    resources:
        mem_mb=config["processing"]["mem_mb"],
        runtime=60,
    params:
        ml=ml_job_args,
        data=input_file_arg,
        chunksize=config["processing"]["chunksize"],
        seed=config["processing"]["pt_res_seed"],
        mismatch=config["processing"]["nevts_mismatch"],
        btag=config["processing"]["btag_threshold"],
        columns=opt_columns_arg,
        tree=config["tree_name"],
        remote=f"--remote-timeout {config['processing']['remote_timeout_s']} "
        f"--remote-retries {config['processing']['remote_retries']}",
    shell:
        "python workflow_scripts/process_file.py --fileset {input.fileset} --sample {wildcards.sample} "
        "--output {output.partial} {params.data} --tree-name {params.tree} "
        "--chunksize {params.chunksize} --pt-res-seed {params.seed} --nevts-mismatch {params.mismatch} "
        "{params.ml} --nthread {threads} {params.remote} --btag-threshold {params.btag}{params.columns} > {log} 2>&1"


rule merge_sample:
    input:
        partial_histograms,
    output:
        layout.merged(R, "{sample}"),
    log:
        layout.log(R, "merge_sample", "{sample}"),
    benchmark:
        layout.benchmark(R, "merge_sample", "{sample}")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    shell:
        "python workflow_scripts/merge_sample.py --sample {wildcards.sample} --inputs {input} "
        "--output {output} > {log} 2>&1"


rule write_histograms:
    input:
        sample_histograms,
    output:
        main=layout.histograms(R),
        ml=[layout.histograms_ml(R)] if config["use_inference"] else [],
    log:
        layout.log(R, "write_histograms"),
    benchmark:
        layout.benchmark(R, "write_histograms")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        ml=f"--output-ml {layout.histograms_ml(R)}" if config["use_inference"] else "",
    shell:
        "python workflow_scripts/write_histograms.py --inputs {input} --output {output.main} {params.ml} "
        "> {log} 2>&1"


rule metrics:
    input:
        all_partial_histograms(),
    output:
        report(
            layout.metrics(R),
            caption="../report/captions/metrics.rst",
            category="4 Processing",
        ),
    log:
        layout.log(R, "metrics"),
    benchmark:
        layout.benchmark(R, "metrics")
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    shell:
        "python workflow_scripts/metrics.py --inputs {input} --output {output} > {log} 2>&1"


rule cutflow:
    input:
        sample_histograms,
    output:
        json=layout.cutflow(R),
        table=layout.cutflow_table(R),
    log:
        layout.log(R, "cutflow"),
    benchmark:
        layout.benchmark(R, "cutflow")
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    shell:
        "python workflow_scripts/cutflow.py --inputs {input} --output {output.json} --table {output.table} "
        "> {log} 2>&1"


if config["validation"]["reference"]:

    rule validate:
        input:
            histos=layout.histograms(R),
            reference=config["validation"]["reference"],
        output:
            layout.validation_report(R),
        log:
            layout.log(R, "validate"),
        benchmark:
            layout.benchmark(R, "validate")
        threads: 1
        resources:
            mem_mb=500,
            runtime=5,
        shell:
            "python workflow_scripts/validate.py --histos {input.histos} --reference {input.reference} "
            "--output {output} > {log} 2>&1"
