"""Templates (rebinned 110-550 GeV, spec 3.3) -> pyhf workspace.json, from a cabinetry config."""

import argparse
import logging
import sys

import cabinetry

from agc_ttbar.statistics.model import MissingHistogramError
from agc_ttbar.statistics import workspace


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--cabinetry-config", required=True, help="cabinetry YAML config")
    p.add_argument("--output", required=True, help="workspace JSON to write")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("cabinetry").setLevel(logging.WARNING)
    logging.getLogger("pyhf").setLevel(logging.WARNING)

    cfg = cabinetry.configuration.load(args.cabinetry_config)
    try:
        ws = workspace.workspace_from_histograms(cfg)
    except (MissingHistogramError, FileNotFoundError) as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 1
    workspace.save(ws, args.output)
    info = workspace.summary(ws)
    print(f"workspace {args.output}: {info['n_parameters']} parameters, channels "
          + ", ".join(f"{c} ({n} bins)" for c, n in info["channels"].items())
          + f", samples {', '.join(info['samples'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
