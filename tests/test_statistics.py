"""Statistical model, workspace, fit, ranking, plots (issue 5).

The main fixture turns the AGC reference histograms for N=5 (``histos_5_file_per_process.json``)
into a histograms.root: the JSON stores sums of weights only, so each variance is rebuilt as
w x content with the sample's constant N=5 weight (spec 1.3, 1.5).
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import hist
import numpy as np
import pytest
import uproot
import yaml

from agc_ttbar import layout
from agc_ttbar.config import validate_config
from agc_ttbar.samples import PROCESSES, xsec_weight
from agc_ttbar.statistics.model import MissingHistogramError
from agc_ttbar.statistics import fit as stat_fit
from agc_ttbar.statistics import model as stat_model
from agc_ttbar.statistics import workspace as stat_ws
from conftest import REPO, data_path

#: Per-sample event sums for N_FILES_MAX_PER_SAMPLE = 5 (spec 1.5): the weight denominators.
NEVTS_N5 = {
    ("ttbar", "nominal"): 6_389_801, ("ttbar", "scaledown"): 6_527_925, ("ttbar", "scaleup"): 6_282_650,
    ("ttbar", "ME_var"): 5_482_617, ("ttbar", "PS_var"): 6_527_901,
    ("single_top_s_chan", "nominal"): 2_751_999, ("single_top_t_chan", "nominal"): 6_120_908,
    ("single_top_tW", "nominal"): 1_999_400, ("wjets", "nominal"): 5_913_030,
}
ALT_SAMPLES = ("ME_var", "PS_var", "scaleup", "scaledown")
ALL_SAMPLES = validate_config({})["samples"]


def sample_weight(key: str) -> float | None:
    """Constant N=5 event weight of the sample a histogram key belongs to (None for pseudodata)."""
    rest = key.split("_", 1)[1]
    for process in sorted(PROCESSES, key=len, reverse=True):
        if rest == process or rest.startswith(process + "_"):
            variation = rest[len(process) + 1:] or "nominal"
            sample = variation if variation in ALT_SAMPLES else "nominal"
            return xsec_weight(process, NEVTS_N5[(process, sample)])
    assert rest == "pseudodata", key
    return None


def write_histograms(path, contents: dict[str, np.ndarray]) -> None:
    """TH1D per key: 25 bins 50-550 with flow; variance w x content (data: content)."""
    with uproot.recreate(path) as f:
        for key, c in contents.items():
            h = hist.Hist.new.Reg(25, 50, 550).Weight()
            w = sample_weight(key)
            h.view(flow=True)["value"] = c
            h.view(flow=True)["variance"] = c * (w if w is not None else 1.0)
            f[key] = h


@pytest.fixture(scope="module")
def reference5() -> dict[str, np.ndarray]:
    path = data_path("agc", "reference", "histos_5_file_per_process.json")
    with open(path) as f:
        ref = json.load(f)
    return {k: np.asarray(v["contents"], dtype=float) for k, v in ref.items()}


def build(tmp, contents, samples=ALL_SAMPLES):
    """histograms.root -> cabinetry config -> workspace, in folder ``tmp``."""
    hpath = str(tmp / "histograms.root")
    write_histograms(hpath, contents)
    cfg = stat_model.cabinetry_config(samples, hpath, str(tmp / "templates"))
    stat_model.validate(cfg)
    return cfg, stat_ws.workspace_from_histograms(cfg)


@pytest.fixture(scope="module")
def ref_workspace(reference5, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ref5")
    cfg, ws = build(tmp, reference5)
    return tmp, cfg, ws


@pytest.fixture(scope="module")
def ref_analysis(ref_workspace):
    """Fit, Asimov fit and goodness of fit of the reference model (ranking tested separately)."""
    _, _, ws = ref_workspace
    doc, _ = stat_fit.analyse(ws, poi="ttbar_norm", do_ranking=False)
    return doc


# ------------------------------------------------------------------------------------------------
# model / config


def test_config_reproduces_spec_5_1():
    cfg = stat_model.cabinetry_config(ALL_SAMPLES, "results/histograms.root", "results/statistics/templates")
    stat_model.validate(cfg)
    assert cfg["General"]["POI"] == "ttbar_norm" and cfg["General"]["Measurement"] == "CMS_ttbar"
    assert cfg["General"]["InputPath"] == "results/histograms.root:{RegionPath}_{SamplePath}{VariationPath}"
    assert [(r["Name"], r["RegionPath"]) for r in cfg["Regions"]] == [("4j1b CR", "4j1b"), ("4j2b SR", "4j2b")]
    for r in cfg["Regions"]:
        assert r["Binning"] == [110, 150, 190, 230, 270, 310, 350, 390, 430, 470, 510, 550]
    assert [(s["Name"], s["SamplePath"]) for s in cfg["Samples"]] == [
        ("Pseudodata", "pseudodata"), ("ttbar", "ttbar"), ("W+jets", "wjets"),
        ("single top, s-channel", "single_top_s_chan"), ("single top, t-channel", "single_top_t_chan"),
        ("tW", "single_top_tW")]
    assert cfg["Samples"][0]["Data"] is True
    syst = {s["Name"]: s for s in cfg["Systematics"]}
    assert list(syst) == ["ME variation", "PS variation", "ttbar scale variations", "Jet energy scale",
                          "Jet energy resolution", "b-tag NP 1", "b-tag NP 2", "b-tag NP 3", "b-tag NP 4",
                          "W+jets scale variations", "Luminosity"]
    assert syst["ME variation"]["Up"] == {"VariationPath": "_ME_var"}
    assert syst["ME variation"]["Down"] == {"Symmetrize": True} and syst["ME variation"]["Samples"] == ["ttbar"]
    assert syst["ttbar scale variations"]["Down"] == {"VariationPath": "_scaledown"}
    assert syst["Jet energy resolution"]["Up"] == {"VariationPath": "_pt_res_up"}
    assert syst["b-tag NP 3"]["Up"] == {"VariationPath": "_btag_var_2_up"}
    assert syst["b-tag NP 3"]["Down"] == {"VariationPath": "_btag_var_2_down"}
    assert len(syst["b-tag NP 3"]["Samples"]) == 5
    assert syst["W+jets scale variations"]["Samples"] == ["W+jets"]
    assert syst["Luminosity"] == {"Name": "Luminosity", "Type": "Normalization", "Up": {"Normalization": 0.03},
                                  "Down": {"Normalization": -0.03}, "Samples": syst["Luminosity"]["Samples"]}
    assert all(s["Type"] == "NormPlusShape" for n, s in syst.items() if n != "Luminosity")
    assert cfg["NormFactors"] == [{"Name": "ttbar_norm", "Samples": "ttbar", "Nominal": 1.0, "Bounds": [0, 10]}]
    # the YAML written for users round-trips
    assert yaml.safe_load(stat_model.to_yaml(cfg)) == cfg


def test_removed_samples_drop_their_systematics():
    samples = [s for s in ALL_SAMPLES if s not in ("ttbar__ME_var", "ttbar__scaleup", "single_top_tW__nominal")]
    cfg = stat_model.cabinetry_config(samples, "h.root", "t")
    names = [s["Name"] for s in cfg["Systematics"]]
    assert "ME variation" not in names and "ttbar scale variations" not in names
    assert "PS variation" in names
    assert "tW" not in [s["Name"] for s in cfg["Samples"]]
    assert "tW" not in cfg["Systematics"][-1]["Samples"]
    with pytest.raises(ValueError, match="ttbar__nominal"):
        stat_model.cabinetry_config([s for s in ALL_SAMPLES if s != "ttbar__nominal"], "h.root", "t")


def test_required_keys_are_the_124_minus_unused():
    cfg = stat_model.cabinetry_config(ALL_SAMPLES, "h.root", "t")
    keys = {k for _, k in stat_model.required_histograms(cfg)}
    # 62 per region: ttbar 15, wjets 13, single top 3 x 11, pseudodata 1
    assert len(keys) == 124
    assert {"4j1b_ttbar_ME_var", "4j2b_wjets_scale_var_down", "4j2b_pseudodata", "4j1b_single_top_tW_pt_res_up",
            "4j2b_single_top_t_chan_btag_var_3_down"} <= keys


def test_template_paths_follow_cabinetry_rules_without_its_private_api():
    """Own _histo_path (cabinetry keeps its own private): region/sample placeholders, Up/Down
    overrides of SamplePath and VariationPath, a clear error for a missing placeholder value."""
    import inspect

    cfg = stat_model.cabinetry_config(ALL_SAMPLES, "h.root", "t")
    assert "cabinetry.templates.collector" not in inspect.getsource(stat_model)
    region = cfg["Regions"][0]
    ttbar = next(s for s in cfg["Samples"] if s.get("SamplePath") == "ttbar")
    me = next(s for s in cfg["Systematics"] if s["Name"] == "ME variation")
    assert stat_model._histo_path(cfg, region, ttbar, {}, None) == f"h.root:{region['RegionPath']}_ttbar"
    assert stat_model._histo_path(cfg, region, ttbar, me, "Up") == \
        f"h.root:{region['RegionPath']}_ttbar{me['Up']['VariationPath']}"
    custom = {"Name": "s", "Up": {"SamplePath": "other", "VariationPath": "_x"}}
    assert stat_model._histo_path(cfg, region, ttbar, custom, "Up") == f"h.root:{region['RegionPath']}_other_x"
    with pytest.raises(ValueError, match="RegionPath.*region 'R'"):
        stat_model._histo_path(cfg, {"Name": "R"}, ttbar, {}, None)


def test_rebinning_router_gives_spec_yields(reference5, tmp_path):
    """h[110j::rebin(2)] of the N=5 reference equals the fit-input yields listed in spec 7.2."""
    write_histograms(tmp_path / "h.root", {k: reference5[k] for k in ("4j1b_ttbar", "4j2b_pseudodata")})
    h = stat_model.rebin(stat_model.read_histogram(str(tmp_path / "h.root"), "4j1b_ttbar"))
    assert h.axes[0].edges.tolist() == list(stat_model.FIT_BINNING)
    np.testing.assert_allclose(h.values(), [60.576, 1183.351, 3202.804, 3844.060, 3456.297, 2784.946,
                                            2162.983, 1612.013, 1203.415, 886.260, 688.327], atol=1e-3)
    w = sample_weight("4j1b_ttbar")
    np.testing.assert_allclose(h.variances(), w * h.values(), rtol=1e-12)
    d = stat_model.rebin(stat_model.read_histogram(str(tmp_path / "h.root"), "4j2b_pseudodata"))
    np.testing.assert_allclose(d.values(), [9013.694, 14149.958, 8273.903, 5551.380, 4071.319, 2942.686,
                                            2220.117, 1709.770, 1323.638, 1049.317, 773.081], atol=1e-3)


# ------------------------------------------------------------------------------------------------
# workspace and fit on the AGC reference


def test_reference_workspace_structure(ref_workspace):
    _, _, ws = ref_workspace
    info = stat_ws.summary(ws)
    assert info["channels"] == {"4j1b CR": 11, "4j2b SR": 11}
    assert info["n_parameters"] == 34
    assert info["samples"] == ["W+jets", "single top, s-channel", "single top, t-channel", "tW", "ttbar"]
    pars = info["parameters"]
    assert len(pars) == 34  # 10 NormPlusShape + lumi + POI + 22 staterror gammas (spec 5.2)
    assert sum(p.startswith("staterror_4j1b-CR[") for p in pars) == 11
    assert sum(p.startswith("staterror_4j2b-SR[") for p in pars) == 11
    assert {"ttbar_norm", "Luminosity", "ME variation", "b-tag NP 4", "W+jets scale variations"} <= set(pars)
    # canonical JSON: building twice gives the same bytes
    assert stat_ws.dumps(ws) == stat_ws.dumps(json.loads(stat_ws.dumps(ws)))


def test_reference_fit_matches_spec_5_3(ref_analysis):
    """Refit of the N=5 reference: 0.9535 +- 0.0893 (spec 5.3), to 0.002."""
    poi = ref_analysis["poi"]
    assert poi["value"] == pytest.approx(0.9535, abs=0.002)
    assert poi["uncertainty"] == pytest.approx(0.0893, abs=0.002)
    assert ref_analysis["converged"] and ref_analysis["retries"] == 0
    assert ref_analysis["model"]["n_parameters"] == 34 and len(ref_analysis["parameters"]) == 34
    pars = {p["name"]: p for p in ref_analysis["parameters"]}
    # typical pulls at N=5 (spec 5.3): ME +0.47 +- 0.13, PS +0.41 +- 0.14, JES -0.15 +- 0.19
    assert pars["ME variation"]["value"] == pytest.approx(0.47, abs=0.03)
    assert pars["ME variation"]["uncertainty"] == pytest.approx(0.13, abs=0.02)
    assert pars["PS variation"]["value"] == pytest.approx(0.41, abs=0.03)
    assert pars["Jet energy scale"]["value"] == pytest.approx(-0.15, abs=0.03)
    corr = np.array(ref_analysis["correlation_matrix"])
    assert corr.shape == (34, 34)
    np.testing.assert_allclose(np.diag(corr), 1.0, atol=1e-9)
    np.testing.assert_allclose(corr, corr.T, atol=1e-12)
    assert ref_analysis["min_nll"] == pytest.approx(ref_analysis["best_twice_nll"] / 2)
    assert ref_analysis["attempts"][0]["valid"] and ref_analysis["attempts"][0]["strategy"] == 1
    assert poi["minos"]["down"] == pytest.approx(-0.086, abs=0.005)
    assert poi["minos"]["up"] == pytest.approx(0.099, abs=0.005)


def test_asimov_fit_returns_one(ref_analysis):
    a = ref_analysis["asimov"]
    assert a["converged"]
    assert a["poi"]["value"] == pytest.approx(1.0, abs=1e-3)
    assert 0 < a["poi"]["uncertainty"] < 1
    # every NP sits on the kink of its exponential normsys interpolation at the Asimov point, so HESSE
    # overestimates there (0.255); the profile likelihood (MINOS) gives about -0.10 / +0.11
    assert a["poi"]["minos"]["down"] == pytest.approx(-0.098, abs=0.01)
    assert a["poi"]["minos"]["up"] == pytest.approx(0.114, abs=0.01)
    nps = {p["name"]: p["value"] for p in a["parameters"]}
    assert nps["Luminosity"] == pytest.approx(0.0, abs=1e-2)


def test_goodness_of_fit_matches_cabinetry(ref_workspace, ref_analysis):
    import cabinetry

    _, _, ws = ref_workspace
    model, data = stat_ws.model_and_data(ws)
    expected = cabinetry.fit._goodness_of_fit(model, data, ref_analysis["best_twice_nll"])
    g = ref_analysis["goodness_of_fit"]
    assert g["ndof"] == 22 - 1
    assert g["p_value"] == pytest.approx(expected, rel=1e-9)


def test_pseudodata_with_ttbar_scaled_by_1p3(reference5, tmp_path):
    """Pseudodata = sum of the nominal MC with ttbar x 1.3: the fit returns 1.3 within its uncertainty."""
    contents = dict(reference5)
    for region in ("4j1b", "4j2b"):
        total = 1.3 * reference5[f"{region}_ttbar"]
        for p in ("wjets", "single_top_s_chan", "single_top_t_chan", "single_top_tW"):
            total = total + reference5[f"{region}_{p}"]
        contents[f"{region}_pseudodata"] = total
    _, ws = build(tmp_path, contents)
    model, data = stat_ws.model_and_data(ws)
    outcome = stat_fit.mle_fit(model, data)
    value, unc = outcome.poi("ttbar_norm")
    assert abs(value - 1.3) < unc
    assert value == pytest.approx(1.3, abs=0.01)  # nominal MC as data: the NPs stay at zero


# ------------------------------------------------------------------------------------------------
# errors


def test_missing_template_names_the_key(reference5, tmp_path):
    contents = {k: v for k, v in reference5.items() if k != "4j2b_wjets_btag_var_2_up"}
    with pytest.raises(MissingHistogramError, match="4j2b_wjets_btag_var_2_up"):
        build(tmp_path, contents)


def test_missing_pseudodata_is_explained(reference5, tmp_path):
    contents = {k: v for k, v in reference5.items() if k != "4j1b_pseudodata"}
    with pytest.raises(MissingHistogramError, match=r"4j1b_pseudodata.*pseudodata .* is written only when"):
        build(tmp_path, contents)


def test_build_workspace_script_fails_with_the_key(reference5, tmp_path):
    contents = {k: v for k, v in reference5.items() if k != "4j1b_ttbar_scaledown"}
    hpath = tmp_path / "histograms.root"
    write_histograms(hpath, contents)
    cfg_path = tmp_path / "cabinetry_config.yml"
    run = [sys.executable, str(REPO / "workflow_scripts" / "stat_config.py"), "--samples", *ALL_SAMPLES,
           "--histograms", str(hpath), "--histogram-folder", str(tmp_path / "tpl"), "--output", str(cfg_path)]
    subprocess.run(run, check=True, capture_output=True)
    proc = subprocess.run([sys.executable, str(REPO / "workflow_scripts" / "build_workspace.py"),
                           "--cabinetry-config", str(cfg_path), "--output", str(tmp_path / "ws.json")],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "4j1b_ttbar_scaledown" in proc.stderr
    assert not (tmp_path / "ws.json").exists()


# ------------------------------------------------------------------------------------------------
# retry, ranking on a small model


def _small_model():
    import pyhf

    spec = {"channels": [{"name": "sr", "samples": [
        {"name": "sig", "data": [20.0, 40.0, 30.0],
         "modifiers": [{"name": "mu", "type": "normfactor", "data": None},
                       {"name": "lumi", "type": "normsys", "data": {"hi": 1.05, "lo": 0.95}}]},
        {"name": "bkg", "data": [50.0, 40.0, 20.0],
         "modifiers": [{"name": "bkg_norm", "type": "normsys", "data": {"hi": 1.2, "lo": 0.8}},
                       {"name": "shape", "type": "histosys",
                        "data": {"hi_data": [55.0, 40.0, 15.0], "lo_data": [45.0, 40.0, 25.0]}}]}]}],
        "observations": [{"name": "sr", "data": [75.0, 82.0, 48.0]}],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}], "version": "1.0.0"}
    ws = pyhf.Workspace(spec)
    model = ws.model()
    return ws, model, ws.data(model)


def test_ranking_matches_cabinetry_on_small_model():
    import cabinetry

    _, model, data = _small_model()
    outcome = stat_fit.mle_fit(model, data)
    ours = stat_fit.ranking(model, data, outcome, poi="mu")
    ref = cabinetry.fit.ranking(model, data, fit_results=outcome.results, poi_name="mu")
    assert ours["labels"] == ref.labels
    assert sorted(ours["labels"]) == ["bkg_norm", "lumi", "shape"]
    for kind in ("prefit_up", "prefit_down", "postfit_up", "postfit_down"):
        np.testing.assert_allclose(ours[kind], getattr(ref, kind), atol=2e-3)
    # more background -> less signal; a +5% luminosity normsys on the signal -> about -5% on mu
    i, j = ours["labels"].index("bkg_norm"), ours["labels"].index("lumi")
    assert ours["postfit_up"][i] < -0.01 and ours["postfit_down"][i] > 0.01
    mu = outcome.poi("mu")[0]
    assert ours["prefit_up"][j] == pytest.approx(mu / 1.05 - mu, rel=0.1)
    assert ours["failed"] == []
    # forked workers give the same numbers
    assert stat_fit.ranking(model, data, outcome, poi="mu", processes=2) == ours


@pytest.mark.slow
def test_default_ranking_refits_agree_with_tight_strategy_1(ref_workspace):
    """The ranking's default refits (Minuit strategy 0, tolerance 1e-4: a quarter of the CPU) give
    the impacts of careful refits (strategy 1, tolerance 1e-3) within 1e-3 on the full AGC model."""
    import cabinetry

    _, _, ws = ref_workspace
    model, data = cabinetry.model_utils.model_and_data(ws)
    outcome = stat_fit.mle_fit(model, data)
    fast = stat_fit.ranking(model, data, outcome, poi="ttbar_norm", processes=2)
    tight = stat_fit.ranking(model, data, outcome, poi="ttbar_norm", processes=2, strategy=1,
                             tolerance=1e-3)
    assert (fast["strategy"], fast["tolerance"]) == (0, 1e-4) and fast["failed"] == tight["failed"] == []
    assert fast["labels"] == tight["labels"] and len(fast["labels"]) > 20
    for kind in ("prefit_up", "prefit_down", "postfit_up", "postfit_down"):
        np.testing.assert_allclose(fast[kind], tight[kind], atol=1e-3, rtol=0, err_msg=kind)
    assert max(abs(x) for x in tight["prefit_up"]) > 0.05  # impacts much larger than the tolerance


def test_failed_minimisation_is_retried_and_recorded(caplog):
    """A call limit too small for MIGRAD fails the first attempt; the retry (default maxiter) succeeds."""
    _, model, data = _small_model()
    calls = []
    real = stat_fit._fit_once

    def flaky(model_, data_, strategy, **kw):
        calls.append(strategy)
        if len(calls) == 1:
            kw["maxiter"] = 5
        return real(model_, data_, strategy, **kw)

    stat_fit._fit_once = flaky
    try:
        with caplog.at_level("WARNING"):
            outcome = stat_fit.mle_fit(model, data, strategy=0, retry_strategy=2, label="test fit")
    finally:
        stat_fit._fit_once = real
    assert calls == [0, 2]
    assert [a["retry"] for a in outcome.attempts] == [False, True]
    assert outcome.attempts[0]["valid"] is False and outcome.attempts[1]["valid"] is True
    assert outcome.attempts[1]["strategy"] == 2 and outcome.converged
    assert "minimisation FAILED with Minuit strategy 0" in caplog.text
    assert "retry with Minuit strategy 2 converged" in caplog.text


def test_fit_failure_after_retry_raises():
    _, model, data = _small_model()
    with pytest.raises(stat_fit.FitFailedError, match="strategy 0 and with retry strategy 1"):
        stat_fit.mle_fit(model, data, strategy=0, retry_strategy=1, maxiter=3)


# ------------------------------------------------------------------------------------------------
# scripts end to end: reproducible fit_results.json, plots, summary, ML workspace


def test_fit_script_is_reproducible_and_prints_the_result(ref_workspace, tmp_path):
    tmp, _, ws = ref_workspace
    wpath = tmp_path / "workspace.json"
    stat_ws.save(ws, str(wpath))
    outs = []
    for i in range(2):
        out = tmp_path / f"fit{i}.json"
        proc = subprocess.run([sys.executable, str(REPO / "workflow_scripts" / "fit.py"), "--workspace", str(wpath),
                               "--output", str(out), "--provenance", str(tmp_path / f"prov{i}.json"),
                               "--no-ranking", "--no-minos", "--config-hash", "abc123"], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.strip().splitlines()[-1] == "fit result for ttbar_norm: 0.953 +/- 0.089"
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    doc = json.loads(outs[0])
    assert doc["provenance"]["config_hash"] == "abc123"
    assert doc["provenance"]["packages"]["cabinetry"] == "0.6.0" or doc["provenance"]["packages"]["cabinetry"]
    assert "ranking" not in doc and doc["asimov"]["poi"]["value"] == pytest.approx(1.0, abs=1e-3)
    prov = json.loads((tmp_path / "prov0.json").read_text())
    assert "started_utc" in prov and "fit" in prov["timings_s"]
    assert "started" not in outs[0].decode()


def test_plots_summary_and_index(ref_workspace, ref_analysis, tmp_path):
    """Every plot kind is written in every format and listed in index.json (ranking from a fake block)."""
    from agc_ttbar.statistics import plots, summary

    _, cfg, ws = ref_workspace
    doc = json.loads(json.dumps(ref_analysis))
    labels = [p["name"] for p in doc["parameters"] if p["name"] != "ttbar_norm"]
    n = len(labels)
    doc["ranking"] = {"poi": "ttbar_norm", "labels": labels, "bestfit": [0.1] * n, "uncertainty": [0.5] * n,
                      "prefit_up": list(np.linspace(-0.05, 0.05, n)), "prefit_down": list(np.linspace(0.05, -0.05, n)),
                      "postfit_up": list(np.linspace(-0.03, 0.03, n)), "postfit_down": [None] * n}
    entries, yields = plots.make_all(ws, doc, cfg, str(tmp_path / "plots"), ["png"])
    kinds = [e["kind"] for e in entries]
    assert kinds.count("data_mc") == 4 and kinds.count("templates") == 10
    assert {"pulls", "pulls_staterror", "correlation_matrix", "ranking"} <= set(kinds)
    for e in entries:
        assert len(e["files"]) == 1
        with open(e["files"][0], "rb") as fh:
            assert fh.read(8).startswith(b"\x89PNG")
    ttbar_templates = next(e for e in entries if e["kind"] == "templates" and e["sample"] == "ttbar")
    assert len(ttbar_templates["systematics"]) == 9
    cr = yields["channels"]["4j1b CR"]
    # pre-fit ttbar yield = sum of the rebinned nominal template (spec 7.2, N=5)
    assert cr["samples"]["ttbar"]["prefit"] == pytest.approx(21085.032, abs=0.01)
    assert cr["data"] == pytest.approx(29944.680, abs=0.01)
    # the post-fit model describes the pseudodata (ME/PS pulled up raise ttbar despite ttbar_norm < 1)
    assert cr["samples"]["total"]["postfit"] == pytest.approx(cr["data"], rel=0.01)
    assert cr["samples"]["total"]["prefit"] < 0.95 * cr["data"]
    assert cr["samples"]["ttbar"]["postfit"] > cr["samples"]["ttbar"]["prefit"]
    page = summary.summary_html(doc, yields)
    assert "fit result for ttbar_norm: 0.953 &plusmn; 0.089" in page and "4j2b SR" in page


def test_plots_in_forked_processes_equal_the_serial_run(ref_workspace, ref_analysis, tmp_path):
    """stat_plots with its rule's threads (make_all processes=2): the same files, byte for byte, and
    the same index entries in the same order as one process. Run in a fresh process, as the job
    runs: this one has loaded JAX (the ranking tests), and fork_map then stays serial."""
    _, cfg, ws = ref_workspace
    inputs = tmp_path / "inputs.json"
    inputs.write_text(json.dumps({"ws": ws, "doc": ref_analysis, "cfg": cfg}))
    code = f"""
