"""Generator-level event records (the "truth") of the synthetic samples.

Events are built column-wise for a whole chunk at once. :class:`GenRecord` collects GenPart
entries (one column per particle slot, present or not in each event) with NanoAOD conventions:
mother indices, status codes and statusFlags (isHardProcess, isFirstCopy, isLastCopy, ...).
:class:`Truth` adds what the detector simulation needs: the partons that become jets, the charged
leptons and the neutrino momentum sum.
"""

from __future__ import annotations

import numpy as np

from . import kinematics as kin
from .schema import flags

#: PDG masses (GeV) used for decays.
M_TOP, W_TOP = 172.5, 1.35
M_W, W_W = 80.38, 2.085
M_B, M_TAU = 4.8, 1.777

#: W decay channels: e, mu, tau->e, tau->mu, tau->hadrons, hadrons (PDG branching ratios).
W_CHANNELS = ("e", "mu", "tau_e", "tau_mu", "tau_h", "had")
_BR_TAU = 0.1138
W_BR = np.array([0.1071, 0.1063, _BR_TAU * 0.1782, _BR_TAU * 0.1739, _BR_TAU * 0.6479, 0.6741])
W_BR = W_BR / W_BR.sum()
#: Channels with a prompt or tau-decay electron or muon.
LEPTONIC = np.array([True, True, True, True, False, False])

HARD_IN = flags("isPrompt", "isHardProcess", "fromHardProcess", "fromHardProcessBeforeFSR", "isLastCopy")
HARD_OUT = flags("isPrompt", "isHardProcess", "fromHardProcess", "fromHardProcessBeforeFSR", "isFirstCopy")
LAST_COPY = flags("isPrompt", "fromHardProcess", "isLastCopy", "isLastCopyBeforeFSR")
LAST_AFTER_FSR = flags("isPrompt", "fromHardProcess", "isLastCopy")
TAU_PRODUCT = flags("isTauDecayProduct", "isPromptTauDecayProduct", "isDirectTauDecayProduct",
                    "isDirectPromptTauDecayProduct", "isHardProcessTauDecayProduct",
                    "isDirectHardProcessTauDecayProduct", "fromHardProcess", "isFirstCopy", "isLastCopy")
BEAM_ETA = 22000.0  # NanoAOD stores incoming partons with pt 0 and a huge |eta|


def stored_mass(pdg, m):
    """NanoAOD GenPart_mass: kept for tops, bosons and taus, 0 for light quarks, gluons and leptons."""
    a = np.abs(pdg)
    keep = (a == 6) | (a == 23) | (a == 24) | (a == 25) | (a == 15) | (a > 100)
    return np.where(keep, m, 0.0)


class GenRecord:
    """Column-wise GenPart builder for a chunk of ``n`` events."""

    def __init__(self, n: int):
        self.n = n
        self.cols: list[dict] = []

    def add(self, pdg, mother: int, flag, status, pt, eta, phi, m, present=True) -> int:
        """Append one particle slot; ``mother`` is the column of the mother (-1: none)."""
        n = self.n
        self.cols.append({
            "pdg": np.broadcast_to(np.asarray(pdg, dtype=np.int32), (n,)),
            "mother": int(mother),
            "flags": np.broadcast_to(np.asarray(flag, dtype=np.int32), (n,)),
            "status": np.broadcast_to(np.asarray(status, dtype=np.int32), (n,)),
            "pt": np.broadcast_to(np.asarray(pt, dtype=float), (n,)),
            "eta": np.broadcast_to(np.asarray(eta, dtype=float), (n,)),
            "phi": np.broadcast_to(np.asarray(phi, dtype=float), (n,)),
            "mass": np.broadcast_to(np.asarray(m, dtype=float), (n,)),
            "present": np.broadcast_to(np.asarray(present, dtype=bool), (n,)),
        })
        return len(self.cols) - 1

    def add_p4(self, pdg, mother, flag, status, p4, m, present=True) -> int:
        pt, eta, phi = kin.pt_eta_phi(p4[1], p4[2], p4[3])
        return self.add(pdg, mother, flag, status, pt, eta, phi, stored_mass(np.asarray(pdg), m), present)

    def build(self):
        """Padded (n, slots) arrays with absent slots squeezed out and mothers re-indexed.

        Returns ``(arrays, counts, position)``; ``position[:, c]`` is the stored index of column
        ``c`` in each event (-1 where absent).
        """
        present = np.stack([c["present"] for c in self.cols], axis=1)
        position = np.where(present, np.cumsum(present, axis=1) - 1, -1)
        counts = present.sum(axis=1)
        width = int(counts.max()) if len(counts) else 0
        rows = np.nonzero(present)
        dest = position[rows]
        out = {}
        for key in ("pdg", "flags", "status", "pt", "eta", "phi", "mass"):
            full = np.stack([c[key] for c in self.cols], axis=1)
            arr = np.zeros((self.n, width), dtype=full.dtype)
            arr[rows[0], dest] = full[rows]
            out[key] = arr
        mcol = np.array([c["mother"] for c in self.cols])
        mother_pos = np.where(mcol[None, :] >= 0, np.take_along_axis(
            position, np.broadcast_to(np.maximum(mcol, 0), position.shape), axis=1), -1)
        arr = np.full((self.n, width), -1, dtype=np.int32)
        arr[rows[0], dest] = mother_pos[rows]
        out["mother"] = arr
        return out, counts, position


