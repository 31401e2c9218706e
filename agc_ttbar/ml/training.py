"""Training and evaluation of the jet-parton assignment models (spec §6.4).

Training follows the reference (``jetassignment_training.py``): the **four leading** selected jets
of each fully matched 4j2b event give 12 permutations; the all-correct permutation is the positive
class, every other one (partly correct included) is negative. Two models are trained: "even" on
events with even event numbers, "odd" on odd ones. Each is validated on the other parity, which is
how inference applies them, so the validation numbers are those of the pipeline.

- BDT: ``xgboost.train`` (Booster API), ``binary:logistic``, ``tree_method=hist``; per-permutation
  classification exactly like the reference.
- Torch: :class:`agc_ttbar.ml.torch_model.PermutationMLP` trained *listwise*: softmax over the 12
  permutation logits of an event, cross entropy with the correct one. Deterministic
  (``torch.manual_seed``, ``torch.use_deterministic_algorithms``, fixed thread count).

:func:`evaluate` gives the metrics of any pair of models, together with the trijet method and a
random choice: on the leading 4 jets (12 permutations, the reference's validation) and on up to 6
jets (the permutations inference uses).
"""

from __future__ import annotations

import time

import numpy as np

from .dataset import jagged_jets, lepton_dict, parity_split
from .features import JET_COLUMNS, N_FEATURES, permutation_features
from .inference import AssignmentScorer, BoosterModel, TorchModel
from .metrics import assignment_quality, auc, random_quality, trijet_choice
from .permutations import permutation_labels, permutations

N_TRAIN_JETS = 4


def leading_jets(data: dict, k: int = N_TRAIN_JETS) -> dict:
    return {col: data[f"jet_{col}"][:, :k] for col in JET_COLUMNS}


def leading4_features(data: dict) -> np.ndarray:
    """Features of the 12 permutations of the four leading jets, (n_events, 12, 20)."""
    return permutation_features(leading_jets(data), lepton_dict(data), permutations(N_TRAIN_JETS))


def leading4_targets(data: dict) -> np.ndarray:
    """(n_events, 12) booleans: the permutation assigns all four jets correctly."""
    labels = permutation_labels(N_TRAIN_JETS)                          # (12, 4)
    return (labels[None, :, :] == data["labels"][:, None, :N_TRAIN_JETS]).all(axis=2)


def _check_trainable(data: dict, name: str) -> None:
    if len(data["event"]) < 2:
        raise ValueError(f"only {len(data['event'])} {name} training events: too few to train "
                         "(use more files or events in config ml.training_samples / the dataset)")


# ---------------------------------------------------------------------------------------------
def train_bdt(data: dict, params: dict, seed: int, nthread: int):
    """An xgboost Booster trained on the leading-4 permutations of ``data``."""
    import xgboost

    X = leading4_features(data).reshape(-1, N_FEATURES)
    y = leading4_targets(data).reshape(-1).astype(np.float32)
    dtrain = xgboost.DMatrix(X, label=y, nthread=nthread)
    booster_params = {
        "objective": "binary:logistic", "eval_metric": "auc", "tree_method": "hist",
        "max_depth": int(params["max_depth"]), "eta": float(params["learning_rate"]),
        "min_child_weight": float(params["min_child_weight"]), "seed": int(seed),
        "nthread": int(nthread), "verbosity": 1,
    }
    return xgboost.train(booster_params, dtrain, num_boost_round=int(params["num_boost_round"]))


