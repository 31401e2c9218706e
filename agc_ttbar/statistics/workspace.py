"""Templates -> pyhf workspace with cabinetry (spec sections 5.2 and 5.4)."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from agc_ttbar.atomic import atomic_write_text

from . import model as stat_model

log = logging.getLogger(__name__)


def build_templates(config: dict[str, Any], *, start: float | None | str = "regions",
                    factor: int | None = None) -> None:
    """Check the inputs, read and rebin every template into HistogramFolder, post-process them.

    ``start="regions"`` (default) rebins to the regions' Binning (:func:`model.rebin_of`);
    ``start=None, factor=1`` reads the histograms unchanged.

    Raises :class:`MissingHistogramError` naming every missing histogram before anything is built.
    """
    import cabinetry

    edges = None
    if start == "regions":
        binnings = {tuple(r["Binning"]) for r in config["Regions"]}
        uniform = stat_model.uniform_rebin(next(iter(binnings))) if len(binnings) == 1 else None
        if uniform is None and len(binnings) == 1:       # variable bins (statistics.fit_bin_edges)
            edges, start, factor = next(iter(binnings)), None, 1
        else:
            start, factor = stat_model.rebin_of(config)
    with stat_model.HistogramReader() as reader:
        stat_model.check_histograms(config, reader)
        cabinetry.templates.build(config, router=stat_model.template_router(config, start, factor, reader,
                                                                             variable_edges=edges))
    cabinetry.templates.postprocess(config)


def build_workspace(config: dict[str, Any]) -> dict[str, Any]:
    """The pyhf workspace of a cabinetry configuration whose templates exist (validated)."""
    import cabinetry

    return cabinetry.workspace.build(config)


def workspace_from_histograms(config: dict[str, Any], **rebin) -> dict[str, Any]:
    """:func:`build_templates` then :func:`build_workspace`."""
    build_templates(config, **rebin)
    return build_workspace(config)


def prune_channels(ws: dict[str, Any], channels: list[str]) -> dict[str, Any]:
    """The workspace without ``channels`` (pyhf ``Workspace.prune``), as a plain dict.

    The pruned workspace is validated against pyhf's schema (``prune`` builds a validated
    ``Workspace``); ``ws`` itself is not validated again: it comes from :func:`build_workspace`,
    which validated it (for the ML model each JSON-schema pass over the full workspace is ~0.3 s).
    """
    import pyhf

    pruned = pyhf.Workspace(ws, validate=False).prune(channels=channels)
    return json.loads(json.dumps(pruned))


def dumps(ws: dict[str, Any]) -> str:
    """Canonical JSON text (sorted keys, fixed indentation): equal workspaces give equal bytes."""
    return json.dumps(ws, sort_keys=True, indent=2) + "\n"


def save(ws: dict[str, Any], path: str) -> None:
    atomic_write_text(path, dumps(ws))


def load(path: str) -> dict[str, Any]:
    with open(path) as f:
        return json.load(f)


def sha256(ws: dict[str, Any]) -> str:
    return hashlib.sha256(dumps(ws).encode()).hexdigest()


def model_and_data(ws: dict[str, Any]):
    """pyhf model and observed data (with auxdata) of a workspace."""
    import cabinetry

    return cabinetry.model_utils.model_and_data(ws)


def summary(ws: dict[str, Any]) -> dict[str, Any]:
    """Channels with their bin counts, samples and parameter count of a workspace, which the caller
    has validated (built or pruned here): it is not validated again."""
    import pyhf

    model = pyhf.Workspace(ws, validate=False).model(validate=False)
    return {"channels": {ch: model.config.channel_nbins[ch] for ch in model.config.channels},
            "samples": list(model.config.samples), "n_parameters": model.config.npars,
            "parameters": list(model.config.par_names)}
