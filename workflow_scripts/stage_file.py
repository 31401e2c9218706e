"""Copy one input file of the fileset to the local staging folder (staging.enabled)."""

import argparse
import json
import sys

from agc_ttbar.remote import RemoteOptions, RemoteReadError
from agc_ttbar.staging import stage_file


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--fileset", required=True, help="fileset JSON written by the fileset rule")
    p.add_argument("--sample", required=True, help="fileset key {process}__{variation}")
    p.add_argument("--index", required=True, type=int, help="file index within the sample")
    p.add_argument("--output", required=True, help="local copy to write")
    p.add_argument("--tree", default="Events", help="tree name (the entry's tree_name wins)")
    p.add_argument("--timeout", type=float, default=60, help="timeout of one remote operation (s)")
    p.add_argument("--retries", type=int, default=3, help="attempts before failing")
    args = p.parse_args(argv)

    with open(args.fileset) as f:
        fileset = json.load(f)
    try:
        entry = fileset[args.sample]["files"][args.index]
    except (KeyError, IndexError):
        print(f"ERROR: fileset {args.fileset} has no file {args.index} of sample {args.sample}",
              file=sys.stderr)
        return 1
    tree = entry.get("tree_name", args.tree)
    expected = None if entry.get("skimmed") else entry.get("nevts")
    try:
        stage_file(entry["path"], args.output, RemoteOptions(args.timeout, args.retries),
                   tree_name=tree, expected_entries=expected)
    except (RemoteReadError, ValueError) as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
