"""Frozen digests of the per-file job's histograms: a speed change that alters one bit fails here.

The digests are over the exact integer limbs (sumw, sumw2) of every histogram, keys sorted, of a mock
ttbar file (generator seed 20240521) processed without ML and with the DAG's kind of BDT on both
engines (xgboost and the compiled forest). A change of physics must update them on purpose.
"""

import hashlib

import numpy as np
import pytest

from agc_ttbar import selection
from agc_ttbar.processing import SampleInfo, process_file

xgboost = pytest.importorskip("xgboost")

from agc_ttbar.ml.inference import AssignmentScorer, BoosterModel  # noqa: E402
from test_ml_forest import train  # noqa: E402

N = 3000
#: sha256 of the limbs, taken before the speed work of issue 15 (commit aaa638a).
DIGEST_NO_ML = "e3c73a6bda9edb8a393705ca5ebf7ec3c39e20e2024e663a1e2d745a812aafad"
DIGEST_ML = "593110c8ca556eda68e7ed9c65e0c9efdc815be53cd186200b8eb9d643ca438f"


@pytest.fixture(scope="module")
def mock_file(tmp_path_factory):
    from agc_ttbar.mock.generator import generate_events
    from agc_ttbar.mock.writer import write_file
    path = str(tmp_path_factory.mktemp("digest") / "ttbar.root")
    write_file(path, generate_events("ttbar__nominal", 0, N, 20240521))
    return path


def digest(hists) -> str:
    h = hashlib.sha256()
    for key in sorted(hists.hists):
        x = hists.hists[key]
        h.update(key.encode())
        h.update(np.ascontiguousarray(x.sumw).tobytes())
        h.update(np.ascontiguousarray(x.sumw2).tobytes())
    return h.hexdigest()


def run(path, scorer=None, chunksize=1000):
    info = SampleInfo.from_key("ttbar__nominal", 0.5, N)
    return process_file(path, info, chunksize=chunksize, scorer=scorer, log=lambda m: None)


def test_no_ml_digest(mock_file):
    hists, meta = run(mock_file)
    assert meta["cutflow"]["steps"]["4j2b"] > 100
    assert digest(hists) == DIGEST_NO_ML


@pytest.mark.parametrize("compiled", [False, True])
def test_ml_digest_both_engines(mock_file, compiled):
    even, _ = train(seed=21)
    odd, _ = train(seed=22)
    scorer = AssignmentScorer([BoosterModel(even, compiled=compiled), BoosterModel(odd, compiled=compiled)])
    assert scorer.compiled is compiled
    hists, _ = run(mock_file, scorer)
    assert digest(hists) == DIGEST_ML


def test_a_jet_cut_is_one_edit(mock_file, monkeypatch):
    """Changing a jet cut constant in agc_ttbar.selection changes the per-file job's selection: the
    job's jet counts follow selection.jet_mask, whatever the constants."""
    import awkward as ak
    import uproot
    with uproot.open(mock_file) as f:
        ev = f["Events"].arrays(["Jet_pt", "Jet_eta", "Jet_jetId"])
    for name, value in (("JET_PT_MIN", 45), ("JET_ABS_ETA_MAX", 1.5), ("JET_ID_BIT", 1)):
        monkeypatch.setattr(selection, name, value)
        _, meta = run(mock_file)
        n4 = int(ak.sum(ak.sum(selection.jet_mask(ev.Jet_pt, ev.Jet_eta, ev.Jet_jetId), axis=1) >= 4))
        assert meta["cutflow"]["single"]["atleast_4j"] == n4, name
        monkeypatch.undo()
    _, meta = run(mock_file)
    assert meta["cutflow"]["single"]["atleast_4j"] != n4


def test_a_job_of_several_files_equals_one_job_per_file(mock_file, tmp_path):
    """workflow_scripts/process_file.py with two --index values writes the same limbs as two one-file
    jobs merged (the grouping of processing.events_per_job changes no bit), and per-file metadata."""
    import importlib.util
    import json
    import pathlib

    from agc_ttbar.histograms import HistogramSet, merge_sets
    from agc_ttbar.mock.generator import generate_events
    from agc_ttbar.mock.writer import write_file

    second = str(tmp_path / "ttbar_1.root")
    write_file(second, generate_events("ttbar__nominal", 1, 2000, 20240521))
    fileset = tmp_path / "fileset.json"
    fileset.write_text(json.dumps({"ttbar__nominal": {
        "process": "ttbar", "variation": "nominal", "weight": 0.5, "nevts_total": N + 2000,
        "files": [{"index": 0, "path": mock_file, "nevts": N}, {"index": 1, "path": second, "nevts": 2000}]}}))
    path = pathlib.Path(__file__).resolve().parent.parent / "workflow_scripts" / "process_file.py"
    spec = importlib.util.spec_from_file_location("process_file_script", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    common = ["--fileset", str(fileset), "--sample", "ttbar__nominal", "--chunksize", "1000"]
    outs = []
    for i in (0, 1):
        outs.append(str(tmp_path / f"p{i}.npz"))
        assert script.main(common + ["--index", str(i), "--output", outs[-1]]) == 0
    both = str(tmp_path / "both.npz")
    assert script.main(common + ["--index", "0", "1", "--input", mock_file, second, "--output", both]) == 0
    merged, _ = merge_sets(outs)
    grouped, meta = HistogramSet.load(both)
    assert digest(grouped) == digest(merged)
    assert meta["index"] == [0, 1] and [p["entries"] for p in meta["parts"]] == [N, 2000]
    assert meta["nevents"] == N + 2000 and meta["cutflow"]["steps"]["all"] == N + 2000
    assert script.main(common + ["--index", "0", "2", "--output", both]) == 1
