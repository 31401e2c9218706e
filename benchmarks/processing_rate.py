"""Benchmark of the per-file job (issue 10): event rate per core against the raw read rate, and
peak memory against file size.

For each input file it measures, alternating A/B over ``--repeat`` rounds:

- **raw read**: ``uproot`` reading the same branches the job reads, in the same chunks, nothing
  else (CPU seconds of this process);
- **job**: ``workflow_scripts/process_file.py`` without ML in a fresh process (CPU seconds of the
  child, user + system, start-up included) and the child's peak RSS (``wait4`` ``ru_maxrss``).

Rates are marginal only (issue 15): between the smallest and the largest file, extra events /
extra CPU seconds (the start-up and the per-file set-up cancel); the fixed per-file cost (CPU of
the smallest file minus its events at the marginal rate) is printed beside. Without ``--files`` it
writes synthetic NanoAOD-like files (``tests/synthetic_nanoaod.py``) of ``--events`` and 4x
``--events`` entries, so that the RSS growth with file size is shown too.

    python benchmarks/processing_rate.py                       # synthetic 250k and 1M events
    python benchmarks/processing_rate.py --files a.root b.root --sample ttbar__nominal
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import uproot

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from agc_ttbar.processing import branches_needed  # noqa: E402
from agc_ttbar.samples import split_sample_key, xsec_weight  # noqa: E402


def raw_read(path: str, branches: list[str], chunksize: int) -> tuple[int, float]:
    """(entries, CPU seconds) to read ``branches`` of ``path`` in chunks, nothing else."""
    c0 = time.process_time()
    with uproot.open(path) as f:
        tree = f["Events"]
        n = tree.num_entries
        for lo in range(0, n, chunksize):
            arrays = tree.arrays(branches, entry_start=lo, entry_stop=min(n, lo + chunksize), how=dict)
            del arrays
    return n, time.process_time() - c0


def run_job(path: str, sample: str, chunksize: int, workdir: str) -> dict:
    """Run the per-file job in a child process; returns rates and peak RSS."""
    process, variation = split_sample_key(sample)
    with uproot.open(path) as f:
        n = f["Events"].num_entries
    fileset = {sample: {"process": process, "variation": variation, "nevts_total": n,
                        "weight": xsec_weight(process, max(n, 1)),
                        "files": [{"index": 0, "path": path, "nevts": n}]}}
    fs = os.path.join(workdir, "fileset.json")
    with open(fs, "w") as fh:
        json.dump(fileset, fh)
    out = os.path.join(workdir, "partial.npz")
    cmd = [sys.executable, str(REPO / "workflow_scripts" / "process_file.py"), "--fileset", fs, "--sample", sample,
           "--index", "0", "--output", out, "--chunksize", str(chunksize)]
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    output = proc.stdout.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"per-file job failed:\n{output}")
    from agc_ttbar.histograms import HistogramSet

    _, meta = HistogramSet.load(out)
    cpu = usage.ru_utime + usage.ru_stime
    return {"entries": n, "cpu_s": cpu, "wall_s": wall,
            "in_job_read_s": meta["timing"]["read_s"],
            "peak_rss_mb": usage.ru_maxrss / 1024.0}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", nargs="*", default=None, help="NanoAOD files (default: synthetic files)")
    p.add_argument("--sample", default="ttbar__nominal", help="fileset key the files are processed as")
    p.add_argument("--events", type=int, default=250_000, help="entries of the small synthetic file")
    p.add_argument("--chunksize", type=int, default=200_000)
    p.add_argument("--repeat", type=int, default=2)
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="agc-bench-") as tmp:
        files = args.files
        if not files:
            sys.path.insert(0, str(REPO / "tests"))
            import synthetic_nanoaod as synth

            files = []
            for n in (args.events, 4 * args.events):
                path = os.path.join(tmp, f"synthetic_{n}.root")
                synth.write_nanoaod(path, synth.make_events(n, seed=n))
                files.append(path)
                print(f"wrote {path}: {n} events, {os.path.getsize(path) / 1e6:.1f} MB")
        branches = branches_needed(split_sample_key(args.sample)[1], with_ml=False)
        results = []
        for path in files:
            reads, jobs = [], []
            for _ in range(args.repeat):          # alternate A/B: other jobs may share the machine
                n, cpu = raw_read(path, branches, args.chunksize)
                reads.append(cpu)
                jobs.append(run_job(path, args.sample, args.chunksize, tmp))
            r = {"file": path, "entries": jobs[0]["entries"], "read_cpu_s": statistics.median(reads),
                 "job_cpu_s": statistics.median(j["cpu_s"] for j in jobs),
                 "job_wall_s": statistics.median(j["wall_s"] for j in jobs),
                 "peak_rss_mb": min(j["peak_rss_mb"] for j in jobs)}
            results.append(r)
            print(f"{os.path.basename(path)}: {r['entries']} events; raw read {r['read_cpu_s']:.2f} s CPU; "
                  f"job process {r['job_cpu_s']:.2f} s CPU, {r['job_wall_s']:.2f} s wall; "
                  f"peak RSS {r['peak_rss_mb']:.0f} MB")
        results.sort(key=lambda r: r["entries"])
        if len(results) >= 2 and results[-1]["entries"] > results[0]["entries"]:
            lo, hi = results[0], results[-1]
            dn = hi["entries"] - lo["entries"]
            summary = {}
            for kind in ("read", "job"):
                dcpu = hi[f"{kind}_cpu_s"] - lo[f"{kind}_cpu_s"]
                rate = dn / dcpu if dcpu > 0 else None
                summary[kind] = {"marginal_rate": rate,
                                 "fixed_cpu_s": lo[f"{kind}_cpu_s"] - lo["entries"] / rate if rate else None}
            if summary["read"]["marginal_rate"] and summary["job"]["marginal_rate"]:
                summary["ratio"] = summary["job"]["marginal_rate"] / summary["read"]["marginal_rate"]
                print(f"marginal rates ({lo['entries']} -> {hi['entries']} events): raw read "
                      f"{summary['read']['marginal_rate']:,.0f} ev/s/core, job {summary['job']['marginal_rate']:,.0f} "
                      f"ev/s/core, job/read = {100 * summary['ratio']:.0f}%; fixed per-file cost of the job "
                      f"{summary['job']['fixed_cpu_s']:.2f} s CPU")
            else:
                print("marginal rates: the larger file did not cost more CPU (noise): use bigger files")
            results.append({"marginal": summary})
        else:
            print("marginal rates need two files of different sizes")
        if not args.files:
            growth = results[1]["peak_rss_mb"] / results[0]["peak_rss_mb"] - 1
            print(f"peak RSS growth for 4x the file size: {100 * growth:+.1f}%")
        print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
