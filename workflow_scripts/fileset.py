"""Build the fileset (per-file job list with sample metadata) from an AGC-format input list."""

import argparse
import sys

from agc_ttbar.fileset import InputsError, add_fileset_arguments, fileset_from_args, write_fileset


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    add_fileset_arguments(p)
    p.add_argument("--output", required=True, help="fileset JSON to write")
    args = p.parse_args(argv)

    try:
        fileset = fileset_from_args(args)
    except InputsError as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 1
    write_fileset(fileset, args.output)
    for key, sample in fileset.items():
        print(f"{key:30s} files={len(sample['files']):4d} nevts_total={sample['nevts_total']:>12d} "
              f"weight={sample['weight']:.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
