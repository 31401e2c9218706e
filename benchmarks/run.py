"""Benchmarks of the workflow (issue 9): speed, scaling and memory, each against its target.

    python benchmarks/run.py                 # everything (`make bench`), ~15-25 min on 2 cores
    python benchmarks/run.py --quick         # tiny files and config: checks the machinery (~2 min)
    python benchmarks/run.py --sections perfile,coffea,memory

Sections (``--sections``, comma-separated; default all):

- ``e2e``: the default workflow from a clean results folder with ``--cores 2``: mock generation,
  then the rest (split by rule from the ``benchmark:`` files, peak RSS per rule), a no-op rerun, and
  a rerun after changing only ``statistics.fit_strategy`` (which rules ran, wall time). Fit time.
- ``scaling``: the per-file stage alone (its outputs removed, then remade) with ``--cores 1`` and
  ``--cores 2``, alternating.
- ``perfile``: on the default mock file of ``ttbar__nominal`` and on a "full layout" mock file
  (every real NanoAOD branch, config ``mock.full_layout``) with the same events, alternating
  raw uproot read / job / read with the ML branches / job with ML, each in a fresh process; events
  per CPU second, their ratio, bytes read per event; ML evaluations per event; the time split of the
  best-permutation search (fused compiled kernel with and without trees; numpy + model.predict).
- ``coffea``: the coffea baseline (``benchmarks/coffea_baseline.py``) in the same rounds as
  ``perfile`` (needs ``perfile``), and our speedup over it.
- ``dataset``: the per-file stage over all files of the default dataset (the e2e run's mock files):
  read / job / read-ML / job-ML per file, alternating; rate = all events / summed CPU seconds.
  The ``perfile`` ttbar file is the worst case of the dataset for ML (three kinematic variations,
  half its events in 4j2b); this is the stage as the workflow runs it.
- ``memory``: the job's peak RSS on a file of 2 chunks and one of 4x its size (8 chunks).
- ``rntuple``: the default ``ttbar__nominal`` mock events written as TTree and as RNTuple
  (``mock.format``), alternating raw read / job per format; read and job rates per CPU second of
  each format, their ratio, and the file sizes.

Every measured piece of work runs in its own child process; repeated measurements alternate
(A, B, A, B, ...) and the report quotes medians (ratios: the median of the per-round ratios).
Outputs: ``results/benchmarks.json`` and ``results/benchmarks.md`` (``--output``); scratch files
under ``results/bench/`` (``--bench-dir``). The user's ``results/`` analysis is not touched.
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

SECTIONS = ("e2e", "scaling", "perfile", "coffea", "dataset", "memory", "rntuple")
BENCH_SAMPLE = "ttbar__nominal"

#: Targets: key -> (description, comparison, threshold). Checked only by reading the output.
TARGETS = {
    "ratio_noml": ("per-file job / raw read rate, no ML", ">=", 0.40),
    "ratio_ml": ("per-file job / raw read rate, with ML", ">=", 0.20),
    "coffea_speedup": ("speedup over the coffea baseline (events/s per core)", ">=", 3.0),
    "e2e_wall_s": ("`make analysis` equivalent after set-up (s)", "<=", 600.0),
    "noop_wall_s": ("no-op rerun (s)", "<=", 10.0),
    "fit_rerun_wall_s": ("fit-setting-only rerun (s)", "<=", 60.0),
    "fit_rerun_only_stat": ("fit-setting rerun runs only statistics rules", "==", True),
    "scaling": ("per-file stage speedup, --cores 2 vs 1", ">=", 1.7),
    "rss_growth": ("peak RSS growth for 4x the file size", "<", 0.20),
    "mock_wall_s": ("mock generation of the default dataset (s)", "<=", 120.0),
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
def perfile_driver(mode: str, path: str, nevts: int, chunksize: int, ml: tuple[str, list[str]] | None,
                   output: str | None = None, sample: str = BENCH_SAMPLE) -> dict:
    cmd = [sys.executable, "benchmarks/perfile.py", "--mode", mode, "--file", path, "--sample", sample,
           "--nevts", str(nevts), "--chunksize", str(chunksize)]
    if ml:
        cmd += ["--ml-kind", ml[0], "--ml-models", *ml[1]]
    if output:
        cmd += ["--output", output]
    r = run_wait4(cmd)
    res = last_json(r["output"])
    res["process_cpu_s"] = r["cpu_s"]
    res["process_wall_s"] = r["wall_s"]
    res["process_peak_rss_mb"] = res["peak_rss_mb"]   # VmHWM of the child: wait4's ru_maxrss includes
    res["wait4_maxrss_mb"] = r["peak_rss_mb"]          # the parent's peak when the parent is larger
    res["process_rate_per_core"] = res["entries"] / r["cpu_s"] if r["cpu_s"] > 0 else None
    return res


def perfile(files: dict[str, str], nevts: int, chunksize: int, ml, repeats: int, with_coffea: bool,
            bench_dir: str) -> dict:
    """Alternating rounds of read / job / read-ML / job-ML (/ coffea) on each file."""
    out = {}
    for label, path in files.items():
        modes = [("read", None), ("job", None), ("read_ml", ml), ("job_ml", ml)]
        if with_coffea:
            modes.append(("coffea", None))
        runs: dict[str, list[dict]] = {m: [] for m, _ in modes}
        for rnd in range(repeats):
            for name, m in modes:
                mode = name.split("_")[0]
                dest = os.path.join(bench_dir, "scratch", f"{label}_{name}.npz") if mode == "job" else None
                runs[name].append(perfile_driver(mode, path, nevts, chunksize, m, dest))
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
                         "process_rate_per_core": median([r["process_rate_per_core"] for r in rs]),
                         "setup_cpu_s": median([r["setup_cpu_s"] for r in rs]),
                         "peak_rss_mb": median([r["process_peak_rss_mb"] for r in rs])}
        res["ratio_noml"] = median([j["rate_per_core"] / r["rate_per_core"] for j, r in zip(runs["job"], runs["read"])])
        res["ratio_ml"] = median([j["rate_per_core"] / r["rate_per_core"]
                                  for j, r in zip(runs["job_ml"], runs["read_ml"])])
        if with_coffea:
            res["coffea_speedup"] = median([j["rate_per_core"] / c["rate_per_core"]
                                            for j, c in zip(runs["job"], runs["coffea"])])
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
    the weight): alternating read / job / read-ML / job-ML per file, per round; rate = all
    entries / summed CPU seconds of a mode."""
    modes = [("read", None), ("job", None), ("read_ml", ml), ("job_ml", ml)]
    rounds = []
    for rnd in range(repeats):
        cpu = {m: 0.0 for m, _ in modes}
        entries = 0
        for sample, path, nevts in files:
            for name, m in modes:
                r = perfile_driver(name.split("_")[0], path, nevts, chunksize, m, sample=sample)
                cpu[name] += r["cpu_s"]
            entries += r["entries"]
        rates = {k: entries / v for k, v in cpu.items()}
        rounds.append(rates)
        log(f"  dataset round {rnd + 1}/{repeats}: " + ", ".join(f"{k} {v:,.0f}/s" for k, v in rates.items()))
    out = {"n_files": len(files), "entries": entries, "rounds": rounds,
           "ratio_noml": median([r["job"] / r["read"] for r in rounds]),
           "ratio_ml": median([r["job_ml"] / r["read_ml"] for r in rounds])}
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
            runs[(kind, fmt)].append(perfile_driver(kind, files[fmt], nevts, chunksize, None))
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
        return f"{v:.1f} s"
    if unit == "MB":
        return f"{v:.0f} MB"
    if unit == "/s":
        return f"{v:,.0f} ev/s"
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def table_rows(res: dict) -> list[tuple[str, str, str, str]]:
    """(figure, value, target, status) rows of the report."""
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
        info_row(f"raw read rate, {tag} ({r['bytes']['n_branches_read']} branches)", fmt(r["read"]["rate_per_core"], "/s"))
        info_row(f"per-file job, no ML, {tag} (events/s per core)", fmt(r["job"]["rate_per_core"], "/s"))
        target_row("ratio_noml", r["ratio_noml"], "%", f"job / raw read, no ML, {tag}")
        info_row(f"raw read rate with ML branches, {tag}", fmt(r["read_ml"]["rate_per_core"], "/s"))
        info_row(f"per-file job with ML, {tag} (events/s per core)", fmt(r["job_ml"]["rate_per_core"], "/s"))
        target_row("ratio_ml", r["ratio_ml"], "%", f"job / raw read, with ML, {tag}")
        if "coffea" in r:
            info_row(f"coffea baseline, {tag} (events/s per core)", fmt(r["coffea"]["rate_per_core"], "/s"))
            target_row("coffea_speedup", r["coffea_speedup"], "x", f"speedup over coffea, no ML, {tag}")
        info_row(f"whole job process incl. start-up, no ML / ML, {tag}",
                 f"{fmt(r['job']['process_rate_per_core'], '/s')} / {fmt(r['job_ml']['process_rate_per_core'], '/s')}")
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
        tag = f"all {d['n_files']} default mock files ({d['entries']:,} events)"
        info_row(f"raw read rate, {tag}", fmt(d["read"]["rate_per_core"], "/s"))
        info_row(f"per-file job, no ML / with ML, {tag}",
                 f"{fmt(d['job']['rate_per_core'], '/s')} / {fmt(d['job_ml']['rate_per_core'], '/s')}")
        target_row("ratio_noml", d["ratio_noml"], "%", f"job / raw read, no ML, {tag}")
        target_row("ratio_ml", d["ratio_ml"], "%", f"job / raw read, with ML, {tag}")
    e = res.get("e2e")
    if e:
        target_row("mock_wall_s", e["mock_generation_wall_s"], "s")
        target_row("e2e_wall_s", e["total_wall_s"], "s")
        target_row("noop_wall_s", e["noop_wall_s"], "s")
        target_row("fit_rerun_wall_s", e["fit_rerun"]["wall_s"], "s")
        target_row("fit_rerun_only_stat", e["fit_rerun"]["only_statistics_rules"], "")
        info_row("fit rule time (fit + Asimov + ranking + GoF as configured)", fmt(e.get("fit_rule_s"), "s"))
    s = res.get("scaling")
    if s:
        info_row("per-file stage wall, --cores 1 / --cores 2",
                 f"{fmt(s['cores1_wall_s'], 's')} / {fmt(s['cores2_wall_s'], 's')} ({s['n_jobs']} jobs)")
        target_row("scaling", s["speedup"], "x")
    m = res.get("memory")
    if m:
        info_row("job peak RSS, file of 2 / 8 chunks",
                 f"{fmt(m['small_peak_rss_mb'], 'MB')} / {fmt(m['big_peak_rss_mb'], 'MB')} (chunksize {m['chunksize']:,})")
        target_row("rss_growth", m["growth"], "%")
    rn = res.get("rntuple")
    if rn:
        tag = f"{rn['entries']:,} ttbar mock events"
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
             "| figure | value | target | status |", "|---|---|---|---|"]
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


