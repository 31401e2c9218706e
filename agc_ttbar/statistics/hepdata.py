"""The HEPData record of the fit: tables written with hepdata-lib, checked with hepdata-validator.

Tables (from ``fit_results.json``, the pyhf workspace and the cabinetry config):

1. ``ttbar_norm``: the fitted signal strength with its HESSE (symmetric) and MINOS (asymmetric)
   uncertainties;
2. one table per fit region: pre-fit and post-fit yields per bin with their total uncertainties
   (cabinetry ``model_utils.prediction``), the post-fit yield of each sample, and the data;
3. nuisance-parameter pulls (post-fit value and HESSE uncertainty);
4. the ranking (pre- and post-fit impacts on ttbar_norm), when the fit made one;
5. the correlation matrix of all parameters.

``write_record`` writes the YAML files (``Submission.create_files``) into ``yaml/`` and packs
them into ``submission.tar.gz`` without dates (same inputs, same bytes), then validates the archive as a whole with hepdata-validator's ``FullSubmissionValidator``; any
error raises :class:`HEPDataError` with the validator's messages, so an invalid record fails its
Snakemake job.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any

import numpy as np

ARCHIVE = "submission.tar.gz"


class HEPDataError(RuntimeError):
    """The HEPData submission does not validate; the message lists the validator's errors."""


def _round(values) -> list[float]:
    return [float(f"{v:.6g}") for v in np.asarray(values, dtype=float).ravel()]


def _variable(name: str, values, *, independent: bool, binned: bool = False, units: str = ""):
    from hepdata_lib import Variable

    var = Variable(name, is_independent=independent, is_binned=binned, units=units,
                   zero_uncertainties_warning=False)
    var.digits = 6   # significant digits (hepdata-lib rounds to 5 by default)
    var.values = values
    return var


def _uncertainty(label: str, values, symmetric: bool = True):
    from hepdata_lib import Uncertainty

    unc = Uncertainty(label, is_symmetric=symmetric)
    unc.digits = 6
    unc.values = values
    return unc


def _poi_table(fit: dict):
    from hepdata_lib import Table

    poi = fit["poi"]
    table = Table(f"Fitted {poi['name']}")
    table.description = (f"Maximum-likelihood value of the ttbar normalisation {poi['name']} with its HESSE "
                         "(symmetric) and MINOS (asymmetric) uncertainties.")
    table.keywords["observables"] = ["MU"]
    table.add_variable(_variable("Parameter", [poi["name"]], independent=True))
    value = _variable(poi["name"], _round([poi["value"]]), independent=False)
    value.add_uncertainty(_uncertainty("HESSE", _round([poi["uncertainty"]])))
    minos = poi.get("minos")
    if minos:
        value.add_uncertainty(_uncertainty("MINOS", [tuple(_round([minos["down"], minos["up"]]))], symmetric=False))
    table.add_variable(value)
    return table


def _prediction_tables(workspace: dict, fit: dict, cabinetry_config: dict) -> list:
    import cabinetry
    from hepdata_lib import Table

    model, data = cabinetry.model_utils.model_and_data(workspace)
    labels = list(fit["labels"])
    if labels != list(model.config.par_names):
        raise HEPDataError("fit_results.json labels do not match the workspace parameters: "
                           "the fit is from another workspace (rerun the fit rule)")
    by_name = {p["name"]: p for p in fit["parameters"]}
    results = cabinetry.fit.FitResults(
        np.array([by_name[n]["value"] for n in labels]), np.array([by_name[n]["uncertainty"] for n in labels]),
        labels, np.array(fit["correlation_matrix"]), float(fit["best_twice_nll"]))
    pre = cabinetry.model_utils.prediction(model)
    post = cabinetry.model_utils.prediction(model, fit_results=results)
    binning = {r["Name"]: (list(r["Binning"]), r.get("Variable", "")) for r in cabinetry_config["Regions"]}
    observations = {o["name"]: o["data"] for o in workspace["observations"]}
    tables = []
    for ic, channel in enumerate(model.config.channels):
        edges, variable = binning[channel]
        table = Table(f"Yields {channel}")
        table.description = (f"Pre- and post-fit yields per bin of {variable} in region {channel} with their total "
                             "uncertainties, post-fit yields per sample, and the (pseudo-)data.")
        table.keywords["observables"] = ["N"]
        table.add_variable(_variable(variable or "Bin", [(edges[i], edges[i + 1]) for i in range(len(edges) - 1)],
                                     independent=True, binned=True, units="GeV"))
        for label, pred in (("Pre-fit total", pre), ("Post-fit total", post)):
            var = _variable(label, _round(np.sum(pred.model_yields[ic], axis=0)), independent=False)
            var.add_uncertainty(_uncertainty("total", _round(pred.total_stdev_model_bins[ic][-1])))
            table.add_variable(var)
        for isample, sample in enumerate(model.config.samples):
            table.add_variable(_variable(f"Post-fit {sample}", _round(post.model_yields[ic][isample]),
                                         independent=False))
        table.add_variable(_variable("Data", _round(observations[channel]), independent=False))
        tables.append(table)
    return tables


