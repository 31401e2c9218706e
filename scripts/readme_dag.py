"""Render `snakemake --rulegraph` as a mermaid block between the README's DAG markers.

    python scripts/readme_dag.py          # rewrite the block in README.md
    python scripts/readme_dag.py --check  # exit 1 if README.md is out of date (tests use this)
"""

import argparse
import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEGIN, END = "<!-- DAG begin (scripts/readme_dag.py) -->", "<!-- DAG end -->"


def rulegraph_dot() -> str:
    out = subprocess.run([sys.executable, "-m", "snakemake", "--rulegraph", "--quiet", "all"],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    return out[out.index("digraph"):]


def to_mermaid(dot: str) -> str:
    labels = dict(re.findall(r'^\s*(\d+)\[label = "([^"]+)"', dot, flags=re.M))
    edges = sorted({(labels[a], labels[b]) for a, b in re.findall(r"^\s*(\d+) -> (\d+)", dot, flags=re.M)})
    lines = ["```mermaid", "flowchart TD"] + [f"    {a} --> {b}" for a, b in edges] + ["```"]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--check", action="store_true")
    args = p.parse_args()
    path = os.path.join(REPO, "README.md")
    with open(path) as f:
        text = f.read()
    block = f"{BEGIN}\n{to_mermaid(rulegraph_dot())}\n{END}"
    new = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda m: block, text, flags=re.S)
    if args.check:
        if new != text:
            print("README.md DAG block is out of date: run python scripts/readme_dag.py", file=sys.stderr)
            return 1
        return 0
    with open(path, "w") as f:
        f.write(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
