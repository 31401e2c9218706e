"""Differentiable analysis: columns -> soft model -> optax optimisation of the b-tag threshold and the
fit bin edges -> optimised.json (path, soft/hard objective, hard-cut threshold scan) and the config
of the hard re-check run of the ordinary rules."""

import argparse
import json
import sys
import time

import yaml

from agc_ttbar.atomic import atomic_write_text
from agc_ttbar.optimisation import objective, optimise, soft_model


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--columns", nargs="+", required=True, help="column files of the per-file jobs")
    p.add_argument("--cabinetry-config", required=True, help="the workflow's cabinetry config (model structure)")
    p.add_argument("--btag-steepness", type=float, required=True, help="config optimisation.btag_steepness")
    p.add_argument("--bin-steepness", type=float, required=True, help="config optimisation.bin_steepness, 1/GeV")
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--learning-rate", type=float, required=True)
    p.add_argument("--min-lower-edge", type=float, default=None, help="config optimisation.min_lower_edge, GeV")
    p.add_argument("--scan-half-width", type=float, required=True)
    p.add_argument("--scan-points", type=int, required=True)
    p.add_argument("--btag-threshold", type=float, required=True, help="starting b-tag threshold")
    p.add_argument("--fit-edges", type=float, nargs="+", required=True, help="starting fit bin edges, GeV")
    p.add_argument("--output", required=True, help="optimised.json to write")
    p.add_argument("--hard-config", required=True, help="config YAML of the hard re-check run to write")
    p.add_argument("--hard-results-dir", required=True, help="results_dir of the hard re-check run")
    p.add_argument("--workflow-config", required=True, help="the workflow's config, JSON")
    args = p.parse_args(argv)

    t0 = time.perf_counter()
    with open(args.cabinetry_config) as f:
        structure = objective.ModelStructure.from_cabinetry(yaml.safe_load(f))
    data = optimise.load_data(args.columns)
    n_events = data.n_events
    print(f"{len(data.keys)} event groups, {n_events} events (all kinematic passes), "
          f"{len(structure.systematics)} systematics; loaded in {time.perf_counter() - t0:.1f} s", flush=True)
    try:
        theta0 = soft_model.params_from_edges(args.btag_threshold, args.fit_edges)
    except ValueError as err:
        print(f"ERROR: {err} (config statistics.fit_bin_edges / fit_lower_edge)", file=sys.stderr)
        return 1
    problem = optimise.Problem(data, structure, args.btag_steepness, args.bin_steepness)
    best, path = optimise.optimise(problem, theta0, args.steps, args.learning_rate,
                                   min_lower_edge=args.min_lower_edge)
    threshold, edges = soft_model.split_params(best)
    threshold = round(float(threshold), 4)
    edges = [float(e) for e in edges]
    snapped = optimise.snap_edges(edges)
    start_edges = [float(e) for e in args.fit_edges]
    hard_before = problem.hard(args.btag_threshold, start_edges)
    hard_after = problem.hard(threshold, snapped)
    print(f"soft objective {path[0]['objective']:.6f} -> {min(s['objective'] for s in path):.6f}; "
          f"hard (columns) {hard_before:.6f} -> {hard_after:.6f} at threshold {threshold}, edges {snapped}",
          flush=True)
    scan = optimise.threshold_scan(problem, threshold, args.scan_half_width, args.scan_points, snapped)
    doc = {
        "interpolation": objective.SMOOTH_INTERPOLATION,
        "settings": {"btag_steepness": args.btag_steepness, "bin_steepness_per_gev": args.bin_steepness,
                     "steps": args.steps, "learning_rate": args.learning_rate, "optimiser": "optax.adam",
                     "min_lower_edge": args.min_lower_edge,
                     "trijets_kept": soft_model.N_TRIJETS},
        "default": {"btag_threshold": args.btag_threshold, "edges": start_edges,
                    "soft_objective": path[0]["objective"], "hard_objective": hard_before},
        "optimised": {"btag_threshold": threshold, "edges": edges, "edges_on_grid": snapped,
                      "soft_objective": float(problem.soft(best)), "hard_objective": hard_after},
        "path": path,
        "btag_scan": {"edges": snapped, "points": scan},
        "n_events": n_events,
    }
    atomic_write_text(args.output, json.dumps(doc, indent=2, sort_keys=True) + "\n")

    # the hard re-check: the same workflow config with the optimised choices, in its own folder;
    # only what the Asimov MINOS interval needs (no ML, no ranking, no goodness of fit)
    cfg = json.loads(args.workflow_config)
    cfg["results_dir"] = args.hard_results_dir
    cfg["optimisation"] = dict(cfg.get("optimisation", {}), enabled=False)
    cfg["use_inference"] = False
    cfg.setdefault("processing", {})["btag_threshold"] = threshold
    st = cfg.setdefault("statistics", {})
    st.update({"fit_bin_edges": snapped, "asimov": True, "minos_poi": True, "ranking": False,
               "goodness_of_fit": False})
    cfg.setdefault("validation", {})["reference"] = None
    atomic_write_text(args.hard_config, "# hard re-check of the optimised choices (written by optimise.py)\n"
                      + yaml.safe_dump(cfg, sort_keys=True))
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
