"""Figures of the statistical analysis, in mplhep's CMS style.

Every function draws one kind of figure, writes it in each requested format (atomically, with
date-free metadata so that reruns give identical files) and returns the paths written:

- :func:`data_mc`: stacked MC with the total-uncertainty band, data, and a data/MC panel, per channel
  (pre-fit or post-fit);
- :func:`pulls`: nuisance-parameter pulls (and, separately, the staterror gammas);
- :func:`correlation_matrix`, :func:`ranking`;
- :func:`templates`: nominal vs up/down templates of every systematic, one figure per region and sample.
"""

from __future__ import annotations

import math
import os
import re
from functools import partial
from typing import Any, Callable, Iterable, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import mplhep as hep  # noqa: E402
import numpy as np  # noqa: E402

from agc_ttbar.atomic import atomic_path  # noqa: E402
from agc_ttbar.samples import LUMI_PB  # noqa: E402

#: Metadata per format without creation dates: plots are bitwise reproducible.
_METADATA = {"png": {"Software": None}, "pdf": {"CreationDate": None, "ModDate": None, "Producer": None},
             "svg": {"Date": None}}
#: Colours of the MC samples (matplotlib tab10 entries), fixed per sample name.
SAMPLE_COLOURS = {"ttbar": "#d62728", "W+jets": "#2ca02c", "single top, s-channel": "#9467bd",
                  "single top, t-channel": "#1f77b4", "tW": "#ff7f0e"}


def slug(text: str) -> str:
    """File-name-safe form of a region, sample or parameter name."""
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")


def _style() -> None:
    plt.style.use(hep.style.CMS)
    plt.rcParams.update({"figure.max_open_warning": 0, "savefig.bbox": "tight"})


#: Dataset kinds (config ``dataset``) and the experiment label of their figures.
DATASET_KINDS = ("agc", "mock")


def _label(ax, dataset: str = "agc", fontsize: float | None = None) -> None:
    """"CMS Open Data" for the AGC inputs; the embedded synthetic dataset is not CMS data, so its
    figures say "AGC synthetic data" instead."""
    lumi = round(LUMI_PB / 1000.0, 3)
    # mplhep draws the whole figure to measure the y axis' offset text (x10^n), which the label must
    # clear; without an offset text that draw changes nothing, so it is skipped.
    kw = {"data": True, "lumi": lumi, "com": 13, "ax": ax, "loc": 0, "fontsize": fontsize,
          "scilocator_adjust": _has_offset_text(ax.yaxis)}
    if dataset == "mock":
        hep.label.exp_label(exp="AGC", text="synthetic data", **kw)
    else:
        hep.cms.label("Open Data", **kw)


def _has_offset_text(axis) -> bool:
    """Whether ``axis`` will show an offset or scale text (x10^n) at its current view limits."""
    fmt = axis.get_major_formatter()
    if not (hasattr(fmt, "get_useOffset") and fmt.get_useOffset()):
        return False
    fmt.set_locs(axis.get_majorticklocs())   # what drawing the axis does first
    return bool(fmt.get_offset())


def save(fig, base: str, formats: Sequence[str]) -> list[str]:
    """Write ``fig`` as ``base.<fmt>`` for each format; close it; return the paths.

    With ``savefig.bbox: tight`` (the style's default) the tight bounding box is found once, in one
    layout pass with the Agg renderer, and used for every format: ``savefig`` would lay the whole
    figure out again for each format, a third of the time of saving a data/MC figure as PNG and
    PDF. The PNG is byte-identical to a per-format ``"tight"``; the PDF's page can differ from its
    own tight box by about a point (text metrics of Agg instead of the PDF backend's).
    """
    bbox = None
    if plt.rcParams["savefig.bbox"] == "tight":
        fig.draw_without_rendering()
        bbox = fig.get_tightbbox(fig.canvas.get_renderer()).padded(plt.rcParams["savefig.pad_inches"])
    out = []
    for fmt in formats:
        path = f"{base}.{fmt}"
        # a fixed salt makes SVG element ids reproducible (they are random otherwise)
        with atomic_path(path) as tmp, plt.rc_context({"svg.hashsalt": "agc-ttbar"}):
            fig.savefig(tmp, format=fmt, metadata=_METADATA.get(fmt), dpi=100, bbox_inches=bbox)
        out.append(path)
    plt.close(fig)
    return out


