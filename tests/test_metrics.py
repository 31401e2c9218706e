"""results/metrics.json: per-job and summed processing metrics from the per-file jobs' metadata."""

import importlib.util
import json
import os
import pathlib

import pytest

from agc_ttbar.histograms import HistogramSet
from agc_ttbar.metrics import summarise
from agc_ttbar.processing import SampleInfo, combined_metadata, process_file

xgboost = pytest.importorskip("xgboost")

from agc_ttbar.ml.inference import AssignmentScorer, BoosterModel  # noqa: E402
from test_ml_forest import train  # noqa: E402


def test_metrics_of_jobs_with_and_without_ml(tmp_path):
    from agc_ttbar.mock.generator import generate_events
    from agc_ttbar.mock.writer import write_file

    path = str(tmp_path / "ttbar.root")
    write_file(path, generate_events("ttbar__nominal", 0, 2000, 20240521))
    info = SampleInfo.from_key("ttbar__nominal", 0.5, 2000)
    even, _ = train(seed=21)
    odd, _ = train(seed=22)
    scorer = AssignmentScorer([BoosterModel(even, compiled=False), BoosterModel(odd, compiled=False)])
    h_ml, m_ml = process_file(path, info, chunksize=700, scorer=scorer, log=lambda m: None)
    h0, m0 = process_file(path, info, log=lambda m: None)
    h_half, m_half = process_file(path, info, log=lambda m: None, entry_stop=1000)
    assert 0 < m0["bytes_read"] <= os.path.getsize(path) and m_ml["bytes_read"] > m0["bytes_read"]
    assert abs(m_half["bytes_read"] - m0["bytes_read"] / 2) <= 1
    assert m0["ml_s"] == 0 and 0 < m_ml["ml_s"] < m_ml["timing"]["wall_s"]
    for m, idx in ((m0, 0), (m_ml, 1)):
        m["index"], m["fileset_path"] = idx, path
    grouped = combined_metadata([m0, m_ml])          # one job of two files
    out = summarise([m_half, grouped])
    job = out["jobs"][1]
    assert job["files"] == [path, path] and job["entries"] == 4000 and job["ml"] is False
    assert job["bytes_read"] == m0["bytes_read"] + m_ml["bytes_read"]
    t = out["total"]
    assert t["jobs"] == 2 and t["files"] == 3 and t["entries"] == 5000
    assert t["wall_s"] == pytest.approx(sum(j["wall_s"] for j in out["jobs"]))
    assert t["events_per_s_per_worker"] == pytest.approx(5000 / t["wall_s"])
    assert 0 < t["ml_share"] < 1 and t["ml_share"] == pytest.approx(m_ml["ml_s"] / t["wall_s"])

    # the script of the `metrics` rule
    parts = []
    for i, (h, m) in enumerate(((h_half, m_half), (h_ml, m_ml))):
        parts.append(str(tmp_path / f"p{i}.npz"))
        h.save(parts[-1], m)
    spec = importlib.util.spec_from_file_location(
        "metrics_script", pathlib.Path(__file__).resolve().parent.parent / "workflow_scripts" / "metrics.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    target = tmp_path / "metrics.json"
    assert script.main(["--inputs", *parts, "--output", str(target)]) == 0
    written = json.loads(target.read_text())
    assert written["total"]["entries"] == 3000 and written["jobs"][1]["ml"] is True
    assert HistogramSet.load(parts[0])[1]["bytes_read"] == m_half["bytes_read"]
