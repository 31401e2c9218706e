"""Benchmarks of the workflow (issues 9, 15): speed, scaling and memory, each against its target.

    python benchmarks/run.py                 # everything (`make bench`), ~10-15 min on 2 cores
    python benchmarks/run.py --quick         # tiny files and config: checks the machinery (~3 min)
    python benchmarks/run.py --sections marginal,pipeline   # `make bench-quick`: the headline rows
    python benchmarks/run.py --report-only   # re-render the tables from results/benchmarks.json

Every rate is a marginal (steady-state) rate: start-up, imports and first-chunk set-up excluded,
for this workflow and for the coffea baseline alike. Fixed per-file costs and whole-process wall
times are reported beside the rates, never folded into them.

Sections (``--sections``, comma-separated; default all):

- ``e2e``: the default workflow from a clean results folder with ``--cores 2`` (`make analysis`
  after set-up): mock generation, then the rest (split by rule from the ``benchmark:`` files), a
  no-op rerun, and a rerun after changing only ``statistics.fit_strategy``.
- ``pipeline``: the default pipeline to ``histograms.root`` without ML (per-file jobs, merges,
  write; the mock files and fileset made before), whole ``snakemake`` processes with ``--cores 1``
  and ``--cores 2`` alternating: wall time and CPU of the process tree; the AGC reference's figures
  beside.
- ``marginal``: ttbar nominal files of N and 10N events (mock generator, seed of the default
  dataset, file index 0; N = 28,000): the per-file job and the coffea baseline
  (``benchmarks/coffea_baseline.py``) on both, in fresh processes, alternating; marginal rate =
  9N / (CPU(10N) - CPU(N)) of whole processes, fixed per-file cost = CPU(N) - N / marginal rate.
  The same for the job with the DAG's own BDT and with the published AGC BDTs, and
  ``benchmarks/ml_inference.py`` (the ML step alone) on the 10N file with each.
- ``dataset``: the per-file stage over all files of the default dataset (the e2e run's mock files):
  per mode one process reads or processes every file after an untimed warm-up pass (read / job /
  read-ML / job-ML, alternating rounds); rate = all events / CPU seconds; job / read.
- ``perfile``: the default ``ttbar__nominal`` file and a "full layout" mock file (every real
  NanoAOD branch) with the same events: read / job / read-ML / job-ML after a warm-up pass; bytes
  read per event; ML evaluations per event and the split of the best-permutation search.
- ``memory``: the job's peak RSS on a file of 2 chunks and one of 4x its size (8 chunks).
- ``rntuple``: the default ``ttbar__nominal`` mock events as TTree and as RNTuple: steady-state
  read and job rates of each format, their ratio, and the file sizes.

Every measured piece of work runs in its own child process; repeated measurements alternate
(A, B, A, B, ...) and the report quotes medians (ratios: the median of the per-round ratios) and
the load average. Outputs: ``results/benchmarks.json`` and ``results/benchmarks.md``
(``--output``); scratch files under ``results/bench/`` (``--bench-dir``). The user's ``results/``
analysis is not touched.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import REPO, last_json, machine, median, run, run_wait4, spread  # noqa: E402

SECTIONS = ("e2e", "pipeline", "marginal", "dataset", "perfile", "memory", "rntuple")
BENCH_SAMPLE = "ttbar__nominal"
#: The marginal-rate files: ttbar nominal, generator seed and file index of the default dataset,
#: N and 10N events (N: the default file's 28,000 events; quick mode: its 3,000).
MARGINAL_FACTOR = 10

#: Targets: key -> (description, comparison, threshold). Checked only by reading the output.
TARGETS = {
    "marginal_ratio": ("marginal no-ML rate, job / coffea baseline (>= 250k-event file)", ">=", 1.0),
    "dataset_ratio": ("job / raw read of the same branches, default dataset, steady state", ">=", 0.80),
    "pipeline_cores1_s": ("default pipeline to histograms.root, no ML, --cores 1 (s)", "<", 8.45),
    "pipeline_cores2_s": ("default pipeline to histograms.root, no ML, --cores 2 (s)", "<", 6.18),
    "e2e_wall_s": ("`make analysis` after set-up, clean results, --cores 2 (s)", "<=", 60.0),
    "published_rate": ("marginal rate with the published AGC BDTs (ev/s)", ">=", 14_000.0),
    "ratio_noml": ("per-file job / raw read rate, no ML", ">=", 0.40),
    "ratio_ml": ("per-file job / raw read rate, with ML", ">=", 0.20),
    "noop_wall_s": ("no-op rerun (s)", "<=", 10.0),
    "fit_rerun_wall_s": ("fit-setting-only rerun (s)", "<=", 60.0),
    "fit_rerun_only_stat": ("fit-setting rerun runs only statistics rules", "==", True),
    "scaling": ("pipeline to histograms.root, --cores 1 / --cores 2 wall", ">=", 1.7),
    "rss_growth": ("peak RSS growth for 4x the file size", "<", 0.20),
    "mock_wall_s": ("mock generation of the default dataset (s)", "<=", 120.0),
}

#: Figures of the AGC reference (the unchanged coffea TtbarAnalysis, IterativeExecutor, one worker;
#: two forked workers for --cores 2), measured once in issue 15 on a quiet 2-core machine. Not
#: re-measured here: quoted beside ours for the comparison; the coffea baseline is measured live.
REFERENCE = {
    "marginal_noml_rate": 87_000.0,
    "pipeline_cores1_s": 8.45,
    "pipeline_cores2_s": 6.18,
    "marginal_published_rate": 1_400.0,
}

#: The tiny configuration of --quick (a few thousand events, small models).
QUICK_OVERRIDES = {
    "mock": {"files_per_sample": 1, "events_per_file": 600,
             "events_per_file_overrides": {"ttbar__nominal": 3000}},
    "ml": {"compare_models": [], "max_train_events": 500, "bdt": {"num_boost_round": 20},
           "torch": {"epochs": 1}},
    "statistics": {"ranking": False, "goodness_of_fit": False},
    "plots": {"formats": ["png"]},
}


def log(msg: str) -> None:
    print(msg, flush=True)


# ----------------------------------------------------------------------------------------------
# input files of the per-file measurements

def generate(sample: str, events: int, path: str, seed: int, compression: str, full_layout: bool,
             fmt: str = "ttree") -> dict:
    """Write one mock file with the workflow's generator script; returns its wall time."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    cmd = [sys.executable, "workflow_scripts/generate_mock.py", "--sample", sample, "--index", "0",
           "--events", str(events), "--seed", str(seed), "--compression", compression, "--format", fmt,
           "--output", path]
    if full_layout:
        cmd.append("--full-layout")
    return run(cmd)


