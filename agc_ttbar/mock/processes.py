"""Hard processes of the nine AGC samples and the physics knobs of each sample.

Each ``generate_*`` function draws a chunk of events *inside the generation class* of its process
(e.g. for ttbar: at least one W decays to an electron or muon, directly or through a tau) and
returns a :class:`~agc_ttbar.mock.truth.Truth`. The class probability is known analytically
(:meth:`ProcessModel.class_probability`); the generator folds it into the pre-filter event count,
as a generator-level filter efficiency is folded into a real sample's ``nevts``.

:func:`inclusive_model` turns the class off (``ProcessModel.inclusive``): every decay mode (ttbar
all-hadronic, taus to hadrons, muon channels), W+jets from 0 partons on. The unskimmed files of
``mock.skim: false`` are drawn from it; inside the class the distributions are the same.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from . import kinematics as kin
from .truth import (W_BR, usable_channels, M_B, M_TOP, M_W, W_TOP, W_W, Truth, add_beams, add_top_decay,
                    add_w_decay, lepton_class_probability, sample_w_channels, system_p4, HARD_OUT)


@dataclass(frozen=True)
class DetectorModel:
    """Jet response and tagging knobs (the PS variation changes these)."""

    #: mean jet response per parton kind
    response: dict = field(default_factory=lambda: {"light": 1.01, "gluon": 0.99, "c": 1.0, "b": 1.0,
                                                    "tau": 0.97})
    #: multiplies the stochastic/noise/constant jet resolution terms
    resolution_scale: float = 1.0
    #: probability that a b jet loses energy to a semileptonic decay (neutrino)
    b_semileptonic: float = 0.2
    #: share of b / c / light jets in the high-discriminant component of CSVv2
    btag_high: dict = field(default_factory=lambda: {"b": 0.86, "c": 0.33, "light": 0.085})
    #: shift of the quark-gluon likelihood of gluon jets (hadronisation model)
    qgl_gluon_shift: float = 0.0


@dataclass(frozen=True)
class ProcessModel:
    """Physics knobs of one sample."""

    process: str
    isr_mean: float = 1.5          # mean number of extra partons above 15 GeV
    isr_index: float = 1.9         # power-law index of their pt spectrum
    isr_min: int = 0               # generation class: at least this many (folded into nevts)
    fsr_prob: float = 0.18         # hard FSR probability per quark from a decay
    mass_shape: float = 1.4        # hard system mass above threshold ~ Gamma(shape, scale)
    mass_scale: float = 75.0
    y_width: float = 0.9           # rapidity spread of the hard system
    extra_b: float = 0.0           # tW: probability of the g -> b bbar spectator (tWb)
    wjets_ratio: float = 0.27      # W+jets: Berends ratio P(n+1 jets)/P(n jets) above 20 GeV
    wjets_min: int = 4             # W+jets generation class: at least this many partons
    wjets_hf: tuple = (0.045, 0.07, 0.13)  # W+jets: fractions of W+bb, W+cc, W+c
    wjets_pt_index: float = 1.4    # W+jets: power-law index of the parton pt spectrum above 20 GeV
    wjets_eta_width: float = 1.5   # W+jets: rapidity spread of the partons
    neg_weight_fraction: float = 0.0  # aMC@NLO samples have negative genWeight events
    with_muons: bool = True        # False: muons can never be tight, so muon channels are not generated
    #: True: no generation class (every decay mode, W+jets from 0 partons): the unskimmed files of
    #: ``mock.skim: false``. The default False draws inside the class (skimmed files).
    inclusive: bool = False
    detector: DetectorModel = field(default_factory=DetectorModel)

    def class_probability(self) -> float:
        """Probability of the generation class among all events of the sample."""
        if self.inclusive:
            return 1.0
        isr = kin.poisson_tail(self.isr_mean, self.isr_min) if self.isr_min > 0 else 1.0
        if self.process == "ttbar" or self.process == "single_top_tW":
            return lepton_class_probability(2, self.with_muons) * isr
        if self.process in ("single_top_s_chan", "single_top_t_chan"):
            return lepton_class_probability(1, self.with_muons) * isr
        if self.process == "wjets":
            # W -> e, mu, tau (WJetsToLNu); e/mu directly or from the tau
            p = W_BR[:5] / W_BR[:5].sum()
            lep = p[usable_channels(self.with_muons)[:5]].sum()
            return lep * self.wjets_ratio ** self.wjets_min
        raise ValueError(self.process)


def generate_ttbar(rng, n, model: ProcessModel) -> Truth:
    truth = Truth(n)
    c_in0, _ = add_beams(truth, rng, "gg_or_qq")
    ch = sample_w_channels(rng, n, 2, not model.inclusive, model.with_muons)
    m1 = kin.breit_wigner(rng, n, M_TOP, W_TOP)
    m2 = kin.breit_wigner(rng, n, M_TOP, W_TOP)
    m_tt = m1 + m2 + rng.gamma(model.mass_shape, model.mass_scale, n)
    # the ttbar system first (GenPart order: beams, tops, decays, then the ME emission)
    rx_ry = _pending_radiation(rng, n, model)
    tt = system_p4(rng, n, rx_ry[0], rx_ry[1], m_tt, model.y_width)
    t1, t2 = kin.two_body_decay(rng, tt, m_tt, m1, m2)
    add_top_decay(truth, rng, t1, m1, ch[:, 0], +1, c_in0, model)
    add_top_decay(truth, rng, t2, m2, ch[:, 1], -1, c_in0, model)
    _commit_radiation(truth, rx_ry, c_in0)
    return truth


def generate_single_top_t(rng, n, model: ProcessModel) -> Truth:
    """4-flavour t-channel: q g -> q' t bbar, forward light jet, soft spectator b."""
    truth = Truth(n)
    c_q, c_g = add_beams(truth, rng, "qg")
    charge = np.where(rng.uniform(size=n) < 0.62, 1, -1)  # top : antitop = 136 : 81 pb
    ch = sample_w_channels(rng, n, 1, not model.inclusive, model.with_muons)[:, 0]
    m_t = kin.breit_wigner(rng, n, M_TOP, W_TOP)
    rx_ry = _pending_radiation(rng, n, model)
    top_pt = rng.gamma(2.0, 32.0, n)
    phi_t = rng.uniform(-np.pi, np.pi, n)
    top = kin.p4(top_pt, rng.normal(0.0, 1.3, n), phi_t, m_t)
    # light quark recoils against the top; forward
    q_pt = np.maximum(rng.gamma(2.4, 20.0, n), 10.0)
    q_eta = rng.normal(2.4, 0.9, n) * np.where(rng.uniform(size=n) < 0.5, 1, -1)
    q_phi = kin.wrap_phi(phi_t + np.pi + rng.normal(0.0, 0.6, n))
    b_pt = 8.0 + rng.gamma(1.5, 12.0, n)
    b_eta = rng.normal(0.0, 2.0, n)
    b_phi = rng.uniform(-np.pi, np.pi, n)
    top = _shift_pt(top, rx_ry)
    for sign in (1, -1):
        sel = charge == sign
        _top_decay_masked(truth, rng, top, m_t, ch, sign, c_q, model, sel)
    qpdg = np.where(charge > 0, 1, 2)
    truth.gen.add(qpdg, c_q, HARD_OUT | (1 << 13), 23, q_pt, q_eta, q_phi, 0.0)
    truth.gen.add(-5 * charge, c_g, HARD_OUT, 23, b_pt, b_eta, b_phi, 0.0)
    truth.add_parton(q_pt, q_eta, q_phi, qpdg)
    truth.add_parton(b_pt, b_eta, b_phi, -5 * charge)
    _commit_radiation(truth, rx_ry, c_g)
    return truth


