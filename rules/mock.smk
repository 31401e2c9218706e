# Embedded dataset: synthetic CMS NanoAOD files of the nine AGC samples, and their input list in the
# AGC nanoaod_inputs.json format (spec §1.4). Runs first in the default DAG (dataset: mock).


rule generate_mock_file:
    output:
        layout.mock_file(R, "{sample}", "{index}"),
    log:
        layout.log(R, "generate_mock_file", "{sample}_{index}"),
    benchmark:
        layout.benchmark(R, "generate_mock_file", "{sample}_{index}")
    threads: 1
    resources:
        mem_mb=mock_mem_mb(),
        runtime=15,
    params:
        events=lambda wildcards: mock_events(wildcards.sample),
        seed=config["mock"]["seed"],
        compression=config["mock"]["compression"],
        muon=config["mock"]["muon_tight_fraction"],
        full="--full-layout" if config["mock"]["full_layout"] else "",
        fmt=config["mock"]["format"],
        skim="" if config["mock"]["skim"] else "--unskimmed",
    shell:
        "python workflow_scripts/generate_mock.py --sample {wildcards.sample} --index {wildcards.index} "
        "--events {params.events} --seed {params.seed} --compression {params.compression} "
        "--muon-tight-fraction {params.muon} {params.full} {params.skim} --format {params.fmt} "
        "--output {output} "
        "> {log} 2>&1"


rule mock_inputs:
    input:
        mock_files(),
    output:
        layout.mock_inputs(R),
    log:
        layout.log(R, "mock_inputs"),
    benchmark:
        layout.benchmark(R, "mock_inputs")
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        tree=config["tree_name"],
    shell:
        "python workflow_scripts/mock_inputs.py --files {input} --tree {params.tree} --output {output} "
        "> {log} 2>&1"
