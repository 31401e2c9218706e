"""Benchmarks of the jet-parton assignment inference.

Two modes.

**Split** (``--kind``, ``--models``): one mock ttbar file generated in memory (or ``--file``), its
4j2b events scored by ``AssignmentScorer.best_features``; prints events, model evaluations per
selected event, the time split between feature building and model evaluation, and the rate::

    python benchmarks/ml_inference.py --kind bdt --models results/ml/bdt_even.json results/ml/bdt_odd.json

**Marginal** (``--marginal``): the per-file job (:func:`agc_ttbar.processing.process_file`, all
kinematic variations scored, as the rule runs it) with ML, on a mock ttbar file of N events and
one of ``factor`` x N (generator of the workflow, ``ttbar__nominal`` index 0, seed 20240521; by
default N = 28,000, so the large file is the 280,000-event file of issue 15). Each scorer is
loaded once and warmed up on the small file, then the two files are timed in the same process,
alternating all variants in every repeat; the marginal (steady-state) rate is
``(10N - N) / (CPU(10N) - CPU(N))``, so interpreter start-up, imports, model loading and first
calls are out of it (they are printed apart: ``load_s``). Variants, for the published AGC BDTs
(``data/agc/models``) and the DAG's own BDT (``--bdt-models``, else one trained here with the
workflow's scripts and the configured hyper-parameters on the small file):

- ``compiled``: ``ml.bdt_engine: compiled``, the fused kernel of :mod:`agc_ttbar.ml.forest`;
- ``xgboost``: ``ml.bdt_engine: xgboost`` (numpy features + ``Booster.inplace_predict``);
- ``no_trees``: the fused kernel with an empty forest: everything but the trees, so
  ``tree_share = 1 - CPU(no_trees) / CPU(compiled)`` at the margin.

Prints one JSON object (medians over ``--repeats``, every repeat's figures too) and a table::

    python benchmarks/ml_inference.py --marginal [--events 28000] [--factor 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

PUBLISHED = [os.path.join(REPO, "data", "agc", "models", f"model_{p}.json") for p in ("even", "odd")]
SAMPLE = "ttbar__nominal"
SEED = 20240521


def split(args) -> None:
    import awkward as ak

    from agc_ttbar.ml import dataset
    from agc_ttbar.ml.inference import AssignmentScorer

    if args.file:
        import uproot

        with uproot.open(args.file) as f:
            arrays = f["Events"].arrays(list(dataset.BRANCHES))
    else:
        from agc_ttbar.mock.generator import generate_events

        g = generate_events(SAMPLE, 0, args.events, SEED)
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


# ----------------------------------------------------------------------------------------------
def _run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL)


def mock_file(workdir: str, events: int) -> str:
    """The workflow's mock ttbar file of ``events`` entries (written once into ``workdir``)."""
    path = os.path.join(workdir, f"{SAMPLE}_{events}.root")
    if not os.path.exists(path):
        _run([sys.executable, "workflow_scripts/generate_mock.py", "--sample", SAMPLE, "--index", "0",
              "--events", str(events), "--seed", str(SEED), "--output", path])
    return path


def own_bdt(workdir: str, train_file: str) -> list[str]:
    """[even, odd] of a BDT trained like the DAG's (configured hyper-parameters) on ``train_file``."""
    from agc_ttbar.config import load_config

    cfg = load_config(os.path.join(REPO, "config.yaml"))
    paths = [os.path.join(workdir, "bdt_even.json"), os.path.join(workdir, "bdt_odd.json")]
    if all(os.path.exists(p) for p in paths):
        return paths
    import uproot

    with uproot.open(train_file) as f:
        n = f["Events"].num_entries
    fileset = os.path.join(workdir, "fileset.json")
    with open(fileset, "w") as fh:
        json.dump({SAMPLE: {"process": "ttbar", "variation": "nominal", "nevts_total": n, "weight": 1.0,
                            "files": [{"index": 0, "path": train_file, "nevts": n}]}}, fh)
    data = os.path.join(workdir, "training_data.npz")
    _run([sys.executable, "workflow_scripts/ml_training_data.py", "--fileset", fileset, "--samples", SAMPLE,
          "--output", data, "--max-per-parity", str(cfg["ml"]["max_train_events"])])
    b = cfg["ml"]["bdt"]
    _run([sys.executable, "workflow_scripts/ml_train.py", "--kind", "bdt", "--data", data, "--models", *paths,
          "--metrics", os.path.join(workdir, "bdt_metrics.json"),
          "--validation", os.path.join(workdir, "bdt_validation.npz"), "--threads", "1",
          "--num-boost-round", str(b["num_boost_round"]), "--max-depth", str(b["max_depth"])])
    return paths


