"""The objective: the expected (Asimov) uncertainty on ttbar_norm from the inverse Hessian of the NLL.

The model is the workflow's own statistical model, read from its cabinetry configuration
(``statistics/cabinetry_config.yml``: samples, systematics, POI), with the histograms of
:mod:`agc_ttbar.optimisation.soft_model` as templates, built the way cabinetry 0.6 builds the pyhf
workspace (``cabinetry.workspace``): a NormPlusShape systematic is a normsys with
``sum(up)/sum(nominal)`` (``2 - that`` when the down side is symmetrised) plus a histosys with the
templates normalised to the nominal yield (symmetrised down template ``2 nominal - up``); a
Normalization systematic is a normsys; every MC sample carries the per-bin staterror of its region
(relative error ``sqrt(sum sumw2) / sum nominal``); the POI is a normfactor.

**Interpolation.** pyhf's defaults are piecewise (normsys code1, histosys code0: a kink at
alpha = 0), so the Hessian at the nominal (Asimov) point is ill-defined: the workflow's own Asimov
HESSE is far from its MINOS interval. The objective uses the smooth codes instead, **normsys code4
and histosys code4p** (pyhf ``modifier_settings``), for which the NLL is twice differentiable at the
nominal point. The expected uncertainty is ``sqrt([H^-1]_{poi,poi})`` with ``H`` the Hessian of
``-log L`` (Poisson main terms and Gaussian constraints, as pyhf) at the nominal parameters, data the
Asimov dataset of those parameters.

**Why own JAX code and not pyhf's JAX backend.** pyhf's JAX backend differentiates the likelihood
in its parameters (tests use it: ``jax.hessian`` of pyhf's ``logpdf`` of the workflow's workspace with
code4/code4p, which the objective here reproduces), but pyhf builds a model from a JSON
specification with numpy (staterror sigmas, normsys coefficients), so the gradient with respect to
the templates, i.e. to the analysis choices, does not flow through ``pyhf.Model``. The ~80 lines here
are that same model written directly in jax.numpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..statistics.model import DATA_SAMPLE, POI

#: pyhf modifier settings of the smooth model (the objective's and the tests' pyhf comparison).
SMOOTH_INTERPOLATION = {"normsys": {"interpcode": "code4"}, "histosys": {"interpcode": "code4p"}}

# pyhf code4 with alpha0 = 1: f(alpha) = 1 + sum_i a_i alpha^i for |alpha| < 1, a = A^-1 b.
_A = np.array([[1, 1, 1, 1, 1, 1], [-1, 1, -1, 1, -1, 1], [1, 2, 3, 4, 5, 6], [1, -2, 3, -4, 5, -6],
               [0, 2, 6, 12, 20, 30], [0, 2, -6, 12, -20, 30]], dtype=np.float64)
_A_INV = np.linalg.inv(_A)


@dataclass
class ModelStructure:
    """What the cabinetry configuration says: regions, MC samples, systematics, POI samples."""

    regions: list[str]                       # RegionPath of each region (4j1b, 4j2b)
    samples: list[tuple[str, str]]           # (model name, process = SamplePath)
    poi_samples: set[str]                    # model names the POI multiplies
    systematics: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_cabinetry(cls, config: dict[str, Any]) -> "ModelStructure":
        samples = [(s["Name"], s["SamplePath"]) for s in config["Samples"] if not s.get("Data")
                   and s["Name"] != DATA_SAMPLE]
        poi = [nf for nf in config.get("NormFactors", []) if nf["Name"] == config["General"]["POI"]]
        if not poi:
            raise ValueError(f"the cabinetry config has no NormFactor for its POI {config['General']['POI']!r}")
        targets = poi[0]["Samples"]
        targets = {targets} if isinstance(targets, str) else set(targets)
        systs = []
        for s in config.get("Systematics", []):
            for side in ("Up", "Down"):
                if "SamplePath" in s.get(side, {}):
                    raise ValueError(f"systematic {s['Name']!r}: a SamplePath override is not supported "
                                     "by the optimisation objective")
            systs.append(s)
        return cls([r["RegionPath"] for r in config["Regions"]], samples, targets, systs)


def code4_coefficients(hi, lo):
    """(..., 6) coefficients of pyhf's code4 polynomial for factors ``hi`` = up/nom, ``lo`` = down/nom."""
    import jax.numpy as jnp

    b = jnp.stack([hi - 1.0, lo - 1.0, jnp.log(hi) * hi, -jnp.log(lo) * lo, jnp.log(hi) ** 2 * hi,
                   jnp.log(lo) ** 2 * lo], axis=-1)
    return b @ jnp.asarray(_A_INV).T


