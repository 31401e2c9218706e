"""Write the input list (AGC nanoaod_inputs.json format) of the embedded mock dataset.

Per file: ``path`` (relative to the working directory), ``nevts`` (events before the generator-level
filter, from the file's ``Runs`` tree, so that xsec * lumi / nevts is the right weight) and
``nentries`` (entries of the ``Events`` tree).
"""

import argparse
import json
import os
import sys

from agc_ttbar.atomic import atomic_write_text
from agc_ttbar.mock.writer import read_counts
from agc_ttbar.samples import split_sample_key


def build_inputs(paths, tree: str = "Events") -> dict:
    """Input list of mock files laid out as ``.../mock/{sample}/{index}.root`` (agc_ttbar.layout)."""
    inputs: dict = {}
    for path in paths:
        key = os.path.basename(os.path.dirname(path))
        process, variation = split_sample_key(key)
        nevts, nentries = read_counts(path, tree)
        sample = inputs.setdefault(process, {}).setdefault(variation, {"nevts_total": 0, "files": []})
        sample["files"].append({"path": path, "nevts": nevts, "nentries": nentries})
        sample["nevts_total"] += nevts
    return inputs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--files", nargs="+", required=True,
                   help="mock files, mock/{sample}/{index}.root, in the order of the input list")
    p.add_argument("--tree", default="Events")
    p.add_argument("--output", required=True)
    args = p.parse_args(argv)
    try:
        inputs = build_inputs(args.files, args.tree)
    except (OSError, KeyError, ValueError) as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 1
    atomic_write_text(args.output, json.dumps(inputs, indent=1) + "\n")
    for process, variations in inputs.items():
        for variation, s in variations.items():
            print(f"{process}__{variation:12s} files={len(s['files'])} nevts_total={s['nevts_total']:>12d} "
                  f"entries={sum(f['nentries'] for f in s['files']):>8d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
