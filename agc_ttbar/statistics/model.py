"""The cabinetry configuration of the AGC ttbar fit, generated from the workflow configuration.

:func:`cabinetry_config` reproduces ``cabinetry_config.yml`` of the reference (spec section 5.1):
two regions (4j1b CR with H_T, 4j2b SR with m_bjj) binned in 11 bins of 40 GeV from 110 to 550 GeV,
five MC samples plus pseudodata, ten NormPlusShape systematics, a 3% luminosity normalisation and
the POI ``ttbar_norm`` in [0, 10]. Samples missing from the workflow configuration drop out of the
model together with the systematics they feed (ME_var, PS_var, scaleup/scaledown, W+jets scale).

:func:`cabinetry_config_ml` is the ML validation model (spec section 5.4): one region per feature,
the processor's 25 bins, the same samples and systematics.

:func:`template_router` is the cabinetry template builder that reads the 25-bin histograms of
``histograms.root`` with uproot and rebins them with ``h[110j::hist.rebin(2)]`` (spec section 3.3).
A missing histogram raises :class:`MissingHistogramError` naming the key.
"""

from __future__ import annotations

import copy
import os
from typing import Any, Iterable, Sequence

import numpy as np

from agc_ttbar.ml.features import FEATURES
from agc_ttbar.samples import BIN_HIGH, BIN_LOW, NUM_BINS

POI = "ttbar_norm"
MEASUREMENT = "CMS_ttbar"
DATA_SAMPLE = "Pseudodata"
DATA_PATH = "pseudodata"

#: (histogram region, model region name, axis label), spec section 5.1.
REGIONS: tuple[tuple[str, str, str], ...] = (
    ("4j1b", "4j1b CR", "$H_T$ [GeV]"),
    ("4j2b", "4j2b SR", "$m_{bjj}$ [GeV]"),
)
#: Edges of the fit binning: 11 bins of 40 GeV, 110-550 GeV (spec section 3.3).
FIT_BINNING: tuple[float, ...] = tuple(float(110 + 40 * i) for i in range(12))
#: Rebinning of the 25-bin processor histograms: start at this lower edge, merge this many bins.
REBIN_START, REBIN_FACTOR = 110.0, 2


def fit_binning(lower_edge: float = REBIN_START, factor: int = REBIN_FACTOR) -> tuple[float, ...]:
    """Fit edges from ``lower_edge`` to the processor's upper edge in bins of ``factor`` processor bins.

    Config keys ``statistics.fit_lower_edge`` / ``statistics.fit_rebin``; the defaults give
    :data:`FIT_BINNING`. Raises ValueError when the choice does not fit the processor's binning.
    """
    width = (BIN_HIGH - BIN_LOW) / NUM_BINS
    k = (lower_edge - BIN_LOW) / width
    if factor < 1 or k != int(k) or not 0 <= k < NUM_BINS:
        raise ValueError(f"statistics.fit_lower_edge={lower_edge} must be a processor bin edge "
                         f"({BIN_LOW:g} + n*{width:g} below {BIN_HIGH:g}) and statistics.fit_rebin={factor} >= 1")
    n = (NUM_BINS - int(k)) / factor
    if n != int(n):
        raise ValueError(f"statistics.fit_rebin={factor} does not divide the {NUM_BINS - int(k)} processor "
                         f"bins above statistics.fit_lower_edge={lower_edge}")
    return tuple(float(lower_edge + factor * width * i) for i in range(int(n) + 1))


def check_fit_edges(edges: Sequence[float]) -> tuple[float, ...]:
    """Explicit fit edges (config ``statistics.fit_bin_edges``): increasing processor bin edges.

    Raises ValueError naming the key when an edge is off the processor's 20 GeV grid or out of range.
    """
    width = (BIN_HIGH - BIN_LOW) / NUM_BINS
    out = tuple(float(e) for e in edges)
    if len(out) < 2 or any(b <= a for a, b in zip(out, out[1:])):
        raise ValueError(f"statistics.fit_bin_edges={list(out)} must be at least two increasing edges")
    for e in out:
        k = (e - BIN_LOW) / width
        if k != int(k) or not 0 <= k <= NUM_BINS:
            raise ValueError(f"statistics.fit_bin_edges: {e:g} is not a processor bin edge "
                             f"({BIN_LOW:g} + n*{width:g} up to {BIN_HIGH:g})")
    return out


