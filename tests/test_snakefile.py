"""Static checks of the Snakefile: lint, `shell:`-only rules (REANA), parse under Snakemake 7.32.4."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from scaleout_helpers import REPO, cached_venv, require_workflow, snakemake_env
from test_reana import SNAKEMAKE7

# Lint remarks that are a choice of this workflow: the software environment is the venv / conda env /
# container the whole workflow runs in (envs/), not one per rule.
ACCEPTED_LINT = re.compile(r"conda|container|software environment", re.I)


def _rule_files():
    return [REPO / "Snakefile", *sorted((REPO / "rules").glob("*.smk"))]


def test_every_rule_is_shell_only():
    """REANA dispatches only `shell:` rules; `run:`/`script:`/`notebook:`/`wrapper:` never run there."""
    offending = []
    for path in _rule_files():
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            if re.match(r"^\s+(run|script|notebook|wrapper|cwl|template_engine)\s*:", line):
                offending.append(f"{path.name}:{lineno}: {line.strip()}")
    assert not offending, offending


def test_snakemake_lint_has_no_findings_but_environment_remarks():
    require_workflow()
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--lint", "--cores", "1"],
                          cwd=REPO, env=snakemake_env(), capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out and "Error" not in out.split("Lints for", 1)[0], out[-3000:]
    findings = []
    where = None
    for line in out.splitlines():
        if line.startswith("Lints for "):
            where = line[len("Lints for "):].rstrip(":")
        m = re.match(r"^    \* (.+?):?$", line)
        if m and where and not ACCEPTED_LINT.search(m.group(1)):
            findings.append(f"{where}: {m.group(1)}")
    assert not findings, f"{len(findings)} lint findings:\n" + "\n".join(findings)
    # Without findings lint exits 0; with only the accepted remarks it exits 1.
    assert proc.returncode == 0 or "Lints for" in out


def test_batch_resources_follow_mem_mb_and_set_resources(tmp_path):
    """rules/scaleout.smk: HTCondor and Kubernetes memory come from each rule's mem_mb."""
    require_workflow()
    # a fresh results folder: the repository's results/ may hold a finished run (nothing to do)
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1",
                           "--set-resources", "process_file:mem_mb=3333",
                           "--config", f"results_dir={tmp_path / 'results'}"], cwd=REPO,
                          env=snakemake_env(), capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    blocks = [b for b in re.split(r"\n(?=(?:local)?rule \w+:)", out) if re.match(r"(local)?rule ", b)]
    seen = set()
    for block in blocks:
        name = re.match(r"(?:local)?rule (\w+):", block).group(1)
        seen.add(name)
        mem = re.search(r"\bmem_mb=(\d+)", block)
        if name == "process_file":
            assert mem.group(1) == "3333"
        if mem:
            assert f"htcondor_request_mem_mb={mem.group(1)}," in block + ",", block
            assert f"kubernetes_memory_limit={mem.group(1)}Mi" in block, block
    assert {"process_file", "fileset", "fit"} <= seen


def test_localrules_are_the_cheap_rules_that_exist():
    """(That they really stay out of the pool is checked by tests/test_htcondor.py.)"""
    from agc_ttbar.scaleout import LOCAL_RULES, set_localrules

    class Rule:
        def __init__(self, name):
            self.name = name

    class Workflow:
        rules = [Rule(n) for n in ("all", "fileset", "process_file", "merge_sample", "fit")]
        declared: tuple = ()

        def localrules(self, *names):
            self.declared = names

    wf = Workflow()
    assert set_localrules(wf) == ["all", "fileset", "merge_sample"]
    assert wf.declared == ("all", "fileset", "merge_sample")
    assert "process_file" not in LOCAL_RULES and "generate_mock_file" not in LOCAL_RULES


def _rule_names(python, extra=()):
    proc = subprocess.run([str(python), "-m", "snakemake", "--list", "--cores", "1", *extra], cwd=REPO,
                          env=snakemake_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    # One rule name per line (Snakemake 7 also prints a note about --config there).
    return sorted({line.strip() for line in proc.stdout.splitlines() if re.match(r"^[A-Za-z_]\w*$", line)})


@pytest.mark.slow
@pytest.mark.parametrize("use_inference", [True, False])
def test_snakefile_parses_under_snakemake_7_32_4_with_the_same_rules(use_inference):
    require_workflow()
    smk7 = cached_venv("snakemake7", SNAKEMAKE7)
    extra = ("--config", f"use_inference={use_inference}")
    rules7 = _rule_names(smk7, extra)
    rules9 = _rule_names(sys.executable, extra)
    assert rules7 == rules9
    assert {"all", "fileset", "process_file"} <= set(rules7)