def _scorer(kind: str, paths: list[str], engine: str):
    from agc_ttbar.ml.inference import AssignmentScorer

    scorer = AssignmentScorer.from_config(kind, paths, max_n_jets=6, nthread=1, compiled=engine != "xgboost")
    if engine != "xgboost" and not scorer.compiled:
        raise RuntimeError(f"{kind} models {paths}: the compiled search did not verify against xgboost")
    if engine == "no_trees":
        for m in scorer.models:
            m.forest = m.forest.without_trees()
    return scorer


def _job_cpu(path: str, scorer) -> tuple[int, float, float, float]:
    """(entries, CPU seconds, wall seconds, ML wall seconds) of the per-file job on ``path`` (the
    scorer's counters are wall clock, so the ML share is a share of the wall time)."""
    from agc_ttbar.processing import SampleInfo, process_file
    from agc_ttbar.samples import xsec_weight

    import uproot

    with uproot.open(path) as f:
        n = f["Events"].num_entries
    info = SampleInfo.from_key(SAMPLE, xsec_weight("ttbar", n), n)
    ml0 = scorer.stats.seconds_fused + scorer.stats.seconds_features + scorer.stats.seconds_model
    c0, w0 = time.process_time(), time.perf_counter()
    _, meta = process_file(path, info, scorer=scorer, log=lambda msg: None)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    ml = scorer.stats.seconds_fused + scorer.stats.seconds_features + scorer.stats.seconds_model - ml0
    return meta["entries"], cpu, wall, ml


def marginal(args) -> dict:
    workdir = os.path.abspath(args.workdir)
    os.makedirs(workdir, exist_ok=True)
    small, large = mock_file(workdir, args.events), mock_file(workdir, args.events * args.factor)
    models = {"published": ("published", PUBLISHED),
              "own_bdt": ("bdt", args.bdt_models or own_bdt(workdir, small))}
    variants, load_s = {}, {}
    for name, (kind, paths) in models.items():
        for engine in args.engines:
            t0 = time.perf_counter()
            scorer = _scorer(kind, paths, engine)
            load_s[f"{name}/{engine}"] = time.perf_counter() - t0
            _job_cpu(small, scorer)                               # warm-up: first calls, caches
            variants[f"{name}/{engine}"] = scorer
    runs = {k: [] for k in variants}
    for rep in range(args.repeats):
        for key, scorer in variants.items():                      # alternating A/B in every repeat
            n_s, cpu_s, wall_s, ml_s = _job_cpu(small, scorer)
            n_l, cpu_l, wall_l, ml_l = _job_cpu(large, scorer)
            runs[key].append({"cpu_small_s": cpu_s, "cpu_large_s": cpu_l, "wall_small_s": wall_s,
                              "wall_large_s": wall_l, "ml_small_s": ml_s, "ml_large_s": ml_l,
                              "marginal_rate": (n_l - n_s) / (cpu_l - cpu_s)})
            print(f"repeat {rep + 1}/{args.repeats} {key}: marginal {runs[key][-1]['marginal_rate']:,.0f} ev/s",
                  file=sys.stderr, flush=True)
    med = lambda key, field: statistics.median(r[field] for r in runs[key])  # noqa: E731
    out = {"small_events": args.events, "large_events": args.events * args.factor, "repeats": args.repeats,
           "rate": "events per CPU second of the per-file job, at the margin (large - small)",
           "variants": {}}
    for key in variants:
        d_wall = statistics.median(r["wall_large_s"] - r["wall_small_s"] for r in runs[key])
        d_ml = statistics.median(r["ml_large_s"] - r["ml_small_s"] for r in runs[key])
        out["variants"][key] = {"marginal_rate": med(key, "marginal_rate"), "load_s": load_s[key],
                                "cpu_large_s": med(key, "cpu_large_s"), "cpu_small_s": med(key, "cpu_small_s"),
                                "ml_share_marginal": d_ml / d_wall if d_wall > 0 else None,
                                "compiled": variants[key].compiled, "runs": runs[key]}
    for name in models:
        v = out["variants"]
        full, empty, xgb = (v.get(f"{name}/{e}") for e in ("compiled", "no_trees", "xgboost"))
        if full and empty:
            d_full = full["cpu_large_s"] - full["cpu_small_s"]
            d_empty = empty["cpu_large_s"] - empty["cpu_small_s"]
            full["tree_share_marginal"] = 1 - d_empty / d_full if d_full > 0 else None
        if full and xgb:
            full["speedup_over_xgboost"] = full["marginal_rate"] / xgb["marginal_rate"]
    return out