class Slots:
    """A padded block of objects (partons or leptons) built column by column."""

    def __init__(self, n: int):
        self.n = n
        self.cols: list[dict] = []

    def add(self, present=True, **fields):
        n = self.n
        col = {k: np.broadcast_to(np.asarray(v), (n,)) for k, v in fields.items()}
        col["present"] = np.broadcast_to(np.asarray(present, dtype=bool), (n,))
        self.cols.append(col)

    def stack(self, keys):
        if not self.cols:
            return {k: np.zeros((self.n, 0)) for k in keys + ("present",)}
        return {k: np.stack([c[k] for c in self.cols], axis=1) for k in keys + ("present",)}


class Truth:
    """Generator-level content of a chunk: GenPart record, partons, charged leptons, neutrinos."""

    PARTON_KEYS = ("pt", "eta", "phi", "pdg")
    LEPTON_KEYS = ("pt", "eta", "phi", "pdg", "gencol", "from_tau")

    def __init__(self, n: int):
        self.n = n
        self.gen = GenRecord(n)
        self.partons = Slots(n)
        self.leptons = Slots(n)
        self.nu_px = np.zeros(n)
        self.nu_py = np.zeros(n)

    def add_parton(self, pt, eta, phi, pdg, present=True):
        self.partons.add(present=present & (pt > 5.0), pt=pt, eta=eta, phi=phi, pdg=pdg)

    def subset(self, rows) -> "Truth":
        """The events ``rows`` only (all slots kept)."""
        out = Truth(len(rows))
        out.gen.cols = [{k: (v[rows] if isinstance(v, np.ndarray) else v) for k, v in c.items()} for c in self.gen.cols]
        out.partons.cols = [{k: v[rows] for k, v in c.items()} for c in self.partons.cols]
        out.leptons.cols = [{k: v[rows] for k, v in c.items()} for c in self.leptons.cols]
        out.nu_px, out.nu_py = self.nu_px[rows], self.nu_py[rows]
        return out

    def add_neutrino(self, p4, present=True):
        self.nu_px += np.where(present, p4[1], 0.0)
        self.nu_py += np.where(present, p4[2], 0.0)


# ---------------------------------------------------------------------------------------------
# Building blocks shared by the processes


#: Channels giving an electron (directly or through a tau).
ELECTRONIC = np.array([True, False, True, False, False, False])


def usable_channels(with_muons: bool) -> np.ndarray:
    """Channels whose lepton can pass the analysis selection (muons only if they can be tight)."""
    return LEPTONIC if with_muons else ELECTRONIC


def sample_w_channels(rng, n_events: int, n_w: int, require_lepton: bool, with_muons: bool = True):
    """W decay channels (indices into W_CHANNELS) of ``n_w`` W bosons per event.

    With ``require_lepton`` the events are drawn conditioned on at least one W giving an electron
    (or a muon, ``with_muons``), directly or through a tau; :func:`lepton_class_probability` is the
    probability of that condition.
    """
    usable = usable_channels(with_muons)
    ch = rng.choice(len(W_BR), size=(n_events, n_w), p=W_BR)
    if require_lepton:
        bad = ~usable[ch].any(axis=1)
        while bad.any():
            ch[bad] = rng.choice(len(W_BR), size=(int(bad.sum()), n_w), p=W_BR)
            bad = ~usable[ch].any(axis=1)
    return ch


