"""Differentiable analysis (issue 17, agc_ttbar/optimisation/): columns, the soft model and its hard
limit, the smooth objective and its gradient, the optimiser, the hard re-check through the ordinary
rules (slow: the whole DAG with optimisation.enabled)."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

jax = pytest.importorskip("jax")
pytest.importorskip("optax")

from agc_ttbar.config import validate_config  # noqa: E402
from agc_ttbar.optimisation import columns as opt_columns  # noqa: E402
from agc_ttbar.optimisation import objective, optimise, soft_model  # noqa: E402
from agc_ttbar.processing import EDGES, SampleInfo, process_file  # noqa: E402
from agc_ttbar.samples import histogram_key  # noqa: E402
from agc_ttbar.statistics import model as stat_model  # noqa: E402

N = 3000
SAMPLES = ("ttbar__nominal", "wjets__nominal")
DEFAULT_EDGES = np.arange(110.0, 551.0, 40.0)
#: T -> infinity: the hard model's histograms equal the per-file job's to this relative precision
#: (float64 sums in another order than the exact integer sums).
HARD_RTOL = 1e-12
#: Large but finite T (b-tag 1e5, bins 1e3 / GeV): every bin within this fraction of the region's sum.
LARGE_T_TOL = 1e-3
#: Gradient against central finite differences (step 1e-4 in the parameters' units), relative to
#: the gradient's largest component.
GRAD_TOL = 1e-5


@pytest.fixture(scope="module")
def mock(tmp_path_factory):
    """A small ttbar and W+jets mock file processed by the per-file job with the columns on, at the
    AGC threshold and at 0.7: {threshold: {sample: hists}}, and the sample columns."""
    from agc_ttbar.mock.generator import generate_events
    from agc_ttbar.mock.writer import write_file

    tmp = tmp_path_factory.mktemp("opt")
    hists, cols = {0.5: {}, 0.7: {}}, {}
    for i, key in enumerate(SAMPLES):
        path = str(tmp / f"{key}.root")
        write_file(path, generate_events(key, 0, N, 20240521 + i))
        info = SampleInfo.from_key(key, 0.37 + i, N)
        collector = opt_columns.ColumnCollector(info.process, info.variation, info.weight)
        hists[0.5][key], _ = process_file(path, info, chunksize=1000, log=lambda m: None, columns=collector)
        hists[0.7][key], _ = process_file(path, info, chunksize=1000, log=lambda m: None, btag_threshold=0.7)
        out = str(tmp / "columns" / key / "00000.npz")
        pathlib.Path(out).parent.mkdir(parents=True)
        collector.save(out)
        cols[key] = out
    return hists, cols


@pytest.fixture(scope="module")
def problem(mock):
    _, cols = mock
    data = optimise.load_data(sorted(cols.values()))
    structure = objective.ModelStructure.from_cabinetry(stat_model.cabinetry_config(SAMPLES, "h.root", "t/"))
    return optimise.Problem(data, structure, 25.0, 0.1)


def test_columns_are_bounded_and_complete(mock):
    _, cols = mock
    meta, passes = opt_columns.load_columns([cols["ttbar__nominal"]])
    assert meta["kinematic"] == ["nominal", "pt_scale_up", "pt_res_up"]
    nominal = passes["nominal"]
    assert set(nominal) >= {"ht", "n_jets", "pt", "eta", "phi", "mass", "btag", "w/nominal",
                            "w/btag_var_0_up", "w/btag_var_3_down"}
    assert (nominal["n_jets"] >= 4).all() and nominal["pt"].shape[1] == opt_columns.N_JETS
    assert pathlib.Path(cols["ttbar__nominal"]).stat().st_size < 600 * len(nominal["ht"]) * 3
    _, wj = opt_columns.load_columns([cols["wjets__nominal"]])
    assert "w/scale_var_up" in wj["nominal"]


@pytest.mark.parametrize("threshold", [0.5, 0.7])
def test_hard_limit_equals_the_per_file_histograms(mock, problem, threshold):
    """T -> infinity (hard gates): every histogram of the per-file job, 25 bins 50-550 GeV."""
    import jax.numpy as jnp

    hists, _ = mock
    tpl = problem.templates(threshold, jnp.asarray(EDGES), hard=True)
    n = 0
    for (region, process, label), (sw, sw2) in tpl.items():
        key = f"{process}__nominal"
        ref = hists[threshold][key].hists.get(histogram_key(region, process, label))
        if ref is None:
            assert float(np.abs(sw).max()) == 0.0
            continue
        scale = max(float(ref.values().max()), 1e-300)
        np.testing.assert_allclose(np.asarray(sw), ref.values(), rtol=0, atol=HARD_RTOL * scale)
        np.testing.assert_allclose(np.asarray(sw2), ref.variances(), rtol=0,
                                   atol=HARD_RTOL * max(float(ref.variances().max()), 1e-300))
        n += 1
    assert n >= 2 * (1 + 2 + 8) + 2 * 2     # both regions, nominal + kinematic + b-tag; W+jets scale


def test_large_steepness_approaches_the_hard_histograms(problem):
    import jax.numpy as jnp

    edges = jnp.asarray(DEFAULT_EDGES)
    hard = problem.templates(0.5, edges, hard=True)
    soft = soft_model.histograms(problem.data, problem.arrays, 0.5, edges, 1e5, 1e3)
    for key, (sw, _) in hard.items():
        total = float(jnp.sum(sw))
        if total > 0:
            assert float(jnp.max(jnp.abs(soft[key][0] - sw))) <= LARGE_T_TOL * total, key


def test_gradient_equals_central_finite_differences(problem):
    theta = soft_model.params_from_edges(0.5, DEFAULT_EDGES)
    value, grad = problem.value_and_grad(theta)
    assert np.isfinite(value) and value > 0
    step = 1e-4
    fd = np.empty_like(theta)
    for i in range(len(theta)):
        up, down = theta.copy(), theta.copy()
        up[i] += step
        down[i] -= step
        fd[i] = (problem.soft(up) - problem.soft(down)) / (2 * step)
    np.testing.assert_allclose(grad, fd, rtol=0, atol=GRAD_TOL * np.abs(grad).max())
    assert abs(grad[0]) > 0 and abs(grad[1]) > 0      # threshold and lower edge both matter


def test_optimiser_decreases_the_soft_objective(problem):
    theta0 = soft_model.params_from_edges(0.5, DEFAULT_EDGES)
    best, path = optimise.optimise(problem, theta0, 5, 0.02, log=lambda m: None)
    assert len(path) == 6 and path[0]["objective"] == pytest.approx(problem.soft(theta0))
    assert problem.soft(best) < path[0]["objective"]
    assert path[0]["edges"] == pytest.approx(list(DEFAULT_EDGES))


def test_hard_objective_matches_pyhf_code4(problem, tmp_path):
    """The JAX model equals pyhf (JAX backend, normsys code4, histosys code4p) on the workspace
    cabinetry builds from the same hard templates."""
    import cabinetry
    import hist
    import jax.numpy as jnp
    import pyhf
    import uproot

    tpl = problem.templates(0.5, jnp.asarray(EDGES), hard=True)
    path = tmp_path / "histograms.root"
    with uproot.recreate(path) as f:
        for (region, process, label), (sw, sw2) in tpl.items():
            h = hist.Hist(hist.axis.Regular(25, 50, 550), storage=hist.storage.Weight())
            h.view().value, h.view().variance = np.asarray(sw), np.asarray(sw2)
            f[histogram_key(region, process, label)] = h
            if (process, label) == ("ttbar", "nominal"):
                f[f"{region}_pseudodata"] = h
    cfg = stat_model.cabinetry_config(SAMPLES, str(path), str(tmp_path / "templates"))
    from agc_ttbar.statistics.workspace import workspace_from_histograms

    ws = workspace_from_histograms(cfg)
    pyhf.set_backend("jax")
    try:
        m = pyhf.Workspace(ws).model(modifier_settings=objective.SMOOTH_INTERPOLATION)
        x0 = jnp.asarray(m.config.suggested_init())
        data = m.expected_data(x0)
        h = jax.jit(jax.hessian(lambda x: -m.logpdf(x, data)[0]))(x0)
        ref = float(jnp.sqrt(jnp.linalg.inv(h)[m.config.poi_index, m.config.poi_index]))
    finally:
        pyhf.set_backend("numpy")
    assert cabinetry is not None
    assert problem.hard(0.5, DEFAULT_EDGES) == pytest.approx(ref, rel=1e-9)


def test_fisher_form_equals_the_autodiff_hessian_of_the_nll(problem):
    import jax.numpy as jnp

    tpl = problem.templates(0.5, jnp.asarray(DEFAULT_EDGES), hard=True)
    fisher = jax.jit(lambda t: objective.Model(problem.structure, t).hessian())(tpl)
    auto = jax.jit(lambda t: objective.Model(problem.structure, t).hessian_autodiff())(tpl)
    np.testing.assert_allclose(np.asarray(fisher), np.asarray(auto), rtol=1e-9,
                               atol=1e-9 * float(jnp.abs(fisher).max()))


def test_snap_edges_and_the_fit_bin_edges_knob():
    assert optimise.snap_edges([111.0, 149.0, 551.0]) == [110.0, 150.0, 550.0]
    assert optimise.snap_edges([110.0, 115.0, 125.0, 550.0]) == [110.0, 130.0, 550.0]   # merged
    assert stat_model.check_fit_edges([90, 130, 550]) == (90.0, 130.0, 550.0)
    with pytest.raises(ValueError, match="fit_bin_edges"):
        stat_model.check_fit_edges([95, 130, 550])
    assert stat_model.uniform_rebin(stat_model.FIT_BINNING) == (110.0, 2)
    assert stat_model.uniform_rebin([90.0, 130.0, 550.0]) is None
    import hist

    h = hist.Hist(hist.axis.Regular(25, 50, 550), storage=hist.storage.Weight())
    h.fill(np.linspace(51, 549, 500), weight=2.0)
    r = stat_model.rebin_edges(h, [90.0, 130.0, 550.0])
    assert r.axes[0].edges.tolist() == [90.0, 130.0, 550.0]
    assert r.values().sum() == pytest.approx(h.values()[2:].sum())
    assert r.variances()[0] == pytest.approx(h.variances()[2:4].sum())


# ---- the DAG with optimisation.enabled, from a clean results folder ---------------------------

@pytest.fixture(scope="module")
def enabled_run(tmp_path_factory):
    """A copy of the workflow after `snakemake --cores 2 --config optimisation={'enabled': true}`.
    AGC_OPTIMISATION_RUN=<folder> checks a finished run of that command there instead."""
    import os

    from scaleout_helpers import copy_workflow, snakemake_env

    if os.environ.get("AGC_OPTIMISATION_RUN"):
        return pathlib.Path(os.environ["AGC_OPTIMISATION_RUN"])
    work = copy_workflow(tmp_path_factory.mktemp("opt_dag") / "wf")
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--config",
                           "optimisation={'enabled': true}"], cwd=work, env=snakemake_env(),
                          capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    return work


@pytest.mark.slow
def test_enabled_dag_runs_everything(enabled_run):
    res = enabled_run / "results" / "optimisation"
    doc = json.loads((res / "result.json").read_text())
    assert doc["interpolation"] == {"normsys": {"interpcode": "code4"}, "histosys": {"interpcode": "code4p"}}
    assert doc["default"]["btag_threshold"] == 0.5 and doc["default"]["edges"] == list(DEFAULT_EDGES)
    # the optimiser decreases the soft objective on the default dataset
    assert doc["optimised"]["soft_objective"] < doc["default"]["soft_objective"]
    assert len(doc["path"]) == 31 and len(doc["btag_scan"]["points"]) == 13
    for name in ("objective_path.png", "btag_scan.png", "objective_path.pdf", "btag_scan.pdf"):
        assert (res / "plots" / name).stat().st_size > 1000


@pytest.mark.slow
def test_hard_limit_equals_histograms_root_of_the_default_dataset(enabled_run):
    import jax.numpy as jnp
    import uproot

    data = optimise.load_data([str(p) for p in (enabled_run / "results" / "optimisation" / "columns").glob("*/*.npz")])
    structure = objective.ModelStructure.from_cabinetry(
        stat_model.cabinetry_config(validate_config({})["samples"], "h.root", "t/"))
    problem = optimise.Problem(data, structure, 25.0, 0.1)
    tpl = problem.templates(0.5, jnp.asarray(EDGES), hard=True)
    with uproot.open(enabled_run / "results" / "histograms.root") as f:
        assert len(tpl) == len([k for k in f.keys() if "pseudodata" not in k]) == 122
        for (region, process, label), (sw, sw2) in tpl.items():
            ref = f[histogram_key(region, process, label)]
            np.testing.assert_allclose(np.asarray(sw), ref.values(), rtol=0, atol=HARD_RTOL * ref.values().max())
            np.testing.assert_allclose(np.asarray(sw2), ref.variances(), rtol=0,
                                       atol=HARD_RTOL * ref.variances().max())


@pytest.mark.slow
def test_hard_recheck_runs_through_the_ordinary_rules(enabled_run):
    import yaml

    res = enabled_run / "results"
    doc = json.loads((res / "optimisation" / "result.json").read_text())
    hard = res / "optimisation" / "hard"
    cfg = yaml.safe_load((hard / "statistics" / "cabinetry_config.yml").read_text())
    edges = doc["optimised"]["edges_on_grid"]
    assert all(r["Binning"] == edges for r in cfg["Regions"])
    log = (res / "optimisation" / "hard" / "logs" / "process_file" / "ttbar__nominal_00000.log")
    assert log.exists() and (hard / "histograms.root").exists()
    fit = json.loads((hard / "fit_results.json").read_text())
    minos = fit["asimov"]["poi"]["minos"]
    assert doc["hard_recheck"]["optimised"]["minos_half_width"] == pytest.approx(0.5 * (minos["up"] - minos["down"]))
    main = json.loads((res / "fit_results.json").read_text())["asimov"]["poi"]["minos"]
    assert doc["hard_recheck"]["default"]["minos_up"] == main["up"]
    hard_cfg = yaml.safe_load((res / "optimisation" / "hard_config.yaml").read_text())
    assert hard_cfg["processing"]["btag_threshold"] == doc["optimised"]["btag_threshold"]
    # the default objective (hard cuts, code4/code4p) equals pyhf's on the workflow's own workspace
    import jax.numpy as jnp
    import pyhf

    pyhf.set_backend("jax")
    try:
        ws = pyhf.Workspace(json.loads((res / "statistics" / "workspace.json").read_text()))
        m = ws.model(modifier_settings=objective.SMOOTH_INTERPOLATION)
        x0 = jnp.asarray(m.config.suggested_init())
        data = m.expected_data(x0)
        h = jax.jit(jax.hessian(lambda x: -m.logpdf(x, data)[0]))(x0)
        ref = float(jnp.sqrt(jnp.linalg.inv(h)[m.config.poi_index, m.config.poi_index]))
    finally:
        pyhf.set_backend("numpy")
    assert doc["default"]["hard_objective"] == pytest.approx(ref, rel=1e-9)
