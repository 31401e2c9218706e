"""Maximum-likelihood fit of the AGC ttbar model with pyhf + iminuit (spec section 5.2-5.3).

:func:`mle_fit` runs MIGRAD + HESSE through ``pyhf.infer.mle.fit`` with a configurable Minuit
strategy. A failed minimisation (invalid minimum, e.g. "EDM above threshold") is retried once with
``retry_strategy``; each attempt is logged and recorded. :func:`analyse` adds the Asimov (expected)
fit, the nuisance-parameter ranking (cabinetry) and the saturated-model goodness of fit, and
:func:`result_document` turns everything into the JSON-ready ``fit_results.json`` content.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .results import result_line  # noqa: F401  (re-exported: the scripts print it)

log = logging.getLogger(__name__)

#: Packages whose versions go into the provenance block.
PROVENANCE_PACKAGES = ("cabinetry", "pyhf", "iminuit", "numpy", "scipy", "uproot", "hist", "boost-histogram")


class FitFailedError(RuntimeError):
    """The minimisation failed with the configured strategy and with the retry strategy."""


@dataclass
class FitOutcome:
    """A fit result (cabinetry ``FitResults``) plus the record of every minimisation attempt."""

    results: Any
    attempts: list[dict[str, Any]] = field(default_factory=list)
    minos: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def converged(self) -> bool:
        return bool(self.attempts) and self.attempts[-1]["valid"]

    @property
    def strategy(self) -> int:
        return self.attempts[-1]["strategy"]

    def poi(self, name: str) -> tuple[float, float]:
        i = list(self.results.labels).index(name)
        return float(self.results.bestfit[i]), float(self.results.uncertainty[i])


def _fmin_record(minuit, strategy_requested) -> dict[str, Any]:
    fmin = minuit.fmin
    return {
        "strategy_requested": strategy_requested,
        "strategy": int(minuit.strategy.strategy),
        "valid": bool(fmin.is_valid),
        "edm": float(fmin.edm),
        "nfcn": int(fmin.nfcn),
        "has_accurate_covar": bool(fmin.has_accurate_covar),
        "has_posdef_covar": bool(fmin.has_posdef_covar),
        "is_above_max_edm": bool(fmin.is_above_max_edm),
        "has_reached_call_limit": bool(fmin.has_reached_call_limit),
        "has_parameters_at_limit": bool(fmin.has_parameters_at_limit),
    }


def _fit_once(model, data, strategy, *, init_pars=None, fix_pars=None, maxiter=None, tolerance=None,
              minos: Sequence[str] = ()):
    """One MIGRAD+HESSE fit (+ MINOS for ``minos``); returns (FitResults or None, record, minos dict)."""
    import pyhf
    from cabinetry.fit.results_containers import FitResults

    _, previous = pyhf.get_backend()
    pyhf.set_backend(pyhf.tensorlib, pyhf.optimize.minuit_optimizer(verbose=0))
    kwargs = {"strategy": strategy} if strategy is not None else {}
    try:
        result, corr, twice_nll, obj = pyhf.infer.mle.fit(
            data, model, init_pars=init_pars, fixed_params=fix_pars, return_uncertainties=True,
            return_correlations=True, return_fitted_val=True, return_result_obj=True,
            maxiter=maxiter, tolerance=tolerance, **kwargs)
    except pyhf.exceptions.FailedMinimization as err:
        minuit = getattr(getattr(err, "result", None), "minuit", None)
        record = _fmin_record(minuit, strategy) if minuit is not None else {
            "strategy_requested": strategy, "strategy": strategy, "valid": False}
        record["message"] = str(err).strip().splitlines()[0] if str(err).strip() else "FailedMinimization"
        return None, record, {}
    finally:
        pyhf.set_backend(pyhf.tensorlib, previous)
    record = _fmin_record(obj.minuit, strategy)
    record["message"] = "valid minimum"
    minos_out = {}
    for name in minos:
        i = list(model.config.par_names).index(name)
        try:
            obj.minuit.minos(i)
        except RuntimeError as err:  # iminuit refuses MINOS after an invalid HESSE
            log.warning("MINOS for %s failed: %s", name, err)
            continue
        merr = obj.minuit.params[i].merror
        if merr is not None:
            minos_out[name] = (float(merr[0]), float(merr[1]))
    result = pyhf.tensorlib.to_numpy(result)
    bestfit = np.asarray(result[:, 0], dtype=float)
    uncertainty = np.where(obj.minuit.fixed, 0.0, np.asarray(result[:, 1], dtype=float))
    fit = FitResults(bestfit, uncertainty, list(model.config.par_names),
                     np.asarray(pyhf.tensorlib.to_numpy(corr), dtype=float), float(twice_nll))
    return fit, record, minos_out


def mle_fit(model, data, *, strategy: int | None = None, retry_strategy: int = 2, maxiter: int | None = None,
            tolerance: float | None = None, init_pars=None, fix_pars=None, label: str = "fit",
            minos: Sequence[str] = ()) -> FitOutcome:
    """MLE fit with ``strategy``; on a failed minimisation one retry with ``retry_strategy``.

    ``minos`` names parameters whose MINOS (profile-likelihood) interval is added. Raises
    :class:`FitFailedError` when the retry fails too.
    """
    attempts = []
    for attempt, strat in enumerate((strategy, retry_strategy)):
        t0 = time.perf_counter()
        fit, record, minos_out = _fit_once(model, data, strat, init_pars=init_pars, fix_pars=fix_pars,
                                           maxiter=maxiter, tolerance=tolerance, minos=minos)
        record["retry"] = attempt > 0
        attempts.append(record)
        dt = time.perf_counter() - t0
        if fit is not None:
            if attempt:
                log.warning("%s: retry with Minuit strategy %s converged (%.2f s)", label, strat, dt)
            else:
                log.info("%s: converged with Minuit strategy %s in %.2f s (EDM %.3g, %d calls)", label,
                         record["strategy"], dt, record["edm"], record["nfcn"])
            return FitOutcome(fit, attempts, minos_out)
        log.warning("%s: minimisation FAILED with Minuit strategy %s: %s%s", label, strat,
                    record.get("message"), "" if attempt else f"; retrying once with strategy {retry_strategy}")
    raise FitFailedError(f"{label}: minimisation failed with strategy {strategy} and with retry strategy "
                         f"{retry_strategy}: " + "; ".join(str(a.get("message")) for a in attempts))


def goodness_of_fit(model, data: Sequence[float], best_twice_nll: float) -> dict[str, Any]:
    """Saturated-model goodness of fit: 2*(NLL - NLL_saturated) against chi2(n_bins - n_free).

    The saturated model reproduces every main bin exactly (Poisson(n|n)) and maximises the
    constraint terms (auxdata equal to their defaults, so at the suggested initial values).
    """
    import pyhf
    import scipy.special
    import scipy.stats

    data = np.asarray(data, dtype=float)
    n_main = model.config.nmaindata
    main, aux = data[:n_main], data[n_main:]
    if not np.allclose(aux, model.config.auxdata):
        raise ValueError("goodness_of_fit assumes the model's default auxiliary data")
    # log Poisson(n | n) with the continuous extension pyhf uses: xlogy(n, n) - n - lgamma(n + 1)
    poisson = float(np.sum(scipy.special.xlogy(main, main) - main - scipy.special.gammaln(main + 1.0)))
    init = pyhf.tensorlib.astensor(model.config.suggested_init())
    constraint = float(pyhf.tensorlib.to_numpy(model.constraint_logpdf(pyhf.tensorlib.astensor(aux), init)))
    saturated_twice_nll = -2.0 * (poisson + constraint)
    n_free = sum(model.config.param_set(name).suggested_fixed.count(False) for name in model.config.par_order
                 if not model.config.param_set(name).constrained)
    ndof = int(sum(model.config.channel_nbins.values()) - n_free)
    delta = float(best_twice_nll - saturated_twice_nll)
    p = float(scipy.stats.chi2.sf(delta, ndof)) if ndof > 0 else float("nan")
    return {"twice_delta_nll": delta, "ndof": ndof, "p_value": p}


def _twice_nll_function(model, data):
    import pyhf

    data_t = pyhf.tensorlib.astensor(data)

    def twice_nll(pars):
        return -2.0 * float(pyhf.tensorlib.to_numpy(model.logpdf(pyhf.tensorlib.astensor(pars), data_t))[0])

    return twice_nll


class _JaxTwiceNLL:
    """-2 log L of a pyhf model and its exact gradient, by pyhf's JAX backend (jit-compiled).

    MIGRAD with the gradient needs fewer likelihood evaluations than MIGRAD with numerical
    derivatives (at strategy 1, which still builds a Hessian from function calls, the whole ranking
    of the AGC model took ~20-25% less CPU, impacts within 2e-4; for strategy 0, the ranking's
    default, see :data:`RANKING_STRATEGY`). ``__call__`` evaluates value and gradient together and
    keeps the gradient for :meth:`grad` at the same point (MIGRAD asks for both). Built in the
    process that uses it: pyhf's backend is global, and JAX must not be started before a fork (its
    threads do not survive one).
    """

    def __init__(self, spec: dict, poi_name: str, modifier_settings: dict, data) -> None:
        import jax
        import pyhf

        jax.config.update("jax_enable_x64", True)
        self._previous = pyhf.get_backend()
        pyhf.set_backend("jax")
        import jax.numpy as jnp

        model = pyhf.Model(spec, poi_name=poi_name, modifier_settings=modifier_settings, validate=False)
        data_t = jnp.asarray(np.asarray(data, dtype=float))
        self._jnp = jnp
        self._value_and_grad = jax.jit(jax.value_and_grad(lambda p: -2.0 * model.logpdf(p, data_t)[0]))
        self._last: tuple[bytes, np.ndarray] | None = None

    def restore_backend(self) -> None:
        """Give pyhf back the backend it had before (the serial path, in the caller's process)."""
        import pyhf

        pyhf.set_backend(*self._previous)

    def __call__(self, pars) -> float:
        x = np.asarray(pars, dtype=float)
        value, grad = self._value_and_grad(self._jnp.asarray(x))
        self._last = (x.tobytes(), np.asarray(grad, dtype=float))
        return float(value)

    def grad(self, pars) -> np.ndarray:
        x = np.asarray(pars, dtype=float)
        if self._last is None or self._last[0] != x.tobytes():
            self(x)
        return self._last[1]


def _jax_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("jax") is not None


def _minimise_fixed(twice_nll, init, bounds, fixed, names, strategy: int, tolerance: float | None, steps):
    """MIGRAD only (no HESSE): best-fit values with some parameters held constant, and validity.
    ``twice_nll`` with a ``grad`` method (:class:`_JaxTwiceNLL`) gives MIGRAD its gradient."""
    import iminuit

    m = iminuit.Minuit(twice_nll, np.asarray(init, dtype=float), grad=getattr(twice_nll, "grad", None), name=names)
    m.errordef = iminuit.Minuit.LEAST_SQUARES  # the function is -2 log L
    m.limits = bounds
    m.fixed = fixed
    m.strategy = strategy
    if tolerance is not None:
        m.tol = tolerance
    m.errors = steps  # initial step sizes: the post-fit uncertainties (the scale of the minimum)
    m.migrad()
    return np.asarray(m.values, dtype=float), bool(m.valid)


_RANKING_STATE: dict[str, Any] = {}


def _ranking_task(task):
    """One ranking refit: (parameter index, kind, fixed value) -> (POI shift or nan, retried)."""
    st = _RANKING_STATE
    if st["twice_nll"] is None:   # a forked worker: its own JAX function, built once per process
        st["twice_nll"] = _JaxTwiceNLL(*st["jax_model"])
    i, kind, value = task
    init = np.array(st["bestfit"], dtype=float)
    init[i] = value
    fixed = list(st["fixed"])
    fixed[i] = True
    args = (st["twice_nll"], init, st["bounds"], fixed, st["labels"])
    values, valid = _minimise_fixed(*args, st["strategy"], st["tolerance"], st["steps"])
    retried = False
    if not valid and st["retry_strategy"] != st["strategy"]:
        retried = True
        values, valid = _minimise_fixed(*args, st["retry_strategy"], st["tolerance"], st["steps"])
    if not valid:
        return float("nan"), retried
    return float(values[st["poi_index"]]) - st["nominal_poi"], retried


#: Minuit settings of the ranking's refits (config statistics.ranking_strategy/ranking_tolerance).
#: Measured on the default workspace (33 parameters; serial; exact JAX gradient): strategy 1
#: at iminuit's default tolerance 0.1 took 34.2 s of CPU and its impacts were within 4.5e-4 of refits
#: at strategy 1, tolerance 1e-3; strategy 0 at tolerance 1e-4 took 9.0 s and came within 4.0e-4.
#: Strategy 0 skips the numerical Hessian MIGRAD starts from at strategy 1; the tight tolerance
#: makes up for the cruder steps. Only the POI value of each refit is used.
RANKING_STRATEGY = 0
RANKING_TOLERANCE = 1e-4


def ranking(model, data, outcome: FitOutcome, *, poi: str, retry_strategy: int = 2,
            strategy: int = RANKING_STRATEGY, tolerance: float | None = RANKING_TOLERANCE,
            processes: int = 1, gradient: bool = True) -> dict[str, Any]:
    """Impact of every nuisance parameter on the POI (cabinetry's definition).

    For each parameter theta (POI excluded): refit with theta held at hat-theta +- its pre-fit
    width and at hat-theta +- its post-fit uncertainty; the impact is the POI shift. The refits start
    from the nominal best fit and run MIGRAD only (the POI value is all that is needed) with Minuit
    ``strategy`` and ``tolerance`` (see :data:`RANKING_STRATEGY`), which is several times faster
    than ``cabinetry.fit.ranking`` and agrees with it within the MIGRAD tolerance (a few 1e-3 of
    the POI at most). A refit with an invalid minimum is repeated with
    ``retry_strategy``; if that fails too the impact is null and listed under ``failed``.
    ``processes`` > 1 spreads the refits over forked worker processes; each refit is independent,
    so the result does not depend on it. ``gradient`` (default, where JAX is installed) gives MIGRAD
    the exact gradient of the likelihood (:class:`_JaxTwiceNLL`, ~20-25% less CPU); without it MIGRAD
    uses numerical derivatives of the NumPy-backend likelihood.
    """
    import cabinetry

    from agc_ttbar.parallel import can_fork, fork_map

    res = outcome.results
    labels = list(model.config.par_names)
    poi_index = labels.index(poi)
    prefit_unc = np.asarray(cabinetry.model_utils.prefit_uncertainties(model), dtype=float)
    fixed0 = list(model.config.suggested_fixed())
    use_jax = gradient and _jax_available()
    forking = processes > 1 and can_fork()
    if processes > 1 and not forking:
        log.info("ranking: this process cannot fork workers (JAX loaded, or no fork); refits run serially")
    jax_model = (model.spec, model.config.poi_name, dict(model.config.modifier_settings), list(data))
    if not use_jax:
        twice_nll = _twice_nll_function(model, data)
    elif forking:
        twice_nll = None  # each worker builds its own (see _ranking_task)
    else:
        twice_nll = _JaxTwiceNLL(*jax_model)
    _RANKING_STATE.clear()
    _RANKING_STATE.update(
        twice_nll=twice_nll, jax_model=jax_model, bestfit=np.asarray(res.bestfit, dtype=float),
        bounds=[tuple(b) for b in model.config.suggested_bounds()], fixed=fixed0, labels=labels,
        strategy=strategy, retry_strategy=retry_strategy, tolerance=tolerance,
        steps=[float(u) if u > 0 else 0.01 for u in res.uncertainty], poi_index=poi_index,
        nominal_poi=float(res.bestfit[poi_index]))

    kinds = ("prefit_up", "prefit_down", "postfit_up", "postfit_down")
    tasks, slots = [], []
    out_labels = [lab for i, lab in enumerate(labels) if i != poi_index]
    impacts = {k: [0.0] * len(out_labels) for k in kinds}
    for j, i in enumerate(i for i in range(len(labels)) if i != poi_index):
        b, u = res.bestfit[i], res.uncertainty[i]
        for kind, value in zip(kinds, (b + prefit_unc[i], b - prefit_unc[i], b + u, b - u)):
            if value == b or fixed0[i]:
                continue  # unconstrained (no pre-fit width) or fixed parameter: impact 0
            tasks.append((i, kind, float(value)))
            slots.append((j, kind))
    try:
        answers = fork_map(_ranking_task, tasks, processes if forking else 1)
    finally:
        # the state's function, not the local: a serial run with ``twice_nll`` None (one task) builds it here
        if isinstance(_RANKING_STATE.get("twice_nll"), _JaxTwiceNLL):
            _RANKING_STATE["twice_nll"].restore_backend()
        _RANKING_STATE.clear()
    failed, retried = [], []
    for (j, kind), (shift, was_retried) in zip(slots, answers):
        impacts[kind][j] = shift
        if was_retried:
            retried.append(f"{out_labels[j]}:{kind}")
        if not np.isfinite(shift):
            failed.append(f"{out_labels[j]}:{kind}")
            log.warning("ranking: refit with %s at %s failed; impact set to null", out_labels[j], kind)
    keep = [i for i in range(len(labels)) if i != poi_index]
    return {"poi": poi, "strategy": strategy, "tolerance": tolerance, "labels": out_labels,
            "bestfit": [float(res.bestfit[i]) for i in keep],
            "uncertainty": [float(res.uncertainty[i]) for i in keep], **impacts,
            "retried": retried, "failed": failed}


def _clean(x):
    """JSON-safe copy: numpy -> Python, NaN/inf -> None."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, np.ndarray):
        return _clean(x.tolist())
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return x if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def fit_summary(outcome: FitOutcome, poi: str) -> dict[str, Any]:
    r = outcome.results
    value, unc = outcome.poi(poi)
    poi_doc = {"name": poi, "value": value, "uncertainty": unc}
    if poi in outcome.minos:
        poi_doc["minos"] = {"down": outcome.minos[poi][0], "up": outcome.minos[poi][1]}
    return {
        "poi": poi_doc,
        "converged": outcome.converged,
        "strategy": outcome.strategy,
        "retries": len(outcome.attempts) - 1,
        "attempts": outcome.attempts,
        "min_nll": r.best_twice_nll / 2.0,
        "best_twice_nll": r.best_twice_nll,
        "parameters": [{"name": n, "value": float(v), "uncertainty": float(u)}
                       for n, v, u in zip(r.labels, r.bestfit, r.uncertainty)],
        "labels": list(r.labels),
        "correlation_matrix": np.asarray(r.corr_mat).tolist(),
    }


def analyse(ws: dict[str, Any], *, poi: str, strategy: int | None = None, retry_strategy: int = 2,
            asimov: bool = True, do_ranking: bool = True, gof: bool = True, processes: int = 1,
            minos_poi: bool = True, ranking_strategy: int = RANKING_STRATEGY,
            ranking_tolerance: float | None = RANKING_TOLERANCE) -> tuple[dict[str, Any], dict[str, float]]:
    """Fit the workspace data (and Asimov, ranking, GoF). Returns (result dict, timings in s)."""
    import cabinetry

    timings: dict[str, float] = {}
    model, data = cabinetry.model_utils.model_and_data(ws)
    t = time.perf_counter()
    minos = [poi] if minos_poi else []
    outcome = mle_fit(model, data, strategy=strategy, retry_strategy=retry_strategy, label="fit to data",
                      minos=minos)
    timings["fit"] = time.perf_counter() - t
    doc = fit_summary(outcome, poi)
    doc["model"] = {"channels": {c: int(model.config.channel_nbins[c]) for c in model.config.channels},
                    "samples": list(model.config.samples), "n_parameters": int(model.config.npars)}
    doc["fit_settings"] = {"strategy": strategy, "retry_strategy": retry_strategy, "minos": minos}
    if gof:
        doc["goodness_of_fit"] = goodness_of_fit(model, data, outcome.results.best_twice_nll)
    if asimov:
        t = time.perf_counter()
        asimov_data = cabinetry.model_utils.asimov_data(model)
        a = mle_fit(model, asimov_data, strategy=strategy, retry_strategy=retry_strategy, label="Asimov fit",
                    minos=minos)
        timings["asimov"] = time.perf_counter() - t
        doc["asimov"] = {"poi": fit_summary(a, poi)["poi"], "converged": a.converged,
                         "strategy": a.strategy, "retries": len(a.attempts) - 1, "attempts": a.attempts,
                         "parameters": [{"name": n, "value": float(v), "uncertainty": float(u)} for n, v, u in
                                        zip(a.results.labels, a.results.bestfit, a.results.uncertainty)]}
    if do_ranking:
        t = time.perf_counter()
        doc["ranking"] = ranking(model, data, outcome, poi=poi, retry_strategy=retry_strategy,
                                 strategy=ranking_strategy, tolerance=ranking_tolerance,
                                 processes=processes)
        log.info("ranking: %d parameters in %.1f s", len(doc["ranking"]["labels"]), time.perf_counter() - t)
        timings["ranking"] = time.perf_counter() - t
    return _clean(doc), timings


def package_versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in PROVENANCE_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def fit_results_from_doc(doc: dict[str, Any]):
    """cabinetry ``FitResults`` rebuilt from a fit_results.json document (for plots, matching)."""
    from cabinetry.fit.results_containers import FitResults

    pars = doc["parameters"]
    return FitResults(np.array([p["value"] for p in pars], dtype=float),
                      np.array([p["uncertainty"] for p in pars], dtype=float),
                      [p["name"] for p in pars], np.array(doc["correlation_matrix"], dtype=float),
                      float(doc["best_twice_nll"]),
                      float(doc["goodness_of_fit"]["p_value"]) if doc.get("goodness_of_fit") and
                      doc["goodness_of_fit"]["p_value"] is not None else -1.0)