def print_table(out: dict) -> None:
    print(f"\nPer-file job with ML, marginal rate ({out['small_events']:,} -> {out['large_events']:,} events, "
          f"median of {out['repeats']}; events / CPU s):", file=sys.stderr)
    print(f"{'variant':<22}{'marginal ev/s':>15}{'ML share':>10}{'tree share':>12}{'load s':>9}", file=sys.stderr)
    print("(ML share: of the wall time at the margin; tree share: 1 - no_trees / compiled CPU at the margin; "
          "load s: loading and checking the two models, first in the process includes numba)", file=sys.stderr)
    for key, v in out["variants"].items():
        share = v.get("tree_share_marginal")
        print(f"{key:<22}{v['marginal_rate']:>15,.0f}{(v['ml_share_marginal'] or 0):>10.0%}"
              f"{(f'{share:.0%}' if share is not None else '-'):>12}{v['load_s']:>9.2f}", file=sys.stderr)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--marginal", action="store_true", help="marginal rate of the per-file job (see above)")
    p.add_argument("--kind", choices=["bdt", "torch", "published"], help="split mode: model kind")
    p.add_argument("--models", nargs=2, help="split mode: [even, odd] model files")
    p.add_argument("--file", default=None, help="split mode: NanoAOD file (default: generate mock ttbar events)")
    p.add_argument("--events", type=int, default=None,
                   help="mock events: split mode (default 25000); marginal mode: the small file (default 28000)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--max-n-jets", type=int, default=6)
    p.add_argument("--factor", type=int, default=10, help="marginal mode: large file = factor x events")
    p.add_argument("--repeats", type=int, default=3, help="marginal mode: alternating repeats (median)")
    p.add_argument("--engines", nargs="+", default=["compiled", "xgboost", "no_trees"],
                   choices=["compiled", "xgboost", "no_trees"], help="marginal mode: variants")
    p.add_argument("--bdt-models", nargs=2, default=None,
                   help="marginal mode: the DAG's own BDT [even, odd] (default: train one)")
    p.add_argument("--workdir", default=os.path.join("results", "bench", "ml_marginal"),
                   help="marginal mode: folder for the mock files and the trained BDT")
    p.add_argument("--output", default=None, help="marginal mode: also write the JSON here")
    args = p.parse_args(argv)
    if args.marginal:
        args.events = args.events or 28000
        out = marginal(args)
        print(json.dumps(out, indent=1))
        print_table(out)
        if args.output:
            with open(args.output, "w") as fh:
                json.dump(out, fh, indent=1)
        return
    if not (args.kind and args.models):
        p.error("--kind and --models are required without --marginal")
    args.events = args.events or 25000
    split(args)


if __name__ == "__main__":
    main()