def _stairs_band(ax, edges, low, high, **kw):
    ax.fill_between(edges, np.append(low, low[-1]), np.append(high, high[-1]), step="post", **kw)


# --------------------------------------------------------------------------------------------
# data / MC


def data_mc(prediction, data: Sequence[Sequence[float]], edges: dict[str, Sequence[float]],
            variables: dict[str, str], outdir: str, stage: str, formats: Sequence[str],
            data_label: str = "Pseudodata", dataset: str = "agc") -> list[dict[str, Any]]:
    """One stacked data/MC figure per channel of a cabinetry ``ModelPrediction``.

    ``data`` is the observed data per channel (no auxdata), ``edges`` and ``variables`` give the bin
    edges and axis label per channel name. Returns index entries.
    """
    _style()
    model = prediction.model
    entries = []
    for ich, channel in enumerate(model.config.channels):
        e = np.asarray(edges[channel], dtype=float)
        samples = list(model.config.samples)
        yields = [np.asarray(prediction.model_yields[ich][i], dtype=float) for i in range(len(samples))]
        total = np.sum(yields, axis=0)
        stdev = np.asarray(prediction.total_stdev_model_bins[ich][-1], dtype=float)
        obs = np.asarray(data[ich], dtype=float)
        order = np.argsort([y.sum() for y in yields], kind="stable")  # largest on top

        fig, (ax, rax) = plt.subplots(2, 1, figsize=(10, 10), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1], "hspace": 0.05})
        hep.histplot([yields[i] for i in order], e, stack=True, histtype="fill", ax=ax,
                     label=[samples[i] for i in order],
                     color=[SAMPLE_COLOURS.get(samples[i], None) for i in order], edgecolor="black",
                     linewidth=0.5)
        _stairs_band(ax, e, total - stdev, total + stdev, facecolor="none", edgecolor="grey", hatch="////",
                     linewidth=0, label="Uncertainty")
        hep.histplot(obs, e, yerr=np.sqrt(np.clip(obs, 0, None)), histtype="errorbar", color="black",
                     ax=ax, label=data_label)
        ax.set_ylabel("Events / bin")
        ax.set_ylim(0, 1.75 * max(float(np.max(total + stdev)), float(np.max(obs)), 1e-9))
        handles, labels = ax.get_legend_handles_labels()
        ax.legend(handles[::-1], labels[::-1], loc="upper right", fontsize="x-small", ncols=1)
        ax.text(0.04, 0.95, f"{channel}\n{stage}", transform=ax.transAxes, va="top", fontsize="small")
        _label(ax, dataset)

        safe_total = np.where(total > 0, total, np.nan)
        ratio = obs / safe_total
        _stairs_band(rax, e, 1 - stdev / safe_total, 1 + stdev / safe_total, facecolor="none",
                     edgecolor="grey", hatch="////", linewidth=0)
        rax.errorbar(0.5 * (e[1:] + e[:-1]), ratio, yerr=np.sqrt(np.clip(obs, 0, None)) / safe_total,
                     fmt="o", color="black", markersize=5)
        rax.axhline(1.0, color="black", linestyle="--", linewidth=1)
        finite = ratio[np.isfinite(ratio)]
        spread = max(0.25, float(np.max(np.abs(finite - 1))) * 1.3) if finite.size else 0.5
        rax.set_ylim(1 - min(spread, 1.0), 1 + min(spread, 1.0))
        rax.set_ylabel("Data / MC")
        rax.set_xlabel(variables.get(channel, "observable"))
        rax.set_xlim(e[0], e[-1])
        base = os.path.join(outdir, f"{slug(stage)}_{slug(channel)}")
        entries.append({"kind": "data_mc", "stage": stage, "channel": channel,
                        "files": save(fig, base, formats)})
    return entries


# --------------------------------------------------------------------------------------------
# fit results


def _is_staterror(name: str) -> bool:
    return name.startswith("staterror_")


