"""The ML rules in the Snakemake DAG: present with use_inference, absent without."""

import os
import re
import subprocess
import sys

import pytest

from conftest import REPO

ML_RULES = {"ml_training_data", "ml_train_bdt", "ml_train_torch", "ml_evaluate_published", "ml_plots"}


def _included_files_present():
    with open(REPO / "Snakefile") as f:
        includes = re.findall(r'^include:\s*"([^"]+)"', f.read(), flags=re.M)
    return all((REPO / inc).exists() for inc in includes)


def _dry_run(tmp_path, *config):
    if not _included_files_present():
        pytest.skip("not every rule file of the Snakefile exists yet")
    snakemake = os.path.join(os.path.dirname(sys.executable), "snakemake")
    cmd = [snakemake, "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "--configfile",
           str(REPO / "config.yaml"), "-n", "--quiet", "rules", "--cores", "2", "--config", *config]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    return {line.split()[0] for line in res.stdout.splitlines() if line.strip() and line.split()[0] in ML_RULES}


def test_ml_rules_follow_use_inference(tmp_path):
    assert _dry_run(tmp_path, "use_inference=True") == {"ml_training_data", "ml_train_bdt", "ml_train_torch", "ml_plots"}
    assert _dry_run(tmp_path, "use_inference=False") == set()


def test_published_uses_the_shipped_models_by_default(tmp_path):
    """ml.model: published needs no paths: the DAG reads the AGC BDTs shipped in data/agc/models/,
    also from a working directory outside the workflow folder (-d)."""
    if not _included_files_present():
        pytest.skip("not every rule file of the Snakefile exists yet")
    snakemake = os.path.join(os.path.dirname(sys.executable), "snakemake")
    res = subprocess.run([snakemake, "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "--configfile",
                          str(REPO / "config.yaml"), "-n", "--cores", "1", "--printshellcmds",
                          "--config", "ml={'model': 'published', 'compare_models': ['published']}"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    for parity in ("even", "odd"):
        assert str(REPO / "data" / "agc" / "models" / f"model_{parity}.json") in res.stdout
    assert "ml_evaluate_published" in res.stdout and "ml_train_bdt" not in res.stdout


def test_published_model_path_missing_names_the_file(tmp_path):
    if not _included_files_present():
        pytest.skip("not every rule file of the Snakefile exists yet")
    snakemake = os.path.join(os.path.dirname(sys.executable), "snakemake")
    res = subprocess.run([snakemake, "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "--configfile",
                          str(REPO / "config.yaml"), "-n", "--cores", "1", "--config",
                          "ml={'model': 'published', 'published_models': {'even': 'nowhere/model_even.json'}}"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode != 0
    assert "nowhere/model_even.json" in res.stdout + res.stderr