def uniform_rebin(edges: Sequence[float]) -> tuple[float, int] | None:
    """(start, factor) when ``edges`` are ``fit_binning(start, factor)``, else None (variable bins)."""
    width = (BIN_HIGH - BIN_LOW) / NUM_BINS
    factor = int(round((edges[1] - edges[0]) / width))
    try:
        if factor >= 1 and tuple(fit_binning(float(edges[0]), factor)) == tuple(float(e) for e in edges):
            return float(edges[0]), factor
    except ValueError:
        return None
    return None


def rebin_of(config: dict[str, Any]) -> tuple[float, int]:
    """(start, factor) of the rebinning that gives the Binning of the regions of a cabinetry config."""
    width = (BIN_HIGH - BIN_LOW) / NUM_BINS
    edges = {tuple(r["Binning"]) for r in config["Regions"]}
    if len(edges) != 1:
        raise ValueError(f"the regions of the cabinetry config have different binnings: {sorted(edges)}")
    (e,) = edges
    return float(e[0]), int(round((e[1] - e[0]) / width))

#: MC samples of the model in the order of the reference config: (process, model sample name).
MC_SAMPLES: tuple[tuple[str, str], ...] = (
    ("ttbar", "ttbar"),
    ("wjets", "W+jets"),
    ("single_top_s_chan", "single top, s-channel"),
    ("single_top_t_chan", "single top, t-channel"),
    ("single_top_tW", "tW"),
)
SAMPLE_NAME = dict(MC_SAMPLES)

#: ML channels kept in workspace_ml.json (spec section 5.4): features 0, 1, 2, 4, 5, 6, 7.
ML_KEPT_FEATURES: tuple[int, ...] = (0, 1, 2, 4, 5, 6, 7)


class MissingHistogramError(LookupError):
    """A histogram the statistical model needs is absent from the input file."""


def _mc_sample_names(samples: Iterable[str]) -> list[str]:
    present = {key.partition("__")[0] for key in samples if key.endswith("__nominal")}
    return [name for process, name in MC_SAMPLES if process in present]


def systematics(samples: Iterable[str]) -> list[dict[str, Any]]:
    """Systematics of spec section 5.1 that the given fileset keys can feed."""
    samples = set(samples)
    mc = _mc_sample_names(samples)
    out: list[dict[str, Any]] = []

    def one_sided(name: str, path: str, targets: Sequence[str]) -> dict[str, Any]:
        return {"Name": name, "Up": {"VariationPath": path}, "Down": {"Symmetrize": True},
                "Samples": list(targets), "Type": "NormPlusShape"}

    def two_sided(name: str, up: str, down: str, targets: Sequence[str]) -> dict[str, Any]:
        return {"Name": name, "Up": {"VariationPath": up}, "Down": {"VariationPath": down},
                "Samples": list(targets), "Type": "NormPlusShape"}

    if "ttbar__nominal" in samples:
        if "ttbar__ME_var" in samples:
            out.append(one_sided("ME variation", "_ME_var", ["ttbar"]))
        if "ttbar__PS_var" in samples:
            out.append(one_sided("PS variation", "_PS_var", ["ttbar"]))
        if {"ttbar__scaleup", "ttbar__scaledown"} <= samples:
            out.append(two_sided("ttbar scale variations", "_scaleup", "_scaledown", ["ttbar"]))
    out.append(one_sided("Jet energy scale", "_pt_scale_up", mc))
    out.append(one_sided("Jet energy resolution", "_pt_res_up", mc))
    for i in range(4):
        out.append(two_sided(f"b-tag NP {i + 1}", f"_btag_var_{i}_up", f"_btag_var_{i}_down", mc))
    if "wjets__nominal" in samples:
        out.append(two_sided("W+jets scale variations", "_scale_var_up", "_scale_var_down", ["W+jets"]))
    out.append({"Name": "Luminosity", "Up": {"Normalization": 0.03}, "Down": {"Normalization": -0.03},
                "Samples": list(mc), "Type": "Normalization"})
    return out


