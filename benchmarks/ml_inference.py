"""Benchmark of the jet-parton assignment inference on mock ttbar 4j2b events.

Generates one mock ttbar file in memory (or reads --file), selects the 4j2b events and runs
AssignmentScorer.best_features with the given models, then prints events, model evaluations per
selected event, the time split between feature building and model evaluation, and the rate.

    python benchmarks/ml_inference.py --kind bdt --models results/ml/bdt_even.json results/ml/bdt_odd.json
"""

import argparse
import json
import time

import awkward as ak

from agc_ttbar.ml import dataset
from agc_ttbar.ml.inference import AssignmentScorer


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kind", required=True, choices=["bdt", "torch", "published"])
    p.add_argument("--models", nargs=2, required=True)
    p.add_argument("--file", default=None, help="NanoAOD file (default: generate mock ttbar events)")
    p.add_argument("--events", type=int, default=25000, help="mock events to generate")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--max-n-jets", type=int, default=6)
    args = p.parse_args(argv)

    if args.file:
        import uproot

        with uproot.open(args.file) as f:
            arrays = f["Events"].arrays(list(dataset.BRANCHES))
    else:
        from agc_ttbar.mock.generator import generate_events

        g = generate_events("ttbar__nominal", 0, args.events, 20240521)
        arrays = ak.zip({k: g.branches[k] for k in dataset.BRANCHES}, depth_limit=1)
    ev, jets, lepton, _ = dataset.selected_4j2b(arrays)
    scorer = AssignmentScorer.from_config(args.kind, args.models, args.max_n_jets, args.threads)
    t0 = time.perf_counter()
    scorer.best_features(jets, lepton, ak.to_numpy(ev.event))
    wall = time.perf_counter() - t0
    out = scorer.stats.as_dict()
    out.update(kind=args.kind, threads=args.threads, events_read=len(arrays), seconds_wall=wall,
               selected_events_per_second=out["n_events"] / wall,
               evaluations_per_second=out["n_evaluations"] / wall)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
