"""Merged sample histograms -> histograms.root (and histograms_ml.root) in the AGC format."""

import argparse
import sys

from agc_ttbar._imports import skip_unused_optional_imports

skip_unused_optional_imports()  # before awkward/uproot: start-up of a short job

from agc_ttbar.output import merge_sets, write_histograms, write_histograms_ml  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--inputs", nargs="+", required=True,
                   help="histograms of each sample: merged, or the partial of a one-job sample")
    p.add_argument("--output", required=True, help="histograms.root to write")
    p.add_argument("--output-ml", default=None, help="histograms_ml.root to write (ML on)")
    args = p.parse_args(argv)

    total, metas = merge_sets(args.inputs)
    keys = write_histograms(total, args.output)
    print(f"{args.output}: {len(keys)} histograms")
    for k in keys:
        print(f"  {k}")
    if args.output_ml:
        ml_keys = write_histograms_ml(total, args.output_ml)
        print(f"{args.output_ml}: {len(ml_keys)} histograms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