def replicate(src: str, copies: int, path: str, compression: str) -> None:
    """A file with the events of ``src`` repeated ``copies`` times (same schema, same baskets size);
    used only for the memory measurement, where the content does not matter."""
    import awkward as ak
    import numpy as np
    import uproot

    from agc_ttbar.mock.generator import GeneratedFile
    from agc_ttbar.mock.writer import write_file

    with uproot.open(src) as f:
        tree = f["Events"]
        arrays = tree.arrays(library="ak", how=dict)
    branches = {}
    for k, v in arrays.items():
        branches[k] = ak.concatenate([v] * copies) if v.ndim > 1 else np.concatenate([ak.to_numpy(v)] * copies)
    n = len(next(iter(branches.values())))
    gen = GeneratedFile(branches=branches, nevts=n, n_class=n, n_kept=n, seconds=0.0,
                        sum_genweight=float(n), sum_genweight2=float(n))
    write_file(path, gen, compression)


def e2e_paths(e2e: dict | None, bench_dir: str) -> tuple[str, str]:
    """(config file, results folder) of the end-to-end run: this invocation's, else an earlier one
    in ``bench_dir`` (so that ``--sections scaling,dataset`` can reuse it)."""
    if e2e:
        return e2e["cfg"], e2e["results_dir"]
    return os.path.join(bench_dir, "configs", "e2e.yaml"), os.path.join(bench_dir, "e2e")


def models_for_ml(args, cfg: dict, e2e: dict | None, bench_dir: str, default_file: str) -> tuple[str, list[str]]:
    """(kind, [even, odd]) of the scorer: the models of the end-to-end run (this one, or an earlier
    one in ``bench_dir``), else a BDT trained here with the workflow's scripts on the default file."""
    from agc_ttbar import layout

    kind = cfg["ml"]["model"]
    paths = layout.ml_models(e2e_paths(e2e, bench_dir)[1], cfg, kind)
    if all(os.path.exists(p) for p in paths):
        return kind, paths
    kind = "bdt"
    mldir = os.path.join(bench_dir, "ml")
    paths = [os.path.join(mldir, "bdt_even.json"), os.path.join(mldir, "bdt_odd.json")]
    if all(os.path.exists(p) for p in paths):
        return kind, paths
    os.makedirs(mldir, exist_ok=True)
    fileset = os.path.join(mldir, "fileset.json")
    import uproot

    with uproot.open(default_file) as f:
        n = f["Events"].num_entries
    with open(fileset, "w") as fh:
        json.dump({BENCH_SAMPLE: {"process": "ttbar", "variation": "nominal", "nevts_total": n, "weight": 1.0,
                                  "files": [{"index": 0, "path": default_file, "nevts": n}]}}, fh)
    data = os.path.join(mldir, "training_data.npz")
    run([sys.executable, "workflow_scripts/ml_training_data.py", "--fileset", fileset, "--samples", BENCH_SAMPLE,
         "--output", data, "--max-per-parity", str(cfg["ml"]["max_train_events"])])
    b = cfg["ml"]["bdt"]
    run([sys.executable, "workflow_scripts/ml_train.py", "--kind", "bdt", "--data", data, "--models", *paths,
         "--metrics", os.path.join(mldir, "bdt_metrics.json"),
         "--validation", os.path.join(mldir, "bdt_validation.npz"), "--threads", "1",
         "--num-boost-round", str(b["num_boost_round"]), "--max-depth", str(b["max_depth"])])
    return kind, paths


# ----------------------------------------------------------------------------------------------
def perfile_driver(mode: str, path, nevts, chunksize: int, ml: tuple[str, list[str]] | None,
                   output: str | None = None, sample=BENCH_SAMPLE, warmup: bool = False) -> dict:
    """One ``perfile.py`` child process; ``path``, ``nevts`` and ``sample`` may be lists (several
    files in one section). Adds the whole-process CPU, wall and rate from ``wait4``."""
    paths = path if isinstance(path, (list, tuple)) else [path]
    samples = sample if isinstance(sample, (list, tuple)) else [sample]
    nevtss = nevts if isinstance(nevts, (list, tuple)) else [nevts]
    cmd = [sys.executable, "benchmarks/perfile.py", "--mode", mode, "--file", *paths, "--sample", *samples,
           "--nevts", *[str(n) for n in nevtss], "--chunksize", str(chunksize)]
    if ml:
        cmd += ["--ml-kind", ml[0], "--ml-models", *ml[1]]
    if output:
        cmd += ["--output", output]
    if warmup:
        cmd.append("--warmup")
    r = run_wait4(cmd)
    res = last_json(r["output"])
    res["process_cpu_s"] = r["cpu_s"]
    res["process_wall_s"] = r["wall_s"]
    res["process_peak_rss_mb"] = res["peak_rss_mb"]   # VmHWM of the child: wait4's ru_maxrss includes
    res["wait4_maxrss_mb"] = r["peak_rss_mb"]          # the parent's peak when the parent is larger
    return res


