"""Whole-workflow measurements with Snakemake (issue 9 items 3-6).

All runs use their own results folder under ``results/bench/`` (config ``results_dir``), so the
user's ``results/`` is never touched. The configuration is the repository's ``config.yaml`` plus a
small override file passed with ``--configfile`` (Snakemake merges it over the Snakefile's).
"""

from __future__ import annotations

import csv
import glob
import os
import re
import shutil
import sys

import yaml

from common import REPO, median, run, run_wait4


def snakemake_cmd(configfile: str, cores: int, targets=(), flags=()) -> list[str]:
    """Targets come first: --configfile, --quiet and --rerun-triggers take several values."""
    return [sys.executable, "-m", "snakemake", *targets, "--cores", str(cores), "--quiet", "rules",
            *flags, "--configfile", configfile]


def write_config(path: str, overrides: dict) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        yaml.safe_dump(overrides, f, sort_keys=False)
    return path


def job_counts(output: str) -> dict[str, int]:
    """Rule -> job count from Snakemake's "Job stats" table (dry run or real run)."""
    counts: dict[str, int] = {}
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("Job stats"):
            for row in lines[i + 1:]:
                parts = row.split()
                if len(parts) == 2 and parts[1].isdigit() and parts[0] not in ("job", "total"):
                    counts[parts[0]] = int(parts[1])
                elif parts and parts[0] == "total":
                    break
            break
    return counts


def statistics_rules() -> set[str]:
    """Rules defined in rules/statistics.smk (the ones a fit-setting change may rerun)."""
    text = (REPO / "rules" / "statistics.smk").read_text()
    return set(re.findall(r"^\s*rule\s+(\w+)\s*:", text, flags=re.M))


def rule_benchmarks(results: str) -> dict[str, dict]:
    """Per rule, from the ``benchmark:`` files: jobs, summed seconds and CPU time, max peak RSS."""
    out: dict[str, dict] = {}
    for path in sorted(glob.glob(os.path.join(results, "benchmarks", "*", "*.tsv"))):
        rule = os.path.basename(os.path.dirname(path))
        with open(path) as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        if not rows:
            continue
        row = rows[-1]

        def num(key):
            try:
                return float(row.get(key, "nan"))
            except ValueError:
                return None

        r = out.setdefault(rule, {"jobs": 0, "seconds_sum": 0.0, "cpu_s_sum": 0.0, "max_rss_mb": 0.0})
        r["jobs"] += 1
        r["seconds_sum"] += num("s") or 0.0
        r["cpu_s_sum"] += num("cpu_time") or 0.0
        rss = num("max_rss")
        if rss is not None and rss == rss:
            r["max_rss_mb"] = max(r["max_rss_mb"], rss)
    return out


def end_to_end(bench_dir: str, overrides: dict, cores: int = 2, noop_repeats: int = 2,
               log=print) -> dict:
    """Clean run (mock stage, then the rest), no-op reruns and a fit-setting-only rerun."""
    results = os.path.join(bench_dir, "e2e")
    cfg = write_config(os.path.join(bench_dir, "configs", "e2e.yaml"), {"results_dir": results, **overrides})
    shutil.rmtree(results, ignore_errors=True)
    mock_inputs = os.path.join(results, "mock", "nanoaod_inputs.json")

    log(f"end-to-end: mock generation ({cores} cores) ...")
    mock = run(snakemake_cmd(cfg, cores, [mock_inputs]))
    log(f"  {mock['wall_s']:.1f} s; the rest of the workflow ...")
    rest = run(snakemake_cmd(cfg, cores))
    log(f"  {rest['wall_s']:.1f} s")
    out = {"results_dir": results, "config_overrides": overrides, "cores": cores,
           "mock_generation_wall_s": mock["wall_s"], "after_mock_wall_s": rest["wall_s"],
           "total_wall_s": mock["wall_s"] + rest["wall_s"], "jobs": job_counts(rest["output"]),
           "per_rule": rule_benchmarks(results)}
    out["jobs"].update(job_counts(mock["output"]))

    noops = []
    for _ in range(noop_repeats):
        r = run(snakemake_cmd(cfg, cores))
        noops.append(r["wall_s"])
        out.setdefault("noop_jobs", job_counts(r["output"]))
    out["noop_wall_s"] = median(noops)
    out["noop_wall_s_all"] = noops
    log(f"  no-op rerun: {out['noop_wall_s']:.1f} s (jobs run: {out['noop_jobs'] or 'none'})")

    # fit setting only: a Minuit strategy different from the default
    stat = dict(overrides.get("statistics", {}))
    stat["fit_strategy"] = 1 if stat.get("fit_strategy") in (None, 0, 2) else 2
    cfg_fit = write_config(os.path.join(bench_dir, "configs", "e2e_fit.yaml"),
                           {"results_dir": results, **overrides, "statistics": stat})
    dry = run(snakemake_cmd(cfg_fit, cores, flags=["-n"]))
    fit = run(snakemake_cmd(cfg_fit, cores))
    jobs = job_counts(fit["output"]) or job_counts(dry["output"])
    allowed = statistics_rules() | {"all"}
    out["fit_rerun"] = {"wall_s": fit["wall_s"], "setting": {"statistics.fit_strategy": stat["fit_strategy"]},
                        "jobs": jobs, "only_statistics_rules": bool(jobs) and set(jobs) <= allowed,
                        "other_rules": sorted(set(jobs) - allowed)}
    log(f"  fit-setting rerun: {fit['wall_s']:.1f} s, jobs {jobs}")
    fit_tsv = os.path.join(results, "benchmarks", "fit", "fit.tsv")
    out["fit_rule_s"] = rule_benchmarks(results).get("fit", {}).get("seconds_sum") if os.path.exists(fit_tsv) else None
    out["cfg"] = cfg
    return out


