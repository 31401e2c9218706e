"""The reference validator's tolerance rule (spec §7.3), on the real AGC reference for N=1."""

import copy
import importlib.util
import json
import pathlib

import hist
import numpy as np
import pytest
import uproot

from agc_ttbar.validation import compare, read_root_histograms, validate_files

REPO = pathlib.Path(__file__).resolve().parent.parent


def _script():
    spec = importlib.util.spec_from_file_location("workflow_script_validate", REPO / "workflow_scripts" / "validate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def reference():
    from conftest import data_path

    path = data_path("agc", "reference", "histos_1_file_per_process.json")
    return str(path), json.loads(path.read_text())


def write_root(path, data):
    """Write {key: {"edges", "contents"}} as TH1D histograms (flow included)."""
    with uproot.recreate(path) as f:
        for key, h in data.items():
            edges = np.asarray(h["edges"])
            th = hist.Hist(hist.axis.Variable(edges), storage=hist.storage.Weight())
            view = th.view(flow=True)
            view.value = np.asarray(h["contents"])
            view.variance = np.asarray(h["contents"])
            f[key] = th


def test_reference_against_itself(reference, tmp_path):
    ref_path, ref = reference
    assert len(ref) == 124
    write_root(tmp_path / "h.root", ref)
    res = validate_files(str(tmp_path / "h.root"), ref_path)
    assert res.ok and res.compared == 114 and len(res.skipped) == 10   # 5 processes x 2 regions pt_res_up
    assert "All good!" in res.report()
    # round trip through the ROOT file keeps the numbers exactly
    back = read_root_histograms(str(tmp_path / "h.root"))
    assert back["4j1b_ttbar"]["contents"].tolist() == ref["4j1b_ttbar"]["contents"]


def test_tolerance_rule(reference):
    _, ref = reference
    ref = {k: {"edges": np.asarray(v["edges"]), "contents": np.asarray(v["contents"])} for k, v in ref.items()}
    w = 1.847533
    # one ttbar event migrating between adjacent bins: accepted
    h = copy.deepcopy(ref)
    h["4j1b_ttbar"]["contents"][8] -= w
    h["4j1b_ttbar"]["contents"][9] += w
    res = compare(h, ref)
    assert res.ok and len(res.migrations) == 1 and "4j1b_ttbar bin(s) 8-9" in res.migrations[0]
    # a W+jets event (w = 41.9) migrating is more than atol 2.0: error
    h = copy.deepcopy(ref)
    h["4j1b_wjets"]["contents"][8] -= 41.883472
    h["4j1b_wjets"]["contents"][9] += 41.883472
    res = compare(h, ref)
    assert not res.ok and "4j1b_wjets" in res.errors[0]
    # a lost event: the group sum differs -> error even though within atol
    h = copy.deepcopy(ref)
    h["4j2b_ttbar"]["contents"][10] -= w
    assert not compare(h, ref).ok
    # two separated single-bin changes are separate groups, each with a different sum: error
    h = copy.deepcopy(ref)
    h["4j2b_ttbar"]["contents"][5] += 1.0
    h["4j2b_ttbar"]["contents"][20] -= 1.0
    res = compare(h, ref)
    assert not res.ok and len(res.errors) == 2
    # pt_res_up contents are not compared; its edges are
    h = copy.deepcopy(ref)
    h["4j2b_ttbar_pt_res_up"]["contents"] = h["4j2b_ttbar_pt_res_up"]["contents"] * 1.3
    assert compare(h, ref).ok
    h["4j2b_ttbar_pt_res_up"]["edges"] = h["4j2b_ttbar_pt_res_up"]["edges"] + 1.0
    res = compare(h, ref)
    assert not res.ok and "edges differ" in res.errors[0]
    # missing keys: error, except the pseudodata; extra keys are ignored
    h = copy.deepcopy(ref)
    del h["4j1b_pseudodata"], h["4j2b_pseudodata"]
    h["4j1b_something_else"] = h["4j1b_ttbar"]
    assert compare(h, ref).ok
    del h["4j2b_wjets_scale_var_up"]
    res = compare(h, ref)
    assert res.errors == ["4j2b_wjets_scale_var_up: missing in the produced histograms"]


def test_script_exit_codes_and_report(reference, tmp_path, capsys):
    ref_path, ref = reference
    good = tmp_path / "good.root"
    write_root(good, ref)
    script = _script()
    assert script.main(["--histos", str(good), "--reference", ref_path, "--output", str(tmp_path / "r.txt")]) == 0
    assert (tmp_path / "r.txt").read_text().endswith("All good!\n")
    bad = dict(ref)
    bad["4j1b_ttbar"] = {"edges": ref["4j1b_ttbar"]["edges"],
                         "contents": (np.asarray(ref["4j1b_ttbar"]["contents"]) * 1.1).tolist()}
    write_root(tmp_path / "bad.root", bad)
    assert script.main(["--histos", str(tmp_path / "bad.root"), "--reference", ref_path,
                        "--output", str(tmp_path / "r2.txt")]) == 1
    text = (tmp_path / "r2.txt").read_text()
    assert "FAILED" in text and "4j1b_ttbar" in text
    capsys.readouterr()
    assert script.main(["--histos", str(good), "--dump-json"]) == 0
    dumped = json.loads(capsys.readouterr().out)
    assert dumped["4j2b_pseudodata"]["contents"] == ref["4j2b_pseudodata"]["contents"]
