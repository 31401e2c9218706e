"""Compare histograms.root with an AGC reference JSON (the tolerance rule of validate_histograms.py).

Writes the report to --output (and stdout) and exits 1 when a histogram does not match.
With --dump-json, prints a reference JSON of --histos instead.
"""

import argparse
import sys

from agc_ttbar.atomic import atomic_write_text
from agc_ttbar.validation import dump_reference, validate_files


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--histos", required=True, help="histograms.root to check")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--reference", help="reference histos_N_file_per_process.json")
    group.add_argument("--dump-json", action="store_true", help="print a reference JSON of --histos")
    p.add_argument("--output", default=None, help="report file to write")
    args = p.parse_args(argv)

    if args.dump_json:
        print(dump_reference(args.histos))
        return 0
    result = validate_files(args.histos, args.reference)
    report = result.report(args.histos, args.reference)
    sys.stdout.write(report)
    if args.output:
        atomic_write_text(args.output, report)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
