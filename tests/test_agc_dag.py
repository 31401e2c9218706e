"""The DAG of a real-data run (dataset: agc): no stray jobs, the pinned input list, and the
files/events summary printed before any job (issue 14, points 5 and 8)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from agc_ttbar.config import load_schema, validate_config
from agc_ttbar.fileset import fetch_inputs, files_and_events, load_inputs, sha256_file
from agc_ttbar.samples import SAMPLES
from scaleout_helpers import REPO, snakemake_env

PINNED_SHA = "84704916322c6eb48b2f21ff7ef305ffd36aed132be5f43f1f48343cb5ef283f"
KEYS = [f"{p}__{v}" for p, v in SAMPLES]


def test_default_inputs_pinned_to_an_agc_commit(agc_inputs, tmp_path):
    cfg = validate_config({})
    assert cfg["inputs"] == ("https://raw.githubusercontent.com/iris-hep/analysis-grand-challenge/c37bf59/"
                             "analyses/cms-open-data-ttbar/nanoaod_inputs.json")
    assert cfg["inputs_sha256"] == PINNED_SHA
    assert sha256_file(str(agc_inputs)) == PINNED_SHA      # the list of that commit
    # the default digest belongs to the default list only; an explicit one is kept
    assert validate_config({"inputs": str(agc_inputs)})["inputs_sha256"] is None
    assert validate_config({"inputs": str(agc_inputs), "inputs_sha256": PINNED_SHA})["inputs_sha256"] == PINNED_SHA
    assert fetch_inputs(str(agc_inputs), str(tmp_path), PINNED_SHA) == str(agc_inputs)
    other = tmp_path / "other.json"
    other.write_text(agc_inputs.read_text() + "\n")
    with pytest.raises(ValueError, match="inputs_sha256"):
        fetch_inputs(str(other), str(tmp_path), PINNED_SHA)
    assert "c37bf59" in load_schema()["properties"]["inputs"]["description"]


@pytest.mark.parametrize("n, files, events", [(1, 9, 10_455_719), (5, 43, 47_996_231), (-1, 787, 940_160_174)])
def test_files_and_events_match_the_spec_table(agc_inputs, n, files, events):
    assert files_and_events(load_inputs(str(agc_inputs)), KEYS, n) == (files, events)


def _dry_run(tmp_path, agc_inputs, n, extra):
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path),
           "--configfile", str(REPO / "config.yaml"), "-n", "--quiet", "rules", "--cores", "1",
           "--config", "dataset=agc", f"inputs={agc_inputs}", f"n_files_max_per_sample={n}", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=snakemake_env())
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc


def _counts(text: str) -> dict:
    out, table = {}, False
    for line in text.splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            table = True
        elif table and len(parts) == 2 and parts[1].isdigit():
            out[parts[0]] = int(parts[1])
    return out


@pytest.mark.parametrize("n, files, events", [(1, 9, "10,455,719"), (5, 43, "47,996,231")])
def test_agc_dag_has_no_mock_jobs_and_prints_what_it_reads(tmp_path, agc_inputs, n, files, events):
    """dataset: agc, with the defaults (ML on) and with ServiceX and/or staging: per-file jobs for
    the files of the list, never a mock job; the summary line comes before the job table."""
    variants = {"plain": [], "servicex": ["servicex={'enabled': True}"], "staging": ["staging={'enabled': True}"],
                "servicex+staging": ["servicex={'enabled': True}", "staging={'enabled': True}"]}
    for name, extra in variants.items():
        proc = _dry_run(tmp_path / name, agc_inputs, n, extra)
        out = proc.stdout + proc.stderr
        counts = _counts(proc.stdout)
        assert "generate_mock_file" not in counts and "mock_inputs" not in counts, (name, counts)
        assert counts["process_file"] == files, (name, counts)
        assert counts.get("servicex_deliver", 0) == (1 if "servicex" in name else 0), (name, counts)
        assert counts.get("stage_file", 0) == (files if "staging" in name else 0), (name, counts)
        assert counts["ml_training_data"] == 1 and counts["fit"] == 1, (name, counts)
        line = f"dataset agc: this run reads {files} files with {events} events"
        assert line in proc.stderr, (name, out[-3000:])


def test_ml_training_reads_staged_copies_or_the_originals(tmp_path, agc_inputs):
    """With staging, training reads the staged copies (one transfer per file); with ServiceX (the
    staged files are then skims) it reads the original URLs through the reading layer; always with
    the configured timeout and retries."""
    from agc_ttbar import layout

    def command(name, extra):
        cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path / name),
               "--configfile", str(REPO / "config.yaml"), "-n", "-p", "--cores", "1", "--config", "dataset=agc",
               f"inputs={agc_inputs}", "n_files_max_per_sample=1", "processing={'remote_retries': 5}", *extra,
               "--", layout.ml_training_data("results")]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=snakemake_env())
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
        lines = [ln for ln in proc.stdout.splitlines() if "ml_training_data.py" in ln]
        assert len(lines) == 1, proc.stdout[-3000:]
        return lines[0]

    staged = command("staging", ["staging={'enabled': True}"])
    assert "--local-files results/staged/ttbar__nominal/00000.root" in staged.replace("'", "")
    assert "--remote-retries 5" in staged
    for name, extra in (("servicex", ["servicex={'enabled': True}"]),
                        ("both", ["servicex={'enabled': True}", "staging={'enabled': True}"])):
        line = command(name, extra)
        assert "--local-files" not in line and "--remote-retries 5" in line, (name, line)