def marginal_pair(small: dict, big: dict) -> dict:
    """Marginal figures of one round from a file of N and one of 10N events (whole processes):
    rate = extra events / extra CPU seconds (start-up, imports and first-chunk set-up cancel), and
    the fixed per-file cost = the small file's process CPU minus its events at the marginal rate."""
    dn = big["entries"] - small["entries"]
    dcpu = big["process_cpu_s"] - small["process_cpu_s"]
    rate = dn / dcpu if dcpu > 0 else None
    fixed = small["process_cpu_s"] - small["entries"] / rate if rate else None
    return {"rate": rate, "fixed_cpu_s": fixed, "small_cpu_s": small["process_cpu_s"],
            "big_cpu_s": big["process_cpu_s"], "small_wall_s": small["process_wall_s"],
            "big_wall_s": big["process_wall_s"]}


def _summarise_pairs(pairs: list[dict]) -> dict:
    out = {k: median([p[k] for p in pairs]) for k in pairs[0]}
    out["rate_spread"] = spread([p["rate"] for p in pairs])
    out["rounds"] = pairs
    return out


def ml_inference_entry(kind: str, models: list[str], path: str) -> dict:
    """``benchmarks/ml_inference.py`` (the ML helper's own benchmark) on ``path``: its JSON output."""
    r = run([sys.executable, "benchmarks/ml_inference.py", "--kind", kind, "--models", *models, "--file", path])
    text = r["output"]
    start = text.rfind("\n{")
    doc = json.loads(text[start + 1:] if start >= 0 else text[text.index("{"):])
    doc["process_wall_s"] = r["wall_s"]
    return doc


def marginal(files: dict[str, str], chunksize: int, repeats: int, ml_own, ml_published, ml_repeats: int) -> dict:
    """Marginal (steady-state) rates on the ttbar nominal files of N and 10N events (``files``:
    "small"/"big" -> path), no ML: the per-file job and the coffea baseline alternating
    (job N, job 10N, coffea N, coffea 10N per round); with ML (the DAG's own BDT, the published AGC
    BDTs): the job on both files, ``ml_repeats`` rounds (the published BDTs: one). Plus ``ml_inference.py`` on the big file."""
    import uproot

    n = {}
    for label, path in files.items():
        with uproot.open(path) as f:
            n[label] = f["Events"].num_entries
    out = {"files": files, "entries": n}
    modes = [("job", None, repeats), ("coffea", None, repeats)]
    if ml_own:
        modes.append(("job_ml_own", ml_own, ml_repeats))
    if ml_published:   # ~1 min per round on the 10N file: one round
        modes.append(("job_ml_published", ml_published, 1))
    pairs: dict[str, list[dict]] = {m: [] for m, _, _ in modes}
    # One untimed process per mode first: it fills the on-disk caches (numba kernels, compiled BDTs,
    # .pyc, page cache) that a cold checkout lacks, so that round 1's small file does not pay the
    # compilation the big file then skips (CPU(10N) < CPU(N) gave no rate on a clean clone).
    for name, ml, _ in modes:
        perfile_driver("coffea" if name == "coffea" else "job", files["small"], n["small"], chunksize, ml)
    for rnd in range(max(r for _, _, r in modes)):
        for name, ml, reps in modes:
            if rnd >= reps:
                continue
            mode = "coffea" if name == "coffea" else "job"
            # every event is its own weight: nevts = entries (the rate does not depend on it)
            small = perfile_driver(mode, files["small"], n["small"], chunksize, ml)
            big = perfile_driver(mode, files["big"], n["big"], chunksize, ml)
            pairs[name].append(marginal_pair(small, big))
        log(f"  marginal round {rnd + 1}: " + ", ".join(
            f"{k} {v[-1]['rate']:,.0f} ev/s (fixed {v[-1]['fixed_cpu_s']:.2f} s)" for k, v in pairs.items()
            if len(v) > rnd and v[-1]["rate"]) + f" (load {os.getloadavg()[0]:.1f})")
    for name, _, _ in modes:
        out[name] = _summarise_pairs(pairs[name])
    out["ratio_job_over_coffea"] = median([j["rate"] / c["rate"] for j, c in zip(pairs["job"], pairs["coffea"])
                                           if j["rate"] and c["rate"]])
    for key, ml in (("ml_inference_own", ml_own), ("ml_inference_published", ml_published)):
        if ml:
            try:
                out[key] = ml_inference_entry(ml[0], ml[1], files["big"])
            except Exception as err:  # its interface is another helper's: report, do not lose the rest
                out[key] = {"error": f"{type(err).__name__}: {str(err)[-500:]}"}
    out["load_avg_end"] = list(os.getloadavg())
    return out


def perfile(files: dict[str, str], nevts: int, chunksize: int, ml, repeats: int, bench_dir: str) -> dict:
    """Alternating rounds of read / job / read-ML / job-ML on each file, each in a fresh process with
    an untimed warm-up pass first (steady-state rates)."""
    out = {}
    for label, path in files.items():
        modes = [("read", None), ("job", None), ("read_ml", ml), ("job_ml", ml)]
        runs: dict[str, list[dict]] = {m: [] for m, _ in modes}
        for rnd in range(repeats):
            for name, m in modes:
                mode = name.split("_")[0]
                dest = os.path.join(bench_dir, "scratch", f"{label}_{name}.npz") if mode == "job" else None
                runs[name].append(perfile_driver(mode, path, nevts, chunksize, m, dest, warmup=True))
            log(f"  {label} round {rnd + 1}/{repeats}: " + ", ".join(
                f"{k} {v[-1]['rate_per_core']:,.0f}/s" for k, v in runs.items()))
        res = {"file": path, "entries": runs["read"][0]["entries"], "file_mb": os.path.getsize(path) / 1e6,
               "bytes": {k: runs["read"][0][k] for k in ("branches_bytes_per_event", "file_bytes_per_event",
                                                          "read_fraction", "n_branches_read", "n_branches_file")},
               "bytes_ml": {k: runs["read_ml"][0][k] for k in ("branches_bytes_per_event", "read_fraction",
                                                                "n_branches_read")}}
        for name, rs in runs.items():
            rates = [r["rate_per_core"] for r in rs]
            res[name] = {"rate_per_core": median(rates), "rate_spread": spread(rates),
                         "process_cpu_s": median([r["process_cpu_s"] for r in rs]),
                         "setup_cpu_s": median([r["setup_cpu_s"] for r in rs]),
                         "peak_rss_mb": median([r["process_peak_rss_mb"] for r in rs])}
        res["ratio_noml"] = median([j["rate_per_core"] / r["rate_per_core"] for j, r in zip(runs["job"], runs["read"])])
        res["ratio_ml"] = median([j["rate_per_core"] / r["rate_per_core"]
                                  for j, r in zip(runs["job_ml"], runs["read_ml"])])
        st = [r["ml_stats"] for r in runs["job_ml"] if r.get("ml_stats")]
        if st:
            res["ml"] = {"selected_events": st[0]["n_events"],
                         "evaluations_per_event": st[0]["evaluations_per_event"],
                         "events_by_n_jets": st[0]["events_by_n_jets"],
                         "ml_time_share_of_job": median([
                             (s["seconds_features"] + s["seconds_model"] + s.get("seconds_fused", 0.0)) / r["wall_s"]
                             for s, r in zip(st, runs["job_ml"])])}
            if label == "default":
                split = perfile_driver("ml_split", path, nevts, chunksize, ml)
                split.pop("cutflow", None)
                res["ml"]["split"] = split
        out[label] = res
    return out