def lepton_class_probability(n_w: int, with_muons: bool = True) -> float:
    """P(at least one of n_w W bosons gives a usable electron or muon)."""
    return 1.0 - (1.0 - W_BR[usable_channels(with_muons)].sum()) ** n_w


def fsr_split(rng, pt, eta, phi, prob, soft=(0.88, 1.0), hard=(0.5, 0.85)):
    """Final-state radiation off a parton: returns (z, has_hard, gluon pt, eta, phi).

    Every parton loses a little momentum (z in ``soft``); with probability ``prob`` a hard
    emission (z in ``hard``) makes a separate gluon at an angle 0.25-1.0 from the parton.
    """
    n = len(pt)
    has_hard = rng.uniform(size=n) < prob
    z = np.where(has_hard, rng.uniform(*hard, n), rng.uniform(*soft, n))
    dr = rng.uniform(0.25, 1.0, n)
    alpha = rng.uniform(0.0, kin.TWO_PI, n)
    return z, has_hard, (1.0 - z) * pt, eta + dr * np.cos(alpha), kin.wrap_phi(phi + dr * np.sin(alpha))


def add_w_decay(truth: Truth, rng, w_p4, m_w, channel, charge: int, w_first_mother: int, model):
    """W first copy, last copy and decay products (quarks with FSR, leptons, taus)."""
    n = truth.n
    gen = truth.gen
    w_pdg = 24 * charge
    c_first = gen.add_p4(w_pdg, w_first_mother, HARD_OUT, 22, w_p4, m_w)
    c_last = gen.add_p4(w_pdg, c_first, LAST_COPY, 52, w_p4, m_w)

    lep_flavour = np.select([channel == 0, channel == 1], [11, 13], 15)
    is_had = channel == 5
    is_tau = (channel >= 2) & (channel <= 4)
    up = np.where(rng.uniform(size=n) < 0.5, 2, 4)  # u or c
    down = np.where(up == 2, 1, 3)                   # d or s (CKM-diagonal)
    # W+ -> l+ nu / u dbar ; W- -> l- nubar / dbar... charge conjugates
    pdg1 = np.where(is_had, up * charge, -lep_flavour * charge)
    pdg2 = np.where(is_had, -down * charge, (lep_flavour + 1) * charge)
    m1 = np.where(is_tau, M_TAU, 0.0)
    d1, d2 = kin.two_body_decay(rng, w_p4, m_w, m1, 0.0)

    pt1, eta1, phi1 = kin.pt_eta_phi(d1[1], d1[2], d1[3])
    pt2, eta2, phi2 = kin.pt_eta_phi(d2[1], d2[2], d2[3])
    # quarks radiate; first copies are also last copies unless a hard emission happened
    z1, h1, gpt1, geta1, gphi1 = fsr_split(rng, pt1, eta1, phi1, model.fsr_prob)
    z2, h2, gpt2, geta2, gphi2 = fsr_split(rng, pt2, eta2, phi2, model.fsr_prob)
    h1 &= is_had
    h2 &= is_had
    last = flags("isLastCopy")
    c1 = gen.add(pdg1, c_last, HARD_OUT | np.where(h1, 0, last), 23, pt1, eta1, phi1, np.where(is_tau, M_TAU, 0.0))
    c2 = gen.add(pdg2, c_last, HARD_OUT | np.where(h2, 0, last), 23, pt2, eta2, phi2, 0.0)
    gen.add(pdg1, c1, LAST_AFTER_FSR, 71, z1 * pt1, eta1, phi1, 0.0, present=h1)
    gen.add(pdg2, c2, LAST_AFTER_FSR, 71, z2 * pt2, eta2, phi2, 0.0, present=h2)
    qpt1 = np.where(h1, z1 * pt1, pt1)
    qpt2 = np.where(h2, z2 * pt2, pt2)
    truth.add_parton(qpt1, eta1, phi1, pdg1, present=is_had)
    truth.add_parton(qpt2, eta2, phi2, pdg2, present=is_had)
    truth.add_parton(gpt1, geta1, gphi1, 21, present=h1)
    truth.add_parton(gpt2, geta2, gphi2, 21, present=h2)

    # direct electrons and muons
    direct = channel <= 1
    truth.leptons.add(present=direct, pt=pt1, eta=eta1, phi=phi1, pdg=pdg1, gencol=c1, from_tau=False)
    truth.add_neutrino(d2, present=~is_had)

    # taus: leptonic decays give a softer collinear e/mu, hadronic ones a tau jet
    tau_lep = (channel == 2) | (channel == 3)
    tau_had = channel == 4
    x_lep = rng.beta(1.6, 2.8, n)
    x_had = rng.beta(2.5, 1.6, n)
    lpdg = np.where(channel == 2, 11, 13) * (-charge)
    c_tl = gen.add(lpdg, c1, TAU_PRODUCT, 1, x_lep * pt1, eta1, phi1, 0.0, present=tau_lep)
    gen.add(16 * (-charge), c1, TAU_PRODUCT, 1, (1 - np.where(tau_lep, x_lep, x_had)) * pt1, eta1, phi1,
            0.0, present=is_tau)
    truth.leptons.add(present=tau_lep, pt=x_lep * pt1, eta=eta1, phi=phi1, pdg=lpdg, gencol=c_tl, from_tau=True)
    truth.add_parton(x_had * pt1, eta1, phi1, 15 * (-charge), present=tau_had)
    nu_frac = np.where(tau_lep, 1 - x_lep, np.where(tau_had, 1 - x_had, 0.0))
    truth.nu_px += nu_frac * d1[1]
    truth.nu_py += nu_frac * d1[2]