def train_torch(data: dict, params: dict, seed: int, nthread: int, log=print):
    """A :class:`PermutationMLP` trained listwise on the leading-4 permutations of ``data``."""
    import torch

    from .torch_model import PermutationMLP, standardisation

    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(int(nthread))
    feats = leading4_features(data)                                      # (n, 12, 20)
    target = np.argmax(leading4_targets(data), axis=1)                  # exactly one correct
    mean, std = standardisation(feats.reshape(-1, N_FEATURES))
    model = PermutationMLP(N_FEATURES, params["hidden"], mean, std)
    x = torch.from_numpy(feats.astype(np.float32))
    y = torch.from_numpy(target.astype(np.int64))
    opt = torch.optim.Adam(model.parameters(), lr=float(params["learning_rate"]))
    gen = torch.Generator().manual_seed(seed)
    n, n_perm = x.shape[0], x.shape[1]
    batch = int(params["batch_size"])
    model.train()
    for epoch in range(int(params["epochs"])):
        order = torch.randperm(n, generator=gen)
        total = 0.0
        for start in range(0, n, batch):
            idx = order[start:start + batch]
            logits = model(x[idx].reshape(-1, N_FEATURES)).reshape(-1, n_perm)
            loss = torch.nn.functional.cross_entropy(logits, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        if epoch == 0 or (epoch + 1) % 5 == 0 or epoch + 1 == int(params["epochs"]):
            log(f"epoch {epoch + 1}: listwise cross entropy {total / n:.4f}")
    model.eval()
    return model


def train_pair(kind: str, data: dict, params: dict, seed: int, nthread: int, log=print):
    """Models trained on even and on odd events: ([even, odd] wrapped models, raw objects, info)."""
    even, odd = parity_split(data)
    _check_trainable(even, "even")
    _check_trainable(odd, "odd")
    raw, seconds = [], []
    for name, part in (("even", even), ("odd", odd)):
        t0 = time.perf_counter()
        log(f"training {kind} on {len(part['event'])} {name} events ({12 * len(part['event'])} permutations)")
        if kind == "bdt":
            raw.append(train_bdt(part, params, seed, nthread))
        elif kind == "torch":
            raw.append(train_torch(part, params, seed, nthread, log))
        else:
            raise ValueError(f"cannot train model kind {kind!r}")
        seconds.append(time.perf_counter() - t0)
    wrap = (lambda m: BoosterModel(m, nthread)) if kind == "bdt" else (lambda m: TorchModel(m, nthread))
    info = {"n_train_even": len(even["event"]), "n_train_odd": len(odd["event"]),
            "seconds_train_even": seconds[0], "seconds_train_odd": seconds[1]}
    return [wrap(m) for m in raw], raw, info


# ---------------------------------------------------------------------------------------------
def validation_scores(models, data: dict) -> np.ndarray:
    """Scores (n, 12) of the leading-4 permutations; even events by models[1] (odd-trained)."""
    feats = leading4_features(data)
    even = data["event"] % 2 == 0
    scores = np.empty(feats.shape[:2])
    for mask, model in ((even, models[1]), (~even, models[0])):
        if mask.any():
            scores[mask] = model.predict(feats[mask].reshape(-1, N_FEATURES)).reshape(-1, feats.shape[1])
    return scores


def _top6(models, data: dict, max_n_jets: int) -> tuple[dict, dict]:
    """Quality on up to ``max_n_jets`` jets: model (argmax over all permutations), random, trijet."""
    n_used = np.minimum(data["n_jets"], max_n_jets)
    labels = data["labels"]
    scorer = AssignmentScorer(models, max_n_jets) if models is not None else None
    if scorer is not None:
        _, best_index, _ = scorer.best(jagged_jets(data, max_n_jets), lepton_dict(data), data["event"])
    acc = {name: {"all_correct": 0.0, "per_jet": 0.0, "top_had_triplet": 0.0} for name in ("model", "random", "trijet")}
    n = len(n_used)
    for k in np.unique(n_used):
        rows = n_used == k
        truth = labels[rows, :k]
        w = rows.sum() / n
        qs = {"random": random_quality(truth),
              "trijet": assignment_quality(trijet_choice({c: data[f"jet_{c}"][rows, :k] for c in JET_COLUMNS}), truth)}
        if scorer is not None:
            qs["model"] = assignment_quality(best_index[rows], truth)
        for name, q in qs.items():
            for key in q:
                acc[name][key] += w * q[key]
    if scorer is None:
        acc.pop("model")
    return acc, (scorer.stats.as_dict() if scorer is not None else {})


def evaluate(models, data: dict, max_n_jets: int = 6) -> tuple[dict, dict]:
    """Metrics of a model pair [even-trained, odd-trained] on ``data`` (each event scored by the
    model not trained on its parity), with the trijet method and a random choice.

    Returns (metrics dict, validation arrays {"scores", "target", "event"}).
    """
    if len(data["event"]) == 0:
        raise ValueError("no validation events")
    truth4 = data["labels"][:, :N_TRAIN_JETS]
    target = leading4_targets(data)
    scores = validation_scores(models, data)
    even = data["event"] % 2 == 0
    choice = np.argmax(scores, axis=1)
    leading4 = {
        "model": dict(assignment_quality(choice, truth4), auc=auc(scores, target),
                      auc_even_events=auc(scores[even], target[even]),
                      auc_odd_events=auc(scores[~even], target[~even])),
        "random": dict(random_quality(truth4), auc=0.5),
        "trijet": assignment_quality(trijet_choice(leading_jets(data)), truth4),
    }
    top, stats = _top6(models, data, max_n_jets)
    metrics = {
        "n_validation_events": int(len(data["event"])),
        "n_validation_even": int(even.sum()), "n_validation_odd": int((~even).sum()),
        "leading4": leading4,
        f"top{max_n_jets}": top,
        "inference": stats,
    }
    return metrics, {"scores": scores, "target": target, "event": data["event"]}


# ---------------------------------------------------------------------------------------------
def save_models(kind: str, raw_models, paths, metadata: dict | None = None) -> None:
    """Write [even, odd] models atomically: xgboost JSON (Booster.save_model) or torch .pt."""
    from ..atomic import atomic_path

    for model, path in zip(raw_models, paths):
        with atomic_path(path) as tmp:
            if kind == "bdt":
                model.save_model(tmp)
            elif kind == "torch":
                from . import torch_model

                torch_model.save(model, tmp, metadata)
            else:
                raise ValueError(f"cannot save model kind {kind!r}")


def provenance(kind: str, models, threads: int, data_summary: dict) -> dict:
    """Metrics-file fields every model kind shares: models, threads, training data, versions."""
    return {"kind": kind, "models": {"even": models[0], "odd": models[1]}, "threads": threads,
            "training_data": {k: data_summary.get(k) for k in ("samples", "n_even", "n_odd", "events_read", "files")},
            "versions": library_versions(),
            "validation_note": "each event is scored by the model not trained on its parity"}


def write_metrics(path: str, metrics: dict) -> None:
    import json

    from ..atomic import atomic_write_text

    atomic_write_text(path, json.dumps(metrics, indent=1, sort_keys=True, default=float) + "\n")


def write_validation(path: str, validation: dict) -> None:
    from ..atomic import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **validation)


def library_versions() -> dict:
    import importlib.metadata as md

    out = {}
    for name in ("xgboost", "xgboost-cpu", "torch", "numpy", "awkward", "uproot"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out