def code4(alpha, hi, lo, coeff):
    """Multiplicative normsys factor, pyhf code4 (alpha0 = 1)."""
    import jax.numpy as jnp

    powers = jnp.stack([alpha ** i for i in range(1, 7)], axis=-1)
    inner = 1.0 + jnp.sum(coeff * powers, axis=-1)
    a = jnp.abs(alpha)
    outer = jnp.where(alpha >= 1, hi ** jnp.where(a >= 1, alpha, 1.0),
                      lo ** jnp.where(a >= 1, -alpha, 1.0))
    return jnp.where(a >= 1, outer, inner)


def code4p(alpha, nom, up, down):
    """Additive histosys delta, pyhf code4p."""
    import jax.numpy as jnp

    d_up, d_dn = up - nom, nom - down
    s, a_ = 0.5 * (d_up + d_dn), 0.0625 * (d_up - d_dn)
    a2 = alpha * alpha
    inner = alpha * s + a2 * (a2 * (a2 * 3.0 - 10.0) + 15.0) * a_
    return jnp.where(alpha > 1, d_up * alpha, jnp.where(alpha < -1, d_dn * alpha, inner))


class Model:
    """Expected rates and NLL of the smooth model for a set of templates (jax arrays), vectorised
    over regions R, samples S, systematics K and bins B (one small graph: quick to compile).

    ``templates``: {(region, process, label): (sumw (B,), sumw2 (B,))}; label "nominal" and the
    variation labels (the VariationPath of the config without its leading "_").
    Parameters: [POI, one alpha per systematic, one gamma per (region, bin)].
    """

    def __init__(self, structure: ModelStructure, templates: dict) -> None:
        import jax.numpy as jnp

        self.s = structure
        self.names = [POI] + [sy["Name"] for sy in structure.systematics]
        self.n_syst = k_n = len(structure.systematics)
        noms, his, los, ups, downs, sw2s = [], [], [], [], [], []
        for region in structure.regions:
            for name, process in structure.samples:
                nom, sw2 = templates[(region, process, "nominal")]
                noms.append(nom)
                sw2s.append(sw2)
                for sy in structure.systematics:
                    hi, lo, up_n, down_n = 1.0, 1.0, nom, nom     # no effect where it does not act
                    if name in sy["Samples"]:
                        if sy["Type"] == "Normalization":
                            hi, lo = 1.0 + sy["Up"]["Normalization"], 1.0 + sy["Down"]["Normalization"]
                        else:
                            up = templates[(region, process, sy["Up"]["VariationPath"].lstrip("_"))][0]
                            hi = jnp.sum(up) / jnp.sum(nom)
                            up_n = up / hi
                            if sy.get("Down", {}).get("Symmetrize", False):
                                lo, down_n = 2.0 - hi, 2.0 * nom - up_n
                            else:
                                down = templates[(region, process, sy["Down"]["VariationPath"].lstrip("_"))][0]
                                lo = jnp.sum(down) / jnp.sum(nom)
                                down_n = down / lo
                    his.append(hi)
                    los.append(lo)
                    ups.append(up_n)
                    downs.append(down_n)
        r_n, s_n = len(structure.regions), len(structure.samples)
        self.nom = jnp.stack(noms).reshape(r_n, s_n, -1)                       # (R, S, B)
        b_n = self.nom.shape[-1]
        self.hi = jnp.stack([jnp.asarray(h, dtype=jnp.float64) for h in his]).reshape(r_n, s_n, k_n)
        self.lo = jnp.stack([jnp.asarray(x, dtype=jnp.float64) for x in los]).reshape(r_n, s_n, k_n)
        self.coeff = code4_coefficients(self.hi, self.lo)                      # (R, S, K, 6)
        self.up = jnp.stack(ups).reshape(r_n, s_n, k_n, b_n)
        self.down = jnp.stack(downs).reshape(r_n, s_n, k_n, b_n)
        self.poi_mask = jnp.asarray([name in structure.poi_samples for name, _ in structure.samples],
                                    dtype=jnp.float64)
        sw2 = jnp.stack(sw2s).reshape(r_n, s_n, b_n)
        self.sigma = jnp.sqrt(jnp.sum(sw2, axis=1)) / jnp.sum(self.nom, axis=1)  # (R, B) staterror
        self.shape = (r_n, s_n, k_n, b_n)
        self.n_pars = 1 + k_n + r_n * b_n

    def nominal_parameters(self):
        import jax.numpy as jnp

        r_n, _, k_n, b_n = self.shape
        return jnp.concatenate([jnp.ones(1), jnp.zeros(k_n), jnp.ones(r_n * b_n)])

    def expected(self, pars):
        """Expected rates (R, B)."""
        import jax.numpy as jnp

        r_n, _, k_n, b_n = self.shape
        mu, alphas = pars[0], pars[1:1 + k_n]
        gammas = pars[1 + k_n:].reshape(r_n, b_n)
        a = alphas[None, None, :, None]
        delta = code4p(a, self.nom[:, :, None, :], self.up, self.down).sum(axis=2)   # (R, S, B)
        factor = jnp.prod(code4(alphas[None, None, :], self.hi, self.lo, self.coeff), axis=2)  # (R, S)
        rate = (self.nom + delta) * factor[..., None] * (1.0 + (mu - 1.0) * self.poi_mask)[None, :, None]
        return rate.sum(axis=1) * gammas

    def nll(self, pars, data):
        """-log L: Poisson main terms (continuous, lgamma) + Gaussian constraints (pyhf's, with aux
        data at the nominal values: 0 for alphas, 1 for gammas)."""
        import jax.numpy as jnp
        from jax.scipy.special import gammaln

        r_n, _, k_n, b_n = self.shape
        lam = self.expected(pars)
        out = jnp.sum(lam - data * jnp.log(lam) + gammaln(data + 1.0))
        alphas = pars[1:1 + k_n]
        out = out + 0.5 * jnp.sum(alphas ** 2) + 0.5 * k_n * jnp.log(2 * jnp.pi)
        g = pars[1 + k_n:].reshape(r_n, b_n)
        return out + jnp.sum(0.5 * ((1.0 - g) / self.sigma) ** 2 + jnp.log(self.sigma) + 0.5 * jnp.log(2 * jnp.pi))

    def hessian(self):
        """Hessian of :meth:`nll` at the nominal point for the Asimov data of that point.

        There the data equal the expectation, so the second derivatives of the rates drop out and
        ``H = J^T diag(1/lambda) J + C`` exactly (J: d lambda / d pars, C: the constraint terms,
        1 per alpha, 1/sigma^2 per gamma); only a forward Jacobian is traced, which keeps the
        gradient of the objective cheap to compile. Tests compare it with ``jax.hessian`` of
        :meth:`nll` and with pyhf."""
        import jax
        import jax.numpy as jnp

        x0 = self.nominal_parameters()
        lam = self.expected(x0).ravel()
        jac = jax.jacfwd(lambda x: self.expected(x).ravel())(x0)                 # (R*B, P)
        r_n, _, k_n, b_n = self.shape
        constraint = jnp.concatenate([jnp.zeros(1), jnp.ones(k_n), (1.0 / self.sigma ** 2).ravel()])
        return jac.T @ (jac / lam[:, None]) + jnp.diag(constraint)

    def hessian_autodiff(self):
        """``jax.hessian`` of :meth:`nll` at the nominal point, Asimov data (the reference of :meth:`hessian`)."""
        import jax

        x0 = self.nominal_parameters()
        data = self.expected(x0)
        return jax.hessian(lambda x: self.nll(x, data))(x0)

    def asimov_uncertainty(self):
        """sqrt([H^-1]_{poi,poi}) at the nominal point, Asimov data (expected at the nominal point);
        the Asimov data are a function of the templates too."""
        import jax.numpy as jnp

        return jnp.sqrt(jnp.linalg.inv(self.hessian())[0, 0])


def expected_uncertainty(structure: ModelStructure, templates: dict):
    """The objective: the Asimov ttbar_norm uncertainty of the smooth model with these templates."""
    return Model(structure, templates).asimov_uncertainty()
