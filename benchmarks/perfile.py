"""One per-file measurement in a fresh process; prints one JSON line (run by benchmarks/run.py).

Modes, all on the same file and the same branches in the same chunks:

- ``read``: uproot opens the file and reads the branches the job reads (without ML, or with ML
  with ``--ml-kind``), chunk by chunk, and does nothing else: the raw read + decompress rate;
- ``job``: :func:`agc_ttbar.processing.process_file`, the per-file job's core (with the ML scorer
  when ``--ml-kind`` is given) and writing its partial histograms as the rule does;
- ``coffea``: the coffea baseline of ``benchmarks/coffea_baseline.py`` (no ML);
- ``ml_split``: the 4j2b events (nominal jets) of the file scored by the best-permutation search,
  alternating: the fused compiled search, the same kernel with an empty forest (everything but the
  trees: its share is the feature-building share), and the numpy features + ``model.predict`` path
  (its own feature / model split). Best of ``--ml-repeats`` runs each.

The measured section is timed in CPU seconds (``time.process_time``: all threads of this process).
Interpreter start-up, imports and model loading are outside it and reported separately
(``setup_cpu_s``); the parent adds the whole-process figures from ``wait4``. With ``--warmup`` the
work is first done once, untimed, on the first file (first-chunk set-up: lazy imports, first calls,
compiled kernels), so the section is the steady state (the marginal cost of more events). Several
``--file`` (with as many ``--sample`` and ``--nevts``) are measured one after the other in the same
section (the ``dataset`` figures of ``run.py``).

A rate is only quoted by ``run.py`` as a marginal (steady-state) rate: from ``--warmup`` sections,
or from the difference of two files of N and 10N events (whole processes, start-up cancels).

    python benchmarks/perfile.py --mode job --file F.root --sample ttbar__nominal --nevts 28000
    python benchmarks/perfile.py --mode read --warmup --file A.root B.root --sample s1 s2 --nevts 10 20
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

_T0_CPU = time.process_time()

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def _rss_mb() -> float:
    """Peak RSS of this process image: VmHWM (ru_maxrss would include the parent's peak, which
    Linux carries over fork + exec)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def read_rate(path: str, branches: list[str], chunksize: int, tree_name: str) -> dict:
    import uproot

    from agc_ttbar import rntuple

    c0, w0 = time.process_time(), time.perf_counter()
    with uproot.open(path) as f:
        tree = f[tree_name]
        if rntuple.is_rntuple(tree):     # the same NanoAOD branches, through the job's RNTuple view
            tree = rntuple.NanoAODView(tree)
        n = tree.num_entries
        for lo in range(0, n, chunksize):
            arrays = tree.arrays(branches, entry_start=lo, entry_stop=min(n, lo + chunksize), how=dict)
            del arrays
    return {"entries": n, "cpu_s": time.process_time() - c0, "wall_s": time.perf_counter() - w0}


def bytes_read(path: str, branches: list[str], tree_name: str) -> dict:
    """Compressed bytes of the branches read (their baskets) and of the whole file, per event."""
    import uproot

    from agc_ttbar import rntuple

    with uproot.open(path) as f:
        tree = f[tree_name]
        n = max(tree.num_entries, 1)
        if rntuple.is_rntuple(tree):     # uproot gives no per-field byte count of an RNTuple
            return {"file_bytes_per_event": os.path.getsize(path) / n, "n_branches_read": len(branches),
                    "format": "rntuple"}
        read = sum(tree[b].compressed_bytes for b in branches)
        all_branches = sum(b.compressed_bytes for b in tree.itervalues(recursive=True))
    size = os.path.getsize(path)
    return {"branches_bytes_per_event": read / n, "file_bytes_per_event": size / n,
            "tree_bytes_per_event": all_branches / n, "read_fraction": read / size,
            "n_branches_read": len(branches), "n_branches_file": len(tree.keys())}


def ml_split(path: str, kind: str, models: list[str], repeats: int) -> dict:
    """CPU seconds of the best-permutation search on the file's 4j2b events, three ways."""
    import awkward as ak
    import uproot

    from agc_ttbar.ml import dataset
    from agc_ttbar.ml.inference import AssignmentScorer

    with uproot.open(path) as f:
        arrays = f["Events"].arrays(list(dataset.BRANCHES))
    ev, jets, lepton, _ = dataset.selected_4j2b(arrays)
    event = ak.to_numpy(ev.event)
    fused = AssignmentScorer.from_config(kind, models, max_n_jets=6, nthread=1, compiled=True)
    plain = AssignmentScorer.from_config(kind, models, max_n_jets=6, nthread=1, compiled=False)
    out = {"selected_events": int(len(event)), "compiled": fused.compiled}
    variants = {"plain": plain}
    if fused.compiled:
        empty = AssignmentScorer.from_config(kind, models, max_n_jets=6, nthread=1, compiled=True)
        for m in empty.models:
            m.forest = m.forest.without_trees()
        variants.update(fused=fused, no_trees=empty)
        fused.best(jets, lepton, event)                    # first call: load the compiled kernel
    cpu = {k: [] for k in variants}
    for _ in range(repeats):
        for name, scorer in variants.items():
            c0 = time.process_time()
            scorer.best(jets, lepton, event)
            cpu[name].append(time.process_time() - c0)
    out.update({f"{k}_cpu_s": min(v) for k, v in cpu.items()})
    st = plain.stats
    out["plain_feature_share"] = st.seconds_features / (st.seconds_features + st.seconds_model)
    out["evaluations_per_event"] = st.n_evaluations / max(st.n_events, 1)
    out["evaluations_per_cpu_s_plain"] = len(event) * out["evaluations_per_event"] / out["plain_cpu_s"]
    if fused.compiled:
        out["fused_feature_share"] = out["no_trees_cpu_s"] / out["fused_cpu_s"]
        out["fused_speedup"] = out["plain_cpu_s"] / out["fused_cpu_s"]
        out["evaluations_per_cpu_s_fused"] = len(event) * out["evaluations_per_event"] / out["fused_cpu_s"]
    out["entries"] = int(len(arrays))
    out["cpu_s"] = out.get("fused_cpu_s", out["plain_cpu_s"])
    return out


