"""The README stays true: its DAG picture is the workflow's rule graph, its commands exist."""

import re
import subprocess
import sys


def test_readme_dag_matches_rulegraph(repo):
    proc = subprocess.run([sys.executable, str(repo / "scripts" / "readme_dag.py"), "--check"],
                          capture_output=True, text=True, cwd=repo)
    assert proc.returncode == 0, proc.stderr


def test_readme_setup_commands_are_the_ci_commands(repo):
    readme = (repo / "README.md").read_text()
    assert "make analysis" in readme and "make test" in readme
    assert re.search(r"^make test\b", (repo / ".ci" / "run").read_text(), flags=re.M)
    makefile = (repo / "Makefile").read_text()
    assert re.search(r"^analysis:", makefile, flags=re.M) and re.search(r"^test:", makefile, flags=re.M)
