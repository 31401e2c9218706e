"""Build the fileset (per-file job list with sample metadata) from an AGC-format input list."""

import argparse
import sys

from agc_ttbar.fileset import EOS_REWRITE, InputsError, build_fileset, load_inputs, write_fileset


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--inputs", required=True, help="input list in nanoaod_inputs.json format")
    p.add_argument("--output", required=True, help="fileset JSON to write")
    p.add_argument("--samples", nargs="+", required=True, help="fileset keys {process}__{variation}")
    p.add_argument("--n-files-max", type=int, default=-1, help="N_FILES_MAX_PER_SAMPLE (-1: all)")
    p.add_argument("--input-from-eos", action="store_true", help="AGC INPUT_FROM_EOS rewrite")
    p.add_argument("--xcache", default=None, help="XCache prefix for remote paths")
    p.add_argument("--rewrite", nargs=2, action="append", default=[], metavar=("FROM", "TO"),
                   help="extra prefix rewrite (repeatable, applied in order)")
    args = p.parse_args(argv)

    rewrites = ([EOS_REWRITE] if args.input_from_eos else []) + [tuple(r) for r in args.rewrite]
    try:
        fileset = build_fileset(load_inputs(args.inputs), args.samples, args.n_files_max,
                                rewrites, args.xcache, source=args.inputs)
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