import json, os, pathlib, sys
from agc_ttbar.statistics import plots
d = json.loads(pathlib.Path({str(inputs)!r}).read_text())
save = plots.save
savers = pathlib.Path({str(tmp_path)!r}) / "savers.txt"
def save_and_record(*args, **kwargs):  # which process wrote each figure
    with open(savers, "a") as fh:
        fh.write(f"{{processes}} {{os.getpid()}}\\n")
    return save(*args, **kwargs)
plots.save = save_and_record
for processes in (1, 2):
    out = pathlib.Path({str(tmp_path)!r}) / f"p{{processes}}"
    entries, yields = plots.make_all(d["ws"], d["doc"], d["cfg"], str(out), ["png", "pdf"],
                                     include_templates=False, processes=processes)
    rel = [{{**e, "files": [os.path.relpath(f, out) for f in e["files"]]}} for e in entries]
    (out / "entries.json").write_text(json.dumps([rel, yields], sort_keys=True))
assert "jax" not in sys.modules
print(os.getpid())
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    parent = int(proc.stdout.split()[-1])
    savers = [line.split() for line in (tmp_path / "savers.txt").read_text().splitlines()]
    assert {int(pid) for n, pid in savers if n == "1"} == {parent}
    assert len({int(pid) for n, pid in savers if n == "2"} - {parent}) == 2  # two forked workers
    runs = {}
    for processes in (1, 2):
        out = tmp_path / f"p{processes}"
        runs[processes] = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    entries = json.loads(runs[1]["entries.json"])[0]
    assert len(runs[1]) == 2 * len(entries) + 1 >= 13
    assert runs[2].keys() == runs[1].keys()
    for name, data in runs[1].items():
        assert runs[2][name] == data, name