def pulls(doc: dict[str, Any], prefit_unc: dict[str, float], outdir: str, formats: Sequence[str],
          exclude: Iterable[str] = (), dataset: str = "agc") -> list[dict[str, Any]]:
    """Pull plots: (hat-theta - theta0) / sigma_prefit for the nuisance parameters, and the gammas."""
    _style()
    exclude = set(exclude)
    entries = []
    pars = [p for p in doc["parameters"] if p["name"] not in exclude and prefit_unc.get(p["name"], 0) > 0]
    groups = (("pulls", [p for p in pars if not _is_staterror(p["name"])], 0.0),
              ("pulls_staterror", [p for p in pars if _is_staterror(p["name"])], 1.0))
    for name, group, centre in groups:
        if not group:
            continue
        n = len(group)
        fig, ax = plt.subplots(figsize=(9, 1.5 + 0.45 * n))
        y = np.arange(n)[::-1]
        pull = np.array([(p["value"] - centre) / prefit_unc[p["name"]] for p in group])
        err = np.array([p["uncertainty"] / prefit_unc[p["name"]] for p in group])
        ax.fill_betweenx([-0.5, n - 0.5], -2, 2, color="yellow", alpha=0.8)
        ax.fill_betweenx([-0.5, n - 0.5], -1, 1, color="limegreen", alpha=0.8)
        ax.axvline(0, color="black", linestyle="--", linewidth=1)
        ax.errorbar(pull, y, xerr=err, fmt="o", color="black")
        ax.set_yticks(y)
        ax.set_yticklabels([p["name"] for p in group], fontsize="small")
        ax.set_ylim(-0.5, n - 0.5)
        ax.set_xlim(-3, 3)
        ax.set_xlabel(r"$(\hat{\theta} - \theta_0) / \Delta\theta$")
        ax.minorticks_off()
        _label(ax, dataset, fontsize=14)
        entries.append({"kind": name, "files": save(fig, os.path.join(outdir, name), formats)})
    return entries