def dataset_rates(files: list[tuple[str, str, int]], chunksize: int, ml, repeats: int) -> dict:
    """The per-file stage over every file of the default dataset (sample, path, sample nevts for
    the weight), steady state: per mode one process reads/processes every file in turn after an
    untimed warm-up pass over the first file; modes alternate (read, job, read-ML, job-ML) per round;
    rate = all entries / CPU seconds of the section."""
    modes = [("read", None), ("job", None)] + ([("read_ml", ml), ("job_ml", ml)] if ml else [])
    samples = [s for s, _, _ in files]
    paths = [p for _, p, _ in files]
    nevts = [n for _, _, n in files]
    rounds = []
    entries = 0
    for rnd in range(repeats):
        rates = {}
        for name, m in modes:
            r = perfile_driver(name.split("_")[0], paths, nevts, chunksize, m, sample=samples, warmup=True)
            rates[name] = r["entries"] / r["cpu_s"]
            entries = r["entries"]
        rounds.append(rates)
        log(f"  dataset round {rnd + 1}/{repeats}: " + ", ".join(f"{k} {v:,.0f}/s" for k, v in rates.items())
            + f" (load {os.getloadavg()[0]:.1f})")
    out = {"n_files": len(files), "entries": entries, "rounds": rounds,
           "ratio_noml": median([r["job"] / r["read"] for r in rounds]),
           "ratio_ml": median([r["job_ml"] / r["read_ml"] for r in rounds]) if ml else None}
    for name, _ in modes:
        out[name] = {"rate_per_core": median([r[name] for r in rounds])}
    return out


def rntuple_rates(files: dict[str, str], nevts: int, chunksize: int, repeats: int) -> dict:
    """Read and job (no ML) rates of the same events as TTree and as RNTuple (``files``: format ->
    path), alternating A/B per round (read ttree, read rntuple, job ttree, job rntuple)."""
    modes = [(kind, fmt) for kind in ("read", "job") for fmt in ("ttree", "rntuple")]
    runs: dict[tuple[str, str], list[dict]] = {m: [] for m in modes}
    for rnd in range(repeats):
        for kind, fmt in modes:
            runs[(kind, fmt)].append(perfile_driver(kind, files[fmt], nevts, chunksize, None, warmup=True))
        log(f"  rntuple round {rnd + 1}/{repeats}: " + ", ".join(
            f"{k} {f} {runs[(k, f)][-1]['rate_per_core']:,.0f}/s" for k, f in modes))
    out = {"entries": runs[("read", "ttree")][0]["entries"],
           "file_bytes": {fmt: os.path.getsize(p) for fmt, p in files.items()}}
    for kind, fmt in modes:
        out.setdefault(fmt, {})[kind] = {"rate_per_core": median([r["rate_per_core"] for r in runs[(kind, fmt)]]),
                                         "rounds": [r["rate_per_core"] for r in runs[(kind, fmt)]]}
    for kind in ("read", "job"):
        out[f"{kind}_ratio_rntuple_over_ttree"] = median(
            [b["rate_per_core"] / a["rate_per_core"] for a, b in zip(runs[(kind, "ttree")], runs[(kind, "rntuple")])])
    if out["entries"] != runs[("read", "rntuple")][0]["entries"]:
        raise RuntimeError("the TTree and RNTuple files hold different entry counts")
    if runs[("job", "ttree")][0]["cutflow"] != runs[("job", "rntuple")][0]["cutflow"]:
        raise RuntimeError("the job's cutflow differs between the TTree and the RNTuple file")
    return out


