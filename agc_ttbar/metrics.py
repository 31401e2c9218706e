"""Processing metrics like the AGC's (spec 8.1, 10.12): per per-file job and summed over the jobs.

The AGC notebook prints, after its processor run, the entries processed, the process time, the
bytes read, the event rate per worker and the share of the ML inference. Here they come from the
metadata each per-file job writes next to its partial histograms (:func:`agc_ttbar.processing.process_file`):

- ``entries``: events read; ``files``: input files of the job;
- ``process_s`` (CPU seconds of the event loop, the AGC "process time") and ``wall_s``;
- ``bytes_read``: compressed bytes of the baskets of the branches read;
- ``events_per_s_per_worker``: entries / wall seconds of the job (one job = one worker);
- ``ml_s`` and ``ml_share``: seconds in the ML scorer, and their share of the wall time.

The summed block adds them up over all jobs (the rate: all entries / summed wall seconds, i.e. per
worker). Timings vary from run to run; the histograms do not depend on them.
"""

from __future__ import annotations

from typing import Iterable, Mapping


def _rates(entries: int, wall: float, ml_s: float) -> dict:
    return {"events_per_s_per_worker": entries / wall if wall > 0 else None,
            "ml_share": ml_s / wall if wall > 0 else None}


def job_entry(meta: Mapping) -> dict:
    """Metrics of one per-file job from its partial-histogram metadata."""
    files = meta["file"] if isinstance(meta["file"], list) else [meta["file"]]
    t = meta["timing"]
    out = {"sample": meta["sample"], "files": files, "entries": int(meta["entries"]),
           "process_s": float(t["cpu_s"]), "wall_s": float(t["wall_s"]),
           "bytes_read": None if meta.get("bytes_read") is None else int(meta["bytes_read"]), "ml_s": float(meta.get("ml_s", 0.0)),
           "ml": bool(meta.get("ml", False))}
    out.update(_rates(out["entries"], out["wall_s"], out["ml_s"]))
    return out


def summarise(metas: Iterable[Mapping]) -> dict:
    """``{"jobs": [...], "total": {...}}`` over the jobs' metadata."""
    jobs = [job_entry(m) for m in metas]
    total = {"jobs": len(jobs), "files": sum(len(j["files"]) for j in jobs)}
    for k in ("entries", "process_s", "wall_s", "ml_s"):
        total[k] = sum(j[k] for j in jobs)
    # unknown (None) when any input is an RNTuple: uproot exposes no per-field page sizes
    total["bytes_read"] = None if any(j["bytes_read"] is None for j in jobs) else sum(j["bytes_read"] for j in jobs)
    total.update(_rates(total["entries"], total["wall_s"], total["ml_s"]))
    return {"jobs": jobs, "total": total}
