# Fileset stage: input list -> per-file job list with sample-level metadata (spec §1.3-1.5).


rule fileset:
    input:
        inputs=inputs_list(),
    output:
        layout.fileset(R),
    log:
        layout.log(R, "fileset"),
    benchmark:
        layout.benchmark(R, "fileset")
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        samples=" ".join(SAMPLE_KEYS),
        n=config["n_files_max_per_sample"],
        # With ServiceX the rewrites were applied to the submitted paths (rules/servicex.smk).
        eos=(
            "--input-from-eos"
            if config["input_from_eos"] and not config["servicex"]["enabled"]
            else ""
        ),
        xcache=(
            f"--xcache {config['xcache']}"
            if config["xcache"] and not config["servicex"]["enabled"]
            else ""
        ),
        rewrites=(
            ""
            if config["servicex"]["enabled"]
            else " ".join(
                f"--rewrite '{r['from']}' '{r['to']}'"
                for r in config["prefix_rewrites"]
            )
        ),
    shell:
        "python workflow_scripts/fileset.py --inputs {input.inputs} --output {output} "
        "--samples {params.samples} --n-files-max {params.n} {params.eos} {params.xcache} "
        "{params.rewrites} > {log} 2>&1"