def correlation_matrix(doc: dict[str, Any], outdir: str, formats: Sequence[str],
                       dataset: str = "agc") -> list[dict[str, Any]]:
    """Correlation matrix of all fitted parameters (fixed ones, with zero uncertainty, left out)."""
    _style()
    labels = doc["labels"]
    corr = np.asarray(doc["correlation_matrix"], dtype=float)
    keep = [i for i, p in enumerate(doc["parameters"]) if p["uncertainty"] > 0]
    corr = corr[np.ix_(keep, keep)]
    names = [labels[i] for i in keep]
    n = len(names)
    size = max(8.0, 0.42 * n + 3)
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(corr, vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xticklabels(names, rotation=90, fontsize=10)
    ax.set_yticklabels(names, fontsize=10)
    ax.minorticks_off()
    for i in range(n):
        for j in range(n):
            if abs(corr[i, j]) >= 0.05:
                ax.text(j, i, f"{corr[i, j]:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if abs(corr[i, j]) > 0.6 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    _label(ax, dataset, fontsize=14)
    return [{"kind": "correlation_matrix",
             "files": save(fig, os.path.join(outdir, "correlation_matrix"), formats)}]


def ranking(rank: dict[str, Any], prefit_unc: dict[str, float], outdir: str, formats: Sequence[str],
            max_parameters: int = 20) -> list[dict[str, Any]]:
    """Impacts on the POI of the ``max_parameters`` highest-ranked parameters, with their pulls."""
    _style()

    def val(x):
        return 0.0 if x is None else float(x)

    labels = rank["labels"]
    post_up = np.array([val(x) for x in rank["postfit_up"]])
    post_down = np.array([val(x) for x in rank["postfit_down"]])
    pre_up = np.array([val(x) for x in rank["prefit_up"]])
    pre_down = np.array([val(x) for x in rank["prefit_down"]])
    score = np.maximum(np.abs(post_up), np.abs(post_down))
    order = np.argsort(-score, kind="stable")[:max_parameters]
    n = len(order)
    fig, ax = plt.subplots(figsize=(10, 2.0 + 0.5 * n))
    y = np.arange(n)[::-1]
    ax.barh(y, pre_up[order], fill=False, edgecolor="C0", label=r"pre-fit $+\Delta\theta$")
    ax.barh(y, pre_down[order], fill=False, edgecolor="C1", label=r"pre-fit $-\Delta\theta$")
    ax.barh(y, post_up[order], color="C0", alpha=0.8, label=r"post-fit $+\Delta\hat{\theta}$")
    ax.barh(y, post_down[order], color="C1", alpha=0.8, label=r"post-fit $-\Delta\hat{\theta}$")
    lim = 1.1 * max(float(np.max(np.abs(np.concatenate([pre_up[order], pre_down[order], post_up[order],
                                                          post_down[order]])))), 1e-6)
    ax.set_xlim(-lim, lim)
    ax.set_yticks(y)
    ax.set_yticklabels([labels[i] for i in order], fontsize="small")
    ax.set_ylim(-0.5, n + 1.5)
    ax.set_xlabel(rf"$\Delta\,${rank.get('poi', 'POI')}")
    ax.axvline(0, color="black", linewidth=0.8)
    ax.minorticks_off()
    ax.legend(loc="upper right", fontsize="x-small", ncols=2)
    top = ax.twiny()
    centres = np.array([1.0 if _is_staterror(labels[i]) else 0.0 for i in order])
    widths = np.array([prefit_unc.get(labels[i], 0.0) or 1.0 for i in order])
    pull = (np.array(rank["bestfit"])[order] - centres) / widths
    perr = np.array(rank["uncertainty"])[order] / widths
    top.errorbar(pull, y, xerr=perr, fmt="o", color="black", markersize=4)
    top.set_xlim(-2, 2)
    top.set_xlabel(r"$(\hat{\theta} - \theta_0) / \Delta\theta$", fontsize="small")
    top.minorticks_off()
    return [{"kind": "ranking", "files": save(fig, os.path.join(outdir, "ranking"), formats)}]


# --------------------------------------------------------------------------------------------
# templates


def templates(cab_config: dict[str, Any], outdir: str, formats: Sequence[str]) -> list[dict[str, Any]]:
    """Nominal vs up/down templates (as they enter the model) per region and sample.

    One figure per (region, sample) with a panel per shape systematic: yields on top, ratio to the
    nominal below. A symmetrised down variation is drawn as 2*nominal - up (dashed).
    """
    import cabinetry

    _style()
    # Many small panels: minor ticks and tight bounding boxes cost most of the drawing time here.
    with plt.rc_context({"xtick.minor.visible": False, "ytick.minor.visible": False, "savefig.bbox": None}):
        return _templates(cab_config, outdir, formats)


def _templates(cab_config: dict[str, Any], outdir: str, formats: Sequence[str]) -> list[dict[str, Any]]:
    import cabinetry

    folder = cab_config["General"]["HistogramFolder"]
    entries = []
    for region in cab_config["Regions"]:
        for sample in cab_config["Samples"]:
            if sample.get("Data"):
                continue
            systs = [s for s in cab_config.get("Systematics", []) if s["Type"] == "NormPlusShape"
                     and cabinetry.configuration.histogram_is_needed(region, sample, s, "Up")]
            if not systs:
                continue
            nom = cabinetry.histo.Histogram.from_config(folder, region, sample, {}, template=None)
            e = np.asarray(nom.bins, dtype=float)
            ncol = min(3, len(systs))
            nrow = math.ceil(len(systs) / ncol)
            fig = plt.figure(figsize=(6.5 * ncol, 6.5 * nrow))
            outer = fig.add_gridspec(nrow, ncol, hspace=0.3, wspace=0.35, left=0.08, right=0.97,
                                     bottom=0.06, top=0.9)
            for k, syst in enumerate(systs):
                r, c = divmod(k, ncol)
                inner = outer[r, c].subgridspec(2, 1, height_ratios=[3, 1], hspace=0.06)
                ax = fig.add_subplot(inner[0])
                rax = fig.add_subplot(inner[1], sharex=ax)
                up = cabinetry.histo.Histogram.from_config(folder, region, sample, syst, template="Up")
                sym = bool(syst.get("Down", {}).get("Symmetrize"))
                if sym:
                    down_y = 2 * nom.yields - up.yields
                else:
                    down_y = cabinetry.histo.Histogram.from_config(folder, region, sample, syst,
                                                                   template="Down").yields
                hep.histplot(nom.yields, e, yerr=nom.stdev, ax=ax, color="black", label="nominal")
                hep.histplot(up.yields, e, ax=ax, color="tab:red", label="up")
                hep.histplot(down_y, e, ax=ax, color="tab:blue", linestyle="--" if sym else "-",
                             label="down (symmetrised)" if sym else "down")
                ax.set_title(syst["Name"], fontsize="medium")
                ax.legend(fontsize="x-small")
                ax.tick_params(labelbottom=False, labelsize="small")
                ax.set_ylabel("Events / bin", fontsize="small")
                safe = np.where(nom.yields > 0, nom.yields, np.nan)
                for yv, colour, ls in ((up.yields, "tab:red", "-"), (down_y, "tab:blue", "--" if sym else "-")):
                    rax.stairs(yv / safe, e, color=colour, linestyle=ls, baseline=None)
                rel = nom.stdev / safe
                _stairs_band(rax, e, 1 - rel, 1 + rel, color="grey", alpha=0.3, linewidth=0)
                rax.axhline(1, color="black", linewidth=0.8)
                rax.set_ylabel("var / nom", fontsize="small")
                rax.tick_params(labelsize="small")
                rax.set_xlabel(region.get("Variable", "observable"), fontsize="small")
                rax.set_xlim(e[0], e[-1])
            fig.suptitle(f"{region['Name']}: {sample['Name']}", fontsize="large", y=0.96)
            base = os.path.join(outdir, f"templates_{slug(region['Name'])}_{slug(sample['Name'])}")
            entries.append({"kind": "templates", "channel": region["Name"], "sample": sample["Name"],
                            "systematics": [s["Name"] for s in systs], "files": save(fig, base, formats)})
    return entries


# --------------------------------------------------------------------------------------------
# everything

#: The figure tasks of the running make_all, read by forked workers (inherited, not pickled).
_TASKS: list[Callable[[], list[dict[str, Any]]]] = []


def _run_task(i: int) -> list[dict[str, Any]]:
    return _TASKS[i]()


def _draw(tasks: list[Callable[[], list[dict[str, Any]]]], processes: int,
          first: Sequence[int] = ()) -> list[list[dict[str, Any]]]:
    """Run the figure tasks, in forked workers when ``processes`` > 1; results in task order.

    The tasks at indices ``first`` (the largest) are handed out first, so that no worker starts a
    large group when the others are nearly done."""
    from agc_ttbar.parallel import fork_map

    order = list(first) + [i for i in range(len(tasks)) if i not in first]
    _TASKS[:] = tasks
    try:
        done = dict(zip(order, fork_map(_run_task, order, processes)))
    finally:
        _TASKS.clear()
    return [done[i] for i in range(len(tasks))]


def _ml_data_mc(model_ml, fit_ml, *args, **kwargs) -> list[dict[str, Any]]:
    """ML data/MC figures of one stage: the prediction (pre-fit without ``fit_ml``) is made here,
    in the worker that draws them."""
    import cabinetry

    prediction = cabinetry.model_utils.prediction(model_ml, fit_results=fit_ml)
    return [{**e, "kind": "ml_data_mc"} for e in data_mc(prediction, *args, **kwargs)]


def _channel_edges(cab_config: dict[str, Any]) -> tuple[dict[str, list[float]], dict[str, str]]:
    edges = {r["Name"]: r["Binning"] for r in cab_config["Regions"]}
    variables = {r["Name"]: r.get("Variable", "observable") for r in cab_config["Regions"]}
    return edges, variables


def make_all(ws: dict[str, Any], doc: dict[str, Any], cab_config: dict[str, Any], outdir: str,
             formats: Sequence[str], ws_ml: dict[str, Any] | None = None,
             cab_config_ml: dict[str, Any] | None = None,
             include_templates: bool = True, dataset: str = "agc",
             processes: int = 1) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """All statistics figures; returns (index entries, yields table for the summary).

    Figures go to ``outdir``/{data_mc,fit,templates,ml}. ``doc`` is the fit_results.json content.
    ``include_templates=False`` leaves out the template figures, which do not depend on the fit
    (the workflow draws them in their own rule, so a fit-only rerun does not redraw them).
    ``processes`` > 1 draws independent groups of figures (data/MC per stage, pulls, correlations,
    ranking, templates, ML data/MC per stage) in forked workers (:func:`agc_ttbar.parallel.fork_map`);
    the files and the entries, in the same order, do not depend on it.
    """
    import cabinetry

    from .fit import fit_results_from_doc

    model, data = cabinetry.model_utils.model_and_data(ws)
    fit = fit_results_from_doc(doc)
    if list(fit.labels) != list(model.config.par_names):
        raise ValueError("fit_results.json parameters do not match the workspace: rerun the fit")
    obs = cabinetry.model_utils._data_per_channel(model, data)
    edges, variables = _channel_edges(cab_config)
    prefit = cabinetry.model_utils.prediction(model)
    postfit = cabinetry.model_utils.prediction(model, fit_results=fit)
    groups = ("data_mc", "fit") + (("templates",) if include_templates else ()) + (("ml",) if ws_ml is not None else ())
    sub = {k: os.path.join(outdir, k) for k in groups}
    for path in sub.values():
        os.makedirs(path, exist_ok=True)

    # Each task draws a group of figures and returns its index entries; the index keeps this order.
    tasks: list[Callable[[], list[dict[str, Any]]]] = [
        partial(data_mc, prefit, obs, edges, variables, sub["data_mc"], "pre-fit", formats, dataset=dataset),
        partial(data_mc, postfit, obs, edges, variables, sub["data_mc"], "post-fit", formats, dataset=dataset),
    ]
    prefit_unc = dict(zip(model.config.par_names, cabinetry.model_utils.prefit_uncertainties(model)))
    poi = doc["poi"]["name"]
    tasks.append(partial(pulls, doc, prefit_unc, sub["fit"], formats, exclude=[poi], dataset=dataset))
    tasks.append(partial(correlation_matrix, doc, sub["fit"], formats, dataset=dataset))
    if doc.get("ranking"):
        tasks.append(partial(ranking, doc["ranking"], prefit_unc, sub["fit"], formats))
    if include_templates:
        tasks.append(partial(templates, cab_config, sub["templates"], formats))
    ml_tasks: list[int] = []
    if ws_ml is not None:
        model_ml, data_ml = cabinetry.model_utils.model_and_data(ws_ml)
        obs_ml = cabinetry.model_utils._data_per_channel(model_ml, data_ml)
        edges_ml, variables_ml = _channel_edges(cab_config_ml)
        matched = cabinetry.model_utils.match_fit_results(model_ml, fit)
        for stage, fit_ml in (("pre-fit", None), ("post-fit", matched)):
            ml_tasks.append(len(tasks))
            tasks.append(partial(_ml_data_mc, model_ml, fit_ml, obs_ml, edges_ml, variables_ml, sub["ml"],
                                 stage, formats, dataset=dataset))
    # the ML groups (7 figures each) first, then the rest, which are smaller
    entries = [e for group in _draw(tasks, processes, first=ml_tasks) for e in group]

    table = {"channels": {}}
    for ich, channel in enumerate(model.config.channels):
        rows = {}
        for isam, sample in enumerate(model.config.samples):
            rows[sample] = {
                "prefit": float(np.sum(prefit.model_yields[ich][isam])),
                "prefit_unc": float(prefit.total_stdev_model_channels[ich][isam]),
                "postfit": float(np.sum(postfit.model_yields[ich][isam])),
                "postfit_unc": float(postfit.total_stdev_model_channels[ich][isam]),
            }
        rows["total"] = {
            "prefit": float(np.sum(prefit.model_yields[ich])),
            "prefit_unc": float(prefit.total_stdev_model_channels[ich][-1]),
            "postfit": float(np.sum(postfit.model_yields[ich])),
            "postfit_unc": float(postfit.total_stdev_model_channels[ich][-1]),
        }
        table["channels"][channel] = {"samples": rows, "data": float(np.sum(obs[ich]))}
    return entries, table
