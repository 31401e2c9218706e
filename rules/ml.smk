# Jet-parton assignment ML (spec §6): training events -> models (xgboost BDT / torch MLP) or the
# published AGC BDTs -> metrics -> plots. The per-file jobs (processing.smk) take the models of
# config ml.model via ml_models(). With use_inference: false this file defines no rule.

if config["use_inference"]:
    ML = config["ml"]
    #: model kinds with metrics and plots: the one used for inference first, then the comparisons
    ML_KINDS = list(dict.fromkeys([ML["model"]] + list(ML["compare_models"])))

    _missing = [s for s in ML["training_samples"] if s not in SAMPLE_KEYS]
    if _missing:
        raise ValueError(
            f"config ml.training_samples {_missing} are not in config samples "
            f"({', '.join(SAMPLE_KEYS)}): the training reads their files from the fileset"
        )

    rule ml_training_data:
        input:
            fileset=layout.fileset(R),
            files=ml_training_files(),
        output:
            layout.ml_training_data(R),
        log:
            layout.log(R, "ml_training_data"),
        benchmark:
            layout.benchmark(R, "ml_training_data")
        priority: PRIORITY_CRITICAL
        threads: 1
        resources:
            mem_mb=4000,
            runtime=60,
        params:
            samples=" ".join(ML["training_samples"]),
            max_events=ML["max_train_events"],
            tree=config["tree_name"],
            chunksize=config["processing"]["chunksize"],
            local=lambda wildcards, input: (
                f"--local-files {' '.join(input.files)}" if input.files else ""
            ),
            remote=f"--remote-timeout {config['processing']['remote_timeout_s']} "
            f"--remote-retries {config['processing']['remote_retries']}",
        shell:
            "python workflow_scripts/ml_training_data.py --fileset {input.fileset} "
            "--samples {params.samples} --output {output} --max-per-parity {params.max_events} "
            "--tree-name {params.tree} --chunksize {params.chunksize} {params.local} {params.remote} "
            "> {log} 2>&1"

    if "bdt" in ML_KINDS:

        rule ml_train_bdt:
            input:
                data=layout.ml_training_data(R),
            output:
                models=layout.ml_models(R, config, "bdt"),
                metrics=layout.ml_metrics(R, "bdt"),
                validation=layout.ml_validation(R, "bdt"),
            log:
                layout.log(R, "ml_train_bdt"),
            benchmark:
                layout.benchmark(R, "ml_train_bdt")
            priority: PRIORITY_CRITICAL if ML["model"] == "bdt" else 0
            threads: ml_threads("bdt")
            resources:
                mem_mb=4000,
                runtime=120,
            params:
                hyper=ml_train_params("bdt"),
                seed=ML["seed"],
                max_n_jets=ML["max_n_jets"],
            shell:
                "python workflow_scripts/ml_train.py --kind bdt --data {input.data} "
                "--models {output.models} --metrics {output.metrics} --validation {output.validation} "
                "--threads {threads} --seed {params.seed} --max-n-jets {params.max_n_jets} "
                "{params.hyper} > {log} 2>&1"

    if "torch" in ML_KINDS:

        rule ml_train_torch:
            input:
                data=layout.ml_training_data(R),
            output:
                models=layout.ml_models(R, config, "torch"),
                metrics=layout.ml_metrics(R, "torch"),
                validation=layout.ml_validation(R, "torch"),
            log:
                layout.log(R, "ml_train_torch"),
            benchmark:
                layout.benchmark(R, "ml_train_torch")
            priority: PRIORITY_CRITICAL if ML["model"] == "torch" else 0
            threads: ml_threads("torch")
            resources:
                mem_mb=4000,
                runtime=120,
            params:
                hyper=ml_train_params("torch"),
                seed=ML["seed"],
                max_n_jets=ML["max_n_jets"],
            shell:
                "python workflow_scripts/ml_train.py --kind torch --data {input.data} "
                "--models {output.models} --metrics {output.metrics} --validation {output.validation} "
                "--threads {threads} --seed {params.seed} --max-n-jets {params.max_n_jets} "
                "{params.hyper} > {log} 2>&1"

    if "published" in ML_KINDS:

        rule ml_evaluate_published:
            input:
                data=layout.ml_training_data(R),
                models=layout.ml_models(R, config, "published"),
            output:
                metrics=layout.ml_metrics(R, "published"),
                validation=layout.ml_validation(R, "published"),
            log:
                layout.log(R, "ml_evaluate_published"),
            benchmark:
                layout.benchmark(R, "ml_evaluate_published")
            threads: ml_threads("published")
            resources:
                mem_mb=4000,
                runtime=60,
            params:
                max_n_jets=ML["max_n_jets"],
            shell:
                "python workflow_scripts/ml_evaluate.py --kind published --models {input.models} "
                "--data {input.data} --metrics {output.metrics} --validation {output.validation} "
                "--threads {threads} --max-n-jets {params.max_n_jets} > {log} 2>&1"

    rule ml_plots:
        input:
            metrics=[layout.ml_metrics(R, k) for k in ML_KINDS],
            validation=[layout.ml_validation(R, k) for k in ML_KINDS],
            histograms_ml=layout.histograms_ml(R),
        output:
            layout.ml_plots_done(R),
        log:
            layout.log(R, "ml_plots"),
        benchmark:
            layout.benchmark(R, "ml_plots")
        priority: PRIORITY_SIDE_FIRST
        threads: 1
        resources:
            mem_mb=2000,
            runtime=15,
        params:
            metrics=" ".join(f"{k}={layout.ml_metrics(R, k)}" for k in ML_KINDS),
            validation=" ".join(f"{k}={layout.ml_validation(R, k)}" for k in ML_KINDS),
            formats=" ".join(config["plots"]["formats"]),
        shell:
            "python workflow_scripts/ml_plots.py --metrics {params.metrics} "
            "--validation {params.validation} --histograms-ml {input.histograms_ml} "
            "--output {output} --formats {params.formats} > {log} 2>&1"