def print_table(res: dict) -> None:
    rows = [("figure", "value", "target", "status")] + table_rows(res)
    w = [max(len(r[i]) for r in rows) for i in range(4)]
    for i, r in enumerate(rows):
        print("  ".join(c.ljust(w[j]) for j, c in enumerate(r)))
        if i == 0:
            print("  ".join("-" * x for x in w))


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

    def attempt(name, fn):
        try:
            return fn()
        except Exception as err:  # one failing section must not lose the others' figures
            res["errors"][name] = f"{type(err).__name__}: {str(err)[-2000:]}"
            log(f"section {name} FAILED: {res['errors'][name]}")
            return None

    e2e = None
    if "e2e" in sections:
        from workflow import end_to_end

        e2e = attempt("e2e", lambda: end_to_end(bench_dir, overrides, args.cores, noop_repeats=1 if args.quick else 2,
                                                log=log))
        if e2e:
            res["e2e"] = e2e
    if "scaling" in sections:
        from workflow import scaling

        e2e_cfg, e2e_dir = e2e_paths(e2e, bench_dir)
        if os.path.exists(e2e_cfg) and os.path.isdir(os.path.join(e2e_dir, "partial")):
            s = attempt("scaling", lambda: scaling(e2e_cfg, e2e_dir, repeats=1 if args.quick else 4, log=log))
            if s:
                res["scaling"] = s
        else:
            res["errors"]["scaling"] = "needs the e2e section's outputs (run it first)"

    mcfg = cfg["mock"]
    events = mcfg["events_per_file_overrides"].get(BENCH_SAMPLE, mcfg["events_per_file"])
    chunksize = cfg["processing"]["chunksize"]
    default_file = None
    if e2e:
        from agc_ttbar import layout

        cand = layout.mock_file(e2e["results_dir"], BENCH_SAMPLE, 0)
        default_file = cand if os.path.exists(cand) else None
    files_dir = os.path.join(bench_dir, "files")
    if ("perfile" in sections or "memory" in sections) and default_file is None:
        default_file = os.path.join(files_dir, f"{BENCH_SAMPLE}_{events}.root")
        if not os.path.exists(default_file):
            log(f"generating {default_file} ({events} events) ...")
            attempt("generate_default", lambda: generate(BENCH_SAMPLE, events, default_file, mcfg["seed"],
                                                         mcfg["compression"], False))
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
            log(f"per-file rates ({repeats} rounds; ML {ml[0]}) ...")
            return perfile({"default": default_file, "full_layout": full}, nevts, chunksize, ml, repeats,
                           "coffea" in sections, bench_dir)

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
            ml = models_for_ml(args, cfg, e2e, bench_dir, default_file)
            log(f"per-file stage over {len(files)} files ({max(1, repeats - 1)} rounds) ...")
            return dataset_rates(files, chunksize, ml, max(1, repeats - 1))

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
    shutil.rmtree(os.path.join(bench_dir, "scratch"), ignore_errors=True)
    return 1 if res["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
