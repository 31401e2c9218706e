"""Write the cabinetry configuration (spec 5.1) generated from the workflow configuration."""

import argparse
import sys

from agc_ttbar.atomic import atomic_write_text
from agc_ttbar.statistics import model


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--samples", nargs="+", required=True, help="fileset keys {process}__{variation}")
    p.add_argument("--histograms", required=True, help="histograms.root the templates come from")
    p.add_argument("--histogram-folder", required=True, help="folder where cabinetry keeps its templates")
    p.add_argument("--fit-lower-edge", type=float, default=model.REBIN_START,
                   help="lower edge of the fit binning, GeV (config statistics.fit_lower_edge)")
    p.add_argument("--fit-rebin", type=int, default=model.REBIN_FACTOR,
                   help="processor bins merged per fit bin (config statistics.fit_rebin)")
    p.add_argument("--fit-edges", type=float, nargs="+", default=None,
                   help="explicit fit bin edges, GeV, replacing --fit-lower-edge/--fit-rebin "
                        "(config statistics.fit_bin_edges)")
    p.add_argument("--output", required=True, help="cabinetry YAML config to write")
    args = p.parse_args(argv)
    try:
        cfg = model.cabinetry_config(args.samples, args.histograms, args.histogram_folder,
                                     model.check_fit_edges(args.fit_edges) if args.fit_edges
                                     else model.fit_binning(args.fit_lower_edge, args.fit_rebin))
    except ValueError as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 1
    model.validate(cfg)
    atomic_write_text(args.output, model.to_yaml(cfg))
    print(f"regions: {', '.join(r['Name'] for r in cfg['Regions'])}")
    print(f"samples: {', '.join(s['Name'] for s in cfg['Samples'])}")
    print(f"systematics: {', '.join(s['Name'] for s in cfg['Systematics'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
