"""Realistic scale (issue 16): unskimmed full-size mock files, per-file memory, full-AGC projection.

    python benchmarks/scale.py --out results/scale                  # everything (~30 min loaded)
    python benchmarks/scale.py --out results/scale --events 200000  # a quick look at smaller files

Prints, and writes to ``OUT/scale.json``:

1. **Generation**: one unskimmed (``mock.skim: false``) full-layout (``mock.full_layout: true``)
   ``ttbar__nominal`` file of ``--events`` events (default 1,000,000), written by the rule's script
   (``workflow_scripts/generate_mock.py --unskimmed --full-layout``): wall and CPU seconds, events
   per CPU second, size, bytes per event, peak RSS; and ``--small-events`` files of the other sample
   kinds (a ttbar variation sample, the three single-top samples, W+jets).
2. **Composition**: the fraction of every file's events in 4j1b and 4j2b against the AGC reference
   at N = 1 (``data/agc/reference/histos_1_file_per_process.json``: sum of a region's histogram
   / (xsec x lumi), the unweighted selection efficiency of the first real file).
3. **Per-file job**: the job's code (:func:`agc_ttbar.processing.process_file` + saving the partial
   histograms, as ``workflow_scripts/process_file.py``) in a fresh process per file, without ML and
   with the default ML model (``ml.model: bdt``, the models trained by the workflow,
   ``results/ml/bdt_{even,odd}.json``; ``--ml-models`` to change), default chunksize 200,000. Each
   process runs a 10,000-event warm-up (imports, model load, numba compilation: the start-up),
   the job (whole file, default chunksize: its rate and peak RSS, VmHWM, against
   ``processing.mem_mb``), the opening of the file alone (tree metadata of 947 branches, its
   branch check and sizes: a cost that grows with the entries, ~1.2 us/event with 10,000-event
   baskets), then five more passes in chunks of 50,000 with a per-chunk CPU clock: the marginal
   rate is the median over the passes of the events per CPU second of the chunks after the first.
   Bytes read per event = compressed bytes of the branches read.
4. **Projection**: core-hours of the full AGC (N = -1, 787 files, 940,160,174 events) and of N = 5
   from ``data/agc/nanoaod_inputs.json``: each real sample's events x (1 / marginal rate + open CPU
   per event) of its kind (nominal samples fill every kinematic variation, the four ttbar
   variation samples only their own: measured on ``ttbar__scaleup``), plus files x start-up CPU;
   "upper": the jobs' whole-file rates and start-up including the warm-up. The read volume from
   the mock's bytes read per event and from the real byte shares of the branches read.
   ``--projection-only`` recomputes it from ``OUT/scale.json``.
5. **Input compression**: the mock files are ZLIB:4; CMS production NanoAOD is LZMA:9. The same
   ``--lzma-events`` unskimmed ttbar events, core layout, with both codecs: the job's extra CPU per
   compressed byte read with LZMA, added to the projection as "LZMA:9 inputs".

Timings are on whatever machine runs this (CPU seconds, so less sensitive to other load than wall
time; the load average is printed with each figure). Generated files stay in ``OUT`` (~1.9 GB for
the 1M-event file); delete them afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
#: Sample kinds measured on small files; ttbar__scaleup stands for the four ttbar variation samples.
SMALL_SAMPLES = ("ttbar__scaleup", "single_top_s_chan__nominal", "single_top_t_chan__nominal",
                 "single_top_tW__nominal", "wjets__nominal")
BIG_SAMPLE = "ttbar__nominal"
#: Which measured sample gives the rate of each real AGC sample.
RATE_OF = {"ttbar__nominal": "ttbar__nominal", "ttbar__scaledown": "ttbar__scaleup",
           "ttbar__scaleup": "ttbar__scaleup", "ttbar__ME_var": "ttbar__scaleup",
           "ttbar__PS_var": "ttbar__scaleup", "single_top_s_chan__nominal": "single_top_s_chan__nominal",
           "single_top_t_chan__nominal": "single_top_t_chan__nominal",
           "single_top_tW__nominal": "single_top_tW__nominal", "wjets__nominal": "wjets__nominal"}
SEED = 20240521
WARMUP_EVENTS = 10_000
#: Chunks and passes of the marginal-rate measurement (after the job itself, default chunksize).
MARGINAL_CHUNK = 50_000
MARGINAL_PASSES = 5


def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = str(pathlib.Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env.setdefault(var, "1")
    env.setdefault("PYTHONWARNINGS", "ignore")
    return env


def run_child(cmd: list[str]) -> dict:
    """Run ``cmd`` in a fresh process; wall, CPU (user + sys) and peak RSS from ``wait4``."""
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(c) for c in cmd], cwd=REPO, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    out = proc.stdout.read()
    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"failed (rc {proc.returncode}): {' '.join(map(str, cmd))}\n{text[-4000:]}")
    return {"wall_s": time.perf_counter() - t0, "cpu_s": ru.ru_utime + ru.ru_stime,
            "peak_rss_mb": ru.ru_maxrss / 1024.0, "output": text,
            "load_avg_1min": [round(load0, 2), round(os.getloadavg()[0], 2)]}


def generate(sample: str, events: int, path: pathlib.Path, compression: str = "ZLIB:4",
             full_layout: bool = True) -> dict:
    """One unskimmed file (full layout by default) through the rule's script."""
    path.parent.mkdir(parents=True, exist_ok=True)
    r = run_child([sys.executable, "workflow_scripts/generate_mock.py", "--sample", sample, "--index", "0",
                   "--events", str(events), "--seed", str(SEED), "--compression", compression, "--unskimmed",
                   *(["--full-layout"] if full_layout else []), "--output", str(path)])
    size = path.stat().st_size
    return {"sample": sample, "events": events, "wall_s": r["wall_s"], "cpu_s": r["cpu_s"],
            "events_per_cpu_s": events / r["cpu_s"], "bytes": size, "bytes_per_event": size / events,
            "peak_rss_mb": r["peak_rss_mb"], "load_avg_1min": r["load_avg_1min"]}


