"""Jet-parton assignment inference (spec §6.3): score every permutation, keep the best one.

:class:`AssignmentScorer` is what the per-file job uses::

    scorer = AssignmentScorer.from_config(kind, model_paths, max_n_jets=6, nthread=1)
    features = scorer.best_features(jets, lepton, event)      # float64, (n_events, 20)

``model_paths`` is ``[even_model, odd_model]`` (``agc_ttbar.layout.ml_models``), where "even" is
the model *trained* on even event numbers. Even events are therefore scored with the odd model and
odd events with the even one (the reference's local-xgboost convention).

Everything is vectorised: events are grouped by their number of considered jets
``k = min(n_jets, max_n_jets)`` and by parity, and each group is scored in batches of whole events
(about :attr:`AssignmentScorer.batch_rows` permutations per batch, which bounds the memory).
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass, field
from typing import Protocol, Sequence

import numpy as np

# OpenMP threads of xgboost and torch spin while they wait, by default. On shared cores (several
# Snakemake jobs per node) that made 2-thread xgboost training ~20x slower here; passive waiting
# costs nothing measurable on idle cores. It must be set before libgomp loads (the first xgboost or
# torch import), hence at import of this module, which imports both lazily.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .features import N_FEATURES, dense_jets, permutation_features
from .permutations import MIN_N_JETS, n_permutations, permutations

KINDS = ("bdt", "torch", "published")


class PermutationModel(Protocol):
    """Anything that maps a (rows, 20) float64 feature matrix to one score per row."""

    def predict(self, features: np.ndarray) -> np.ndarray: ...


class BoosterModel:
    """An xgboost Booster (JSON model). For a ``binary:logistic`` model the prediction equals
    ``XGBClassifier.predict_proba(X)[:, 1]`` of the reference.

    With ``compiled=True`` the model is also converted to a :class:`agc_ttbar.ml.forest.Forest`,
    which :class:`AssignmentScorer` uses for its fused best-permutation search; the conversion is
    kept only if it reproduces ``inplace_predict`` bit for bit on probe rows (``forest`` is
    ``None`` otherwise, e.g. for a multi-class model). Trees of any depth qualify: up to
    ``Forest.MAX_DEPTH`` in the padded layout, deeper (the published AGC BDTs, depth 37 and 41)
    in the node layout (:class:`agc_ttbar.ml.forest.NodeTrees`).
    """

    def __init__(self, booster, nthread: int = 1, compiled: bool = False):
        self.booster = booster
        self.booster.set_param({"nthread": int(nthread)})
        self.forest = None
        if compiled:
            from .forest import Forest

            self.forest = Forest.from_booster(self.booster)

    @classmethod
    def load(cls, path: str, nthread: int = 1, compiled: bool = False) -> "BoosterModel":
        import xgboost

        booster = xgboost.Booster()
        booster.load_model(path)
        n = booster.num_features()
        if n != N_FEATURES:
            raise ValueError(f"xgboost model {path} expects {n} features, the assignment has {N_FEATURES}")
        return cls(booster, nthread, compiled)

    def predict(self, features: np.ndarray) -> np.ndarray:
        if len(features) == 0:
            return np.empty(0, dtype=np.float64)
        return np.asarray(self.booster.inplace_predict(features), dtype=np.float64)


class TorchModel:
    """A :class:`agc_ttbar.ml.torch_model.PermutationMLP`; the score is sigmoid(logit) in float64."""

    def __init__(self, module, nthread: int = 1):
        import torch

        self.module = module.eval()
        self.nthread = int(nthread)
        torch.set_num_threads(self.nthread)

    @classmethod
    def load(cls, path: str, nthread: int = 1) -> "TorchModel":
        from . import torch_model

        return cls(torch_model.load(path), nthread)

    def logits(self, features: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
            return self.module(x).double().numpy()

    def predict(self, features: np.ndarray) -> np.ndarray:
        if len(features) == 0:
            return np.empty(0, dtype=np.float64)
        from scipy.special import expit

        return expit(self.logits(features))


@dataclass
class ScorerStats:
    """Counters of a scorer: events, model evaluations (permutations scored) and CPU time split."""

    n_events: int = 0
    n_evaluations: int = 0
    seconds_features: float = 0.0
    seconds_model: float = 0.0
    seconds_fused: float = 0.0
    by_n_jets: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        total = self.seconds_features + self.seconds_model
        return {
            "n_events": self.n_events,
            "n_evaluations": self.n_evaluations,
            "evaluations_per_event": self.n_evaluations / self.n_events if self.n_events else 0.0,
            "seconds_features": self.seconds_features,
            "seconds_model": self.seconds_model,
            "seconds_fused": self.seconds_fused,
            "feature_time_share": self.seconds_features / total if total else None,
            "events_by_n_jets": {str(k): v for k, v in sorted(self.by_n_jets.items())},
        }


class AssignmentScorer:
    """Scores the jet-parton assignments of events with two parity models.

    ``models[0]`` was trained on even event numbers and scores odd events; ``models[1]`` was trained
    on odd event numbers and scores even events.
    """

    #: Permutations (rows of 20 features) per batch: ~42 MB of float64 features.
    batch_rows = 1 << 18

    def __init__(self, models: Sequence[PermutationModel], max_n_jets: int = 6):
        if len(models) != 2:
            raise ValueError("an AssignmentScorer needs two models: [trained on even, trained on odd]")
        if not MIN_N_JETS <= int(max_n_jets):
            raise ValueError(f"max_n_jets must be at least {MIN_N_JETS}, got {max_n_jets}")
        self.models = tuple(models)
        self.max_n_jets = int(max_n_jets)
        self.stats = ScorerStats()

    @property
    def compiled(self) -> bool:
        """True if both models have a verified compiled forest (the fused search is used)."""
        return all(getattr(m, "forest", None) is not None for m in self.models)

    @classmethod
    def from_config(cls, kind: str, model_paths: Sequence[str], max_n_jets: int = 6,
                    nthread: int = 1, compiled: bool = True) -> "AssignmentScorer":
        """Load the two models of ``kind`` ("bdt", "torch" or "published") from ``[even, odd]``.

        ``compiled``: use the fused compiled search for xgboost models where it verifies
        (config ``ml.bdt_engine``); the results are the same bits either way.
        """
        if kind not in KINDS:
            raise ValueError(f"unknown ML model kind {kind!r}; allowed: {', '.join(KINDS)}")
        if len(model_paths) != 2 or any(p is None for p in model_paths):
            raise ValueError(f"ML model kind {kind!r} needs two model paths [even, odd], got {model_paths!r}"
                             + (" (set config ml.published_models.even / .odd)" if kind == "published" else ""))
        loader = TorchModel.load if kind == "torch" else functools.partial(BoosterModel.load, compiled=compiled)
        models = []
        for p in model_paths:
            if not os.path.isfile(str(p)):
                raise FileNotFoundError(f"ML model file {p} (kind {kind!r}) does not exist")
            try:
                models.append(loader(str(p), nthread))
            except Exception as err:  # xgboost / torch errors may not name the file
                first = str(err).strip().splitlines()[0] if str(err).strip() else ""
                raise ValueError(f"cannot load ML model file {p} as a {kind!r} model: "
                                 f"{type(err).__name__}: {first}") from err
        return cls(models, max_n_jets)

    # ------------------------------------------------------------------------------------------
    def _considered_jets(self, counts: np.ndarray, event) -> tuple[np.ndarray, np.ndarray]:
        """Jets considered per event (``min(counts, max_n_jets)``) and the event numbers as an
        array; ``ValueError`` for an event below 4 jets or a length mismatch."""
        n_used = np.minimum(counts, self.max_n_jets)
        if np.any(n_used < MIN_N_JETS):
            bad = int(np.flatnonzero(n_used < MIN_N_JETS)[0])
            raise ValueError(f"event at position {bad} has {counts[bad]} jets; the assignment needs "
                             f"at least {MIN_N_JETS} (pass 4j2b events only)")
        event = np.asarray(event)
        if event.shape != n_used.shape:
            raise ValueError(f"{len(event)} event numbers for {len(n_used)} events")
        return n_used, event

    def _groups(self, jets: dict, lepton: dict, event):
        """Yield (event rows, k, model) for every (k = considered jets, parity) group, batched."""
        dense, counts = dense_jets(jets, self.max_n_jets)
        n_used, event = self._considered_jets(counts, event)
        even = (event % 2) == 0
        for k in range(MIN_N_JETS, self.max_n_jets + 1):
            in_k = n_used == k
            if not in_k.any():
                continue
            self.stats.by_n_jets[k] = self.stats.by_n_jets.get(k, 0) + int(in_k.sum())
            step = max(1, self.batch_rows // n_permutations(k))
            # even events -> model trained on odd (models[1]); odd events -> models[0]
            for parity_mask, model in ((in_k & even, self.models[1]), (in_k & ~even, self.models[0])):
                rows = np.flatnonzero(parity_mask)
                for start in range(0, len(rows), step):
                    yield rows[start:start + step], k, model, dense

    def _score_batch(self, rows, k, model, dense, lepton):
        t0 = time.perf_counter()
        perms = permutations(k)
        jets_k = {c: v[rows, :k] for c, v in dense.items()}
        lep = {c: np.asarray(v)[rows] for c, v in lepton.items()}
        feats = permutation_features(jets_k, lep, perms)
        t1 = time.perf_counter()
        scores = model.predict(feats.reshape(-1, N_FEATURES)).reshape(len(rows), len(perms))
        t2 = time.perf_counter()
        self.stats.seconds_features += t1 - t0
        self.stats.seconds_model += t2 - t1
        self.stats.n_evaluations += scores.size
        return feats, scores

    def best_flat(self, counts: np.ndarray, jets: dict, lepton: dict, event,
                  components: tuple | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`best` for jets given as flat numpy arrays (all events' jets in order) and the
        number of jets per event, the layout of the per-file job, which then builds no jagged
        arrays. With compiled models the fused search reads the flat arrays directly;
        ``components``: :func:`agc_ttbar.observables.cartesian` of the jets, if already computed."""
        counts = np.asarray(counts, dtype=np.int64)
        if not self.compiled:
            import awkward as ak

            return self.best({c: ak.unflatten(np.asarray(v), counts) for c, v in jets.items()}, lepton, event)
        from ..observables import cartesian, offsets_of
        from .forest import best_assignments

        t0 = time.perf_counter()
        n_used, event = self._considered_jets(counts, event)
        offsets = offsets_of(counts)
        flat = {c: np.asarray(jets[c], dtype=np.float64) for c in ("pt", "eta", "phi", "mass", "btag", "qgl")}
        cart = components if components is not None else cartesian(flat["pt"], flat["eta"], flat["phi"], flat["mass"])
        lep = {c: np.asarray(v, dtype=np.float64) for c, v in lepton.items()}
        lep_cart = cartesian(lep["pt"], lep["eta"], lep["phi"], lep["mass"])
        n = len(n_used)
        best_feats = np.empty((n, N_FEATURES), dtype=np.float64)
        best_index = np.empty(n, dtype=np.int64)
        best_score = np.empty(n, dtype=np.float32)
        even = (event % 2) == 0
        # even events -> model trained on odd (models[1]); odd events -> models[0]
        for mask, model in ((even, self.models[1]), (~even, self.models[0])):
            rows = np.flatnonzero(mask)
            if len(rows):
                best_assignments(model.forest, rows, n_used, offsets[:-1], flat, cart, lep, lep_cart,
                                 best_index, best_score, best_feats)
        for k in range(MIN_N_JETS, self.max_n_jets + 1):
            n_k = int((n_used == k).sum())
            if n_k:
                self.stats.by_n_jets[k] = self.stats.by_n_jets.get(k, 0) + n_k
                self.stats.n_evaluations += n_k * n_permutations(k)
        self.stats.n_events += n
        self.stats.seconds_fused += time.perf_counter() - t0
        return best_feats, best_index, best_score.astype(np.float64)

    def best(self, jets: dict, lepton: dict, event) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Best permutation per event: (features (n, 20), permutation index, score)."""
        if self.compiled:
            import awkward as ak

            counts = ak.to_numpy(ak.num(jets["pt"], axis=1))
            return self.best_flat(counts, {c: ak.to_numpy(ak.flatten(v, axis=1)) for c, v in jets.items()},
                                  lepton, event)
        n = len(np.asarray(event))
        best_feats = np.empty((n, N_FEATURES), dtype=np.float64)
        best_index = np.empty(n, dtype=np.int64)
        best_score = np.empty(n, dtype=np.float64)
        for rows, k, model, dense in self._groups(jets, lepton, event):
            feats, scores = self._score_batch(rows, k, model, dense, lepton)
            arg = np.argmax(scores, axis=1)                     # first maximum, as np/ak.argmax
            pick = np.arange(len(rows))
            best_feats[rows] = feats[pick, arg]
            best_index[rows] = arg
            best_score[rows] = scores[pick, arg]
        self.stats.n_events += n
        return best_feats, best_index, best_score

    def best_features_flat(self, counts: np.ndarray, jets: dict, lepton: dict, event,
                           components: tuple | None = None) -> np.ndarray:
        """:meth:`best_features` for flat jet arrays and jet counts (see :meth:`best_flat`)."""
        return self.best_flat(counts, jets, lepton, event, components)[0]

    def best_features(self, jets: dict, lepton: dict, event) -> np.ndarray:
        """Features (float64, (n_events, 20), order of ``FEATURES``) of each event's best permutation.

        ``jets``: jagged awkward arrays ``pt`` (varied), ``eta``, ``phi``, ``mass``, ``btag``,
        ``qgl`` of the selected jets in stored order (every event needs >= 4 jets); ``lepton``:
        numpy arrays ``pt``, ``eta``, ``phi``, ``mass`` of the selected lepton; ``event``: event
        numbers (parity picks the model).
        """
        return self.best(jets, lepton, event)[0]

    def scores(self, jets: dict, lepton: dict, event) -> tuple[np.ndarray, np.ndarray]:
        """Scores of every permutation in the reference layout: events in order, each event's
        permutations in the order of :func:`permutations`; returns (flat scores, perm counts)."""
        n = len(np.asarray(event))
        _, counts = dense_jets(jets, self.max_n_jets)
        perm_counts = np.array([n_permutations(k) for k in range(self.max_n_jets + 1)],
                               dtype=np.int64)[np.minimum(counts, self.max_n_jets)]
        offsets = np.concatenate([[0], np.cumsum(perm_counts)])
        flat = np.empty(int(offsets[-1]), dtype=np.float64)
        for rows, k, model, dense in self._groups(jets, lepton, event):
            _, scores = self._score_batch(rows, k, model, dense, lepton)
            idx = offsets[rows][:, None] + np.arange(scores.shape[1])[None, :]
            flat[idx] = scores
        self.stats.n_events += n
        return flat, perm_counts


def all_permutation_features(jets: dict, lepton: dict, max_n_jets: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Features of every permutation in the reference layout (``utils.ml.get_features``):
    returns (features (sum of perm counts, 20), perm counts per event)."""
    dense, counts = dense_jets(jets, max_n_jets)
    n_used = np.minimum(counts, max_n_jets)
    perm_counts = np.array([n_permutations(k) for k in range(max_n_jets + 1)], dtype=np.int64)[n_used]
    offsets = np.concatenate([[0], np.cumsum(perm_counts)])
    out = np.empty((int(offsets[-1]), N_FEATURES), dtype=np.float64)
    for k in range(MIN_N_JETS, max_n_jets + 1):
        rows = np.flatnonzero(n_used == k)
        if len(rows) == 0:
            continue
        perms = permutations(k)
        lep = {c: np.asarray(v)[rows] for c, v in lepton.items()}
        feats = permutation_features({c: v[rows, :k] for c, v in dense.items()}, lep, perms)
        idx = offsets[rows][:, None] + np.arange(len(perms))[None, :]
        out[idx.ravel()] = feats.reshape(-1, N_FEATURES)
    return out, perm_counts
