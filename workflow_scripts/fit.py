"""MLE fit of workspace.json (plus Asimov fit, ranking, goodness of fit) -> fit_results.json.

fit_results.json holds no timestamps, so equal inputs give identical bytes; the timings and the
date go to the provenance file. The last line printed is the reference's
``fit result for ttbar_norm: X +/- Y``.
"""

import argparse
import datetime
import json
import logging
import os
import platform
import sys
import time

from agc_ttbar.atomic import atomic_write_text
from agc_ttbar.provenance import git_commit
from agc_ttbar.statistics import fit, model, workspace


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--workspace", required=True)
    p.add_argument("--output", required=True, help="fit_results.json")
    p.add_argument("--provenance", required=True, help="JSON with date, host platform and timings")
    p.add_argument("--strategy", default="null", help="Minuit strategy 0/1/2 or null (iminuit default)")
    p.add_argument("--retry-strategy", type=int, default=2)
    p.add_argument("--ranking-strategy", type=int, default=fit.RANKING_STRATEGY,
                   help="Minuit strategy of the ranking's refits")
    p.add_argument("--ranking-tolerance", type=float, default=fit.RANKING_TOLERANCE,
                   help="Minuit tolerance of the ranking's refits")
    p.add_argument("--no-asimov", action="store_true")
    p.add_argument("--no-ranking", action="store_true")
    p.add_argument("--no-gof", action="store_true")
    p.add_argument("--no-minos", action="store_true", help="skip the MINOS interval of the POI")
    p.add_argument("--threads", type=int, default=1, help="processes for the ranking refits")
    p.add_argument("--config-hash", default=None, help="hash of the workflow configuration")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("cabinetry").setLevel(logging.WARNING)
    logging.getLogger("pyhf").setLevel(logging.WARNING)

    strategy = None if args.strategy in ("null", "None", "") else int(args.strategy)
    start = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.perf_counter()
    ws = workspace.load(args.workspace)
    try:
        doc, timings = fit.analyse(ws, poi=model.POI, strategy=strategy, retry_strategy=args.retry_strategy,
                                   asimov=not args.no_asimov, do_ranking=not args.no_ranking,
                                   gof=not args.no_gof, processes=args.threads, minos_poi=not args.no_minos,
                                   ranking_strategy=args.ranking_strategy,
                                   ranking_tolerance=args.ranking_tolerance)
    except fit.FitFailedError as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 1
    doc["provenance"] = {"config_hash": args.config_hash, "workspace_sha256": workspace.sha256(ws),
                         "packages": fit.package_versions(), "git_commit": git_commit(os.path.dirname(os.path.abspath(__file__)))}
    atomic_write_text(args.output, json.dumps(doc, sort_keys=True, indent=2) + "\n")
    timings["total"] = time.perf_counter() - t0
    atomic_write_text(args.provenance, json.dumps(
        {"started_utc": start.isoformat(timespec="seconds"), "host_platform": platform.platform(),
         # The interpreter's patch release describes the machine, not the result (a container's
         # Python 3.11.2 and a host's 3.11.7 give the same fit bits): here, not in fit_results.json.
         "python": platform.python_version(),
         "timings_s": {k: round(v, 3) for k, v in timings.items()}, "threads": args.threads,
         "fit_results": args.output}, sort_keys=True, indent=2) + "\n")
    for a in doc["attempts"]:
        if a.get("retry"):
            print(f"NOTE: the first minimisation failed ({doc['attempts'][0].get('message')}); "
                  f"the retry with Minuit strategy {a['strategy_requested']} "
                  f"{'converged' if a['valid'] else 'failed'}")
    for label, p_ in (("fit to data", doc["poi"]), ("expected (Asimov) result", (doc.get("asimov") or {}).get("poi"))):
        if p_ is None:
            continue
        m = p_.get("minos")
        print(f"{label} for {p_['name']}: {p_['value']:.3f} +/- {p_['uncertainty']:.3f} (Hesse)"
              + (f", {m['down']:+.3f} / {m['up']:+.3f} (MINOS)" if m else ""))
    if doc.get("goodness_of_fit"):
        print(f"goodness of fit: p = {doc['goodness_of_fit']['p_value']}")
    print(f"timings: {', '.join(f'{k} {v:.1f} s' for k, v in timings.items())}")
    print(fit.result_line(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