# ---------------------------------------------------------------------------------------------
# child process: one per-file job with a per-chunk CPU clock

def job_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--file", required=True)
    p.add_argument("--sample", required=True)
    p.add_argument("--chunksize", type=int, default=200_000)
    p.add_argument("--ml-models", nargs="*", default=[])
    p.add_argument("--output", required=True)
    args = p.parse_args(argv)
    c_start = time.process_time()
    from agc_ttbar.fileset import build_fileset
    from agc_ttbar.mock.writer import read_counts
    from agc_ttbar.processing import SampleInfo, process_file
    from agc_ttbar.samples import split_sample_key

    nevts, nentries = read_counts(args.file)
    process, variation = split_sample_key(args.sample)
    inputs = {process: {variation: {"nevts_total": nevts,
                                    "files": [{"path": args.file, "nevts": nevts, "nentries": nentries}]}}}
    info = SampleInfo.from_fileset(build_fileset(inputs, [args.sample]), args.sample)
    scorer = None
    if args.ml_models:
        from agc_ttbar.ml.inference import AssignmentScorer

        scorer = AssignmentScorer.from_config("bdt", args.ml_models, max_n_jets=6, nthread=1, compiled=True)
    quiet = lambda msg: None  # noqa: E731
    process_file(args.file, info, chunksize=args.chunksize, scorer=scorer, entry_stop=WARMUP_EVENTS, log=quiet)
    setup_cpu = time.process_time() - c_start
    marks = []

    def log(msg: str) -> None:
        if msg.startswith("chunk "):
            marks.append((time.process_time(), int(msg.split(",")[1].split()[0])))

    c0 = time.process_time()
    hists, meta = process_file(args.file, info, chunksize=args.chunksize, scorer=scorer, log=log)
    hists.save(args.output, meta)
    cpu = time.process_time() - c0
    with open("/proc/self/status") as f:
        hwm = next(int(line.split()[1]) / 1024.0 for line in f if line.startswith("VmHWM:"))
    # the per-file part of a job that is not events: opening the tree (metadata of 947 branches),
    # the branch check and the compressed sizes, as process_file does them
    from agc_ttbar.io import check_branches, compressed_bytes, open_tree

    o0 = time.process_time()
    for _ in range(3):
        with open_tree(args.file, "Events") as tree:
            check_branches(tree, meta["branches"], args.file)
            compressed_bytes(tree, meta["branches"])
    open_cpu = (time.process_time() - o0) / 3
    # more passes over the same file in the same process, in chunks of MARGINAL_CHUNK: the steady
    # state is the events per CPU second of the chunks after a pass's first (which holds the open)
    first_pass = list(marks)
    passes = []
    for _ in range(MARGINAL_PASSES):
        marks.clear()
        c1 = time.process_time()
        process_file(args.file, info, chunksize=MARGINAL_CHUNK, scorer=scorer, log=log)
        chunk_cpu = [t - (marks[i - 1][0] if i else c1) for i, (t, _) in enumerate(marks)]
        chunk_events = [n for _, n in marks]
        passes.append(sum(chunk_events[1:]) / sum(chunk_cpu[1:]))
    marginal = statistics.median(passes)
    print("RESULT " + json.dumps({
        "entries": meta["entries"], "setup_cpu_s": setup_cpu, "cpu_s": cpu, "events_per_cpu_s": meta["entries"] / cpu,
        "first_pass_chunk_cpu_s": [t - (first_pass[i - 1][0] if i else c0) for i, (t, _) in enumerate(first_pass)],
        "open_cpu_s": open_cpu, "pass_rates": passes, "chunk_cpu_s": chunk_cpu, "chunk_events": chunk_events,
        "marginal_events_per_cpu_s": marginal,
        "open_cpu_per_event_s": open_cpu / meta["entries"],
        "startup_cpu_s": setup_cpu - open_cpu,
        "ml_s": meta["ml_s"], "bytes_read": meta["bytes_read"], "branches": len(meta["branches"]),
        "peak_rss_mb": hwm, "cutflow_regions": {k: v for k, v in meta.get("cutflow", {}).items()
                                                 if isinstance(v, (int, float))}}))
    return 0