def add_top_decay(truth: Truth, rng, top_p4, m_top, channel, charge: int, top_first_mother: int,
                  model, first_status=22):
    """Top first and last copies, t -> W b, the b quark with FSR, and the W decay."""
    gen = truth.gen
    n = truth.n
    c_first = gen.add_p4(6 * charge, top_first_mother, HARD_OUT, first_status, top_p4, m_top)
    c_last = gen.add_p4(6 * charge, c_first, LAST_COPY, 62, top_p4, m_top)
    m_w = np.minimum(kin.breit_wigner(rng, n, M_W, W_W), m_top - M_B - 1.0)
    w_p4, b_p4 = kin.two_body_decay(rng, top_p4, m_top, m_w, M_B)
    b_pdg = 5 * charge
    bpt, beta_, bphi = kin.pt_eta_phi(b_p4[1], b_p4[2], b_p4[3])
    c_b = gen.add(b_pdg, c_last, HARD_OUT, 23, bpt, beta_, bphi, 0.0)
    z, hard, gpt, geta, gphi = fsr_split(rng, bpt, beta_, bphi, model.fsr_prob)
    gen.add(b_pdg, c_b, LAST_AFTER_FSR, 71, z * bpt, beta_, bphi, 0.0)
    truth.add_parton(z * bpt, beta_, bphi, b_pdg)
    truth.add_parton(gpt, geta, gphi, 21, present=hard)
    add_w_decay(truth, rng, w_p4, m_w, channel, charge, c_last, model)


def add_beams(truth: Truth, rng, kind: str):
    """The two incoming partons (pt 0, |eta| huge, as NanoAOD stores them)."""
    n = truth.n
    if kind == "gg_or_qq":
        qq = rng.uniform(size=n) < 0.12
        q = rng.choice([1, 2, 3], n)
        p1 = np.where(qq, q, 21)
        p2 = np.where(qq, -q, 21)
    elif kind == "qqbar":
        q = rng.choice([2, 4], n)
        p1, p2 = q, -(q - 1)
    elif kind == "qg":
        p1, p2 = rng.choice([1, 2, -1, -2], n), np.full(n, 21)
    elif kind == "gb":
        p1, p2 = np.full(n, 21), np.full(n, 5)
    else:
        raise ValueError(kind)
    c0 = truth.gen.add(p1, -1, HARD_IN, 21, 0.0, BEAM_ETA, 0.0, 0.0)
    c1 = truth.gen.add(p2, -1, HARD_IN, 21, 0.0, -BEAM_ETA, 0.0, 0.0)
    return c0, c1


def system_p4(rng, n, recoil_px, recoil_py, m, y_width, kt=5.0):
    """Four-momentum of the hard system recoiling against the radiation."""
    px = -recoil_px + rng.normal(0.0, kt, n)
    py = -recoil_py + rng.normal(0.0, kt, n)
    return kin.p4_from_mt(px, py, rng.normal(0.0, y_width, n), m)
