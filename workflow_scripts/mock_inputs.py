"""Write the input list (AGC nanoaod_inputs.json format) of the embedded mock dataset.

Per file: ``path`` (relative to the working directory), ``nevts`` (events before the generator-level
filter, from the file's ``Runs`` tree, so that xsec * lumi / nevts is the right weight) and
``nentries`` (entries of the ``Events`` tree).
"""

import argparse
import json
import sys

from agc_ttbar import layout
from agc_ttbar.atomic import atomic_write_text
from agc_ttbar.mock.writer import read_counts
from agc_ttbar.samples import split_sample_key


def build_inputs(results: str, samples, files_per_sample: int, tree: str = "Events") -> dict:
    inputs: dict = {}
    for key in samples:
        process, variation = split_sample_key(key)
        files = []
        for i in range(files_per_sample):
            path = layout.mock_file(results, key, i)
            nevts, nentries = read_counts(path, tree)
            files.append({"path": path, "nevts": nevts, "nentries": nentries})
        inputs.setdefault(process, {})[variation] = {"nevts_total": sum(f["nevts"] for f in files), "files": files}
    return inputs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--results", required=True, help="results folder holding mock/{sample}/{index}.root")
    p.add_argument("--samples", nargs="+", required=True, help="fileset keys {process}__{variation}")
    p.add_argument("--files-per-sample", type=int, required=True, help="files generated per sample")
    p.add_argument("--tree", default="Events")
    p.add_argument("--output", required=True)
    args = p.parse_args(argv)
    if args.files_per_sample < 1:
        print(f"ERROR: --files-per-sample must be >= 1, got {args.files_per_sample}", file=sys.stderr)
        return 2
    try:
        inputs = build_inputs(args.results, args.samples, args.files_per_sample, args.tree)
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
