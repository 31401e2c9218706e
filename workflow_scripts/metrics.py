"""Processing metrics (per per-file job and summed) from the partial histograms' metadata -> JSON."""

import argparse
import json
import sys

from agc_ttbar.atomic import atomic_write_text
from agc_ttbar.histograms import HistogramSet
from agc_ttbar.metrics import summarise


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--inputs", nargs="+", required=True, help="partial histogram files of every job")
    p.add_argument("--output", required=True, help="metrics JSON to write")
    args = p.parse_args(argv)
    metas = [HistogramSet.load(path)[1] for path in args.inputs]
    out = summarise(metas)
    atomic_write_text(args.output, json.dumps(out, indent=1, sort_keys=True) + "\n")
    t = out["total"]
    print(f"{t['jobs']} job(s), {t['files']} file(s), {t['entries']} entries, process {t['process_s']:.2f} s, "
          f"{'?' if t['bytes_read'] is None else format(t['bytes_read'] / 1e6, '.1f')} MB read, {t['events_per_s_per_worker'] or 0:,.0f} ev/s per worker, "
          f"ML share {t['ml_share'] or 0:.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