def test_every_format_is_written_and_reproducible(tmp_path):
    """PNG, PDF and SVG carry no creation date: the same figure gives the same bytes."""
    import matplotlib.pyplot as plt

    from agc_ttbar.statistics import plots

    digests = []
    for i in range(2):
        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0])
        files = plots.save(fig, str(tmp_path / f"f{i}"), ["png", "pdf", "svg"])
        assert [f.rsplit(".", 1)[1] for f in files] == ["png", "pdf", "svg"]
        digests.append([open(f, "rb").read() for f in files])
    assert digests[0] == digests[1]
    assert digests[0][1].startswith(b"%PDF") and b"<svg" in digests[0][2]


def test_ml_workspace_is_pruned_to_seven_channels(tmp_path):
    """Synthetic histograms_ml.root with every key: the ML model keeps Feature0,1,2,4,5,6,7."""
    from agc_ttbar.ml.features import FEATURES

    # fewer samples keep the test fast (cabinetry writes two files per template)
    samples = ["ttbar__nominal", "ttbar__ME_var", "ttbar__PS_var", "wjets__nominal"]
    cfg = stat_model.cabinetry_config_ml(samples, str(tmp_path / "histograms_ml.root"), str(tmp_path / "tpl"))
    stat_model.validate(cfg)
    rng = np.random.default_rng(1)
    with uproot.recreate(tmp_path / "histograms_ml.root") as f:
        for _, key in stat_model.required_histograms(cfg):
            feature = next(name for name, _, _ in FEATURES if key.startswith(name + "_"))
            low, high = next((lo, hi) for name, lo, hi in FEATURES if name == feature)
            h = hist.Hist.new.Reg(25, low, high).Weight()
            c = rng.uniform(10, 100, 27) + 1e-6
            h.view(flow=True)["value"] = c
            h.view(flow=True)["variance"] = c
            f[key] = h
    ws = stat_ws.workspace_from_histograms(cfg, start=None, factor=1)
    pruned = stat_ws.prune_channels(ws, stat_model.ml_pruned_channels())
    info = stat_ws.summary(pruned)
    assert list(info["channels"]) == [f"Feature{i}" for i in (0, 1, 2, 4, 5, 6, 7)]
    assert set(info["channels"].values()) == {25}
    assert info["samples"] == ["W+jets", "ttbar"]
    assert cfg["Regions"][4]["RegionPath"] == "mass_leptonbtoplep"
    # staterror per kept channel, 9 systematics (no ttbar scale: scaleup/down not in the samples)
    assert info["n_parameters"] == 7 * 25 + 8 + 1 + 1 + 1


