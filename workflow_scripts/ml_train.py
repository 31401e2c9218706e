"""Train the jet-parton assignment models of one kind (bdt: xgboost Booster; torch: permutation
MLP), one on even and one on odd event numbers, and write their validation metrics."""

import argparse
import json
import sys
import time

from agc_ttbar.config import validate_config
from agc_ttbar.ml import dataset, training


def main(argv=None) -> int:
    ml = validate_config({})["ml"]           # the schema's defaults (config ml.seed, ml.bdt, ml.torch)
    bdt, net = ml["bdt"], ml["torch"]
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--kind", choices=["bdt", "torch"], required=True)
    p.add_argument("--data", required=True, help="training events (.npz, ml_training_data rule)")
    p.add_argument("--models", nargs=2, required=True, metavar=("EVEN", "ODD"),
                   help="model files to write: trained on even, trained on odd event numbers")
    p.add_argument("--metrics", required=True, help="metrics JSON to write")
    p.add_argument("--validation", required=True, help="validation scores .npz to write")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=ml["seed"])
    p.add_argument("--max-n-jets", type=int, default=6, help="jets considered in the top-N evaluation")
    g = p.add_argument_group("bdt")
    g.add_argument("--num-boost-round", type=int, default=bdt["num_boost_round"])
    g.add_argument("--max-depth", type=int, default=bdt["max_depth"])
    g.add_argument("--min-child-weight", type=float, default=bdt["min_child_weight"])
    g = p.add_argument_group("torch")
    g.add_argument("--hidden", type=int, nargs="+", default=net["hidden"])
    g.add_argument("--epochs", type=int, default=net["epochs"])
    g.add_argument("--batch-size", type=int, default=net["batch_size"])
    p.add_argument("--learning-rate", type=float, default=None, help="eta (bdt) or Adam lr (torch)")
    args = p.parse_args(argv)

    if args.kind == "bdt":
        params = {"num_boost_round": args.num_boost_round, "max_depth": args.max_depth,
                  "learning_rate": args.learning_rate or bdt["learning_rate"], "min_child_weight": args.min_child_weight}
    else:
        params = {"hidden": args.hidden, "epochs": args.epochs, "batch_size": args.batch_size,
                  "learning_rate": args.learning_rate or net["learning_rate"]}
    data, data_summary = dataset.load(args.data)
    t0 = time.perf_counter()
    models, raw, info = training.train_pair(args.kind, data, params, args.seed, args.threads)
    t1 = time.perf_counter()
    metrics, validation = training.evaluate(models, data, args.max_n_jets)
    t2 = time.perf_counter()
    metrics.update(training.provenance(args.kind, args.models, args.threads, data_summary),
                   params=params, seed=args.seed, training=info,
                   seconds_training=t1 - t0, seconds_evaluation=t2 - t1)
    training.save_models(args.kind, raw, args.models, {"params": params, "seed": args.seed})
    training.write_validation(args.validation, validation)
    training.write_metrics(args.metrics, metrics)
    print(json.dumps({k: metrics[k] for k in ("leading4", f"top{args.max_n_jets}")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
