"""Compiled xgboost forest (agc_ttbar.ml.forest): bitwise equal to xgboost, or not used at all."""

import awkward as ak
import numpy as np
import pytest

xgboost = pytest.importorskip("xgboost")

from agc_ttbar.ml.features import N_FEATURES  # noqa: E402
from agc_ttbar.ml.forest import Forest  # noqa: E402
from agc_ttbar.ml.inference import AssignmentScorer, BoosterModel  # noqa: E402
from test_ml_inference import random_events  # noqa: E402


def train(depth=3, rounds=20, seed=0, objective="binary:logistic", n=3000, noise=False):
    """A booster on rows with structure in several features (and NaNs, so default directions vary)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_FEATURES)) * rng.uniform(0.5, 100, N_FEATURES)
    x[rng.random(x.shape) < 0.05] = np.nan
    y = ((np.nan_to_num(x[:, 0]) > 0) ^ (np.nan_to_num(x[:, 5]) > 20) | (np.nan_to_num(x[:, 12]) > 50)).astype(float)
    if noise:                                    # random labels grow every tree to max_depth
        y = rng.integers(0, 2, n).astype(float)
    params = {"objective": objective, "max_depth": depth, "eta": 0.4, "seed": seed, "nthread": 1,
              "tree_method": "hist", "base_score": 0.3}
    if objective == "multi:softprob":
        params["num_class"] = 2
    return xgboost.train(params, xgboost.DMatrix(x, label=y), num_boost_round=rounds), x


@pytest.mark.parametrize("depth", [1, 2, 3, 5])
def test_forest_predictions_are_bitwise_xgboost(depth):
    booster, x = train(depth=depth, seed=depth)
    forest = Forest.from_booster(booster)
    assert forest is not None and forest.n_trees == 20 and forest.depth <= depth
    rng = np.random.default_rng(7)
    rows = np.concatenate([x, rng.normal(size=(500, N_FEATURES)) * 80])
    rows[rng.random(rows.shape) < 0.1] = np.nan
    expect = booster.inplace_predict(rows)
    got = forest.predict(rows)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got.view(np.uint32), expect.view(np.uint32))


def test_unsupported_models_are_not_compiled():
    deep, _ = train(depth=7, rounds=5, noise=True)
    assert Forest.from_booster(deep) is None                         # depth > Forest.MAX_DEPTH
    multi, _ = train(objective="multi:softprob", rounds=3)
    assert Forest.from_booster(multi) is None
    model = BoosterModel(deep, compiled=True)
    assert model.forest is None                                      # callers fall back to xgboost


def test_empty_forest_keeps_the_first_permutation():
    """All scores equal: the first permutation wins, as np.argmax."""
    booster, _ = train()
    models = [BoosterModel(booster, compiled=True), BoosterModel(booster, compiled=True)]
    forest = models[0].forest
    for m in models:
        m.forest = forest.without_trees()
    assert m.forest.n_trees == 0 and forest.n_trees == 20
    jets, lepton, event = random_events(50, seed=3, min_jets=4, max_jets=6)
    _, index, score = AssignmentScorer(models).best(jets, lepton, event)
    assert (index == 0).all()
    expected = np.float32(1) / (np.float32(np.exp(-forest.base_margin)) + np.float32(1))
    np.testing.assert_allclose(score, expected, rtol=1e-6)


def test_flat_and_jagged_inputs_agree():
    booster, _ = train(seed=4)
    scorer = AssignmentScorer([BoosterModel(booster, compiled=True)] * 2, max_n_jets=5)
    jets, lepton, event = random_events(120, seed=8)
    counts = ak.to_numpy(ak.num(jets["pt"]))
    flat = {c: ak.to_numpy(ak.flatten(v)) for c, v in jets.items()}
    np.testing.assert_array_equal(scorer.best_features_flat(counts, flat, lepton, event),
                                  scorer.best_features(jets, lepton, event))
    plain = AssignmentScorer([BoosterModel(booster)] * 2, max_n_jets=5)
    np.testing.assert_array_equal(plain.best_features_flat(counts, flat, lepton, event),
                                  scorer.best_features(jets, lepton, event))
    with pytest.raises(ValueError, match="at least 4"):
        scorer.best_flat(np.array([3]), {c: v[:3] for c, v in flat.items()},
                         {c: np.asarray(v)[:1] for c, v in lepton.items()}, event[:1])


@pytest.mark.parametrize("max_n_jets,depth", [(4, 3), (6, 2), (6, 5)])
def test_compiled_search_equals_xgboost_search(max_n_jets, depth):
    """Index, score and all 20 features of the best permutation: the same bits as the numpy
    features + Booster.inplace_predict + argmax path, on events with 4-8 jets and both parities
    (depth <= 3: code-table lookup; deeper: the walk)."""
    even_model, _ = train(seed=11, depth=depth)
    odd_model, _ = train(seed=12, depth=depth)
    jets, lepton, event = random_events(400, seed=5, min_jets=4, max_jets=8)
    # NaN qgl for some jets: NaN features take each split's default direction
    flat_qgl = ak.flatten(jets["qgl"]).to_numpy().copy()
    flat_qgl[np.random.default_rng(6).random(len(flat_qgl)) < 0.1] = np.nan
    jets["qgl"] = ak.unflatten(flat_qgl, ak.num(jets["qgl"]))
    plain = AssignmentScorer([BoosterModel(even_model), BoosterModel(odd_model)], max_n_jets)
    fused = AssignmentScorer([BoosterModel(even_model, compiled=True), BoosterModel(odd_model, compiled=True)],
                             max_n_jets)
    assert fused.compiled and not plain.compiled
    assert (fused.models[0].forest.code_leaf.shape[1] > 0) == (depth <= 3)
    want = plain.best(jets, lepton, event)
    got = fused.best(jets, lepton, event)
    for w, g in zip(want, got):
        np.testing.assert_array_equal(g, w)
    assert fused.stats.n_evaluations == plain.stats.n_evaluations
    assert fused.stats.by_n_jets == plain.stats.by_n_jets
    # the routing matters: swapping the models changes some choices
    swapped = AssignmentScorer([BoosterModel(odd_model, compiled=True), BoosterModel(even_model, compiled=True)],
                               max_n_jets)
    assert (swapped.best(jets, lepton, event)[1] != got[1]).any()


def test_from_config_engine(tmp_path):
    booster, _ = train()
    paths = [str(tmp_path / "even.json"), str(tmp_path / "odd.json")]
    for p in paths:
        booster.save_model(p)
    assert AssignmentScorer.from_config("bdt", paths).compiled
    assert not AssignmentScorer.from_config("bdt", paths, compiled=False).compiled


def test_per_file_job_histograms_identical_with_both_engines(tmp_path):
    """The per-file job on a mock ttbar file (flat-array path, all kinematic variations): every ML
    and region histogram has the same limbs with the compiled search as with xgboost."""
    from agc_ttbar.mock.generator import generate_events
    from agc_ttbar.mock.writer import write_file
    from agc_ttbar.processing import SampleInfo, process_file

    path = str(tmp_path / "ttbar.root")
    write_file(path, generate_events("ttbar__nominal", 0, 3000, 20240521))
    even, _ = train(seed=21)
    odd, _ = train(seed=22)
    info = SampleInfo.from_key("ttbar__nominal", 0.5, 3000)
    out = {}
    for compiled in (False, True):
        scorer = AssignmentScorer([BoosterModel(even, compiled=compiled), BoosterModel(odd, compiled=compiled)])
        assert scorer.compiled is compiled
        out[compiled], meta = process_file(path, info, chunksize=1000, scorer=scorer, log=lambda m: None)
        assert scorer.stats.n_events > 300
    a, b = out[False].hists, out[True].hists
    assert set(a) == set(b) and any(k.startswith("mass_w1w2_ttbar_pt_res_up") for k in a)
    for key in a:
        np.testing.assert_array_equal(a[key].sumw, b[key].sumw, err_msg=key)
        np.testing.assert_array_equal(a[key].sumw2, b[key].sumw2, err_msg=key)
