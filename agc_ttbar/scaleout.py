"""Scale-out settings derived from the workflow's rules (HTCondor, REANA); used by rules/scaleout.smk.

Each rule declares its memory once, as `resources: mem_mb=...` (an int or a function). Batch systems
want it under other names: the HTCondor executor plugin submits `request_memory` from
`htcondor_request_mem_mb` only (it ignores mem_mb), and REANA's Kubernetes jobs read
`kubernetes_memory_limit`. `derive_batch_resources` adds both to every rule from its mem_mb, after
`--set-resources` and `--default-resources` have been applied. `request_cpus` comes from the rule's
threads (the plugin does that itself).

Works with Snakemake 7.32 (REANA; rule resources are a plain dict) and 8/9 (a Resources mapping).
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

#: Cheap bookkeeping rules (seconds, little memory) that run on the submit node instead of waiting in
#: a batch queue: the fileset, the mock input list, the merges, the small summaries and the cabinetry
#: config. Names the current configuration does not define (e.g. `validate` without a reference) are
#: skipped.
LOCAL_RULES = ("all", "fileset", "mock_inputs", "merge_sample", "write_histograms", "cutflow",
               "validate", "stat_config")


def set_localrules(workflow) -> list[str]:
    """Declare LOCAL_RULES (those that exist) as localrules; returns their names."""
    defined = {rule.name for rule in workflow.rules}
    names = [name for name in LOCAL_RULES if name in defined]
    workflow.localrules(*names)  # what the `localrules:` keyword calls
    return names


def _call_like_snakemake(fn: Callable, wildcards, input, threads, attempt):
    """Call a resource function with the arguments it names, as Snakemake does."""
    offered = {"input": input, "threads": threads, "attempt": attempt}
    params = inspect.signature(fn).parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        kwargs = offered
    else:
        kwargs = {k: v for k, v in offered.items() if k in params}
    return fn(wildcards, **kwargs)


def _derive(value: Any, convert: Callable[[int], Any]):
    """`convert(mem_mb)` for a number, or a resource function that converts after evaluation."""
    if not callable(value):
        return convert(value)

    def derived(wildcards, input, threads, attempt):
        mem_mb = value(wildcards, input, threads, attempt)
        # Not yet known (inputs missing while the DAG is built): hand Snakemake's placeholder back.
        return convert(mem_mb) if isinstance(mem_mb, (int, float)) else mem_mb

    return derived


def kubernetes_limit(mem_mb: float) -> str:
    return f"{int(mem_mb)}Mi"


def derive_batch_resources(workflow) -> None:
    """Add htcondor_request_mem_mb and kubernetes_memory_limit (from mem_mb) to every rule."""
    for rule in workflow.rules:
        res = rule.resources
        if isinstance(res, dict):  # Snakemake 7: plain values and functions
            mem = res.get("mem_mb")
            if mem is None:
                continue
            if callable(mem):
                fn = (lambda w, input, threads, attempt, _f=mem:
                      _call_like_snakemake(_f, w, input, threads, attempt))
            else:
                fn = mem
            res["htcondor_request_mem_mb"] = _derive(fn, int)
            res["kubernetes_memory_limit"] = _derive(fn, kubernetes_limit)
        else:  # Snakemake 8/9: Resource objects; memory in MB as mem_mb or mem
            from snakemake.resources import Resource

            mem = res.get("mem_mb") or res.get("mem")
            if mem is None:
                continue
            if mem.is_evaluable():
                fn = (lambda w, input, threads, attempt, _m=mem:
                      _m.evaluate(w, input=input, threads=threads, attempt=attempt).value)
            else:
                fn = mem.value
                if fn is None:
                    continue
            res["htcondor_request_mem_mb"] = Resource("htcondor_request_mem_mb", _derive(fn, int))
            res["kubernetes_memory_limit"] = Resource("kubernetes_memory_limit",
                                                      _derive(fn, kubernetes_limit))
