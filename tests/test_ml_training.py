"""Training data, model training (xgboost, torch), saved models, metrics, and the accuracy floor
of a BDT trained on the mock dataset."""

import json

import awkward as ak
import numpy as np
import pytest

import ml_toy_ttbar as toy
from agc_ttbar.ml import dataset, metrics, training
from agc_ttbar.ml.inference import AssignmentScorer

BDT = {"num_boost_round": 40, "max_depth": 5, "learning_rate": 0.3, "min_child_weight": 1.0}
TORCH = {"hidden": [16, 16], "epochs": 3, "batch_size": 64, "learning_rate": 0.005}


@pytest.fixture(scope="module")
def toy_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("ml") / "toy_ttbar.root"
    toy.write(path, toy.make_ttbar(12000, seed=11))
    return str(path)


@pytest.fixture(scope="module")
def toy_data(toy_file):
    data, summary = dataset.extract([toy_file], chunksize=5000, max_per_parity=20000, log=lambda *_: None)
    return data, summary


def test_extraction_selects_fully_matched_4j2b_events(toy_data, toy_file):
    data, summary = toy_data
    n = len(data["event"])
    assert summary["events_read"] == 12000 and 0 < summary["fully_matched"] <= summary["4j2b"] < 12000
    assert n == summary["n_even"] + summary["n_odd"] == summary["fully_matched"]
    assert (np.sort(data["labels"][:, :4], axis=1) == [-6, 6, 24, 24]).all()
    assert (data["n_jets"] >= 4).all() and (np.isnan(data["jet_pt"]) == (np.arange(6) >= data["n_jets"][:, None])).all()
    assert (data["lepton_pt"] > 30).all() and (data["jet_pt"][:, :4] > 30).all()
    # the cap keeps the first events of each parity in file order, whatever the chunk size
    capped, s2 = dataset.extract([toy_file], chunksize=777, max_per_parity=100, log=lambda *_: None)
    assert s2["n_even"] == s2["n_odd"] == 100 and s2["events_read"] < 12000
    even = data["event"] % 2 == 0
    np.testing.assert_array_equal(capped["event"][capped["event"] % 2 == 0], data["event"][even][:100])
    np.testing.assert_array_equal(capped["event"][capped["event"] % 2 == 1], data["event"][~even][:100])
    np.testing.assert_array_equal(capped["jet_pt"], dataset.cap_per_parity(data, 100)["jet_pt"])


def test_save_load_roundtrip(toy_data, tmp_path):
    data, summary = toy_data
    path = str(tmp_path / "td.npz")
    dataset.save(data, summary, path)
    back, s = dataset.load(path)
    assert s == json.loads(json.dumps(summary))
    for k in data:
        np.testing.assert_array_equal(back[k], data[k])


def test_bdt_training_saved_models_and_metrics(toy_data, tmp_path):
    data, _ = toy_data
    models, raw, info = training.train_pair("bdt", data, BDT, seed=5, nthread=1, log=lambda *_: None)
    paths = [str(tmp_path / "bdt_even.json"), str(tmp_path / "bdt_odd.json")]
    training.save_models("bdt", raw, paths)
    m, val = training.evaluate(models, data)
    lead = m["leading4"]
    assert lead["model"]["all_correct"] > 0.6 > 0.25 > lead["random"]["all_correct"]
    assert lead["random"] == pytest.approx({"all_correct": 1 / 12, "per_jet": 0.375, "top_had_triplet": 0.25, "auc": 0.5})
    assert lead["model"]["auc"] > 0.9
    assert val["scores"].shape == val["target"].shape == (len(data["event"]), 12)
    assert (val["target"].sum(axis=1) == 1).all()
    # loaded from JSON, the pipeline scores the same as the in-memory boosters
    scorer = AssignmentScorer.from_config("bdt", paths, max_n_jets=6, nthread=1)
    np.testing.assert_allclose(training.validation_scores(scorer.models, data), val["scores"], rtol=0, atol=1e-6)
    assert info["n_train_even"] + info["n_train_odd"] == len(data["event"])


def test_torch_training_is_deterministic_and_loads(toy_data, tmp_path):
    data, _ = toy_data
    small = dataset.cap_per_parity(data, 400)
    _, raw_a, _ = training.train_pair("torch", small, TORCH, seed=3, nthread=1, log=lambda *_: None)
    _, raw_b, _ = training.train_pair("torch", small, TORCH, seed=3, nthread=1, log=lambda *_: None)
    for a, b in zip(raw_a, raw_b):
        for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
            assert ka == kb and bool((va == vb).all())
    paths = [str(tmp_path / "torch_even.pt"), str(tmp_path / "torch_odd.pt")]
    training.save_models("torch", raw_a, paths)
    scorer = AssignmentScorer.from_config("torch", paths, max_n_jets=6, nthread=1)
    models, _, _ = training.train_pair("torch", small, TORCH, seed=3, nthread=1, log=lambda *_: None)
    np.testing.assert_array_equal(training.validation_scores(scorer.models, small),
                                  training.validation_scores(models, small))
    m, _ = training.evaluate(scorer.models, small)
    assert m["leading4"]["model"]["all_correct"] > 2 * m["leading4"]["random"]["all_correct"]


