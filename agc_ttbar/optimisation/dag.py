"""Inputs, outputs and parameters of the optimisation rules (rules/optimisation.smk holds only rules)."""

from __future__ import annotations

from typing import Any, Callable

from . import columns_file, result


def column_output(config: dict[str, Any], results: str) -> dict[str, str]:
    """Extra named output of the per-file job: {"columns": path} when enabled, else {}."""
    if not config["optimisation"]["enabled"]:
        return {}
    return {"columns": columns_file(results, "{sample}", "{index}")}


def columns_arg(config: dict[str, Any]) -> Callable:
    """Params function of the per-file job: ` --columns PATH` when enabled, else ""."""
    enabled = config["optimisation"]["enabled"]

    def arg(wildcards, output) -> str:
        return f" --columns {output.columns}" if enabled else ""

    return arg


def all_columns(results: str, jobs: dict[str, dict[str, list[str]]], samples: list[str]) -> list[str]:
    """Column files of every per-file job of every sample."""
    return [columns_file(results, s, i) for s in samples for i in jobs[s]]


def outputs(config: dict[str, Any], results: str) -> list[str]:
    """Targets the optimisation adds to `rule all` (none unless enabled)."""
    return [result(results)] if config["optimisation"]["enabled"] else []


def start_edges(config: dict[str, Any]) -> list[float]:
    """Fit bin edges of the configured (ordinary) analysis: the optimiser's starting point."""
    from ..statistics.model import fit_binning

    st = config["statistics"]
    if st["fit_bin_edges"] is not None:
        return [float(e) for e in st["fit_bin_edges"]]
    return list(fit_binning(st["fit_lower_edge"], st["fit_rebin"]))
