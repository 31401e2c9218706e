"""Sum the per-file partial histograms of one sample (exact: any order gives the same bits)."""

import argparse
import sys

from agc_ttbar import cutflow
from agc_ttbar.histograms import merge_sets


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sample", required=True, help="fileset key of the sample")
    p.add_argument("--inputs", nargs="+", required=True, help="partial histogram files of the sample")
    p.add_argument("--output", required=True, help="merged histogram file (.npz)")
    args = p.parse_args(argv)

    total, metas = merge_sets(args.inputs)
    wrong = [m.get("file") for m in metas if m.get("sample") != args.sample]
    if wrong:
        print(f"ERROR: partials of other samples given for {args.sample}: {wrong}", file=sys.stderr)
        return 1
    first = metas[0]
    files = [part.get("file") for m in metas for part in m.get("parts", [m])]   # a job may read several
    meta = {
        "sample": args.sample, "process": first["process"], "variation": first["variation"],
        "weight": first["weight"], "nevts_total": first["nevts_total"],
        "n_files": len(files), "files": files,
        "nevents": sum(m["nevents"] for m in metas),
        "cutflow": cutflow.total(m["cutflow"] for m in metas),
        "process_s": sum(m.get("timing", {}).get("wall_s", 0.0) for m in metas),
        "peak_rss_mb_max": max(m.get("peak_rss_mb", 0.0) for m in metas),
    }
    total.save(args.output, meta)
    print(f"{args.sample}: {len(metas)} file(s), {meta['nevents']} events, {len(total.hists)} histograms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