def generate_single_top_s(rng, n, model: ProcessModel) -> Truth:
    """s-channel: q qbar' -> W* -> t bbar."""
    truth = Truth(n)
    c_q, _ = add_beams(truth, rng, "qqbar")
    charge = np.where(rng.uniform(size=n) < 0.615, 1, -1)  # 2.03 : 1.27 pb
    ch = sample_w_channels(rng, n, 1, not model.inclusive, model.with_muons)[:, 0]
    m_t = kin.breit_wigner(rng, n, M_TOP, W_TOP)
    m_sys = m_t + M_B + rng.gamma(model.mass_shape, model.mass_scale, n)
    rx_ry = _pending_radiation(rng, n, model)
    sys4 = system_p4(rng, n, rx_ry[0], rx_ry[1], m_sys, model.y_width)
    top, bb = kin.two_body_decay(rng, sys4, m_sys, m_t, M_B)
    for sign in (1, -1):
        _top_decay_masked(truth, rng, top, m_t, ch, sign, c_q, model, charge == sign)
    bpt, beta_, bphi = kin.pt_eta_phi(bb[1], bb[2], bb[3])
    truth.gen.add(-5 * charge, c_q, HARD_OUT | (1 << 13), 23, bpt, beta_, bphi, 0.0)
    truth.add_parton(bpt, beta_, bphi, -5 * charge)
    _commit_radiation(truth, rx_ry, c_q)
    return truth


