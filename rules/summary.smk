# Summary of a failed run: every failed job with its output, log file(s) and last error line, after
# Snakemake's own messages (agc_ttbar/failure_summary.py). With --keep-going the errors are otherwise
# scattered through a long log.

from agc_ttbar.failure_summary import print_failure_summary as _print_failure_summary


onerror:
    _print_failure_summary(log)