def job(path: pathlib.Path, sample: str, models: list[str], out_dir: pathlib.Path) -> dict:
    tag = "ml" if models else "noml"
    cmd = [sys.executable, __file__, "_job", "--file", str(path), "--sample", sample,
           "--output", str(out_dir / f"{path.stem}_{tag}.npz")]
    if models:
        cmd += ["--ml-models", *models]
    r = run_child(cmd)
    res = json.loads(next(line[7:] for line in r["output"].splitlines() if line.startswith("RESULT ")))
    res.update({"wall_s": r["wall_s"], "process_cpu_s": r["cpu_s"], "wait4_peak_rss_mb": r["peak_rss_mb"],
                "load_avg_1min": r["load_avg_1min"]})
    return res


# ---------------------------------------------------------------------------------------------

def composition(path: pathlib.Path, sample: str) -> dict:
    """Fraction of the file's events in 4j1b / 4j2b (nominal jets) vs the AGC reference at N = 1."""
    import numpy as np

    from agc_ttbar.mock.validation import read, reference_fractions, regions
    from agc_ttbar.selection import BRANCHES

    ev = read(str(path), BRANCHES)
    masks, _ = regions(ev)
    ref = reference_fractions()[sample]
    out = {"events": len(ev)}
    for k, region in enumerate(("4j1b", "4j2b")):
        n = int(np.sum(masks[region]))
        out[region] = {"count": n, "fraction": n / len(ev), "reference": ref[k],
                       "ratio": n / len(ev) / ref[k], "stat_rel": 1 / max(n, 1) ** 0.5}
    return out


def projection(rates: dict, setup_cpu_s: dict, inputs_path: pathlib.Path, n_max: int) -> dict:
    """Core-hours of the AGC with ``n_max`` files per sample (-1: all) at the measured rates."""
    from agc_ttbar.fileset import load_inputs
    from agc_ttbar.samples import sample_key

    inputs = load_inputs(str(inputs_path))
    rows, files_total, events_total, cpu_total = [], 0, 0, 0.0
    for process, variations in inputs.items():
        for variation, s in variations.items():
            key = sample_key(process, variation)
            files = s["files"][: None if n_max == -1 else n_max]
            ev = sum(int(f["nevts"]) for f in files)
            rate = rates[RATE_OF[key]]
            cpu = ev / rate + len(files) * setup_cpu_s[RATE_OF[key]]  # rate: events per CPU s incl. opening
            rows.append({"sample": key, "files": len(files), "events": ev, "rate_hz": rate, "core_h": cpu / 3600})
            files_total += len(files)
            events_total += ev
            cpu_total += cpu
    return {"n_files_max": n_max, "files": files_total, "events": events_total, "core_h": cpu_total / 3600,
            "rows": rows}


