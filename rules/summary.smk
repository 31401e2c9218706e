# Summary of a failed run. With --keep-going the other jobs go on after a failure, and the errors end
# up scattered through a long log; this handler repeats, at the very end, every failed job with its
# output, its log file(s) and the last error line of each log. It reads Snakemake's own log of the
# run (the `log` argument: one path in Snakemake 7, a list in 8/9).

import re as _re
import sys as _sys

_ERROR_BLOCK = _re.compile(r"^Error in rule (\S+?):\s*$")
_FIELD = _re.compile(r"^\s+(output|log): (.*?)(?: \(check log file\(s\) for error details\))?\s*$")


def _failed_jobs(snakemake_logs):
    """[(rule, outputs, logs)] of every 'Error in rule' block of the given Snakemake log files."""
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


def _last_error_line(log_paths):
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


def _print_failure_summary(snakemake_logs):
    jobs = _failed_jobs(snakemake_logs)
    out = _sys.stderr
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


onerror:
    _print_failure_summary(log)
