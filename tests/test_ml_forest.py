"""Compiled xgboost forest (agc_ttbar.ml.forest): bitwise equal to xgboost, or not used at all."""

import json
from dataclasses import replace

import awkward as ak
import numpy as np
import pytest

xgboost = pytest.importorskip("xgboost")

from agc_ttbar.ml.features import N_FEATURES  # noqa: E402
from agc_ttbar.ml.forest import Forest, NodeTrees  # noqa: E402
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


@pytest.mark.parametrize("depth", [6, 9, 14])
def test_deep_forest_predictions_are_bitwise_xgboost(depth):
    """Trees deeper than Forest.MAX_DEPTH take the node layout (the published AGC BDTs' path)."""
    booster, x = train(depth=depth, rounds=15, seed=depth, noise=True)
    forest = Forest.from_booster(booster)
    assert forest is not None and forest.layout == "nodes" and forest.depth > Forest.MAX_DEPTH
    assert forest.leaf.size == 0 and forest.nodes.n_trees == 15
    rng = np.random.default_rng(8)
    rows = np.concatenate([x, rng.normal(size=(2000, N_FEATURES)) * 80])
    rows[rng.random(rows.shape) < 0.1] = np.nan
    rows[:50] = np.nan                                               # all-NaN rows: default directions only
    np.testing.assert_array_equal(forest.predict(rows).view(np.uint32),
                                  booster.inplace_predict(rows).view(np.uint32))


def test_unsupported_models_are_not_compiled():
    multi, _ = train(objective="multi:softprob", rounds=3)
    assert Forest.from_booster(multi) is None
    model = BoosterModel(multi, compiled=True)
    assert model.forest is None                                      # callers fall back to xgboost


def test_a_forest_that_differs_from_xgboost_is_rejected(monkeypatch):
    """The load-time probe is what guards the bits: a forest one threshold off is not used."""
    booster, _ = train(depth=8, rounds=5, seed=2, noise=True)
    good = Forest.from_booster(booster)
    assert good is not None
    original = Forest.from_json.__func__

    def off_by_one_ulp(cls, model, base_margin, max_depth=64):
        forest = original(cls, model, base_margin, max_depth)
        threshold = forest.nodes.threshold.copy()
        split = int(np.flatnonzero(~np.isnan(threshold))[0])         # the first tree's root
        threshold[split] = np.nextafter(threshold[split], np.float32(np.inf))
        return replace(forest, nodes=replace(forest.nodes, threshold=threshold))

    monkeypatch.setattr(Forest, "from_json", classmethod(off_by_one_ulp))
    assert Forest.from_booster(booster) is None


def test_single_leaf_zero_trees_are_skipped():
    """Trees that are one leaf of value 0 (the published models end in ~190) add nothing: left out,
    with the probabilities unchanged."""
    booster, x = train(depth=7, rounds=6, seed=3, noise=True)
    model = json.loads(bytes(booster.save_raw("json")).decode())
    trees = model["learner"]["gradient_booster"]["model"]["trees"]
    stub = {"left_children": [-1], "right_children": [-1], "split_conditions": [-0.0], "split_indices": [0],
            "default_left": [0], "split_type": [0]}
    nodes = NodeTrees.from_trees(trees + [dict(stub), dict(stub, split_conditions=[0.0])])
    assert nodes.n_trees == 6 and nodes.n_nodes == sum(len(t["left_children"]) for t in trees)
    forest = Forest.from_booster(booster)
    assert forest.nodes.n_trees == 6
    np.testing.assert_array_equal(replace(forest, nodes=nodes).predict(x), forest.predict(x))


@pytest.fixture(scope="module")
def published():
    from conftest import data_path

    paths = [str(data_path("agc", "models", f"model_{p}.json")) for p in ("even", "odd")]
    return paths, [BoosterModel.load(p, compiled=True) for p in paths]


def test_published_models_compile(published):
    """The AGC's 251-tree BDTs (depth 37 and 41) verify against xgboost at load; 192 and 195 of
    their trees are single leaves of value -0.0."""
    _, models = published
    for model, n in zip(models, (59, 56)):
        assert model.forest is not None and model.forest.layout == "nodes"
        assert model.forest.depth >= 37 and model.forest.nodes.n_trees == n
    assert AssignmentScorer.from_config("published", published[0]).compiled


def test_published_compiled_search_equals_xgboost_search(published):
    """Index, score and 20 features of the best permutation with the published BDTs: the same bits
    on mock events (NaN qgl included) with the fused search as with numpy + inplace_predict."""
    from agc_ttbar.ml import dataset
    from agc_ttbar.mock.generator import generate_events

    g = generate_events("ttbar__nominal", 0, 6000, 20240521)
    arrays = ak.zip({k: g.branches[k] for k in dataset.BRANCHES}, depth_limit=1)
    ev, jets, lepton, _ = dataset.selected_4j2b(arrays)
    flat_qgl = ak.flatten(jets["qgl"]).to_numpy().copy()
    flat_qgl[np.random.default_rng(4).random(len(flat_qgl)) < 0.05] = np.nan
    jets["qgl"] = ak.unflatten(flat_qgl, ak.num(jets["qgl"]))
    event = ak.to_numpy(ev.event)
    _, models = published
    plain = AssignmentScorer([BoosterModel(m.booster) for m in models])
    fused = AssignmentScorer(models)
    assert fused.compiled and not plain.compiled and len(event) > 1000
    want = plain.best(jets, lepton, event)
    got = fused.best(jets, lepton, event)
    for w, g in zip(want, got):
        np.testing.assert_array_equal(g, w)


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


@pytest.mark.parametrize("max_n_jets,depth", [(4, 3), (6, 2), (6, 5), (6, 10), (5, 7)])
def test_compiled_search_equals_xgboost_search(max_n_jets, depth):
    """Index, score and all 20 features of the best permutation: the same bits as the numpy
    features + Booster.inplace_predict + argmax path, on events with 4-8 jets and both parities
    (depth <= 3: code-table lookup; up to 5: the complete-tree walk; deeper: the node layout)."""
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
    assert fused.models[0].forest.layout == ("nodes" if depth > Forest.MAX_DEPTH else "complete")
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


@pytest.mark.parametrize("models", ["trained", "published"])
def test_per_file_job_histograms_identical_with_both_engines(tmp_path, models, published):
    """The per-file job on a mock ttbar file (flat-array path, all kinematic variations): every ML
    and region histogram has the same limbs with the compiled search as with xgboost, for a
    shallow BDT like the DAG's and for the published AGC BDTs (node layout)."""
    from agc_ttbar.mock.generator import generate_events
    from agc_ttbar.mock.writer import write_file
    from agc_ttbar.processing import SampleInfo, process_file

    path = str(tmp_path / "ttbar.root")
    write_file(path, generate_events("ttbar__nominal", 0, 3000, 20240521))
    if models == "trained":
        even, _ = train(seed=21)
        odd, _ = train(seed=22)
    else:
        even, odd = (m.booster for m in published[1])
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