def _pulls_table(fit: dict, poi: str):
    from hepdata_lib import Table

    params = [p for p in fit["parameters"] if p["name"] != poi]
    table = Table("Nuisance parameter pulls")
    table.description = "Post-fit values and HESSE uncertainties of the nuisance parameters."
    table.add_variable(_variable("Nuisance parameter", [p["name"] for p in params], independent=True))
    var = _variable("Post-fit value", _round([p["value"] for p in params]), independent=False)
    var.add_uncertainty(_uncertainty("HESSE", _round([p["uncertainty"] for p in params])))
    table.add_variable(var)
    return table


def _ranking_table(ranking: dict):
    from hepdata_lib import Table

    table = Table("Nuisance parameter ranking")
    table.description = (f"Impact of each nuisance parameter on {ranking['poi']}: shift of the fitted value when "
                         "the parameter is fixed at its pre-fit or post-fit +/-1 sigma values.")
    table.add_variable(_variable("Nuisance parameter", list(ranking["labels"]), independent=True))
    for key, name in (("prefit_up", "Pre-fit impact up"), ("prefit_down", "Pre-fit impact down"),
                      ("postfit_up", "Post-fit impact up"), ("postfit_down", "Post-fit impact down")):
        table.add_variable(_variable(name, _round(ranking[key]), independent=False))
    return table


def _correlation_table(fit: dict):
    from hepdata_lib import Table

    labels = list(fit["labels"])
    corr = np.asarray(fit["correlation_matrix"], dtype=float)
    table = Table("Correlation matrix")
    table.description = "Correlation coefficients of all fit parameters after the fit."
    n = len(labels)
    table.add_variable(_variable("Parameter 1", [labels[i] for i in range(n) for _ in range(n)], independent=True))
    table.add_variable(_variable("Parameter 2", [labels[j] for _ in range(n) for j in range(n)], independent=True))
    table.add_variable(_variable("Correlation", _round(corr), independent=False))
    return table


def build_submission(workspace: dict, fit: dict, cabinetry_config: dict):
    """The hepdata_lib ``Submission`` of the fit."""
    from hepdata_lib import Submission

    sub = Submission()
    sub.comment = ("AGC CMS Open Data ttbar analysis (Snakemake workflow): binned profile-likelihood fit of "
                   "the ttbar normalisation in the 4j1b and 4j2b regions (pyhf workspace, cabinetry).")
    tables = [_poi_table(fit), *_prediction_tables(workspace, fit, cabinetry_config),
              _pulls_table(fit, fit["poi"]["name"])]
    if fit.get("ranking"):
        tables.append(_ranking_table(fit["ranking"]))
    tables.append(_correlation_table(fit))
    for table in tables:
        sub.add_table(table)
    return sub


def validate_archive(archive: str) -> None:
    """Raise :class:`HEPDataError` unless ``archive`` is a valid HEPData submission."""
    from hepdata_validator.full_submission_validator import FullSubmissionValidator

    validator = FullSubmissionValidator()
    if not validator.validate(archive=archive):
        lines = [f"{os.path.basename(f)}: {m.message}" for f, msgs in validator.get_messages().items()
                 for m in msgs]
        raise HEPDataError(f"HEPData submission {archive} is invalid:\n  " + "\n  ".join(lines or ["(no message)"]))


def _pack(folder: str, archive: str) -> None:
    """The submission archive, reproducibly (sorted names, no dates, no owners)."""
    import gzip
    import tarfile

    with open(archive, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(os.listdir(folder)):
            info = tar.gettarinfo(os.path.join(folder, name), arcname=name)
            info.mtime, info.uid, info.gid, info.uname, info.gname, info.mode = 0, 0, 0, "", "", 0o644
            with open(os.path.join(folder, name), "rb") as fh:
                tar.addfile(info, fh)


def write_record(workspace_path: str, fit_path: str, cabinetry_config_path: str, outdir: str) -> str:
    """Write the record into ``outdir`` (YAML files + submission.tar.gz), validated; returns the archive."""
    import yaml

    with open(workspace_path) as f:
        workspace = json.load(f)
    with open(fit_path) as f:
        fit = json.load(f)
    with open(cabinetry_config_path) as f:
        cabinetry_config = yaml.safe_load(f)
    sub = build_submission(workspace, fit, cabinetry_config)
    parent = os.path.dirname(os.path.abspath(outdir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-hepdata-", dir=parent)
    try:
        yamls = os.path.join(tmp, "yaml")
        cwd = os.getcwd()
        os.chdir(tmp)   # hepdata-lib writes its tarball into the current directory
        try:
            sub.create_files(yamls, validate=False, remove_old=True)
        finally:
            os.chdir(cwd)
        _pack(yamls, os.path.join(tmp, ARCHIVE))
        validate_archive(os.path.join(tmp, ARCHIVE))
        if os.path.isdir(outdir):
            shutil.rmtree(outdir)
        os.replace(tmp, outdir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return os.path.join(outdir, ARCHIVE)
