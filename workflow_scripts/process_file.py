"""Per-file job: one input file of the fileset -> exact partial histograms + cutflow (.npz)."""

import argparse
import json
import sys

from agc_ttbar._imports import skip_unused_optional_imports

skip_unused_optional_imports()  # before awkward/uproot: start-up of a short job

from agc_ttbar.io import InputFileError  # noqa: E402
from agc_ttbar.processing import SampleInfo, combined_metadata, process_file  # noqa: E402
from agc_ttbar.remote import RemoteOptions  # noqa: E402
from agc_ttbar.selection import B_TAG_THRESHOLD  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--fileset", required=True, help="fileset JSON of the fileset rule")
    p.add_argument("--sample", required=True, help="fileset key {process}__{variation}")
    p.add_argument("--index", required=True, type=int, nargs="+",
                   help="indices of the file(s) within the sample (one job may read several small files)")
    p.add_argument("--output", required=True, help="partial histogram file (.npz) to write")
    p.add_argument("--input", nargs="*", default=None,
                   help="local copies to read instead of the fileset paths (mock or staged files), one per --index")
    p.add_argument("--tree-name", default="Events")
    p.add_argument("--chunksize", type=int, default=200_000)
    p.add_argument("--pt-res-seed", type=int, default=0)
    p.add_argument("--nevts-mismatch", choices=["warn", "fail"], default="warn")
    p.add_argument("--ml-kind", default=None, help="scorer kind (bdt, torch, published); omit for no ML")
    p.add_argument("--ml-models", nargs="*", default=[], help="model files (even, odd)")
    p.add_argument("--max-n-jets", type=int, default=6)
    p.add_argument("--bdt-engine", choices=["compiled", "xgboost"], default="compiled",
                   help="evaluation of xgboost models (config ml.bdt_engine)")
    p.add_argument("--nthread", type=int, default=1)
    p.add_argument("--btag-threshold", type=float, default=B_TAG_THRESHOLD, help="config processing.btag_threshold")
    p.add_argument("--remote-timeout", type=float, default=60, help="timeout of one remote read (s)")
    p.add_argument("--remote-retries", type=int, default=3, help="attempts per remote open/read")
    p.add_argument("--columns", default=None,
                   help="also write the optimisation columns (.npz) here (config optimisation.enabled)")
    args = p.parse_args(argv)

    with open(args.fileset) as f:
        fileset = json.load(f)
    info = SampleInfo.from_fileset(fileset, args.sample)
    files = fileset[args.sample]["files"]
    bad = [i for i in args.index if not 0 <= i < len(files)]
    if bad:
        print(f"ERROR: sample {args.sample} has {len(files)} file(s); no index {bad[0]}", file=sys.stderr)
        return 1
    if args.input and len(args.input) != len(args.index):
        print(f"ERROR: {len(args.input)} --input file(s) for {len(args.index)} --index value(s)", file=sys.stderr)
        return 1

    scorer = None
    if args.ml_kind:
        from agc_ttbar.ml.inference import AssignmentScorer

        try:
            scorer = AssignmentScorer.from_config(args.ml_kind, args.ml_models, max_n_jets=args.max_n_jets,
                                                  nthread=args.nthread,
                                                  compiled=args.bdt_engine == "compiled")
        except (OSError, ValueError) as err:
            print(f"ERROR: {err}", file=sys.stderr)
            return 1
        print(f"ML scorer: {args.ml_kind} models {' '.join(args.ml_models)}; best-permutation search: "
              + ("compiled (verified against xgboost)" if scorer.compiled else "model.predict"), flush=True)
    columns = None
    if args.columns:
        from agc_ttbar.optimisation.columns import ColumnCollector

        columns = ColumnCollector(info.process, info.variation, info.weight, args.pt_res_seed)
    total, metas = None, []
    for k, index in enumerate(args.index):
        entry = files[index]
        # ServiceX-delivered (skimmed) files hold fewer entries than nevts and name their own tree.
        expected = None if entry.get("skimmed") else entry.get("nentries", entry.get("nevts"))
        try:
            hists, meta = process_file(args.input[k] if args.input else entry["path"], info,
                                       tree_name=entry.get("tree_name", args.tree_name),
                                       chunksize=args.chunksize, pt_res_seed=args.pt_res_seed, scorer=scorer,
                                       btag_threshold=args.btag_threshold, columns=columns,
                                       expected_entries=expected, nevts_mismatch=args.nevts_mismatch,
                                       remote_options=RemoteOptions(args.remote_timeout, args.remote_retries))
        except InputFileError as err:
            print(f"ERROR: {err}", file=sys.stderr)
            return 1
        meta["index"] = index
        meta["fileset_path"] = entry["path"]
        metas.append(meta)
        if total is None:
            total = hists
        else:
            total += hists          # exact sums: the same bits as separate jobs and a merge
    hists, meta = total, metas[0] if len(metas) == 1 else combined_metadata(metas)
    hists.save(args.output, meta)
    if columns is not None:
        columns.save(args.columns)
    return 0


if __name__ == "__main__":
    sys.exit(main())