def _samples_block(samples: Iterable[str]) -> list[dict[str, Any]]:
    samples = list(samples)
    if "ttbar__nominal" not in samples:
        raise ValueError("the statistical model needs the ttbar__nominal sample (config key 'samples'): "
                         "ttbar_norm is its normalisation")
    block = [{"Name": DATA_SAMPLE, "SamplePath": DATA_PATH, "Data": True}]
    present = {key.partition("__")[0] for key in samples if key.endswith("__nominal")}
    block += [{"Name": name, "SamplePath": process} for process, name in MC_SAMPLES if process in present]
    return block


def _general(input_path: str, histogram_folder: str) -> dict[str, Any]:
    return {"Measurement": MEASUREMENT, "POI": POI, "HistogramFolder": histogram_folder.rstrip("/") + "/",
            "InputPath": input_path, "VariationPath": ""}


def cabinetry_config(samples: Iterable[str], histograms_path: str, histogram_folder: str,
                     binning: Sequence[float] = FIT_BINNING) -> dict[str, Any]:
    """The cabinetry configuration of spec section 5.1 for the given fileset keys.

    ``binning``: fit edges of both regions (:func:`fit_binning`; default the AGC's 110-550 GeV in 40 GeV).

    ``histograms_path`` is the histograms.root file and ``histogram_folder`` where cabinetry keeps
    its templates; both are written into the config as given (relative paths are relative to the
    directory cabinetry runs in).
    """
    samples = list(samples)
    return {
        "General": _general(f"{histograms_path}:{{RegionPath}}_{{SamplePath}}{{VariationPath}}",
                            histogram_folder),
        "Regions": [{"Name": name, "RegionPath": path, "Variable": label, "Binning": [float(x) for x in binning]}
                    for path, name, label in REGIONS],
        "Samples": _samples_block(samples),
        "Systematics": systematics(samples),
        "NormFactors": [{"Name": POI, "Samples": "ttbar", "Nominal": 1.0, "Bounds": [0, 10]}],
    }


def cabinetry_config_ml(samples: Iterable[str], histograms_ml_path: str, histogram_folder: str) -> dict[str, Any]:
    """The ML validation model (spec section 5.4): 20 regions Feature0..19, 25 bins each, no rebinning."""
    samples = list(samples)
    regions = []
    for i, (name, low, high) in enumerate(FEATURES):
        edges = np.linspace(low, high, NUM_BINS + 1)
        regions.append({"Name": f"Feature{i}", "RegionPath": name, "Variable": name,
                        "Binning": [float(x) for x in edges]})
    return {
        "General": _general(f"{histograms_ml_path}:{{RegionPath}}_{{SamplePath}}{{VariationPath}}",
                            histogram_folder),
        "Regions": regions,
        "Samples": _samples_block(samples),
        "Systematics": systematics(samples),
        "NormFactors": [{"Name": POI, "Samples": "ttbar", "Nominal": 1.0, "Bounds": [0, 10]}],
    }


def ml_pruned_channels() -> list[str]:
    """Channels removed from the ML workspace (Feature3, Feature8..Feature19)."""
    return [f"Feature{i}" for i in range(len(FEATURES)) if i not in ML_KEPT_FEATURES]


def validate(config: dict[str, Any]) -> None:
    """Validate against cabinetry's schema (raises ``jsonschema.ValidationError``)."""
    import cabinetry

    cabinetry.configuration.validate(config)


