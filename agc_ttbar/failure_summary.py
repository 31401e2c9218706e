"""Summary of a failed workflow run, printed by the ``onerror`` handler of ``rules/summary.smk``.

With ``--keep-going`` the other jobs go on after a failure and the errors end up scattered through a
long log. :func:`print_failure_summary` repeats, at the very end, every failed job with its output,
its log file(s) and the last error line of each log. It reads Snakemake's own log of the run (one
path in Snakemake 7, a list in 8/9): the "Error in rule" blocks that Snakemake writes there.
"""

from __future__ import annotations

import re
import sys

_ERROR_BLOCK = re.compile(r"^Error in rule (\S+?):\s*$")
_FIELD = re.compile(r"^\s+(output|log): (.*?)(?: \(check log file\(s\) for error details\))?\s*$")


def failed_jobs(snakemake_logs) -> list[tuple[str, str, str]]:
    """[(rule, output, log)] of every "Error in rule" block of the given Snakemake log file(s)
    (a path or a list of paths), in order, each job once."""
    jobs = []
    for path in [snakemake_logs] if isinstance(snakemake_logs, str) else list(snakemake_logs or []):
        try:
            with open(path, errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        current = None
        for line in lines:
            m = _ERROR_BLOCK.match(line)
            if m:
                current = {"rule": m.group(1), "output": "", "log": ""}
                jobs.append(current)
                continue
            if current is not None:
                field = _FIELD.match(line)
                if field and not current[field.group(1)]:
                    current[field.group(1)] = field.group(2)
                elif line and not line[0].isspace():
                    current = None
    unique = []
    for job in jobs:   # a job can be reported twice (e.g. the error and the final shutdown)
        key = (job["rule"], job["output"], job["log"])
        if key not in unique:
            unique.append(key)
    return unique


def _last_error_line(log_paths: str) -> str:
    """The last ``ERROR...`` (or ``...Error:``) line of the first readable log, else its last line."""
    for path in (p.strip() for p in log_paths.split(",") if p.strip()):
        try:
            with open(path, errors="replace") as f:
                lines = [line.strip() for line in f.read().splitlines()[-200:] if line.strip()]
        except OSError:
            continue
        errors = [line for line in lines if line.startswith("ERROR") or "Error" in line.split(":")[0]]
        line = (errors or lines or [""])[-1]
        if line:
            return line[:300]
    return ""


def print_failure_summary(snakemake_logs, out=None) -> None:
    """Write the summary of the failed jobs found in ``snakemake_logs`` to ``out`` (stderr)."""
    jobs = failed_jobs(snakemake_logs)
    out = out or sys.stderr
    if not jobs:
        out.write("\nThe run failed before any job did (see the messages above).\n")
        return
    out.write(f"\n=== {len(jobs)} failed job(s); each log names the file and the cause ===\n")
    for rule, output, logs in jobs:
        out.write(f"  rule {rule}: {output or '(no output)'}\n")
        out.write(f"      log: {logs or '(none)'}\n")
        last = _last_error_line(logs) if logs else ""
        if last:
            out.write(f"      {last}\n")
    out.write("Fix the cause and run the same command again: finished jobs are kept.\n")
    out.flush()
