"""Extract the jet-parton assignment training events (fully matched 4j2b events) from the files
of the training samples, in fileset order, until both parities have enough events."""

import argparse
import json
import sys
import time

from agc_ttbar.io import InputFileError
from agc_ttbar.ml import dataset
from agc_ttbar.remote import RemoteOptions


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--fileset", required=True, help="fileset JSON (fileset rule)")
    p.add_argument("--samples", nargs="+", required=True, help="fileset keys of the training samples")
    p.add_argument("--output", required=True, help=".npz of training events")
    p.add_argument("--max-per-parity", type=int, default=20000, help="AGC N_EVENTS_TRAIN per parity")
    p.add_argument("--tree-name", default="Events")
    p.add_argument("--chunksize", type=int, default=200000)
    p.add_argument("--local-files", nargs="*", default=[],
                   help="local copies (mock or staged files) of the training files, in fileset order")
    p.add_argument("--remote-timeout", type=float, default=60, help="timeout of one remote read (s)")
    p.add_argument("--remote-retries", type=int, default=3, help="attempts per remote open/read")
    args = p.parse_args(argv)

    with open(args.fileset) as f:
        fileset = json.load(f)
    paths = []
    for key in args.samples:
        if key not in fileset:
            print(f"ERROR: training sample {key} is not in the fileset {args.fileset} "
                  f"(config ml.training_samples must be a subset of samples)", file=sys.stderr)
            return 1
        # ServiceX-delivered skims lack GenPart: train on their original files (entry "source")
        paths += [entry.get("source", entry["path"]) for entry in fileset[key]["files"]]
    if args.local_files:
        if len(args.local_files) != len(paths):
            print(f"ERROR: {len(args.local_files)} local file(s) for the {len(paths)} training file(s) "
                  f"of {', '.join(args.samples)} in {args.fileset}", file=sys.stderr)
            return 1
        paths = list(args.local_files)
    t0 = time.perf_counter()
    try:
        data, summary = dataset.extract(paths, args.tree_name, args.chunksize, args.max_per_parity,
                                        remote_options=RemoteOptions(args.remote_timeout, args.remote_retries))
    except InputFileError as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 1
    summary["samples"] = args.samples
    summary["seconds"] = time.perf_counter() - t0
    if summary["n_even"] < 2 or summary["n_odd"] < 2:
        print(f"ERROR: only {summary['n_even']} even / {summary['n_odd']} odd fully matched 4j2b events "
              f"in {len(summary['files'])} file(s) of {', '.join(args.samples)}: too few to train "
              "(do the files have GenPart with ttbar decays?)", file=sys.stderr)
        return 1
    dataset.save(data, summary, args.output)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
