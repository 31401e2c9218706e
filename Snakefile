# AGC CMS Open Data ttbar cross-section measurement as a Snakemake workflow.
#
#   snakemake --cores N                 # the embedded mock dataset, to the fit result and plots
#   snakemake --cores N --config dataset=agc n_files_max_per_sample=1
#
# Parses under Snakemake 7.32.4 (REANA) and 9.x. Every rule is `shell:` and calls a small script in
# workflow_scripts/; the physics lives in the agc_ttbar package.

import os
import sys

sys.path.insert(0, workflow.basedir)

from agc_ttbar.config import ConfigError, validate_config


configfile: "config.yaml"


try:
    validate_config(config)
except ConfigError as err:
    sys.stderr.write(f"Invalid configuration: {err}\n")
    raise SystemExit(1)


# The image of every rule (config container_image; null = none): REANA, --sdm apptainer
# (7.32.4: --use-singularity) run each job in it. container_runner "podman" runs each job's shell
# command in it locally, as REANA's job controller does (scripts/podman_job.sh).
container: config["container_image"]


if config["container_runner"] == "podman":
    os.environ["AGC_CONTAINER_IMAGE"] = config["container_image"]
    os.environ["AGC_CONTAINER_WORKSPACE"] = os.getcwd()
    shell.executable(os.path.join(workflow.basedir, "scripts", "podman_job.sh"))


include: "rules/common.smk"
include: "rules/mock.smk"
include: "rules/fileset.smk"
include: "rules/staging.smk"
include: "rules/servicex.smk"
include: "rules/optimisation.smk"
include: "rules/processing.smk"
include: "rules/ml.smk"
include: "rules/statistics.smk"
include: "rules/hepdata.smk"
include: "rules/summary.smk"


rule all:
    default_target: True
    input:
        final_outputs(),
        opt_outputs,


# Last: localrules and the HTCondor/REANA resources derived from every rule's mem_mb.
include: "rules/scaleout.smk"