def memory(src: str, chunksize: int, bench_dir: str, repeats: int, compression: str) -> dict:
    """Peak RSS of the job (no ML) on files of 2 and 8 chunks."""
    import uproot

    with uproot.open(src) as f:
        n_src = f["Events"].num_entries
    small_n, big_n = 2 * chunksize, 8 * chunksize
    paths = {}
    for n in (small_n, big_n):
        path = os.path.join(bench_dir, "files", f"memory_{n}.root")
        if not os.path.exists(path):
            copies = -(-n // n_src)
            tmp = path + ".full.root"
            replicate(src, copies, tmp, compression)
            # exactly n entries: the job reads entry ranges, so trim by rewriting the first n
            with uproot.open(tmp) as f:
                m = f["Events"].num_entries
            if m != n:
                from agc_ttbar.mock.generator import GeneratedFile
                from agc_ttbar.mock.writer import write_file

                with uproot.open(tmp) as f:
                    arrays = f["Events"].arrays(library="ak", how=dict, entry_stop=n)
                import awkward as ak

                gen = GeneratedFile(branches={k: (v if v.ndim > 1 else ak.to_numpy(v)) for k, v in arrays.items()},
                                    nevts=n, n_class=n, n_kept=n, seconds=0.0, sum_genweight=float(n),
                                    sum_genweight2=float(n))
                write_file(path, gen, compression)
                os.remove(tmp)
            else:
                os.replace(tmp, path)
        paths[n] = path
    rss: dict[int, list[float]] = {small_n: [], big_n: []}
    for _ in range(repeats):
        for n in (small_n, big_n):
            r = perfile_driver("job", paths[n], n, chunksize, None)
            rss[n].append(r["peak_rss_mb"])
    a, b = median(rss[small_n]), median(rss[big_n])
    return {"chunksize": chunksize, "small_entries": small_n, "big_entries": big_n,
            "small_file_mb": os.path.getsize(paths[small_n]) / 1e6, "big_file_mb": os.path.getsize(paths[big_n]) / 1e6,
            "small_peak_rss_mb": a, "big_peak_rss_mb": b, "growth": b / a - 1}


# ----------------------------------------------------------------------------------------------
def status(value, cmp: str, threshold) -> str:
    if value is None:
        return "n/a"
    ok = {">=": value >= threshold, "<=": value <= threshold, "<": value < threshold,
          "==": value == threshold}[cmp]
    return "PASS" if ok else "MISS"


def fmt(v, unit: str = "") -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if unit == "%":
        return f"{100 * v:.0f}%"
    if unit == "x":
        return f"{v:.2f}x"
    if unit == "s":
        return f"{v:.2f} s" if abs(v) < 10 else f"{v:.1f} s"
    if unit == "MB":
        return f"{v:.0f} MB"
    if unit == "/s":
        return f"{v:,.0f} ev/s"
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def headline_rows(res: dict) -> list[tuple[str, str, str, str, str]]:
    """The side-by-side table of issue 15: (figure, this workflow, baseline / reference, target,
    status). Missing sections give "n/a" rows, so the table always has the same shape."""
    rows = []
    mg = res.get("marginal") or {}
    n_big = (mg.get("entries") or {}).get("big")
    tag = f"{n_big:,}-event ttbar file" if n_big else "large ttbar file"
    job, cof = mg.get("job") or {}, mg.get("coffea") or {}

    def row(label, ours, theirs, key=None, value=None, unit=""):
        if key:
            _, cmp, thr = TARGETS[key]
            rows.append((label, ours, theirs, f"{cmp} {fmt(thr, unit)}", status(value, cmp, thr)))
        else:
            rows.append((label, ours, theirs, "", ""))

    row(f"marginal rate, no ML, {tag} (ev/s per core)", fmt(job.get("rate"), "/s"),
        f"{fmt(cof.get('rate'), '/s')} coffea baseline (AGC reference {fmt(REFERENCE['marginal_noml_rate'], '/s')})",
        "marginal_ratio", mg.get("ratio_job_over_coffea"), "x")
    row("  ratio job / coffea baseline", fmt(mg.get("ratio_job_over_coffea"), "x"), "")
    row("fixed per-file cost, no ML (process CPU minus events at the marginal rate)",
        fmt(job.get("fixed_cpu_s"), "s"), f"{fmt(cof.get('fixed_cpu_s'), 's')} coffea baseline")
    if job:
        n_small = mg["entries"]["small"]
        row(f"whole process wall, {n_small:,} / {n_big:,} events, no ML",
            f"{fmt(job.get('small_wall_s'), 's')} / {fmt(job.get('big_wall_s'), 's')}",
            f"{fmt(cof.get('small_wall_s'), 's')} / {fmt(cof.get('big_wall_s'), 's')} coffea baseline")
    d = res.get("dataset") or {}
    row(f"job / raw read of the same branches, all {d.get('n_files', '?')} default files, steady state",
        fmt(d.get("ratio_noml"), "%"),
        f"job {fmt((d.get('job') or {}).get('rate_per_core'), '/s')}, read {fmt((d.get('read') or {}).get('rate_per_core'), '/s')}",
        "dataset_ratio", d.get("ratio_noml"), "%")
    pl = res.get("pipeline") or {}
    for cores in (1, 2):
        c = pl.get(f"cores{cores}") or {}
        row(f"default pipeline to histograms.root, no ML, --cores {cores} (wall; CPU)",
            f"{fmt(c.get('wall_s'), 's')}; {fmt(c.get('cpu_s'), 's')}" if c else "n/a",
            f"{fmt(REFERENCE[f'pipeline_cores{cores}_s'], 's')} AGC reference",
            f"pipeline_cores{cores}_s", c.get("wall_s"), "s")
    e = res.get("e2e") or {}
    row("`make analysis` after set-up, --cores 2 (clean results; of it mock generation)",
        f"{fmt(e.get('total_wall_s'), 's')} ({fmt(e.get('mock_generation_wall_s'), 's')})" if e else "n/a", "",
        "e2e_wall_s", e.get("total_wall_s"), "s")
    pub, own = mg.get("job_ml_published") or {}, mg.get("job_ml_own") or {}
    row(f"marginal rate, published AGC BDTs, {tag} (job; fixed cost)",
        f"{fmt(pub.get('rate'), '/s')}; {fmt(pub.get('fixed_cpu_s'), 's')}" if pub else "n/a",
        f"{fmt(REFERENCE['marginal_published_rate'], '/s')} AGC reference", "published_rate", pub.get("rate"), "/s")
    row(f"marginal rate, the DAG's own BDT, {tag} (job; fixed cost)",
        f"{fmt(own.get('rate'), '/s')}; {fmt(own.get('fixed_cpu_s'), 's')}" if own else "n/a", "")
    for key, label in (("ml_inference_published", "published BDTs"), ("ml_inference_own", "the DAG's own BDT")):
        mi = mg.get(key)
        if mi is not None:
            val = mi["error"] if "error" in mi else (
                f"{fmt(mi.get('selected_events_per_second'), '/s')} selected events, "
                f"{fmt(mi.get('evaluations_per_second'), '/s').replace(' ev/s', '')} evaluations / s")
            row(f"  benchmarks/ml_inference.py, {label}, {tag}", val, "")
    return rows


def table_rows(res: dict) -> list[tuple[str, str, str, str]]:
    """(figure, value, target, status) rows of the detailed report."""
    rows = []

    def target_row(key, value, unit, label=None):
        desc, cmp, thr = TARGETS[key]
        thr_s = fmt(thr, unit) if not isinstance(thr, bool) else "yes"
        rows.append((label or desc, fmt(value, unit), f"{cmp} {thr_s}", status(value, cmp, thr)))

    def info_row(label, value):
        rows.append((label, value, "", ""))

    pf = res.get("perfile", {})
    for label, r in pf.items():
        tag = "default mock" if label == "default" else "full-layout mock"
        info_row(f"raw read rate, steady state, {tag} ({r['bytes']['n_branches_read']} branches)",
                 fmt(r["read"]["rate_per_core"], "/s"))
        info_row(f"per-file job, no ML, steady state, {tag} (events/s per core)", fmt(r["job"]["rate_per_core"], "/s"))
        target_row("ratio_noml", r["ratio_noml"], "%", f"job / raw read, no ML, {tag}")
        info_row(f"raw read rate with ML branches, steady state, {tag}", fmt(r["read_ml"]["rate_per_core"], "/s"))
        info_row(f"per-file job with ML, steady state, {tag} (events/s per core)", fmt(r["job_ml"]["rate_per_core"], "/s"))
        target_row("ratio_ml", r["ratio_ml"], "%", f"job / raw read, with ML, {tag}")
        info_row(f"whole job process CPU incl. start-up and warm-up pass, no ML / ML, {tag}",
                 f"{fmt(r['job']['process_cpu_s'], 's')} / {fmt(r['job_ml']['process_cpu_s'], 's')}")
        b = r["bytes"]
        info_row(f"bytes read / file bytes per event, {tag}",
                 f"{b['branches_bytes_per_event']:.0f} / {b['file_bytes_per_event']:.0f} B "
                 f"({100 * b['read_fraction']:.1f}%; ML {100 * r['bytes_ml']['read_fraction']:.1f}%)")
        if r.get("ml") and label == "default":
            m = r["ml"]
            info_row("BDT evaluations per selected (4j2b) event", f"{m['evaluations_per_event']:.1f}")
            info_row("ML share of the job's wall time", fmt(m["ml_time_share_of_job"], "%"))
            sp = m.get("split")
            if sp:
                info_row("best-permutation search, numpy features + model.predict: feature / model share",
                         f"{100 * sp['plain_feature_share']:.0f}% / {100 - 100 * sp['plain_feature_share']:.0f}% "
                         f"({sp['evaluations_per_cpu_s_plain'] / 1e6:.2f} M evaluations per CPU s)")
                if sp.get("compiled"):
                    info_row("fused compiled search: share without trees (features, choice) / trees",
                             f"{100 * sp['fused_feature_share']:.0f}% / {100 - 100 * sp['fused_feature_share']:.0f}% "
                             f"({sp['evaluations_per_cpu_s_fused'] / 1e6:.2f} M evaluations per CPU s; "
                             f"{sp['fused_speedup']:.2f}x the numpy + xgboost path)")
    d = res.get("dataset")
    if d:
        tag = f"all {d['n_files']} default mock files ({d['entries']:,} events), steady state"
        info_row(f"raw read rate, {tag}", fmt(d["read"]["rate_per_core"], "/s"))
        info_row(f"per-file job, no ML / with ML, {tag}",
                 f"{fmt(d['job']['rate_per_core'], '/s')} / {fmt((d.get('job_ml') or {}).get('rate_per_core'), '/s')}")
        if d.get("ratio_ml") is not None:
            target_row("ratio_ml", d["ratio_ml"], "%", f"job / raw read, with ML, {tag}")
    e = res.get("e2e")
    if e:
        target_row("mock_wall_s", e["mock_generation_wall_s"], "s")
        info_row("`make analysis` after the mock files (s)", fmt(e["after_mock_wall_s"], "s"))
        target_row("noop_wall_s", e["noop_wall_s"], "s")
        target_row("fit_rerun_wall_s", e["fit_rerun"]["wall_s"], "s")
        target_row("fit_rerun_only_stat", e["fit_rerun"]["only_statistics_rules"], "")
        info_row("fit rule time (fit + Asimov + ranking + GoF as configured)", fmt(e.get("fit_rule_s"), "s"))
    pl = res.get("pipeline")
    if pl and pl.get("cores1") and pl.get("cores2"):
        target_row("scaling", pl["cores1"]["wall_s"] / pl["cores2"]["wall_s"], "x")
        info_row("pipeline jobs", ", ".join(f"{k} {v}" for k, v in pl.get("jobs", {}).items()))
    m = res.get("memory")
    if m:
        info_row("job peak RSS, file of 2 / 8 chunks",
                 f"{fmt(m['small_peak_rss_mb'], 'MB')} / {fmt(m['big_peak_rss_mb'], 'MB')} (chunksize {m['chunksize']:,})")
        target_row("rss_growth", m["growth"], "%")
    rn = res.get("rntuple")
    if rn:
        tag = f"{rn['entries']:,} ttbar mock events, steady state"
        for kind, what in (("read", "raw read rate"), ("job", "per-file job, no ML")):
            info_row(f"{what}, TTree / RNTuple, {tag}",
                     f"{fmt(rn['ttree'][kind]['rate_per_core'], '/s')} / {fmt(rn['rntuple'][kind]['rate_per_core'], '/s')}"
                     f" (RNTuple {fmt(rn[f'{kind}_ratio_rntuple_over_ttree'], 'x')})")
        info_row(f"file size, TTree / RNTuple, {tag}",
                 f"{rn['file_bytes']['ttree'] / 1e6:.2f} / {rn['file_bytes']['rntuple'] / 1e6:.2f} MB")
    return rows


def markdown(res: dict) -> str:
    m = res["machine"]
    lines = [f"# Benchmarks ({res['mode']} mode, {res['started']})", "",
             f"Machine: {m.get('cpu', '?')}, {m['cores']} cores, {m.get('memory_gb', '?')} GB; "
             f"load average at start {m['load_avg_at_start'][0]:.1f}; Python {m['python']}; "
             + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v) + ".",
             f"Repeats: {res['repeats']} alternating rounds, medians quoted. Total benchmark time "
             f"{res.get('benchmark_wall_s', 0):.0f} s.", "",
             "## Side by side (issue 15)", "",
             "| figure | this workflow | baseline / reference | target | status |", "|---|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in headline_rows(res)]
    lines += ["", "Rates are marginal (steady-state): from whole processes on files of N and 10N events "
              "(start-up and first-chunk set-up cancel), or sections timed after an untimed warm-up pass. "
              "AGC reference figures: issue 15, quiet machine, not re-measured here.",
              "", "## Details", "", "| figure | value | target | status |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in table_rows(res)]
    e = res.get("e2e")
    if e and e.get("per_rule"):
        lines += ["", "## End-to-end run by rule (Snakemake `benchmark:` files)", "",
                  "| rule | jobs | summed job wall time | summed CPU (sampled) | max peak RSS (sampled) |", "|---|---|---|---|---|"]
        for rule, r in sorted(e["per_rule"].items(), key=lambda kv: -kv[1]["seconds_sum"]):
            lines.append(f"| {rule} | {r['jobs']} | {r['seconds_sum']:.1f} s | {r['cpu_s_sum']:.1f} s | "
                         f"{r['max_rss_mb']:.0f} MB |")
        lines += ["", "Snakemake samples CPU time and RSS of a job's processes periodically, so short-lived "
                  "processes can be under-counted; the per-file job's peak RSS above is the job process's own VmHWM (exact).",
                  "", f"Fit-setting rerun ran: {e['fit_rerun']['jobs']}."]
    if res.get("errors"):
        lines += ["", "## Errors", ""] + [f"- {k}: {v}" for k, v in res["errors"].items()]
    return "\n".join(lines) + "\n"


def _print_rows(rows) -> None:
    w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, r in enumerate(rows):
        print("  ".join(c.ljust(w[j]) for j, c in enumerate(r)))
        if i == 0:
            print("  ".join("-" * x for x in w))


def print_table(res: dict) -> None:
    load = res["machine"]["load_avg_at_start"][0]
    print(f"Side by side (issue 15); load average at start {load:.1f}, at end "
          f"{res.get('load_avg_end', [float('nan')])[0]:.1f}; marginal (steady-state) rates, medians")
    _print_rows([("figure", "this workflow", "baseline / reference", "target", "status")] + headline_rows(res))
    print()
    _print_rows([("figure", "value", "target", "status")] + table_rows(res))


# ----------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny files and config, one round (smoke test)")
    p.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    p.add_argument("--repeats", type=int, default=None, help="alternating rounds (default 3, quick 1)")
    p.add_argument("--cores", type=int, default=2, help="cores of the end-to-end run")
    p.add_argument("--bench-dir", default="results/bench", help="scratch folder (relative to the repository)")
    p.add_argument("--output", default="results/benchmarks.json", help="JSON output; the .md goes beside it")
    p.add_argument("--report-only", action="store_true",
                   help="measure nothing: rewrite the .md and print the table from an existing --output JSON")
    args = p.parse_args(argv)
    if args.report_only:
        with open(args.output) as f:
            res = json.load(f)
        with open(os.path.splitext(args.output)[0] + ".md", "w") as f:
            f.write(markdown(res))
        print_table(res)
        return 0
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        p.error(f"unknown section(s) {', '.join(sorted(unknown))}; known: {', '.join(SECTIONS)}")
    repeats = args.repeats or (1 if args.quick else 3)
    os.chdir(REPO)
    sys.path.insert(0, str(REPO))
    from agc_ttbar.config import load_config

    overrides = copy.deepcopy(QUICK_OVERRIDES) if args.quick else {}
    cfg = load_config(str(REPO / "config.yaml"), overrides)
    bench_dir = args.bench_dir
    os.makedirs(bench_dir, exist_ok=True)
    t_start = time.perf_counter()
    res = {"mode": "quick" if args.quick else "full", "started": datetime.datetime.now().isoformat(timespec="seconds"),
           "machine": machine(), "repeats": repeats, "sections": sections, "targets": {
               k: {"description": d, "cmp": c, "threshold": t} for k, (d, c, t) in TARGETS.items()},
           "errors": {}}

    def save_partial() -> None:
        """The figures so far, after every section: an interrupted run keeps what it measured."""
        os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
        with open(args.output + ".partial", "w") as f:
            json.dump(res, f, indent=1, default=str)

    def attempt(name, fn):
        try:
            return fn()
        except Exception as err:  # one failing section must not lose the others' figures
            res["errors"][name] = f"{type(err).__name__}: {str(err)[-2000:]}"
            log(f"section {name} FAILED: {res['errors'][name]}")
            return None
        finally:
            save_partial()

    e2e = None
    if "e2e" in sections:
        from workflow import end_to_end

        e2e = attempt("e2e", lambda: end_to_end(bench_dir, overrides, args.cores, noop_repeats=1 if args.quick else 2,
                                                log=log))
        if e2e:
            res["e2e"] = e2e
    if "pipeline" in sections:
        from workflow import pipeline

        order = (1, 2) if args.quick else (1, 2, 2, 1) if repeats == 1 else (1, 2, 2, 1, 1, 2)
        log(f"pipeline to histograms.root, no ML, --cores {', '.join(map(str, order))} ...")
        r = attempt("pipeline", lambda: pipeline(bench_dir, overrides, mock_from=e2e_paths(e2e, bench_dir)[1],
                                                 cores_order=order, log=log))
        if r:
            res["pipeline"] = r

    mcfg = cfg["mock"]
    events = mcfg["events_per_file_overrides"].get(BENCH_SAMPLE, mcfg["events_per_file"])
    chunksize = cfg["processing"]["chunksize"]
    default_file = None
    if e2e:
        from agc_ttbar import layout

        cand = layout.mock_file(e2e["results_dir"], BENCH_SAMPLE, 0)
        default_file = cand if os.path.exists(cand) else None
    files_dir = os.path.join(bench_dir, "files")

    def small_file() -> str:
        path = os.path.join(files_dir, f"{BENCH_SAMPLE}_{events}.root")
        if not os.path.exists(path):
            log(f"generating {path} ({events} events) ...")
            generate(BENCH_SAMPLE, events, path, mcfg["seed"], mcfg["compression"], False)
        return path

    if ("perfile" in sections or "memory" in sections) and default_file is None:
        default_file = attempt("generate_default", small_file)
    if "marginal" in sections:
        def _marginal():
            big = os.path.join(files_dir, f"{BENCH_SAMPLE}_{MARGINAL_FACTOR * events}.root")
            if not os.path.exists(big):
                log(f"generating {big} ({MARGINAL_FACTOR * events} events, seed {mcfg['seed']}, index 0) ...")
                res["marginal_generation_wall_s"] = generate(BENCH_SAMPLE, MARGINAL_FACTOR * events, big,
                                                             mcfg["seed"], mcfg["compression"], False)["wall_s"]
            small = small_file()
            own = models_for_ml(args, cfg, e2e, bench_dir, small)
            from agc_ttbar import layout

            published = ("published", layout.ml_models(bench_dir, cfg, "published"))
            ml_reps = 1 if args.quick or repeats == 1 else 2
            log(f"marginal rates on {events:,} and {MARGINAL_FACTOR * events:,} events ({repeats} rounds; ML "
                f"{ml_reps}) ...")
            return marginal({"small": small, "big": big}, chunksize, repeats, own, published, ml_reps)

        r = attempt("marginal", _marginal)
        if r:
            res["marginal"] = r
    if "perfile" in sections:
        def _perfile():
            import uproot

            full = os.path.join(files_dir, f"{BENCH_SAMPLE}_{events}_full_layout.root")
            if not os.path.exists(full):
                log(f"generating the full-layout file {full} ({events} events) ...")
                g = generate(BENCH_SAMPLE, events, full, mcfg["seed"], mcfg["compression"], True)
                res["full_layout_generation_wall_s"] = g["wall_s"]
            with uproot.open(default_file) as f:
                nevts = int(f["Runs"]["genEventCount"].array(library="np")[0]) if "Runs" in f else f["Events"].num_entries
            ml = models_for_ml(args, cfg, e2e, bench_dir, default_file)
            res["ml_models"] = {"kind": ml[0], "paths": ml[1]}
            log(f"per-file steady-state rates ({repeats} rounds; ML {ml[0]}) ...")
            return perfile({"default": default_file, "full_layout": full}, nevts, chunksize, ml, repeats, bench_dir)

        r = attempt("perfile", _perfile)
        if r:
            res["perfile"] = r
    if "dataset" in sections:
        def _dataset():
            from agc_ttbar import layout

            results_dir = e2e_paths(e2e, bench_dir)[1]
            missing = [p for p in [layout.fileset(results_dir)] if not os.path.exists(p)]
            if not missing:
                with open(layout.fileset(results_dir)) as f:
                    fileset = json.load(f)
                files = [(sample, layout.mock_file(results_dir, sample, i), fileset[sample]["nevts_total"])
                         for sample in cfg["samples"] for i in range(mcfg["files_per_sample"])]
                missing = [p for _, p, _ in files if not os.path.exists(p)]
            if missing:
                raise FileNotFoundError(f"{len(missing)} default mock files missing (first {missing[0]}): "
                                        "run the e2e section first")
            ml = models_for_ml(args, cfg, e2e, bench_dir, files[0][1])
            log(f"per-file stage over {len(files)} files, steady state ({repeats} rounds) ...")
            return dataset_rates(files, chunksize, ml, repeats)

        r = attempt("dataset", _dataset)
        if r:
            res["dataset"] = r
    if "memory" in sections:
        mem_chunk = 2000 if args.quick else 50_000
        log(f"memory vs file size (chunksize {mem_chunk}) ...")
        r = attempt("memory", lambda: memory(default_file, mem_chunk, bench_dir, repeats, mcfg["compression"]))
        if r:
            res["memory"] = r

    if "rntuple" in sections:
        def _rntuple():
            files = {fmt: os.path.join(files_dir, f"{BENCH_SAMPLE}_{events}_{fmt}.root") for fmt in ("ttree", "rntuple")}
            for fmt, path in files.items():
                if not os.path.exists(path):
                    log(f"generating {path} ({events} events, {fmt}) ...")
                    generate(BENCH_SAMPLE, events, path, mcfg["seed"], mcfg["compression"], False, fmt)
            log(f"TTree vs RNTuple read and job rates ({repeats} rounds) ...")
            return rntuple_rates(files, 0, chunksize, repeats)

        r = attempt("rntuple", _rntuple)
        if r:
            res["rntuple"] = r

    res["benchmark_wall_s"] = time.perf_counter() - t_start
    res["load_avg_end"] = list(os.getloadavg())
    out = args.output
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out, "w") as f:
        json.dump(res, f, indent=1, default=str)
    md = os.path.splitext(out)[0] + ".md"
    with open(md, "w") as f:
        f.write(markdown(res))
    print()
    print_table(res)
    print(f"\nwrote {out} and {md}")
    if os.path.exists(out + ".partial"):
        os.remove(out + ".partial")
    shutil.rmtree(os.path.join(bench_dir, "scratch"), ignore_errors=True)
    return 1 if res["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