def test_layout_paths():
    assert layout.fit_results("results") == "results/fit_results.json"
    assert layout.stat_plots_dir("results", "fit") == "results/plots/statistics/fit"
    assert layout.stat_summary("results").endswith("summary.html")


@pytest.mark.slow
def test_statistics_rules_run_with_snakemake(reference5, tmp_path):
    """The statistics rules on the N=5 reference histograms: fit_results.json, plots, the closing
    line printed by the onsuccess handler, and an HTML report with the summary and the figures."""
    from scaleout_helpers import snakemake_env

    results = tmp_path / "results"
    results.mkdir()
    write_histograms(results / "histograms.root", reference5)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"results_dir": str(results), "use_inference": False,
                                   "statistics": {"ranking": False}, "plots": {"formats": ["png"]}}))
    target = layout.stat_plots_done(str(results))
    base = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", str(REPO / "config.yaml"),
            str(cfg)]
    proc = subprocess.run(base + ["--", target], cwd=REPO, env=snakemake_env(), capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "fit result for ttbar_norm: 0.953 +/- 0.089" in proc.stdout + proc.stderr
    log = (results / "logs" / "fit" / "fit.log").read_text()
    assert log.strip().splitlines()[-1] == "fit result for ttbar_norm: 0.953 +/- 0.089"
    doc = json.loads((results / "fit_results.json").read_text())
    assert doc["poi"]["value"] == pytest.approx(0.9535, abs=0.002) and "ranking" not in doc
    index = json.loads(open(target).read())
    for e in index["plots"]:
        for f in e["files"]:
            assert (results / "plots" / "statistics" / f).is_file()
    cab = yaml.safe_load((results / "statistics" / "cabinetry_config.yml").read_text())
    assert cab["General"]["HistogramFolder"].rstrip("/") == layout.stat_templates(str(results))
    report = tmp_path / "report.html"
    proc = subprocess.run(base + ["--report", str(report), "--", target], cwd=REPO, env=snakemake_env(),
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    page = report.read_text()
    assert "summary.html" in page and "post_fit_4j2b_SR.png" in page and "templates_4j1b_CR_ttbar.png" in page


@pytest.mark.parametrize("dataset,expect,absent", [("agc", "CMS", "synthetic"), ("mock", "synthetic data", "CMS")])
def test_experiment_label_follows_the_dataset(dataset, expect, absent):
    """Figures of the embedded synthetic dataset are not labelled as CMS Open Data."""
    import matplotlib.pyplot as plt

    from agc_ttbar.statistics import plots

    fig, ax = plt.subplots()
    plots._label(ax, dataset)
    texts = " ".join(t.get_text() for t in ax.texts)
    plt.close(fig)
    assert expect in texts and absent not in texts


def test_fit_binning_knob_default_and_choices():
    """statistics.fit_lower_edge / fit_rebin: defaults give the AGC binning; other choices follow the
    processor's 20 GeV bins; bad choices fail naming the config key."""
    assert stat_model.fit_binning() == stat_model.FIT_BINNING
    assert stat_model.fit_binning(150.0, 4) == (150.0, 230.0, 310.0, 390.0, 470.0, 550.0)
    cfg = stat_model.cabinetry_config(["ttbar__nominal"], "h.root", "t/", stat_model.fit_binning(150.0, 4))
    assert stat_model.rebin_of(cfg) == (150.0, 4)
    assert stat_model.rebin_of(stat_model.cabinetry_config(["ttbar__nominal"], "h.root", "t/")) == (110.0, 2)
    for bad in ((115.0, 2), (110.0, 3), (550.0, 1), (110.0, 0)):
        with pytest.raises(ValueError, match="statistics.fit_"):
            stat_model.fit_binning(*bad)