def to_yaml(config: dict[str, Any]) -> str:
    """YAML text of a cabinetry configuration, with a header saying where it comes from."""
    import yaml

    header = ("# cabinetry configuration generated by the workflow from config.yaml (AGC spec section 5).\n"
              "# The workflow reads the 25-bin histograms of InputPath and rebins them with h[110j::rebin(2)]\n"
              "# (agc_ttbar.statistics.model.template_router); templates go to HistogramFolder, which must\n"
              "# stay where it is for the workflow. Edits to this file are picked up by the next run.\n")
    return header + yaml.safe_dump(config, sort_keys=False, default_flow_style=None, width=110)


# --------------------------------------------------------------------------------------------
# Histogram keys and the template router


def _histo_path(config: dict[str, Any], region: dict, sample: dict, systematic: dict, template) -> str:
    """``file:key`` of one template, by cabinetry's documented path rules (own code: cabinetry keeps
    its version private). General.InputPath holds ``{RegionPath}``, ``{SamplePath}`` and
    ``{VariationPath}``; region and sample fill the first two; for an Up/Down template the
    systematic's block of that template may override SamplePath and VariationPath, else
    VariationPath is General.VariationPath ("" for nominal)."""
    general = config["General"]
    region_path = region.get("RegionPath")
    sample_path = sample.get("SamplePath")
    variation_path = general.get("VariationPath", "")
    if template is not None:
        overrides = systematic.get(template, {})
        sample_path = overrides.get("SamplePath", sample_path)
        variation_path = overrides.get("VariationPath", variation_path)
    path = general["InputPath"]
    for placeholder, value, owner in (("{RegionPath}", region_path, f"region {region.get('Name')!r}"),
                                      ("{SamplePath}", sample_path, f"sample {sample.get('Name')!r}")):
        if placeholder in path:
            if value is None:
                raise ValueError(f"General.InputPath {path!r} uses {placeholder} but {owner} sets none")
            path = path.replace(placeholder, value)
    return path.replace("{VariationPath}", variation_path)


def _split_path(path: str) -> tuple[str, str]:
    file_path, sep, key = path.rpartition(":")
    if not sep:
        raise ValueError(f"histogram path {path!r} has no ':' between file and histogram name")
    return file_path, key


def required_histograms(config: dict[str, Any]) -> list[tuple[str, str]]:
    """(file, key) of every template the configuration needs, in cabinetry's order."""
    from cabinetry import route

    out: list[tuple[str, str]] = []

    def collect(region, sample, systematic, template):
        out.append(_split_path(_histo_path(config, region, sample, systematic, template)))

    route.apply_to_all_templates(config, collect)
    return out


class HistogramReader:
    """Reads TH1s as ``hist.Hist``, opening each file once (the ML model reads ~1200 templates)."""

    def __init__(self) -> None:
        self._files: dict[str, Any] = {}
        self._keys: dict[str, set[str]] = {}

    def _open(self, path: str):
        import uproot

        if path not in self._files:
            if not os.path.exists(path):
                raise FileNotFoundError(f"histogram file {path} does not exist")
            f = uproot.open(path)
            self._files[path] = f
            self._keys[path] = {k.split(";")[0] for k in f.keys(recursive=False)}
        return self._files[path]

    def keys(self, path: str) -> set[str]:
        self._open(path)
        return self._keys[path]

    def get(self, path: str, key: str):
        f = self._open(path)
        if key not in self._keys[path]:
            raise MissingHistogramError(f"histogram {key!r} is missing from {path}")
        return f[key].to_hist()

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()
        self._keys.clear()

    def __enter__(self) -> "HistogramReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_histograms(config: dict[str, Any], reader: HistogramReader | None = None) -> None:
    """Raise :class:`MissingHistogramError` naming every required histogram absent from its file."""
    own = reader is None
    reader = reader or HistogramReader()
    try:
        missing = [f"{file_path}:{key}" for file_path, key in required_histograms(config)
                   if key not in reader.keys(file_path)]
    finally:
        if own:
            reader.close()
    if not missing:
        return
    data_missing = [m for m in missing if m.endswith(f"_{DATA_PATH}")]
    msg = f"{len(missing)} histogram(s) required by the statistical model are missing: {', '.join(missing)}"
    if data_missing:
        msg += (f". The pseudodata ({', '.join(data_missing)}) is written only when the ttbar ME_var and "
                "PS_var samples and the W+jets nominal sample all have events in that region (spec 7.1)")
    msg += (". A histogram is absent when its in-range sum is zero; remove the sample from config key "
            "'samples' or process more events")
    raise MissingHistogramError(msg)


