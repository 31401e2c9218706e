"""AssignmentScorer: parity routing, argmax, max_n_jets, batching, published BDT vs xgboost."""

import awkward as ak
import numpy as np
import pytest

from agc_ttbar.ml.features import FEATURE_NAMES
from agc_ttbar.ml.inference import AssignmentScorer, all_permutation_features
from conftest import data_path

PT_W1, PT_BTOPLEP = FEATURE_NAMES.index("pt_w1"), FEATURE_NAMES.index("pt_btoplep")


class ColumnModel:
    """Score = sign * one feature column."""

    def __init__(self, column, sign=1.0):
        self.column, self.sign = column, sign

    def predict(self, x):
        return self.sign * x[:, self.column]


def random_events(n, seed=1, min_jets=4, max_jets=8):
    rng = np.random.default_rng(seed)
    nj = rng.integers(min_jets, max_jets + 1, n)
    m = int(nj.sum())

    def jag(x):
        return ak.unflatten(x.astype(np.float32), nj)

    jets = {"pt": jag(rng.exponential(50, m) + 30), "eta": jag(rng.normal(0, 1.2, m)),
            "phi": jag(rng.uniform(-np.pi, np.pi, m)), "mass": jag(rng.uniform(2, 20, m)),
            "btag": jag(rng.uniform(0, 1, m)), "qgl": jag(rng.uniform(-1, 1, m))}
    lepton = {"pt": rng.exponential(30, n) + 30, "eta": rng.normal(0, 1, n),
              "phi": rng.uniform(-np.pi, np.pi, n), "mass": np.full(n, 0.000511)}
    event = rng.integers(0, 2**40, n).astype(np.uint64)
    return jets, lepton, event


def test_parity_routing_and_argmax():
    jets, lepton, event = random_events(200)
    # model trained on even (scores odd events) prefers a high-pt W1, the odd one a low-pt W1
    scorer = AssignmentScorer([ColumnModel(PT_W1, +1), ColumnModel(PT_W1, -1)], max_n_jets=6)
    best = scorer.best_features(jets, lepton, event)
    first6 = ak.to_list(jets["pt"][:, :6])
    even = event % 2 == 0
    for i in range(200):
        candidates = [np.float64(np.float32(p)) for p in first6[i][1:]]   # w1 index >= 1
        expect = min(candidates) if even[i] else max(candidates)
        assert best[i, PT_W1] == expect
    stats = scorer.stats.as_dict()
    n_used = np.minimum(ak.to_numpy(ak.num(jets["pt"])), 6)
    assert stats["n_evaluations"] == int(sum({4: 12, 5: 60, 6: 180}[k] for k in n_used))
    assert stats["n_events"] == 200


def test_only_first_six_jets_and_batches_agree():
    jets, lepton, event = random_events(300, seed=2, min_jets=7, max_jets=9)
    scorer = AssignmentScorer([ColumnModel(PT_BTOPLEP), ColumnModel(PT_BTOPLEP)], max_n_jets=6)
    best = scorer.best_features(jets, lepton, event)
    expect = ak.to_numpy(ak.max(jets["pt"][:, :6], axis=1)).astype(np.float64)
    np.testing.assert_array_equal(best[:, PT_BTOPLEP], expect)
    small = AssignmentScorer([ColumnModel(PT_BTOPLEP), ColumnModel(PT_BTOPLEP)], max_n_jets=6)
    small.batch_rows = 500                                        # 2 events per batch
    np.testing.assert_array_equal(small.best_features(jets, lepton, event), best)
    five = AssignmentScorer([ColumnModel(PT_BTOPLEP), ColumnModel(PT_BTOPLEP)], max_n_jets=5)
    np.testing.assert_array_equal(five.best_features(jets, lepton, event)[:, PT_BTOPLEP],
                                  ak.to_numpy(ak.max(jets["pt"][:, :5], axis=1)).astype(np.float64))


