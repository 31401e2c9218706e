"""ML validation model (spec 5.4): cabinetry config, templates and workspace_ml.json (7 channels)."""

import argparse
import logging
import sys

from agc_ttbar.atomic import atomic_write_text
from agc_ttbar.statistics.model import MissingHistogramError
from agc_ttbar.statistics import model, workspace


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--samples", nargs="+", required=True, help="fileset keys {process}__{variation}")
    p.add_argument("--histograms-ml", required=True, help="histograms_ml.root")
    p.add_argument("--histogram-folder", required=True, help="folder where cabinetry keeps the ML templates")
    p.add_argument("--config-output", required=True, help="cabinetry YAML config of the ML model to write")
    p.add_argument("--output", required=True, help="pruned workspace_ml.json to write")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("cabinetry").setLevel(logging.WARNING)
    logging.getLogger("pyhf").setLevel(logging.WARNING)

    try:
        cfg = model.cabinetry_config_ml(args.samples, args.histograms_ml, args.histogram_folder)
        model.validate(cfg)
        atomic_write_text(args.config_output, model.to_yaml(cfg))
        ws = workspace.workspace_from_histograms(cfg, start=None, factor=1)
    except (MissingHistogramError, FileNotFoundError, ValueError) as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 1
    pruned = workspace.prune_channels(ws, model.ml_pruned_channels())
    workspace.save(pruned, args.output)
    info = workspace.summary(pruned)
    print(f"workspace_ml {args.output}: {info['n_parameters']} parameters, channels "
          + ", ".join(f"{c} ({n} bins)" for c, n in info["channels"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
