"""Smoke test of the benchmark machinery (benchmarks/), not of its timings.

- the coffea baseline of the speed comparison fills the same nominal histograms as the per-file job
  on the same mock file (same bin counts, sums equal to rounding);
- ``benchmarks/run.py --quick`` on the per-file sections writes the JSON and markdown with the
  structure the README table is built from: marginal rates (N and 10N events) of the job and of the
  baseline, fixed per-file costs, steady-state (warm-up) rates, and the side-by-side table;
- the marginal arithmetic and the side-by-side table on figures made up for the test.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

pytest.importorskip("coffea")


@pytest.fixture(scope="module")
def mock_file(tmp_path_factory):
    from agc_ttbar.mock.generator import generate_events
    from agc_ttbar.mock.writer import write_file

    path = str(tmp_path_factory.mktemp("bench") / "ttbar.root")
    gen = generate_events("ttbar__nominal", 0, 2000, 20240521)
    write_file(path, gen)
    return path, gen.nevts


def test_coffea_baseline_matches_the_job(mock_file):
    from coffea_baseline import nominal_arrays, run_baseline

    from agc_ttbar.processing import SampleInfo, process_file
    from agc_ttbar.samples import xsec_weight

    path, nevts = mock_file
    weight = xsec_weight("ttbar", nevts)
    hists, meta = process_file(path, SampleInfo.from_key("ttbar__nominal", weight, nevts), log=lambda m: None)
    base = nominal_arrays(run_baseline(path, "ttbar__nominal", nevts), "ttbar")
    assert set(base) == {"4j1b", "4j2b"}
    for region, (values, variances) in base.items():
        ours = hists.hists[f"{region}_ttbar"]
        assert values.sum() > 0
        # one weight per event: the bin contents are counts x weight, so the counts must agree exactly
        np.testing.assert_array_equal(np.rint(values / weight), np.rint(ours.values(flow=True) / weight))
        np.testing.assert_allclose(values, ours.values(flow=True), rtol=1e-12, atol=0)
        np.testing.assert_allclose(variances, ours.variances(flow=True), rtol=1e-12, atol=0)


def test_coffea_baseline_fills_the_same_variations(mock_file):
    from coffea_baseline import run_baseline

    from agc_ttbar.samples import variations_for

    path, nevts = mock_file
    out = run_baseline(path, "ttbar__nominal", nevts)
    for h in out["hist_dict"].values():
        assert set(h.axes["variation"]) == set(variations_for("ttbar", "nominal"))


def test_quick_run_writes_report(tmp_path):
    out = tmp_path / "benchmarks.json"
    cmd = [sys.executable, str(REPO / "benchmarks" / "run.py"), "--quick", "--sections", "marginal,perfile,memory",
           "--bench-dir", str(tmp_path / "bench"), "--output", str(out)]
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["mode"] == "quick" and not res["errors"]
    assert {"cpu", "cores", "versions"} <= set(res["machine"])
    mg = res["marginal"]
    assert mg["entries"]["big"] == 10 * mg["entries"]["small"]
    for mode in ("job", "coffea", "job_ml_own", "job_ml_published"):
        r = mg[mode]
        assert r["rounds"] and r["big_cpu_s"] > 0 and r["small_cpu_s"] > 0
        # whole processes: the start-up is in both, so the 10N file costs more but not 10x more
        assert r["big_wall_s"] > 0 and r["small_wall_s"] > 0
    assert mg["job"]["rate"] > 0 and mg["job_ml_own"]["rate"] > 0
    for key in ("ml_inference_own", "ml_inference_published"):
        assert "error" not in mg[key] and mg[key]["n_events"] > 0
    for label in ("default", "full_layout"):
        r = res["perfile"][label]
        for mode in ("read", "job", "read_ml", "job_ml"):
            assert r[mode]["rate_per_core"] > 0
        assert r["ratio_noml"] > 0 and r["ratio_ml"] > 0
        assert 0 < r["bytes"]["read_fraction"] <= 1
    # the full layout has the realistic branch count, so the analysis reads a small share of it
    assert res["perfile"]["full_layout"]["bytes"]["read_fraction"] < res["perfile"]["default"]["bytes"]["read_fraction"]
    ml = res["perfile"]["default"]["ml"]
    assert ml["evaluations_per_event"] >= 12 and 0 < ml["ml_time_share_of_job"] < 1
    split = ml["split"]
    assert split["compiled"] is True                     # the quick BDT is shallow: fused search
    assert 0 < split["plain_feature_share"] < 1 and 0 < split["fused_feature_share"] < 1
    assert split["fused_cpu_s"] > 0 and split["no_trees_cpu_s"] > 0
    assert res["memory"]["big_entries"] == 4 * res["memory"]["small_entries"]
    md = out.with_suffix(".md").read_text()
    assert "| figure | this workflow | baseline / reference | target | status |" in md
    assert "| figure | value | target | status |" in md
    assert "PASS" in md or "MISS" in md
    assert "marginal rate, no ML" in proc.stdout and "job / raw read, no ML, default mock" in proc.stdout
    # --report-only re-renders the same tables from the JSON
    again = subprocess.run([sys.executable, str(REPO / "benchmarks" / "run.py"), "--report-only", "--output", str(out)],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "marginal rate, no ML" in again.stdout


def _fake_run(entries: int, cpu: float, wall: float) -> dict:
    return {"entries": entries, "process_cpu_s": cpu, "process_wall_s": wall}


def test_marginal_pair_cancels_the_fixed_cost():
    """9N events more for 0.9 s more CPU: 10 N/s at the margin, whatever the start-up."""
    from run import marginal_pair

    r = marginal_pair(_fake_run(1000, 2.1, 3.0), _fake_run(10_000, 3.0, 4.0))
    assert r["rate"] == pytest.approx(10_000.0)
    assert r["fixed_cpu_s"] == pytest.approx(2.0)    # 2.1 s for the small file, 0.1 s of it events
    assert (r["small_wall_s"], r["big_wall_s"]) == (3.0, 4.0)
    assert marginal_pair(_fake_run(1000, 2.0, 1.0), _fake_run(10_000, 1.9, 1.0))["rate"] is None


def test_side_by_side_table_has_every_row():
    """The headline table: one row per figure of issue 15, n/a where a section did not run, and
    the targets checked from the figures."""
    from run import REFERENCE, headline_rows, marginal_pair

    pair = marginal_pair(_fake_run(28_000, 1.0, 1.5), _fake_run(280_000, 2.0, 2.5))
    cof = marginal_pair(_fake_run(28_000, 3.0, 3.5), _fake_run(280_000, 5.9, 6.4))
    res = {"marginal": {"entries": {"small": 28_000, "big": 280_000}, "job": pair, "coffea": cof,
                        "ratio_job_over_coffea": pair["rate"] / cof["rate"]},
           "pipeline": {"cores1": {"wall_s": 8.0, "cpu_s": 7.5}, "cores2": {"wall_s": 7.0, "cpu_s": 8.0}}}
    rows = headline_rows(res)
    labels = [r[0] for r in rows]
    assert any("marginal rate, no ML, 280,000-event" in x for x in labels)
    assert any("job / raw read" in x for x in labels)
    assert any("--cores 1" in x for x in labels) and any("--cores 2" in x for x in labels)
    assert any("make analysis" in x for x in labels)
    assert any("published AGC BDTs" in x for x in labels) and any("own BDT" in x for x in labels)
    by_label = {r[0]: r for r in rows}
    first = by_label["marginal rate, no ML, 280,000-event ttbar file (ev/s per core)"]
    assert first[1] == "252,000 ev/s" and first[4] == "PASS"          # 252k / 2.9 s vs 252k / 1 s
    c1 = next(r for r in rows if "--cores 1" in r[0])
    c2 = next(r for r in rows if "--cores 2" in r[0])
    assert c1[4] == "PASS" and c2[4] == "MISS"                         # 8.0 < 8.45; 7.0 > 6.18
    assert str(REFERENCE["pipeline_cores2_s"]) in c2[2]
    assert next(r for r in rows if "job / raw read" in r[0])[4] == "n/a"   # no dataset section
    assert all(len(r) == 5 for r in rows)


def test_dataset_rates_sum_over_files(mock_file):
    """The dataset section: every mode runs over every file in one steady-state section."""
    from run import dataset_rates

    path, nevts = mock_file
    res = dataset_rates([("ttbar__nominal", path, nevts), ("wjets__nominal", path, 50 * nevts)], 200_000, None, 1)
    assert res["n_files"] == 2 and res["entries"] == 4000
    r = res["rounds"][0]
    assert set(r) == {"read", "job"} and all(v > 0 for v in r.values())     # no models: no ML modes
    assert res["ratio_noml"] == r["job"] / r["read"]


def test_rntuple_rates_both_formats(mock_file, tmp_path):
    """The rntuple section: the same events as TTree and RNTuple, read and job rates of each."""
    from run import rntuple_rates, table_rows

    from agc_ttbar.mock.generator import generate_events
    from agc_ttbar.mock.writer import write_file

    path, nevts = mock_file
    rnt = str(tmp_path / "ttbar_rntuple.root")
    write_file(rnt, generate_events("ttbar__nominal", 0, 2000, 20240521), fmt="rntuple")
    res = rntuple_rates({"ttree": path, "rntuple": rnt}, nevts, 200_000, 1)
    assert res["entries"] == 2000 and res["file_bytes"]["rntuple"] > 0
    for fmt in ("ttree", "rntuple"):
        assert res[fmt]["read"]["rate_per_core"] > 0 and res[fmt]["job"]["rate_per_core"] > 0
    assert res["read_ratio_rntuple_over_ttree"] > 0
    rows = table_rows({"rntuple": res})
    assert any(r[0].startswith("raw read rate, TTree / RNTuple") for r in rows)