def lzma_check(out: pathlib.Path, events: int, models: list[str], res: dict) -> None:
    """CPU per event of reading LZMA:9 (CMS production NanoAOD) instead of ZLIB:4 inputs: the same
    unskimmed ttbar events, core layout (the branches the job reads), both codecs, both ML modes."""
    res["lzma"] = {}
    print(f"\n# input compression: {BIG_SAMPLE}, {events:,} events, core layout, ZLIB:4 vs LZMA:9")
    for codec in ("ZLIB:4", "LZMA:9"):
        path = out / f"{BIG_SAMPLE}_{events}_core_{codec.replace(':', '')}.root"
        g = generate(BIG_SAMPLE, events, path, codec, full_layout=False)
        print(f"{codec}: generated in {g['cpu_s']:.0f} s CPU, {g['bytes_per_event']:.0f} B/event, peak RSS "
              f"{g['peak_rss_mb']:.0f} MB", flush=True)
        res["lzma"][codec] = {"generation": g}
        for models_ in ([], list(models)):
            tag = "ml" if models_ else "noml"
            r = job(path, BIG_SAMPLE, models_, out)
            res["lzma"][codec][tag] = r
            print(f"  {tag:5s}: marginal {r['marginal_events_per_cpu_s'] / 1e3:6.1f} kHz, read "
                  f"{r['bytes_read'] / r['entries']:.0f} B/event, peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
    for tag in ("noml", "ml"):
        z, x = res["lzma"]["ZLIB:4"][tag], res["lzma"]["LZMA:9"][tag]
        extra = 1 / x["marginal_events_per_cpu_s"] - 1 / z["marginal_events_per_cpu_s"]
        # per compressed byte read (ZLIB:4 bytes, the codec of the full-layout files measured above)
        res["lzma"][f"extra_cpu_s_per_zlib_byte/{tag}"] = extra / (z["bytes_read"] / z["entries"])
        print(f"LZMA:9 costs {extra * 1e6:+.2f} us CPU per event ({tag}), "
              f"{res['lzma'][f'extra_cpu_s_per_zlib_byte/{tag}'] * 1e9:.2f} ns per ZLIB:4 byte read")


def print_projection(res: dict) -> None:
    """Add the projections to ``res`` from its measured jobs and print them."""
    print("\n# projection: CPU = events x (1 / marginal rate + open CPU per event) + files x start-up CPU")
    print("#  upper: the jobs' whole-file rates + files x (start-up + warm-up) CPU")
    inputs_path = REPO / "data" / "agc" / "nanoaod_inputs.json"
    res["projection"] = {}
    kinds = sorted({k.split("/")[0] for k in res["jobs"]})
    summary = []
    for tag in ("noml", "ml"):
        jobs = {s: res["jobs"][f"{s}/{tag}"] for s in kinds}
        # per event: the marginal cost plus opening the file (tree metadata grows with the entries)
        rates = {s: 1.0 / (1.0 / j["marginal_events_per_cpu_s"] + j["open_cpu_per_event_s"]) for s, j in jobs.items()}
        fixed = {s: j["startup_cpu_s"] for s, j in jobs.items()}
        read_mock = {s: j["bytes_read"] / j["entries"] for s, j in jobs.items()}
        for n_max in (-1, 5):
            pr = projection(rates, fixed, inputs_path, n_max)
            upper = projection({s: j["events_per_cpu_s"] for s, j in jobs.items()},
                               {s: j["setup_cpu_s"] for s, j in jobs.items()}, inputs_path, n_max)
            pr["core_h_upper"] = upper["core_h"]
            if f"extra_cpu_s_per_zlib_byte/{tag}" in res.get("lzma", {}):
                per_byte = max(res["lzma"][f"extra_cpu_s_per_zlib_byte/{tag}"], 0.0)
                pr["core_h_lzma"] = pr["core_h"] + sum(
                    r["events"] * read_mock[RATE_OF[r["sample"]]] * per_byte for r in pr["rows"]) / 3600
            pr["read_tb_mock"] = sum(r["events"] * read_mock[RATE_OF[r["sample"]]] for r in pr["rows"]) / 1e12
            size_tb = 1.78 if n_max == -1 else 0.105
            pr["read_tb_real_shares"] = size_tb * real_read_fraction(tag == "ml")
            res["projection"][f"{tag}/N={n_max}"] = pr
            label = "ML" if tag == "ml" else "no ML"
            summary.append((label, n_max, pr))
            print(f"{label:5s} N={n_max:>2d}: {pr['files']} files, {pr['events']:,} events: "
                  f"{pr['core_h']:.2f} core-hours ({pr['events'] / pr['core_h'] / 3600 / 1e3:.0f} kHz per core "
                  f"overall; upper {pr['core_h_upper']:.2f}; LZMA inputs {pr.get('core_h_lzma', float('nan')):.2f}); read {pr['read_tb_mock'] * 1e3:.0f} GB (mock "
                  f"bytes/event) / {pr['read_tb_real_shares'] * 1e3:.0f} GB (real byte shares)")
            for r in pr["rows"]:
                print(f"    {r['sample']:28s} {r['files']:4d} files {r['events']:12,d} events at "
                      f"{r['rate_hz'] / 1e3:6.1f} kHz: {r['core_h']:6.3f} core-h")
    print("\n| | files | events | core-hours | upper | LZMA:9 inputs | kHz per core | read (mock) | read (real shares) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, n_max, pr in summary:
        print(f"| {label}, N = {n_max} | {pr['files']} | {pr['events']:,} | {pr['core_h']:.2f} | "
              f"{pr['core_h_upper']:.2f} | {pr.get('core_h_lzma', float('nan')):.2f} | "
              f"{pr['events'] / pr['core_h'] / 3600 / 1e3:.0f} | "
              f"{pr['read_tb_mock'] * 1e3:.0f} GB | {pr['read_tb_real_shares'] * 1e3:.0f} GB |")


def real_read_fraction(ml: bool) -> float:
    """Share of a real AGC file's bytes in the branches the per-file job reads (branch byte shares)."""
    from agc_ttbar.processing import branches_needed
    from agc_ttbar.shipped_data import branch_ratios

    ratios = branch_ratios()
    return sum(ratios.get(b, 0.0) for b in branches_needed("nominal", ml))


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_job":
        return job_main(argv[1:])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="results/scale", help="folder for the generated files and scale.json")
    p.add_argument("--events", type=int, default=1_000_000, help="events of the big ttbar__nominal file")
    p.add_argument("--small-events", type=int, default=200_000, help="events of the files of the other kinds")
    p.add_argument("--ml-models", nargs=2, default=["results/ml/bdt_even.json", "results/ml/bdt_odd.json"],
                   help="even and odd BDT of the default ML model (make them with "
                        "`snakemake --cores 2 results/ml/bdt_even.json results/ml/bdt_odd.json`)")
    p.add_argument("--mem-mb", type=int, default=None, help="memory declared per per-file job (default: config)")
    p.add_argument("--reuse", action="store_true", help="keep already generated files of the right size")
    p.add_argument("--projection-only", action="store_true",
                   help="recompute and print the projection from OUT/scale.json, measure nothing")
    p.add_argument("--lzma-events", type=int, default=200_000,
                   help="events of the ZLIB:4 / LZMA:9 comparison files (0: skip the comparison)")
    p.add_argument("--lzma-only", action="store_true",
                   help="run only the ZLIB/LZMA comparison, add it to OUT/scale.json and reprint the projection")
    args = p.parse_args(argv)
    out = pathlib.Path(args.out)
    if args.projection_only or args.lzma_only:
        res = json.loads((out / "scale.json").read_text())
        if args.lzma_only:
            lzma_check(out, args.lzma_events, args.ml_models, res)
            (out / "scale.json").write_text(json.dumps(res, indent=1) + "\n")
        print_projection(res)
        return 0
    out.mkdir(parents=True, exist_ok=True)
    for m in args.ml_models:
        if not (REPO / m).exists() and not pathlib.Path(m).exists():
            print(f"ERROR: ML model {m} not found; make it with `snakemake --cores 2 {' '.join(args.ml_models)}` "
                  "or pass --ml-models", file=sys.stderr)
            return 2
    if args.mem_mb is None:
        args.mem_mb = _config_mem_mb()
    res = {"machine": {"cpus": os.cpu_count(), "load_avg_start": os.getloadavg()}, "generation": {},
           "composition": {}, "jobs": {}}
    previous = json.loads((out / "scale.json").read_text()) if args.reuse and (out / "scale.json").exists() else {}
    files = {BIG_SAMPLE: (out / f"{BIG_SAMPLE}_{args.events}.root", args.events)}
    files.update({s: (out / f"{s}_{args.small_events}.root", args.small_events) for s in SMALL_SAMPLES})

    print(f"# generation (unskimmed, full layout, ZLIB:4); {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    from agc_ttbar.mock.writer import read_counts

    for sample, (path, n) in files.items():
        if args.reuse and path.exists() and read_counts(str(path))[1] == n:
            if sample in previous.get("generation", {}):
                res["generation"][sample] = previous["generation"][sample]
            print(f"{sample}: reusing {path}")
            continue
        g = generate(sample, n, path)
        res["generation"][sample] = g
        print(f"{sample}: {n:,} events in {g['wall_s']:.0f} s wall, {g['cpu_s']:.0f} s CPU "
              f"({g['events_per_cpu_s']:,.0f} events per CPU s), {g['bytes'] / 1e9:.2f} GB "
              f"({g['bytes_per_event']:.0f} B/event), peak RSS {g['peak_rss_mb']:.0f} MB, load {g['load_avg_1min']}",
              flush=True)

    print("\n# composition: fraction of events in the regions vs the AGC reference at N = 1")
    print(f"{'sample':28s} {'events':>9s} | {'4j1b':>8s} {'ref':>8s} {'ratio':>6s} | {'4j2b':>8s} {'ref':>8s} {'ratio':>6s}")
    for sample, (path, n) in files.items():
        c = composition(path, sample)
        res["composition"][sample] = c
        a, b = c["4j1b"], c["4j2b"]
        print(f"{sample:28s} {n:9,d} | {a['fraction']:8.5f} {a['reference']:8.5f} {a['ratio']:6.2f} | "
              f"{b['fraction']:8.5f} {b['reference']:8.5f} {b['ratio']:6.2f}   (counts {a['count']}, {b['count']})",
              flush=True)

    print(f"\n# per-file jobs (chunksize 200000; processing.mem_mb = {args.mem_mb})")
    for sample, (path, n) in files.items():
        for models in ([], list(args.ml_models)):
            r = job(path, sample, models, out)
            tag = "ML" if models else "no ML"
            res["jobs"][f"{sample}/{'ml' if models else 'noml'}"] = r
            print(f"{sample:28s} {tag:5s}: marginal {r['marginal_events_per_cpu_s'] / 1e3:6.1f} kHz, whole file "
                  f"{r['events_per_cpu_s'] / 1e3:6.1f} kHz, open {r['open_cpu_per_event_s'] * 1e6:.2f} us/event, "
                  f"start-up {r['startup_cpu_s']:.1f} s CPU, peak RSS "
                  f"{r['peak_rss_mb']:.0f} MB ({r['peak_rss_mb'] / args.mem_mb:.0%} of mem_mb), read "
                  f"{r['bytes_read'] / r['entries']:.0f} B/event, load {r['load_avg_1min']}", flush=True)

    if args.lzma_events:
        lzma_check(out, args.lzma_events, args.ml_models, res)
    print_projection(res)
    res["machine"]["load_avg_end"] = os.getloadavg()
    (out / "scale.json").write_text(json.dumps(res, indent=1) + "\n")
    print(f"\nwrote {out / 'scale.json'}")
    return 0


def _config_mem_mb() -> int:
    """processing.mem_mb of config.yaml with the schema's defaults."""
    from agc_ttbar.config import load_config

    return int(load_config(str(REPO / "config.yaml"))["processing"]["mem_mb"])


if __name__ == "__main__":
    sys.exit(main())