def generate_single_top_tw(rng, n, model: ProcessModel) -> Truth:
    """tW: g b -> t W (optionally with the g -> b bbar spectator of the tWb configuration)."""
    truth = Truth(n)
    c_g, c_b = add_beams(truth, rng, "gb")
    charge = np.where(rng.uniform(size=n) < 0.5, 1, -1)
    ch = sample_w_channels(rng, n, 2, not model.inclusive, model.with_muons)
    m_t = kin.breit_wigner(rng, n, M_TOP, W_TOP)
    m_w = kin.breit_wigner(rng, n, M_W, W_W, n_widths=10)
    m_sys = m_t + m_w + rng.gamma(model.mass_shape, model.mass_scale, n)
    rx_ry = _pending_radiation(rng, n, model)
    sys4 = system_p4(rng, n, rx_ry[0], rx_ry[1], m_sys, model.y_width)
    top, w = kin.two_body_decay(rng, sys4, m_sys, m_t, m_w)
    for sign in (1, -1):
        sel = charge == sign
        _top_decay_masked(truth, rng, top, m_t, ch[:, 0], sign, c_g, model, sel)
    for sign in (1, -1):
        sel = charge == sign
        _w_decay_masked(truth, rng, w, m_w, ch[:, 1], -sign, c_g, model, sel)
    xb = rng.uniform(size=n) < model.extra_b
    b_pt = 15.0 + rng.gamma(1.6, 22.0, n)
    b_eta = rng.normal(0.0, 1.7, n)
    b_phi = rng.uniform(-np.pi, np.pi, n)
    truth.gen.add(-5 * charge, c_g, HARD_OUT | (1 << 13), 23, b_pt, b_eta, b_phi, 0.0, present=xb)
    truth.add_parton(b_pt, b_eta, b_phi, -5 * charge, present=xb)
    _commit_radiation(truth, rx_ry, c_g)
    return truth


def generate_wjets(rng, n, model: ProcessModel) -> Truth:
    """W(-> l nu) + >= wjets_min partons (Berends scaling), with heavy-flavour fractions."""
    truth = Truth(n)
    c_q, _ = add_beams(truth, rng, "qqbar")
    charge = np.where(rng.uniform(size=n) < 0.58, 1, -1)
    # W -> e / mu / tau (tau -> e, mu or hadrons), conditioned on an electron or muon
    p = W_BR[:5] / W_BR[:5].sum()
    usable = usable_channels(model.with_muons)[:5]
    ch = rng.choice(5, size=n, p=p)
    bad = ~usable[ch] & (not model.inclusive)
    while bad.any():
        ch[bad] = rng.choice(5, size=int(bad.sum()), p=p)
        bad = ~usable[ch]
    kmax = 9
    k = np.minimum(model.wjets_min + rng.geometric(1.0 - model.wjets_ratio, n) - 1, kmax)
    present = np.arange(kmax)[None, :] < k[:, None]
    pt = kin.power_law_pt(rng, n * kmax, 20.0, model.wjets_pt_index).reshape(n, kmax)
    pt = -np.sort(-np.where(present, pt, 0.0), axis=1)
    eta = np.clip(rng.normal(0.0, model.wjets_eta_width, (n, kmax)), -4.9, 4.9)
    phi = rng.uniform(-np.pi, np.pi, (n, kmax))
    u = rng.uniform(size=(n, kmax))
    pdg = np.where(u < 0.55, 21, np.where(u < 0.8, 1, 2)) * np.where(rng.uniform(size=(n, kmax)) < 0.5, 1, -1)
    pdg = np.where(np.abs(pdg) == 21, 21, pdg)
    # heavy flavour: W+bb, W+cc (a random pair of slots), W+c (one slot)
    f_bb, f_cc, f_c = model.wjets_hf
    hf = rng.uniform(size=n)
    order = np.argsort(rng.uniform(size=(n, kmax)) + ~present * 10.0, axis=1)  # random present slots
    first, second = order[:, 0], order[:, 1]
    rows = np.arange(n)
    for lo, hi, fl, pair in ((0.0, f_bb, 5, True), (f_bb, f_bb + f_cc, 4, True), (f_bb + f_cc, f_bb + f_cc + f_c, 4, False)):
        sel = (hf >= lo) & (hf < hi)
        pdg[rows[sel], first[sel]] = fl
        if pair:
            pdg[rows[sel], second[sel]] = -fl
    for j in range(kmax):
        truth.add_parton(pt[:, j], eta[:, j], phi[:, j], pdg[:, j], present=present[:, j])
    rx = np.sum(np.where(present, pt * np.cos(phi), 0.0), axis=1)
    ry = np.sum(np.where(present, pt * np.sin(phi), 0.0), axis=1)
    m_w = kin.breit_wigner(rng, n, M_W, W_W, n_widths=10)
    w = system_p4(rng, n, rx, ry, m_w, 1.9)
    # leading two partons are the matrix-element ones, stored as GenPart
    for j in range(2):
        truth.gen.add(pdg[:, j], c_q, HARD_OUT | (1 << 13), 23, pt[:, j], eta[:, j], phi[:, j], 0.0,
                      present=present[:, j] if model.inclusive else True)
    for sign in (1, -1):
        _w_decay_masked(truth, rng, w, m_w, ch, sign, c_q, model, charge == sign)
    return truth


