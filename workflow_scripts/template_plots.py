"""Systematic-template figures (nominal vs up/down per region and sample) and their index.

They depend on the statistical model only, not on the fit, so they have their own rule: a rerun
after a fit setting changed does not redraw them.
"""

import argparse
import json
import logging
import os
import sys

import cabinetry

from agc_ttbar.atomic import atomic_write_text
from agc_ttbar.statistics import plots


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--cabinetry-config", required=True)
    p.add_argument("--outdir", required=True, help="folder of the figures")
    p.add_argument("--formats", nargs="+", default=["png", "pdf"])
    p.add_argument("--index", required=True, help="index JSON to write")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for name in ("cabinetry", "pyhf", "matplotlib"):
        logging.getLogger(name).setLevel(logging.WARNING)

    os.makedirs(args.outdir, exist_ok=True)
    entries = plots.templates(cabinetry.configuration.load(args.cabinetry_config), args.outdir, args.formats)
    base = os.path.dirname(os.path.abspath(args.index))
    for e in entries:
        e["files"] = [os.path.relpath(os.path.abspath(f), base) for f in e["files"]]
    atomic_write_text(args.index, json.dumps({"plots": entries}, sort_keys=True, indent=2) + "\n")
    print(f"{len(entries)} template figures under {args.outdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
