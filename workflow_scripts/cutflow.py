"""Cutflow per sample (events after each cut, raw and weighted): JSON and a markdown table."""

import argparse
import sys

from agc_ttbar import cutflow
from agc_ttbar.histograms import load_sample


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--inputs", nargs="+", required=True,
                   help="histograms of each sample: merged, or the partial of a one-job sample")
    p.add_argument("--output", required=True, help="cutflow JSON")
    p.add_argument("--table", required=True, help="markdown table")
    args = p.parse_args(argv)

    entries = []
    for path in args.inputs:
        _, meta = load_sample(path)
        entries.append(cutflow.sample_entry(meta["sample"], meta["cutflow"], meta["weight"],
                                            meta["nevts_total"], meta["n_files"]))
    cutflow.write(entries, args.output, args.table)
    sys.stdout.write(cutflow.markdown_table(entries))
    return 0


if __name__ == "__main__":
    sys.exit(main())