def partial_targets(results: str) -> list[str]:
    return sorted(glob.glob(os.path.join(results, "partial", "*", "*.npz")))


def scaling(cfg: str, results: str, repeats: int = 2, log=print) -> dict:
    """Wall time of the per-file stage alone with --cores 1 and --cores 2, alternating."""
    targets = partial_targets(results)
    if not targets:
        raise RuntimeError(f"no per-file outputs under {results}/partial: run the end-to-end part first")
    walls: dict[int, list[float]] = {1: [], 2: []}
    order = [1, 2, 2, 1] * ((repeats + 1) // 2)
    for cores in order[: 2 * repeats]:
        shutil.rmtree(os.path.join(results, "partial"), ignore_errors=True)
        r = run(snakemake_cmd(cfg, cores, targets, ["--rerun-triggers", "mtime"]))
        n = job_counts(r["output"]).get("process_file", 0)
        if n != len(targets):
            raise RuntimeError(f"per-file stage ran {n} jobs, expected {len(targets)}:\n{r['output'][-3000:]}")
        walls[cores].append(r["wall_s"])
        log(f"  per-file stage, --cores {cores}: {r['wall_s']:.1f} s ({n} jobs)")
    w1, w2 = median(walls[1]), median(walls[2])
    return {"n_jobs": len(targets), "cores1_wall_s": w1, "cores2_wall_s": w2, "cores1_all": walls[1],
            "cores2_all": walls[2], "speedup": w1 / w2 if w1 and w2 else None}


def _link_tree(src: str, dst: str) -> None:
    """Copy a folder as hard links (same bytes and mtimes, no disk, no regeneration)."""
    for root, _, files in os.walk(src):
        out = os.path.join(dst, os.path.relpath(root, src))
        os.makedirs(out, exist_ok=True)
        for name in files:
            target = os.path.join(out, name)
            if not os.path.exists(target):
                try:
                    os.link(os.path.join(root, name), target)
                except OSError:
                    shutil.copy2(os.path.join(root, name), target)


def pipeline(bench_dir: str, overrides: dict, mock_from: str | None = None, cores_order=(1, 2, 2, 1),
             log=print) -> dict:
    """The default pipeline up to ``histograms.root`` without ML (issue 15): per-file jobs, merges and
    the write, with the mock files and the fileset made already (set-up, not timed).

    Each timed run removes the per-file, merged and written histograms and runs
    ``snakemake histograms.root`` with ``--cores N`` in a fresh process: wall time of the whole
    Snakemake process (DAG building included) and the CPU seconds of its process tree
    (``wait4`` of Snakemake, whose children it waits for). ``cores_order``: the alternation.
    """
    from agc_ttbar import layout

    results = os.path.join(bench_dir, "pipeline")
    cfg = write_config(os.path.join(bench_dir, "configs", "pipeline.yaml"),
                       {"results_dir": results, **overrides, "use_inference": False})
    if mock_from and os.path.isdir(os.path.join(mock_from, "mock")):
        _link_tree(os.path.join(mock_from, "mock"), os.path.join(results, "mock"))
    setup = run(snakemake_cmd(cfg, 2, [layout.fileset(results)]))
    hist = layout.histograms(results)
    walls: dict[int, list[float]] = {}
    cpus: dict[int, list[float]] = {}
    jobs = {}
    for cores in cores_order:
        for sub in ("partial", "merged"):
            shutil.rmtree(os.path.join(results, sub), ignore_errors=True)
        if os.path.exists(hist):
            os.remove(hist)
        r = run_wait4(snakemake_cmd(cfg, cores, [hist], ["--rerun-triggers", "mtime"]))
        jobs = job_counts(r["output"]) or jobs
        walls.setdefault(cores, []).append(r["wall_s"])
        cpus.setdefault(cores, []).append(r["cpu_s"])
        log(f"  pipeline to histograms.root, --cores {cores}: {r['wall_s']:.2f} s wall, {r['cpu_s']:.2f} s CPU "
            f"(load {os.getloadavg()[0]:.1f})")
    with open(hist, "rb") as f:
        import hashlib

        digest = hashlib.sha256(f.read()).hexdigest()
    out = {"results_dir": results, "setup_wall_s": setup["wall_s"], "jobs": jobs, "histograms_sha256": digest,
           "load_avg_end": list(os.getloadavg())}
    for cores in sorted(walls):
        out[f"cores{cores}"] = {"wall_s": median(walls[cores]), "cpu_s": median(cpus[cores]),
                                "wall_all": walls[cores], "cpu_all": cpus[cores]}
    return out