# -- helpers: a radiation system generated before the hard process, committed after it so that the
#    GenPart order is beams, hard process, decays, ME emission (mothers always precede daughters)

def _pending_radiation(rng, n, model):
    if model.isr_min > 0:
        k = kin.truncated_poisson(rng, model.isr_mean, model.isr_min, n)
    else:
        k = rng.poisson(model.isr_mean, n)
    kmax = 6
    k = np.minimum(k, kmax)
    present = np.arange(kmax)[None, :] < k[:, None]
    pt = kin.power_law_pt(rng, n * kmax, 15.0, model.isr_index).reshape(n, kmax)
    pt = -np.sort(-np.where(present, pt, 0.0), axis=1)
    eta = np.clip(rng.normal(0.0, 2.0, (n, kmax)), -4.9, 4.9)
    phi = rng.uniform(-np.pi, np.pi, (n, kmax))
    u = rng.uniform(size=(n, kmax))
    sign = np.where(rng.uniform(size=(n, kmax)) < 0.5, 1, -1)
    pdg = np.select([u < 0.74, u < 0.82, u < 0.90, u < 0.955, u < 0.98], [21, 1, 2, 3, 4], 5) * sign
    pdg = np.where(np.abs(pdg) == 21, 21, pdg)
    rx = np.sum(np.where(present, pt * np.cos(phi), 0.0), axis=1)
    ry = np.sum(np.where(present, pt * np.sin(phi), 0.0), axis=1)
    return rx, ry, (pt, eta, phi, pdg, present)


def _commit_radiation(truth, rx_ry, mother):
    pt, eta, phi, pdg, present = rx_ry[2]
    for j in range(pt.shape[1]):
        truth.add_parton(pt[:, j], eta[:, j], phi[:, j], pdg[:, j], present=present[:, j])
    truth.gen.add(pdg[:, 0], mother, HARD_OUT | (1 << 13), 23, pt[:, 0], eta[:, 0], phi[:, 0], 0.0,
                  present=present[:, 0])


def _shift_pt(p, rx_ry):
    """Give a system the transverse recoil of the radiation (keeping its mass)."""
    E, px, py, pz = p
    m2 = np.maximum(E * E - px * px - py * py - pz * pz, 0.0)
    px, py = px - 0.5 * rx_ry[0], py - 0.5 * rx_ry[1]
    return np.sqrt(m2 + px * px + py * py + pz * pz), px, py, pz


