"""Evaluate existing jet-parton assignment models (e.g. the published AGC BDTs) on the training
events: the same metrics and validation scores as the training rules write."""

import argparse
import json
import sys
import time

from agc_ttbar.ml import dataset, training
from agc_ttbar.ml.inference import AssignmentScorer


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--kind", choices=["bdt", "torch", "published"], required=True)
    p.add_argument("--models", nargs=2, required=True, metavar=("EVEN", "ODD"),
                   help="model trained on even, model trained on odd event numbers")
    p.add_argument("--data", required=True, help="events (.npz, ml_training_data rule)")
    p.add_argument("--metrics", required=True)
    p.add_argument("--validation", required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--max-n-jets", type=int, default=6)
    args = p.parse_args(argv)

    scorer = AssignmentScorer.from_config(args.kind, args.models, args.max_n_jets, args.threads)
    data, data_summary = dataset.load(args.data)
    t0 = time.perf_counter()
    metrics, validation = training.evaluate(scorer.models, data, args.max_n_jets)
    metrics.update(training.provenance(args.kind, args.models, args.threads, data_summary),
                   seconds_evaluation=time.perf_counter() - t0)
    training.write_validation(args.validation, validation)
    training.write_metrics(args.metrics, metrics)
    print(json.dumps({k: metrics[k] for k in ("leading4", f"top{args.max_n_jets}")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