def test_rejects_events_with_fewer_than_four_jets_and_handles_none():
    jets, lepton, event = random_events(5, min_jets=3, max_jets=3)
    scorer = AssignmentScorer([ColumnModel(0), ColumnModel(0)])
    with pytest.raises(ValueError, match="at least 4"):
        scorer.best_features(jets, lepton, event)
    empty = {k: v[:0] for k, v in jets.items()}
    assert scorer.best_features(empty, {k: v[:0] for k, v in lepton.items()}, event[:0]).shape == (0, 20)


def test_published_bdt_pipeline_equals_xgboost_directly():
    import xgboost

    even_path = data_path("agc", "models", "model_even.json")
    odd_path = data_path("agc", "models", "model_odd.json")
    jets, lepton, event = random_events(150, seed=3)
    scorer = AssignmentScorer.from_config("published", [str(even_path), str(odd_path)], max_n_jets=6, nthread=1)
    flat, counts = scorer.scores(jets, lepton, event)
    feats, counts_direct = all_permutation_features(jets, lepton, 6)
    np.testing.assert_array_equal(counts, counts_direct)
    model_even = xgboost.Booster(model_file=str(even_path))
    model_odd = xgboost.Booster(model_file=str(odd_path))
    dm = xgboost.DMatrix(feats)
    even_rows = np.repeat(event % 2 == 0, counts)
    direct = np.where(even_rows, model_odd.predict(dm), model_even.predict(dm))   # even -> odd model
    np.testing.assert_allclose(flat, direct, rtol=0, atol=1e-7)
    assert np.abs(model_even.predict(dm) - model_odd.predict(dm)).max() > 0.1  # the routing matters
    offsets = np.concatenate([[0], np.cumsum(counts)])
    expect = np.array([feats[offsets[i] + np.argmax(direct[offsets[i]:offsets[i + 1]])] for i in range(150)])
    np.testing.assert_array_equal(scorer.best_features(jets, lepton, event), expect)
    # the published model is an XGBClassifier (binary:logistic): predict_proba[:, 1] == prediction
    assert 0 < direct.min() and direct.max() < 1


def test_from_config_errors():
    with pytest.raises(ValueError, match="unknown ML model kind"):
        AssignmentScorer.from_config("svm", ["a", "b"])
    with pytest.raises(ValueError, match="ml.published_models"):
        AssignmentScorer.from_config("published", [None, None])
    with pytest.raises(ValueError, match="two models"):
        AssignmentScorer([ColumnModel(0)])


def test_marginal_benchmark_section_runs(tmp_path):
    """benchmarks/ml_inference.py --marginal on tiny files (a smoke test of the section, not of
    its timings): every variant is reported, the compiled ones verified against xgboost."""
    import json
    import subprocess
    import sys

    xgboost = pytest.importorskip("xgboost")
    from conftest import REPO

    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 20))
    booster = xgboost.train({"objective": "binary:logistic", "max_depth": 3, "nthread": 1},
                            xgboost.DMatrix(x, label=x[:, 0] > 0), 5)
    models = [str(tmp_path / "even.json"), str(tmp_path / "odd.json")]
    for p in models:
        booster.save_model(p)
    out = tmp_path / "marginal.json"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "ml_inference.py"), "--marginal", "--events", "600",
                    "--factor", "2", "--repeats", "1", "--engines", "compiled", "no_trees",
                    "--bdt-models", *models, "--workdir", str(tmp_path / "work"), "--output", str(out)],
                   check=True, cwd=REPO, capture_output=True)
    res = json.loads(out.read_text())
    assert res["small_events"] == 600 and res["large_events"] == 1200
    assert set(res["variants"]) == {"published/compiled", "published/no_trees", "own_bdt/compiled", "own_bdt/no_trees"}
    assert all(v["compiled"] and len(v["runs"]) == 1 for v in res["variants"].values())
    assert "tree_share_marginal" in res["variants"]["published/compiled"]