def read_histogram(file_path: str, key: str):
    """A TH1 of ``file_path`` as a ``hist.Hist`` (weighted storage); MissingHistogramError if absent."""
    with HistogramReader() as reader:
        return reader.get(file_path, key)


def rebin(h, start: float | None = REBIN_START, factor: int = REBIN_FACTOR):
    """``h[start j :: hist.rebin(factor)]``: drop the bins below ``start``, merge ``factor`` bins."""
    import hist

    if start is None and factor == 1:
        return h
    return h[complex(0, start) if start is not None else None::hist.rebin(factor)]


def rebin_edges(h, edges: Sequence[float]):
    """``h`` (processor binning) merged into the bins ``edges`` (processor bin edges, increasing):
    a Variable axis, weighted storage; what falls outside [edges[0], edges[-1]] is dropped (the fit
    reads no flow bins)."""
    import hist

    fine = h.axes[0].edges
    idx = [int(np.argmin(np.abs(fine - e))) for e in edges]
    if not np.allclose(fine[idx], edges):
        raise ValueError(f"fit edges {list(edges)} are not edges of the histogram ({fine.tolist()})")
    view = h.view(flow=False)
    out = hist.Hist(hist.axis.Variable([float(e) for e in edges]), storage=hist.storage.Weight())
    out.view(flow=False).value = np.add.reduceat(view.value, idx[:-1])
    out.view(flow=False).variance = np.add.reduceat(view.variance, idx[:-1])
    return out


def template_router(config: dict[str, Any], start: float | None = REBIN_START, factor: int = REBIN_FACTOR,
                    reader: HistogramReader | None = None, variable_edges: Sequence[float] | None = None):
    """cabinetry Router whose template builder reads each histogram and rebins it (spec 3.3).

    ``start=None, factor=1`` reads the histograms unchanged (the ML model); ``variable_edges`` (variable
    bins, config statistics.fit_bin_edges) merges the processor bins into those instead. The result's edges must
    equal the region's ``Binning``. ``reader`` keeps the input files open (the caller closes it).
    """
    import cabinetry

    router = cabinetry.route.Router()

    @router.register_template_builder()
    def read_and_rebin(region, sample, systematic, template):
        file_path, key = _split_path(_histo_path(config, region, sample, systematic, template))
        h = reader.get(file_path, key) if reader is not None else read_histogram(file_path, key)
        h = rebin_edges(h, variable_edges) if variable_edges is not None else rebin(h, start, factor)
        edges = h.axes[0].edges
        if "Binning" in region and not np.allclose(edges, region["Binning"]):
            raise ValueError(f"histogram {key!r} of {file_path} gives edges {edges.tolist()} after rebinning, "
                             f"region {region['Name']!r} expects {region['Binning']}")
        return h

    return router


def with_paths(config: dict[str, Any], histograms_path: str, histogram_folder: str) -> dict[str, Any]:
    """A copy of ``config`` reading ``histograms_path`` and keeping templates in ``histogram_folder``."""
    new = copy.deepcopy(config)
    _, sep, rest = new["General"]["InputPath"].rpartition(":")
    new["General"]["InputPath"] = f"{histograms_path}:{rest}"
    new["General"]["HistogramFolder"] = histogram_folder.rstrip("/") + "/"
    return new
