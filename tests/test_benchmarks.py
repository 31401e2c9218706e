"""Smoke test of the benchmark machinery (benchmarks/), not of its timings.

- the coffea baseline of the speed comparison fills the same nominal histograms as the per-file job
  on the same mock file (same bin counts, sums equal to rounding);
- ``benchmarks/run.py --quick`` on the per-file sections writes the JSON and markdown with the
  structure the README table is built from.
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
    cmd = [sys.executable, str(REPO / "benchmarks" / "run.py"), "--quick", "--sections", "perfile,coffea,memory",
           "--bench-dir", str(tmp_path / "bench"), "--output", str(out)]
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["mode"] == "quick" and not res["errors"]
    assert {"cpu", "cores", "versions"} <= set(res["machine"])
    for label in ("default", "full_layout"):
        r = res["perfile"][label]
        for mode in ("read", "job", "read_ml", "job_ml", "coffea"):
            assert r[mode]["rate_per_core"] > 0
        assert r["ratio_noml"] > 0 and r["ratio_ml"] > 0 and r["coffea_speedup"] > 0
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
    assert "| figure | value | target | status |" in md
    assert "PASS" in md or "MISS" in md
    assert "job / raw read, no ML, default mock" in proc.stdout


def test_dataset_rates_sum_over_files(mock_file):
    """The dataset section: every mode runs on every file; rates are events / summed CPU."""
    from run import dataset_rates

    path, nevts = mock_file
    res = dataset_rates([("ttbar__nominal", path, nevts), ("wjets__nominal", path, 50 * nevts)], 200_000, None, 1)
    assert res["n_files"] == 2 and res["entries"] == 4000
    r = res["rounds"][0]
    assert set(r) == {"read", "job", "read_ml", "job_ml"} and all(v > 0 for v in r.values())
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
