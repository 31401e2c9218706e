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

The rate is events per CPU second of the measured section (``time.process_time``: all threads of
this process), which is the AGC's "event rate per worker". Interpreter start-up, imports and model
loading are outside the section and reported separately (``setup_cpu_s``); the parent adds the
whole-process figures from ``wait4``.

    python benchmarks/perfile.py --mode job --file F.root --sample ttbar__nominal --nevts 28000
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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", required=True, choices=["read", "job", "coffea", "ml_split"])
    p.add_argument("--file", required=True)
    p.add_argument("--sample", required=True, help="fileset key the file is processed as")
    p.add_argument("--nevts", type=int, default=None, help="sample nevts for the weight (default: entries)")
    p.add_argument("--chunksize", type=int, default=200_000)
    p.add_argument("--tree-name", default="Events")
    p.add_argument("--ml-kind", default=None)
    p.add_argument("--ml-models", nargs="*", default=[])
    p.add_argument("--output", default=None, help="job mode: partial histogram file to write")
    p.add_argument("--ml-repeats", type=int, default=3, help="ml_split mode: runs of each variant")
    args = p.parse_args(argv)

    from agc_ttbar.processing import branches_needed
    from agc_ttbar.samples import split_sample_key, xsec_weight

    process, variation = split_sample_key(args.sample)
    with_ml = bool(args.ml_kind)
    branches = branches_needed(variation, with_ml)
    result = {"mode": args.mode, "file": args.file, "sample": args.sample, "ml": with_ml,
              "chunksize": args.chunksize}

    if args.mode == "read":
        setup = time.process_time() - _T0_CPU
        r = read_rate(args.file, branches, args.chunksize, args.tree_name)
        result.update(r)
        result.update(bytes_read(args.file, branches, args.tree_name))
    elif args.mode == "job":
        from agc_ttbar.processing import SampleInfo, process_file

        scorer = None
        if with_ml:
            from agc_ttbar.ml.inference import AssignmentScorer

            scorer = AssignmentScorer.from_config(args.ml_kind, args.ml_models, max_n_jets=6, nthread=1)
        import uproot

        with uproot.open(args.file) as f:
            n = f[args.tree_name].num_entries
        nevts = args.nevts or n
        info = SampleInfo.from_key(args.sample, xsec_weight(process, nevts), nevts)
        setup = time.process_time() - _T0_CPU
        c0, w0 = time.process_time(), time.perf_counter()
        hists, meta = process_file(args.file, info, tree_name=args.tree_name, chunksize=args.chunksize,
                                   scorer=scorer, log=lambda msg: None)
        if args.output:
            hists.save(args.output, meta)
        result.update({"entries": meta["entries"], "cpu_s": time.process_time() - c0,
                       "wall_s": time.perf_counter() - w0, "in_job_read_s": meta["timing"]["read_s"],
                       "cutflow": meta["cutflow"]["steps"]})
        if scorer is not None:
            st = scorer.stats.as_dict()
            result["ml_stats"] = st
    elif args.mode == "ml_split":
        setup = time.process_time() - _T0_CPU
        result.update(ml_split(args.file, args.ml_kind, args.ml_models, args.ml_repeats))
    else:
        from coffea_baseline import run_baseline

        import uproot

        with uproot.open(args.file) as f:
            n = f[args.tree_name].num_entries
        setup = time.process_time() - _T0_CPU
        c0, w0 = time.process_time(), time.perf_counter()
        out = run_baseline(args.file, args.sample, args.nevts or n, args.chunksize, args.tree_name)
        result.update({"entries": n, "cpu_s": time.process_time() - c0, "wall_s": time.perf_counter() - w0,
                       "coffea_nevents": sum(out["nevents"].values())})
    result["setup_cpu_s"] = setup
    result["rate_per_core"] = result["entries"] / result["cpu_s"] if result["cpu_s"] > 0 else None
    result["peak_rss_mb"] = _rss_mb()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
