"""Fileset stage on the real AGC input list (spec §1.3-1.5)."""

import json
import subprocess
import sys

import pytest

from agc_ttbar.fileset import (EOS_REWRITE, InputsError, build_fileset, group_files, load_inputs, rewrite_path)
from agc_ttbar.samples import SAMPLES, XSEC_PB, sample_key

ALL = [sample_key(p, v) for p, v in SAMPLES]

# spec §1.5: (files, events) per N
TABLE = {1: (9, 10_455_719), 5: (43, 47_996_231), -1: (787, 940_160_174)}


@pytest.mark.parametrize("n", [1, 5, -1])
def test_file_counts_and_event_sums(agc_inputs, n):
    fs = build_fileset(load_inputs(str(agc_inputs)), ALL, n)
    files = sum(len(s["files"]) for s in fs.values())
    events = sum(s["nevts_total"] for s in fs.values())
    assert (files, events) == TABLE[n]


def test_weights_n1(agc_inputs):
    fs = build_fileset(load_inputs(str(agc_inputs)), ALL, 1)
    expected = {  # spec §1.3, N=1
        "ttbar__nominal": 1.847533, "single_top_s_chan__nominal": 0.0176084,
        "single_top_t_chan__nominal": 0.672922, "single_top_tW__nominal": 0.302258,
        "wjets__nominal": 41.883472, "ttbar__ME_var": 1.817069, "ttbar__PS_var": 1.881651,
        "ttbar__scaleup": 1.928059, "ttbar__scaledown": 1.943941,
    }
    for key, w in expected.items():
        assert fs[key]["weight"] == pytest.approx(w, rel=5e-6), key  # spec rounds to 7 digits
        s = fs[key]
        assert s["weight"] == s["xsec"] * s["lumi"] / s["nevts_total"]
    assert fs["ttbar__nominal"]["nevts_total"] == 1_334_428


def test_n5_per_sample_sums(agc_inputs):
    fs = build_fileset(load_inputs(str(agc_inputs)), ALL, 5)
    assert fs["ttbar__ME_var"]["nevts_total"] == 5_482_617
    assert fs["single_top_tW__nominal"]["nevts_total"] == 1_999_400
    assert len(fs["single_top_tW__nominal"]["files"]) == 3  # saturates at 3 files


def test_cross_sections():
    assert XSEC_PB["ttbar"] == pytest.approx(729.84)
    assert XSEC_PB["single_top_t_chan"] == pytest.approx(234.79365079, rel=1e-9)
    assert XSEC_PB["wjets"] == pytest.approx(15487.164)


def test_eos_and_xcache_rewrites(agc_inputs):
    fs = build_fileset(load_inputs(str(agc_inputs)), ["ttbar__nominal"], 1, [EOS_REWRITE])
    path = fs["ttbar__nominal"]["files"][0]["path"]
    assert path.startswith("root://eospublic.cern.ch//eos/opendata/cms/upload/agc/1.0.0/")
    assert path.endswith("TT_TuneCUETP8M1_13TeV-powheg-pythia8/cmsopendata2015_ttbar_19980_PU25nsData2015v1_76X_mcRun2_asymptotic_v12_ext3-v1_00000_0000.root")
    assert rewrite_path("https://a/b.root", [], "root://cache.example") == "root://cache.example//https://a/b.root"
    assert rewrite_path("/local/b.root", [], "root://cache.example") == "/local/b.root"


def test_missing_key_is_named(tmp_path):
    bad = tmp_path / "inputs.json"
    bad.write_text(json.dumps({"ttbar": {"nominal": {"nevts_total": 3, "files": [{"path": "a.root"}]}}}))
    with pytest.raises(InputsError, match=r"files\[0\] has no key 'nevts'"):
        load_inputs(str(bad))
    bad.write_text(json.dumps({"ttbar": {"nominal": {"nevts_total": 3}}}))
    with pytest.raises(InputsError, match="has no key 'files'"):
        load_inputs(str(bad))


def test_unknown_sample_is_named(tmp_path):
    path = tmp_path / "inputs.json"
    path.write_text(json.dumps({"ttbar": {"nominal": {"nevts_total": 3, "files": [{"path": "a.root", "nevts": 3}]}}}))
    with pytest.raises(InputsError, match="no sample 'wjets' / 'nominal'"):
        build_fileset(load_inputs(str(path)), ["wjets__nominal"], -1, source=str(path))


def test_fileset_script(agc_inputs, tmp_path, repo):
    out = tmp_path / "fileset.json"
    subprocess.run([sys.executable, str(repo / "workflow_scripts" / "fileset.py"), "--inputs", str(agc_inputs),
                    "--output", str(out), "--samples", *ALL, "--n-files-max", "2"], check=True)
    fs = json.loads(out.read_text())
    assert sum(len(s["files"]) for s in fs.values()) == 18
    assert sum(s["nevts_total"] for s in fs.values()) == 19_497_435
    assert [f["index"] for f in fs["ttbar__nominal"]["files"]] == [0, 1]


def test_group_files_by_events():
    """Small files share a job up to processing.events_per_job; a big file is always alone; 0 = per file."""
    assert group_files([28_000, 28_000], 100_000) == [[0, 1]]
    assert group_files([60_000, 50_000, 10_000, 1_200_000, 5], 100_000) == [[0], [1, 2], [3], [4]]
    assert group_files([10, 10, 10], 0) == [[0], [1], [2]]
    assert group_files([], 100_000) == []
    assert group_files([100_000, 1], 100_000) == [[0], [1]]
