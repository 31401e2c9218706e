"""Sum the per-file partial histograms of one sample (exact: any order gives the same bits)."""

import argparse
import sys

from agc_ttbar.histograms import merge_sample


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sample", required=True, help="fileset key of the sample")
    p.add_argument("--inputs", nargs="+", required=True, help="partial histogram files of the sample")
    p.add_argument("--output", required=True, help="merged histogram file (.npz)")
    args = p.parse_args(argv)

    try:
        total, meta = merge_sample(args.sample, args.inputs)
    except ValueError as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 1
    total.save(args.output, meta)
    print(f"{args.sample}: {len(args.inputs)} file(s), {meta['nevents']} events, {len(total.hists)} histograms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
