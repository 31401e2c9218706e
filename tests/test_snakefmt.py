"""The Snakefile and rules/*.smk are `snakefmt --check` clean (the Snakemake workflow catalog's check)."""

import os
import subprocess
import sys

from conftest import REPO


def _snakefmt(*args, cwd=REPO):
    exe = os.path.join(os.path.dirname(sys.executable), "snakefmt")
    return subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_workflow_files_are_snakefmt_clean():
    files = ["Snakefile", *sorted(str(p.relative_to(REPO)) for p in (REPO / "rules").glob("*.smk"))]
    res = _snakefmt("--check", *files)
    assert res.returncode == 0, ("run `snakefmt Snakefile rules/*.smk`:\n" + res.stdout + res.stderr)[-4000:]


def test_check_fails_on_unformatted_rules(tmp_path):
    (tmp_path / "bad.smk").write_text('rule a:\n    output: "x"\n    shell:   "touch {output}"\n')
    assert _snakefmt("--check", "bad.smk", cwd=tmp_path).returncode != 0


def test_workflow_catalog_file_describes_the_usage():
    import yaml

    spec = yaml.safe_load((REPO / ".snakemake-workflow-catalog.yml").read_text())
    usage = spec["usage"]
    assert set(usage) == {"mandatory-flags", "software-stack-deployment", "report"}
    assert usage["mandatory-flags"]["flags"] == "--cores 2" and usage["mandatory-flags"]["desc"].strip()
    assert usage["software-stack-deployment"]["conda"] is True and usage["report"] is True
    assert (REPO / "envs" / "environment.yaml").is_file() and (REPO / "report" / "workflow.rst").is_file()
