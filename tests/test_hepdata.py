"""The HEPData record (agc_ttbar/statistics/hepdata.py, rule hepdata): content, validation, and
a broken submission failing. The record of a full DAG run is checked in
tests/test_reliability_workflow.py (a target there, compared bit for bit between runs)."""

import io
import json
import subprocess
import sys
import tarfile

import numpy as np
import pytest
import yaml

from agc_ttbar.statistics import fit as stat_fit
from agc_ttbar.statistics import hepdata
from agc_ttbar.statistics import model as stat_model
from agc_ttbar.statistics import workspace as stat_ws
from conftest import REPO, data_path
from test_statistics import ALL_SAMPLES, write_histograms


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """Workspace, cabinetry config and fit_results.json of the N=5 AGC reference (the ranking is
    test input: the fit's own ranking takes ~100 s here and is tested in test_statistics.py)."""
    tmp = tmp_path_factory.mktemp("hepdata")
    ref = json.loads(data_path("agc", "reference", "histos_5_file_per_process.json").read_text())
    write_histograms(str(tmp / "histograms.root"), {k: np.asarray(v["contents"], float) for k, v in ref.items()})
    cfg = stat_model.cabinetry_config(ALL_SAMPLES, str(tmp / "histograms.root"), str(tmp / "templates"))
    (tmp / "cabinetry_config.yml").write_text(yaml.safe_dump(cfg))
    ws = stat_ws.workspace_from_histograms(cfg)
    stat_ws.save(ws, str(tmp / "workspace.json"))
    doc, _ = stat_fit.analyse(ws, poi="ttbar_norm", do_ranking=False)   # ranking: 100 s, test input below
    nps = [n for n in doc["labels"] if n != "ttbar_norm"]
    doc["ranking"] = {"poi": "ttbar_norm", "labels": nps, **{k: [0.01 * (i + 1) for i in range(len(nps))]
                      for k in ("prefit_up", "prefit_down", "postfit_up", "postfit_down")}}
    (tmp / "fit_results.json").write_text(json.dumps(doc))
    return tmp, doc


def _run(tmp, out, fit="fit_results.json"):
    return subprocess.run([sys.executable, str(REPO / "workflow_scripts" / "hepdata.py"),
                           "--workspace", str(tmp / "workspace.json"), "--fit-results", str(tmp / fit),
                           "--cabinetry-config", str(tmp / "cabinetry_config.yml"), "--output-dir", str(out)],
                          capture_output=True, text=True, timeout=300)


def _tables(archive):
    with tarfile.open(archive) as tar:
        return {m.name: list(yaml.safe_load_all(tar.extractfile(m).read())) for m in tar.getmembers()}


def test_record_validates_and_holds_the_fit(fitted, tmp_path):
    tmp, doc = fitted
    proc = _run(tmp, tmp_path / "hepdata")
    assert proc.returncode == 0, proc.stderr[-3000:]
    archive = tmp_path / "hepdata" / "submission.tar.gz"
    assert "(valid)" in proc.stdout
    hepdata.validate_archive(str(archive))
    tables = _tables(archive)
    assert set(tables) == {"submission.yaml", "fitted_ttbar_norm.yaml", "yields_4j1b_cr.yaml",
                           "yields_4j2b_sr.yaml", "nuisance_parameter_pulls.yaml",
                           "nuisance_parameter_ranking.yaml", "correlation_matrix.yaml"}
    poi = tables["fitted_ttbar_norm.yaml"][0]["dependent_variables"][0]["values"][0]
    assert poi["value"] == pytest.approx(doc["poi"]["value"], rel=1e-5)
    errors = {e["label"]: e for e in poi["errors"]}
    assert errors["HESSE"]["symerror"] == pytest.approx(doc["poi"]["uncertainty"], rel=1e-5)
    assert errors["MINOS"]["asymerror"]["plus"] == pytest.approx(doc["poi"]["minos"]["up"], rel=1e-5)
    sr = tables["yields_4j2b_sr.yaml"][0]
    assert len(sr["independent_variables"][0]["values"]) == 11
    dep = {d["header"]["name"]: d["values"] for d in sr["dependent_variables"]}
    assert {"Pre-fit total", "Post-fit total", "Data", "Post-fit ttbar"} <= set(dep)
    ws = json.loads((tmp / "workspace.json").read_text())
    observed = next(o["data"] for o in ws["observations"] if o["name"] == "4j2b SR")
    assert [v["value"] for v in dep["Data"]] == pytest.approx(observed, rel=1e-5)
    assert all(v["errors"][0]["symerror"] > 0 for v in dep["Post-fit total"])
    corr = tables["correlation_matrix.yaml"][0]["dependent_variables"][0]["values"]
    n = len(doc["labels"])
    assert len(corr) == n * n and all(corr[i * n + i]["value"] == pytest.approx(1.0) for i in range(n))
    ranking = tables["nuisance_parameter_ranking.yaml"][0]
    assert len(ranking["independent_variables"][0]["values"]) == len(doc["ranking"]["labels"])
    again = _run(tmp, tmp_path / "again")
    assert again.returncode == 0
    assert (tmp_path / "again" / "submission.tar.gz").read_bytes() == archive.read_bytes()


def test_broken_submission_fails_validation(fitted, tmp_path):
    """A table with a dependent variable shorter than its independent one is refused."""
    tmp, _ = fitted
    assert _run(tmp, tmp_path / "ok").returncode == 0
    src = tmp_path / "ok" / "submission.tar.gz"
    broken = tmp_path / "broken.tar.gz"
    with tarfile.open(src) as tin, tarfile.open(broken, "w:gz") as tout:
        for m in tin.getmembers():
            data = tin.extractfile(m).read()
            if m.name == "fitted_ttbar_norm.yaml":
                table = yaml.safe_load(data)
                del table["independent_variables"]   # a required key of a data table
                data = yaml.safe_dump(table).encode()
            m.size = len(data)
            tout.addfile(m, io.BytesIO(data))
    with pytest.raises(hepdata.HEPDataError, match="fitted_ttbar_norm.yaml.*independent_variables"):
        hepdata.validate_archive(str(broken))


def test_fit_of_another_workspace_fails_the_job_with_a_clear_error(fitted, tmp_path):
    tmp, doc = fitted
    bad = dict(doc, labels=list(reversed(doc["labels"])))
    (tmp / "fit_other.json").write_text(json.dumps(bad))
    proc = _run(tmp, tmp_path / "hepdata", fit="fit_other.json")
    assert proc.returncode == 1
    assert "ERROR:" in proc.stderr and "rerun the fit rule" in proc.stderr
    assert not (tmp_path / "hepdata").exists()
