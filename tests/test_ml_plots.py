"""The ML plots script: score, ROC, accuracy table and feature plots, listed in index.json."""

import json
import subprocess
import sys

import numpy as np
import uproot

import ml_toy_ttbar as toy
from agc_ttbar.ml import dataset, training
from agc_ttbar.ml.features import FEATURES
from conftest import REPO


def test_ml_plots(tmp_path):
    path = tmp_path / "toy.root"
    toy.write(path, toy.make_ttbar(4000, seed=21))
    data, _ = dataset.extract([str(path)], log=lambda *_: None)
    models, _, _ = training.train_pair("bdt", data, {"num_boost_round": 10, "max_depth": 3, "learning_rate": 0.3,
                                                     "min_child_weight": 1.0}, 5, 1, log=lambda *_: None)
    m, val = training.evaluate(models, data)
    training.write_metrics(str(tmp_path / "bdt_metrics.json"), m)
    training.write_validation(str(tmp_path / "bdt_validation.npz"), val)
    with uproot.recreate(tmp_path / "histograms_ml.root") as f:
        for name, low, high in FEATURES:
            edges = np.linspace(low, high, 26)
            f[f"{name}_ttbar"] = (np.full(25, 3.0), edges)
            f[f"{name}_pseudodata"] = (np.full(25, 3.5), edges)
    out = tmp_path / "plots" / "index.json"
    res = subprocess.run([sys.executable, str(REPO / "workflow_scripts" / "ml_plots.py"),
                          "--metrics", f"bdt={tmp_path / 'bdt_metrics.json'}",
                          "--validation", f"bdt={tmp_path / 'bdt_validation.npz'}",
                          "--histograms-ml", str(tmp_path / "histograms_ml.root"),
                          "--output", str(out), "--formats", "png"], capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 0, res.stderr
    index = json.loads(out.read_text())
    assert set(index["plots"]) == {"scores_bdt.png", "roc.png", "accuracy_table.png", "accuracy_table.md",
                                   "accuracy_table.json", "features_prefit.png"}
    assert all((out.parent / p).stat().st_size > 1000 for p in index["plots"] if p.endswith(".png"))
    assert set(index["accuracy"]) == {"bdt", "trijet", "random"}
    assert index["accuracy"]["bdt"]["leading4"]["all_correct"] == m["leading4"]["model"]["all_correct"]
    table = (out.parent / "accuracy_table.md").read_text()
    assert "BDT (xgboost)" in table and "trijet method" in table and "0.083" in table
