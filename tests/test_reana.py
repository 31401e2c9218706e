"""reana.yaml: `reana-client validate` (0.9.6, offline) and a Snakemake 7.32.4 dry run (REANA's version)
on exactly the files reana.yaml uploads, showing the same full DAG as Snakemake 9.

Both tools live in their own cached venvs (.venv-reana/, .venv-snakemake7/; a few minutes to build
once, seconds afterwards).
"""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from scaleout_helpers import REPO, cached_venv, require_workflow, snakemake_env

REANA_CLIENT = ["reana-client==0.9.6"]
# REANA 0.9 runs Snakemake 7.32.4; pulp 2.8 breaks its scheduler import. The workflow's parse-time
# imports need pyyaml and jsonschema, pinned as in envs/requirements.txt.
SNAKEMAKE7 = ["snakemake==7.32.4", "pulp==2.7.0", "pyyaml==6.0.2", "jsonschema==4.25.1"]


def _spec() -> dict:
    return yaml.safe_load((REPO / "reana.yaml").read_text())


def _upload(dst: pathlib.Path) -> pathlib.Path:
    """Copy what reana.yaml uploads (inputs.files and inputs.directories) plus reana.yaml itself."""
    spec = _spec()
    dst.mkdir(parents=True)
    shutil.copy2(REPO / "reana.yaml", dst / "reana.yaml")
    for rel in spec["inputs"].get("files", []):
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dst / rel)
    for rel in spec["inputs"].get("directories", []):
        shutil.copytree(REPO / rel, dst / rel, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dst


def _job_counts(log: str) -> dict[str, int]:
    table = log.split("Job stats:", 1)[1] if "Job stats:" in log else log.split("Job counts:", 1)[1]
    counts = {}
    for line in table.splitlines()[1:]:
        m = re.match(r"^(\S+)\s+(\d+)$", line.strip())
        if m:
            counts[m.group(1)] = int(m.group(2))
        elif counts:
            break
    counts.pop("total", None)
    counts.pop("job", None)
    return counts


def test_reana_yaml_declares_the_workflow_inputs_and_outputs():
    from agc_ttbar import layout
    from agc_ttbar.config import load_config

    spec = _spec()
    assert spec["workflow"]["type"] == "snakemake"
    assert (REPO / spec["workflow"]["file"]).is_file()
    config_path = spec["inputs"]["parameters"]["input"]
    assert config_path in spec["inputs"]["files"]
    config = load_config(str(REPO / config_path))
    results = config["results_dir"]
    outputs = spec["outputs"]["files"]
    for wanted in (layout.histograms(results), layout.fit_results(results), layout.cutflow(results)):
        assert wanted in outputs, f"reana.yaml outputs lack {wanted}"
    assert f"{results}/plots" in spec["outputs"]["directories"]
    for rel in spec["inputs"]["files"]:
        assert (REPO / rel).is_file(), rel
    for rel in spec["inputs"]["directories"]:
        assert (REPO / rel).is_dir(), rel
    # Everything the Snakefile includes or runs is uploaded.
    uploaded = set(spec["inputs"]["files"]) | set(spec["inputs"]["directories"])
    for needed in ("Snakefile", "rules", "workflow_scripts", "agc_ttbar", "report"):
        assert needed in uploaded, needed


@pytest.mark.slow
def test_reana_client_validates_offline(tmp_path):
    require_workflow()
    client = cached_venv("reana", REANA_CLIENT).parent / "reana-client"
    work = _upload(tmp_path / "upload")
    env = {k: v for k, v in snakemake_env().items() if not k.startswith("REANA_")}
    proc = subprocess.run([str(client), "validate", "-f", "reana.yaml"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    print(out[-3000:])
    assert proc.returncode == 0, out[-5000:]
    assert "SUCCESS: Valid REANA specification file" in out
    assert "SUCCESS: REANA specification parameters appear valid" in out
    assert "SUCCESS: Workflow operations appear valid" in out
    assert "ERROR" not in out
    # Accepted: inputs named only to order the DAG (not used in the command), and Snakemake's own
    # log lines (reana-client prefixes them with [WARNING]).
    warnings = [line for line in out.splitlines() if "WARNING" in line
                and not line.startswith("[WARNING]")
                and not re.search(r'input parameter "\w+" found on steps? .* does not seem to be used', line)]
    assert not warnings, warnings


@pytest.mark.slow
def test_snakemake7_dry_run_shows_the_full_dag(tmp_path):
    require_workflow()
    smk7 = cached_venv("snakemake7", SNAKEMAKE7)
    work = _upload(tmp_path / "upload")
    config_file = _spec()["inputs"]["parameters"]["input"]
    env = snakemake_env()
    env["PATH"] = f"{smk7.parent}:{env['PATH']}"
    # As REANA does: the uploaded files only, the config file of inputs.parameters.input.
    proc = subprocess.run([str(smk7), "-m", "snakemake", "-n", "--cores", "1", "--configfile",
                           config_file], cwd=work, env=env, capture_output=True, text=True,
                          timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    assert "7.32.4" in subprocess.check_output([str(smk7), "-m", "snakemake", "--version"], text=True)
    counts7 = _job_counts(out)

    # The same DAG as Snakemake 9 builds from the same files (not in the repository, whose results/
    # may already hold a finished run).
    proc9 = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile",
                            config_file], cwd=work, env=snakemake_env(), capture_output=True,
                           text=True, timeout=600)
    assert proc9.returncode == 0, proc9.stderr[-5000:]
    counts9 = _job_counts(proc9.stdout + proc9.stderr)
    print("\nSnakemake 7.32.4 DAG:", counts7)
    assert counts7 == counts9
    from agc_ttbar.config import load_config

    config = load_config(str(REPO / config_file))
    n_files = config["mock"]["files_per_sample"] if config["dataset"] == "mock" else None
    if n_files is not None:
        from agc_ttbar.fileset import group_files

        mock = config["mock"]
        jobs = {s: len(group_files([mock["events_per_file_overrides"].get(s, mock["events_per_file"])] * n_files,
                                   config["processing"]["events_per_job"])) for s in config["samples"]}
        assert counts7["process_file"] == sum(jobs.values())
        # a sample of several per-file jobs is merged; one of a single job needs no merge
        assert counts7.get("merge_sample", 0) == sum(n > 1 for n in jobs.values())
    for stage_rule in ("fileset", "process_file", "write_histograms"):
        assert stage_rule in counts7, stage_rule
    assert sum(counts7.values()) >= 2 * counts7["process_file"]

    # Every job carries its Kubernetes memory limit (derived from mem_mb in rules/scaleout.smk).
    blocks = [b for b in re.split(r"\n(?=(?:local)?rule \w+:)", out) if re.match(r"(local)?rule ", b)]
    assert len(blocks) == sum(counts7.values())
    for block in blocks:
        name = re.match(r"(?:local)?rule (\w+):", block).group(1)
        if name == "all":
            continue
        mem = re.search(r"\bmem_mb=(\d+)", block)
        assert mem, f"rule {name} declares no mem_mb"
        assert f"kubernetes_memory_limit={mem.group(1)}Mi" in block, block