def _top_decay_masked(truth, rng, top, m_t, ch, sign, mother, model, sel):
    """Top decay slots for the events in ``sel`` (charge ``sign``); other events leave them empty."""
    before = len(truth.gen.cols), len(truth.partons.cols), len(truth.leptons.cols)
    nu = truth.nu_px.copy(), truth.nu_py.copy()
    add_top_decay(truth, rng, top, m_t, ch, sign, mother, model)
    _mask_new(truth, before, sel, nu)


def _w_decay_masked(truth, rng, w, m_w, ch, sign, mother, model, sel):
    before = len(truth.gen.cols), len(truth.partons.cols), len(truth.leptons.cols)
    nu = truth.nu_px.copy(), truth.nu_py.copy()
    add_w_decay(truth, rng, w, m_w, ch, sign, mother, model)
    _mask_new(truth, before, sel, nu)


def _mask_new(truth, before, sel, nu):
    g0, p0, l0 = before
    ncols = len(truth.gen.cols) - g0
    for c in truth.gen.cols[g0:]:
        c["present"] = c["present"] & sel
    for c in truth.partons.cols[p0:]:
        c["present"] = c["present"] & sel
    for c in truth.leptons.cols[l0:]:
        c["present"] = c["present"] & sel
    truth.nu_px = np.where(sel, truth.nu_px, nu[0])
    truth.nu_py = np.where(sel, truth.nu_py, nu[1])
    # mothers of the masked block point inside the block or before it: unchanged
    return ncols


GENERATORS = {
    "ttbar": generate_ttbar,
    "single_top_s_chan": generate_single_top_s,
    "single_top_t_chan": generate_single_top_t,
    "single_top_tW": generate_single_top_tw,
    "wjets": generate_wjets,
}


def inclusive_model(model: ProcessModel) -> ProcessModel:
    """The same sample without generation class: every event of the sample (``mock.skim: false``)."""
    return dataclasses.replace(model, inclusive=True, isr_min=0, wjets_min=0)


def sample_model(process: str, variation: str, with_muons: bool = True) -> ProcessModel:
    """Physics knobs of a sample; the ttbar variations differ the way their names say."""
    base = {
        "ttbar": ProcessModel("ttbar", isr_mean=1.6, isr_index=1.6, fsr_prob=0.18, mass_shape=1.4, mass_scale=90.0),
        "single_top_s_chan": ProcessModel("single_top_s_chan", isr_mean=1.7, mass_shape=1.5, mass_scale=90.0,
                                          neg_weight_fraction=0.18),
        "single_top_t_chan": ProcessModel("single_top_t_chan", isr_mean=1.5),
        "single_top_tW": ProcessModel("single_top_tW", isr_mean=1.3, mass_shape=1.6, mass_scale=110.0,
                                      extra_b=0.35),
        "wjets": ProcessModel("wjets", wjets_ratio=0.36, neg_weight_fraction=0.16),
    }
    if process not in base:
        raise KeyError(f"unknown process {process!r}; known: {', '.join(base)}")
    m = dataclasses.replace(base[process], with_muons=with_muons)
    if variation == "nominal":
        return m
    if process != "ttbar":
        raise KeyError(f"sample {process}__{variation} does not exist (only ttbar has variations)")
    if variation == "scaleup":       # more radiation
        return dataclasses.replace(m, isr_mean=m.isr_mean * 1.25, fsr_prob=m.fsr_prob * 1.25)
    if variation == "scaledown":     # less radiation
        return dataclasses.replace(m, isr_mean=m.isr_mean * 0.8, fsr_prob=m.fsr_prob * 0.8)
    if variation == "ME_var":        # different matrix element: harder top pt spectrum
        return dataclasses.replace(m, mass_scale=m.mass_scale * 0.9, isr_mean=m.isr_mean * 1.5,
                                   neg_weight_fraction=0.25)
    if variation == "PS_var":        # different shower/hadronisation: jet response and b tagging
        det = DetectorModel(response={"light": 0.99, "gluon": 0.97, "c": 0.98, "b": 0.965, "tau": 0.96},
                            resolution_scale=1.15, b_semileptonic=0.24,
                            btag_high={"b": 0.80, "c": 0.30, "light": 0.095}, qgl_gluon_shift=0.08)
        return dataclasses.replace(m, detector=det, fsr_prob=m.fsr_prob * 1.1)
    raise KeyError(f"unknown ttbar variation {variation!r}")