def test_average_ranks_are_scipys():
    from scipy.stats import rankdata

    rng = np.random.default_rng(3)
    for x in (rng.normal(size=1000), np.round(rng.normal(size=1000), 1), np.zeros(7), np.array([2.0]),
              np.array([np.inf, -np.inf, 0.0, 0.0, 1.0])):
        ranks = metrics.average_ranks(x)
        assert ranks.dtype == np.float64 and np.array_equal(ranks, rankdata(x)), x[:5]


def test_auc_and_trijet_by_hand():
    assert metrics.auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75
    assert metrics.auc([0.5, 0.5, 0.5], [0, 1, 0]) == 0.5
    # four jets: the b-tagged triplets are those with jet 2 or 3; {0, 1, 2} has the largest pT sum
    jets = {"pt": np.array([[100.0, 90.0, 40.0, 35.0]]), "eta": np.zeros((1, 4)),
            "phi": np.array([[0.0, 0.3, -0.3, 3.0]]), "mass": np.zeros((1, 4)),
            "btag": np.array([[0.1, 0.2, 0.9, 0.7]])}
    choice = metrics.trijet_choice(jets)
    from agc_ttbar.ml.permutations import permutations
    assert permutations(4)[choice].tolist() == [[1, 0, 2, 3]]
    jets["btag"] = np.array([[0.1, 0.2, 0.3, 0.7]])            # only jet 3 tagged: {0, 1, 3}
    assert permutations(4)[metrics.trijet_choice(jets)].tolist() == [[1, 0, 3, 2]]
    q = metrics.assignment_quality(np.array([0, 0]), np.array([[24, 24, 6, -6], [24, 24, -6, 6]]))
    assert q == {"all_correct": 0.5, "per_jet": 0.75, "top_had_triplet": 0.5}


def test_bdt_trained_on_mock_ttbar_beats_random():
    """Acceptance: a BDT trained on the mock dataset assigns all four jets correctly far more often
    than a random choice. Measured with this setup (10k mock ttbar events, 1941 fully matched,
    40 rounds): 0.80 all correct (leading 4), trijet 0.47, random 1/12; top 6 jets: 0.75 vs 0.07.
    With the workflow defaults (the default dataset, 50 rounds of depth 3): 0.84 (leading 4), 0.80 (top 6)."""
    generator = pytest.importorskip("agc_ttbar.mock.generator")
    g = generator.generate_events("ttbar__nominal", 0, 10000, 20240521)
    arrays = ak.zip({k: g.branches[k] for k in dataset.BRANCHES}, depth_limit=1)
    data = dataset.select_events(arrays)
    cut = data.pop("_cutflow")
    assert cut["fully_matched"] > 1000
    models, _, _ = training.train_pair("bdt", data, BDT, seed=5, nthread=1, log=lambda *_: None)
    m, _ = training.evaluate(models, data)
    assert m["leading4"]["model"]["all_correct"] > 0.65          # random: 1/12
    assert m["leading4"]["model"]["all_correct"] > m["leading4"]["trijet"]["all_correct"] + 0.2
    assert m["top6"]["model"]["all_correct"] > 0.6 > 0.1 > m["top6"]["random"]["all_correct"]


def test_training_data_script_names_the_bad_file(tmp_path, toy_file):
    """ml_training_data: a missing file, a non-ROOT file and a NanoAOD file without GenPart give one
    ERROR line naming the file (and the branches), exit 1, and no output."""
    import pathlib
    import subprocess
    import sys

    import uproot

    no_gen = tmp_path / "no_genpart.root"
    ev = toy.make_ttbar(300, seed=3)
    data = {k: ev[k] for k in ("run", "luminosityBlock", "event")}
    types = {k: str(ev[k].dtype) for k in data}
    for coll in ("Jet", "Electron", "Muon"):                 # no GenPart
        fields, counts = ev[coll]
        data[coll] = ak.zip({f: ak.unflatten(np.asarray(v), counts) for f, v in fields.items()})
        types[coll] = "var * {" + ", ".join(f"{f}: {np.asarray(v).dtype}" for f, v in fields.items()) + "}"
    with uproot.recreate(no_gen) as f:
        f.mktree("Events", types, field_name=lambda o, i: f"{o}_{i}", counter_name=lambda c: f"n{c}").extend(data)
    garbage = tmp_path / "garbage.root"
    garbage.write_bytes(b"not a ROOT file" * 100)
    cases = {str(tmp_path / "missing.root"): "does not exist", str(garbage): "cannot open input file",
             str(no_gen): "GenPart_eta"}
    for path, expect in cases.items():
        fileset = tmp_path / "fileset.json"
        fileset.write_text(json.dumps({"ttbar__nominal": {"files": [{"path": path}]}}))
        out = tmp_path / "data.npz"
        proc = subprocess.run([sys.executable, "workflow_scripts/ml_training_data.py", "--fileset", str(fileset),
                               "--samples", "ttbar__nominal", "--output", str(out)],
                              capture_output=True, text=True, cwd=str(pathlib.Path(__file__).parents[1]))
        assert proc.returncode == 1, proc.stderr
        assert "Traceback" not in proc.stderr and path in proc.stderr and expect in proc.stderr, proc.stderr
        assert not out.exists()