def _job_once(path: str, sample: str, nevts: int | None, chunksize: int, tree_name: str, scorer,
              output: str | None) -> dict:
    """The per-file job's core on one file (and its partial histogram file, as the rule writes it)."""
    import uproot

    from agc_ttbar.processing import SampleInfo, process_file
    from agc_ttbar.samples import split_sample_key, xsec_weight

    with uproot.open(path) as f:
        n = f[tree_name].num_entries
    nevts = nevts or n
    info = SampleInfo.from_key(sample, xsec_weight(split_sample_key(sample)[0], nevts), nevts)
    hists, meta = process_file(path, info, tree_name=tree_name, chunksize=chunksize, scorer=scorer,
                               log=lambda msg: None)
    if output:
        hists.save(output, meta)
    return meta


def _coffea_once(path: str, sample: str, nevts: int | None, chunksize: int, tree_name: str) -> int:
    """The coffea baseline on one file; returns the events it saw."""
    import uproot
    from coffea_baseline import run_baseline

    with uproot.open(path) as f:
        n = f[tree_name].num_entries
    out = run_baseline(path, sample, nevts or n, chunksize, tree_name)
    return sum(out["nevents"].values())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", required=True, choices=["read", "job", "coffea", "ml_split"])
    p.add_argument("--file", required=True, nargs="+", help="input file(s), measured in order")
    p.add_argument("--sample", required=True, nargs="+",
                   help="fileset key each file is processed as (one, or one per --file)")
    p.add_argument("--nevts", type=int, nargs="*", default=None,
                   help="sample nevts for the weight (default: entries), one or one per --file")
    p.add_argument("--chunksize", type=int, default=200_000)
    p.add_argument("--tree-name", default="Events")
    p.add_argument("--ml-kind", default=None)
    p.add_argument("--ml-models", nargs="*", default=[])
    p.add_argument("--output", default=None, help="job mode: partial histogram file to write (one file)")
    p.add_argument("--ml-repeats", type=int, default=3, help="ml_split mode: runs of each variant")
    p.add_argument("--warmup", action="store_true",
                   help="do the work once untimed on the first file first: steady-state section")
    args = p.parse_args(argv)

    files = args.file
    samples = args.sample * len(files) if len(args.sample) == 1 else args.sample
    nevts = args.nevts or [None]
    nevts = nevts * len(files) if len(nevts) == 1 else nevts
    if len(samples) != len(files) or len(nevts) != len(files):
        p.error("--sample and --nevts take one value or one per --file")

    from agc_ttbar.processing import branches_needed
    from agc_ttbar.samples import split_sample_key

    with_ml = bool(args.ml_kind)
    result = {"mode": args.mode, "file": files[0] if len(files) == 1 else files, "sample": samples[0],
              "ml": with_ml, "chunksize": args.chunksize, "warmup": args.warmup, "n_files": len(files)}

    if args.mode == "ml_split":
        setup = time.process_time() - _T0_CPU
        result.update(ml_split(files[0], args.ml_kind, args.ml_models, args.ml_repeats))
    else:
        scorer = None
        if args.mode == "job" and with_ml:
            from agc_ttbar.ml.inference import AssignmentScorer

            scorer = AssignmentScorer.from_config(args.ml_kind, args.ml_models, max_n_jets=6, nthread=1)
        if args.mode == "coffea":
            import coffea_baseline  # noqa: F401  (imports outside the section)

            coffea_baseline._import_coffea()

        def once(k: int, output: str | None = None) -> dict:
            branches = branches_needed(split_sample_key(samples[k])[1], with_ml)
            if args.mode == "read":
                return read_rate(files[k], branches, args.chunksize, args.tree_name)
            if args.mode == "job":
                meta = _job_once(files[k], samples[k], nevts[k], args.chunksize, args.tree_name, scorer, output)
                return {"entries": meta["entries"], "in_job_read_s": meta["timing"]["read_s"],
                        "cutflow": meta["cutflow"]["steps"]}
            return {"entries": _coffea_once(files[k], samples[k], nevts[k], args.chunksize, args.tree_name)}

        if args.warmup:
            once(0)
            if scorer is not None:
                scorer.stats = type(scorer.stats)()
        setup = time.process_time() - _T0_CPU
        c0, w0 = time.process_time(), time.perf_counter()
        parts = [once(k, args.output if len(files) == 1 else None) for k in range(len(files))]
        result.update({"entries": sum(r["entries"] for r in parts), "cpu_s": time.process_time() - c0,
                       "wall_s": time.perf_counter() - w0})
        if args.mode == "job":
            result["in_job_read_s"] = sum(r["in_job_read_s"] for r in parts)
            result["cutflow"] = parts[0]["cutflow"]
            if scorer is not None:
                result["ml_stats"] = scorer.stats.as_dict()
        if args.mode == "read":
            result.update(bytes_read(files[0], branches_needed(split_sample_key(samples[0])[1], with_ml),
                                     args.tree_name))
    result["setup_cpu_s"] = setup
    result["rate_per_core"] = result["entries"] / result["cpu_s"] if result["cpu_s"] > 0 else None
    result["peak_rss_mb"] = _rss_mb()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
