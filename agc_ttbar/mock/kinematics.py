"""Vectorised relativistic kinematics on plain numpy arrays (E, px, py, pz), in GeV.

Every function works element-wise on arrays of one shape, so a whole chunk of events (or a padded
events x objects block) is handled in one call.
"""

from __future__ import annotations

import numpy as np

TWO_PI = 2.0 * np.pi


def p4(pt, eta, phi, mass):
    """(E, px, py, pz) from (pt, eta, phi, mass)."""
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    return np.sqrt(px * px + py * py + pz * pz + mass * mass), px, py, pz


def p4_from_mt(pt_x, pt_y, rapidity, mass):
    """(E, px, py, pz) of a system with transverse momentum (pt_x, pt_y), rapidity and mass."""
    mt = np.sqrt(mass * mass + pt_x * pt_x + pt_y * pt_y)
    return mt * np.cosh(rapidity), pt_x, pt_y, mt * np.sinh(rapidity)


def pt_eta_phi(px, py, pz):
    """(pt, eta, phi) of a three-momentum; eta of a zero-pt vector is +-1e4 (beam direction)."""
    pt = np.hypot(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.where(pt > 0, np.arcsinh(pz / np.where(pt > 0, pt, 1.0)), np.sign(pz) * 1e4)
    return pt, eta, np.arctan2(py, px)


def mass(E, px, py, pz):
    """Invariant mass (0 for space-like rounding residues)."""
    return np.sqrt(np.maximum(E * E - px * px - py * py - pz * pz, 0.0))


def wrap_phi(phi):
    """Map an angle into [-pi, pi)."""
    return (phi + np.pi) % TWO_PI - np.pi


def delta_r(eta1, phi1, eta2, phi2):
    """Angular distance with the azimuthal difference wrapped."""
    return np.hypot(eta1 - eta2, wrap_phi(phi1 - phi2))


def boost(E, px, py, pz, bx, by, bz):
    """Lorentz boost of (E, p) by the velocity (bx, by, bz)."""
    b2 = bx * bx + by * by + bz * bz
    b2 = np.minimum(b2, 1.0 - 1e-12)
    gamma = 1.0 / np.sqrt(1.0 - b2)
    bp = bx * px + by * py + bz * pz
    g2 = np.where(b2 > 0, (gamma - 1.0) / np.where(b2 > 0, b2, 1.0), 0.0)
    f = g2 * bp + gamma * E
    return gamma * (E + bp), px + f * bx, py + f * by, pz + f * bz


def isotropic_direction(rng, n):
    """Unit vectors distributed uniformly on the sphere."""
    cos_t = rng.uniform(-1.0, 1.0, n)
    sin_t = np.sqrt(1.0 - cos_t * cos_t)
    phi = rng.uniform(0.0, TWO_PI, n)
    return sin_t * np.cos(phi), sin_t * np.sin(phi), cos_t


def two_body_decay(rng, parent, m_parent, m1, m2):
    """Isotropic two-body decay of ``parent`` (tuple E, px, py, pz) of mass ``m_parent``.

    Returns the two daughters' four-momenta in the laboratory frame. ``m1``/``m2`` are the daughter
    masses (scalars or arrays); the parent mass must exceed their sum.
    """
    n = np.shape(parent[0])[0]
    m1 = np.broadcast_to(np.asarray(m1, dtype=float), (n,))
    m2 = np.broadcast_to(np.asarray(m2, dtype=float), (n,))
    M = np.maximum(m_parent, m1 + m2 + 1e-6)
    pstar = np.sqrt(np.maximum((M * M - (m1 + m2) ** 2) * (M * M - (m1 - m2) ** 2), 0.0)) / (2.0 * M)
    ux, uy, uz = isotropic_direction(rng, n)
    E1 = np.sqrt(pstar * pstar + m1 * m1)
    E2 = np.sqrt(pstar * pstar + m2 * m2)
    E, px, py, pz = parent
    bx, by, bz = px / E, py / E, pz / E
    d1 = boost(E1, pstar * ux, pstar * uy, pstar * uz, bx, by, bz)
    d2 = boost(E2, -pstar * ux, -pstar * uy, -pstar * uz, bx, by, bz)
    return d1, d2


def breit_wigner(rng, n, m0, width, n_widths=15.0):
    """Cauchy (non-relativistic Breit-Wigner) masses truncated at ``n_widths`` widths."""
    u = rng.uniform(0.5 - np.arctan(n_widths) / np.pi, 0.5 + np.arctan(n_widths) / np.pi, n)
    return m0 + 0.5 * width * np.tan(np.pi * (u - 0.5))


def power_law_pt(rng, n, pt_min, index):
    """Transverse momenta with dN/dpt ~ pt^-(index+1) above ``pt_min``."""
    return pt_min * rng.uniform(0.0, 1.0, n) ** (-1.0 / index)


def truncated_poisson(rng, lam, kmin, n, kmax=40):
    """Poisson(lam) counts conditioned on k >= kmin (exact inverse-CDF sampling)."""
    lam = float(lam)
    k = np.arange(kmin, kmax + 1)
    logp = k * np.log(max(lam, 1e-300)) - lam - np.array([np.sum(np.log(np.arange(1, x + 1))) for x in k])
    p = np.exp(logp - logp.max())
    cdf = np.cumsum(p) / p.sum()
    return k[np.minimum(np.searchsorted(cdf, rng.uniform(0.0, 1.0, n)), len(k) - 1)]


def poisson_tail(lam, kmin):
    """P(Poisson(lam) >= kmin)."""
    term, total = np.exp(-lam), 0.0
    for k in range(kmin):
        total += term
        term *= lam / (k + 1)
    return max(1.0 - total, 0.0)
