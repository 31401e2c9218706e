"""Statistics figures (data/MC pre/post-fit, pulls, correlations, ranking, templates, ML postfit),
the HTML summary for the report, and index.json listing every plot written."""

import argparse
import json
import logging
import os
import sys

import cabinetry

from agc_ttbar.atomic import atomic_write_text
from agc_ttbar.statistics import plots, summary, workspace


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--workspace", required=True)
    p.add_argument("--fit-results", required=True)
    p.add_argument("--cabinetry-config", required=True)
    p.add_argument("--workspace-ml", default=None)
    p.add_argument("--cabinetry-config-ml", default=None)
    p.add_argument("--outdir", default=None,
                   help="folder of the figures (subfolders per kind); default: the folder of --index")
    p.add_argument("--formats", nargs="+", default=["png", "pdf"])
    p.add_argument("--dataset", choices=plots.DATASET_KINDS, default="agc",
                   help="config dataset: 'mock' figures are labelled as synthetic data, not CMS Open Data")
    p.add_argument("--templates-index", default=None,
                   help="index of template figures drawn by template_plots.py: merged into --index "
                        "instead of drawing the templates here")
    p.add_argument("--processes", type=int, default=1,
                   help="draw independent groups of figures in this many forked processes (the rule's "
                        "threads); the files do not depend on it")
    p.add_argument("--summary", required=True, help="HTML summary to write")
    p.add_argument("--index", required=True, help="index.json to write")
    args = p.parse_args(argv)
    args.outdir = args.outdir or os.path.dirname(os.path.abspath(args.index))
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("cabinetry").setLevel(logging.WARNING)
    logging.getLogger("pyhf").setLevel(logging.WARNING)
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    if (args.workspace_ml is None) != (args.cabinetry_config_ml is None):
        p.error("--workspace-ml and --cabinetry-config-ml go together")

    with open(args.fit_results) as f:
        doc = json.load(f)
    ws = workspace.load(args.workspace)
    cab = cabinetry.configuration.load(args.cabinetry_config)
    ws_ml = workspace.load(args.workspace_ml) if args.workspace_ml else None
    cab_ml = cabinetry.configuration.load(args.cabinetry_config_ml) if args.cabinetry_config_ml else None
    entries, yields = plots.make_all(ws, doc, cab, args.outdir, args.formats, ws_ml, cab_ml,
                                     include_templates=args.templates_index is None, dataset=args.dataset,
                                     processes=args.processes)
    atomic_write_text(args.summary, summary.summary_html(doc, yields))

    base = os.path.dirname(os.path.abspath(args.index))
    for e in entries:
        e["files"] = [os.path.relpath(os.path.abspath(f), base) for f in e["files"]]
    if args.templates_index:
        with open(args.templates_index) as f:
            tbase = os.path.dirname(os.path.abspath(args.templates_index))
            for e in json.load(f)["plots"]:
                e["files"] = [os.path.relpath(os.path.join(tbase, f), base) for f in e["files"]]
                entries.append(e)
    n_files = sum(len(e["files"]) for e in entries)
    index = {"plots": entries, "n_figures": len(entries), "n_files": n_files, "formats": list(args.formats),
             "summary": os.path.relpath(os.path.abspath(args.summary), base), "yields": yields}
    atomic_write_text(args.index, json.dumps(index, sort_keys=True, indent=2) + "\n")
    print(f"{len(entries)} figures, {n_files} files under {args.outdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
