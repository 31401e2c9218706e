"""Detector response: partons -> jets, leptons -> electrons/muons, with 2015 NanoAOD conventions.

Everything works on padded (events x slots) numpy blocks. The distributions follow what the real
2015 AGC NanoAOD file shows: jets above 15 GeV, CSVv2 = -10 for jets without tracks (|eta| > 2.4
nearly always), qgl = -1 below 20 GeV, isolated leptons clustered into their own jet with a jetId
that fails the tight requirement (2, sometimes 0), Electron_mass slightly negative, Muon_tightId
governed by a knob (always False in the real 2015 files).
"""

from __future__ import annotations

import numpy as np

from . import kinematics as kin
from ..selection import electron_mask, muon_mask
from .processes import DetectorModel

JET_PT_MIN = 15.0
MUON_MASS = 0.10566


def _flavour_class(pdg):
    a = np.abs(pdg)
    return np.select([a == 5, a == 4, a == 21, a == 15], [3, 2, 1, 4], 0)  # 0 light, 1 g, 2 c, 3 b, 4 tau


def merge_partons(pt, eta, phi, pdg, present, radius=0.4):
    """Jet clustering of partons: a softer parton within ``radius`` of a harder one is added to it
    (four-vector sum), the hardest close parton winning, as anti-kt does. Chains are followed to the
    final jet. Heavy flavour wins the label (ghost-hadron rule). Returns pt, eta, phi, mass, pdg and
    the alive mask, ordered by decreasing parton pt.
    """
    order = np.argsort(-np.where(present, pt, -1.0), axis=1)
    take = lambda a: np.take_along_axis(a, order, axis=1)  # noqa: E731
    pt, eta, phi, pdg, present = take(pt), take(eta), take(phi), take(pdg), take(present)
    n, k = pt.shape
    E, px, py, pz = kin.p4(pt, eta, phi, 0.0)
    # target[j]: hardest harder parton within the radius (j itself if none)
    dr = kin.delta_r(eta[:, :, None], phi[:, :, None], eta[:, None, :], phi[:, None, :])
    close = (dr < radius) & present[:, :, None] & present[:, None, :] & np.tri(k, k, -1, dtype=bool).T[None]
    # close[e, i, j]: i harder than j (i < j) and within the radius
    has = close.any(axis=1)
    target = np.where(has, np.argmax(close, axis=1), np.arange(k)[None, :])
    for _ in range(k):  # follow chains j -> i -> h
        nxt = np.take_along_axis(target, target, axis=1)
        if np.array_equal(nxt, target):
            break
        target = nxt
    flat = (target + (np.arange(n) * k)[:, None]).ravel()
    live = present.ravel()
    out = []
    for comp in (E, px, py, pz):
        acc = np.zeros(n * k)
        np.add.at(acc, flat[live], comp.ravel()[live])
        out.append(acc.reshape(n, k))
    alive = present & (target == np.arange(k)[None, :])
    # flavour: the heaviest flavour class among the merged partons
    fcls = _flavour_class(pdg)
    best = np.full(n * k, -1)
    np.maximum.at(best, flat[live], fcls.ravel()[live])
    best = best.reshape(n, k)
    heavy_in = (best >= 2) & (best > fcls)
    # a merged heavy parton hands its pdgId to the jet: take the first merged parton of that class
    cand = (fcls[:, None, :] == best[:, :, None]) & (target[:, None, :] == np.arange(k)[None, :, None])
    src = np.argmax(cand, axis=2)
    pdg = np.where(heavy_in, np.take_along_axis(pdg, src, axis=1), pdg)
    m = kin.mass(*out)
    pt2, eta2, phi2 = kin.pt_eta_phi(out[1], out[2], out[3])
    return pt2, eta2, phi2, m, pdg, alive


def _choice(rng, shape, values, probs):
    return np.asarray(values)[np.searchsorted(np.cumsum(probs), rng.uniform(size=shape) * np.sum(probs))]


def btag_csvv2(rng, fcls, eta, det: DetectorModel, default_prob_central=0.065):
    """CSVv2 discriminant per jet flavour class; -10 for jets without tracks."""
    shape = fcls.shape
    hi_share = np.select([fcls == 3, fcls == 2], [det.btag_high["b"], det.btag_high["c"]], det.btag_high["light"])
    high = rng.uniform(size=shape) < hi_share
    # high component: b-like, concentrated near 1; low component: light-like, peaked near 0.1
    hi_val = np.where(fcls == 3, 1.0 - rng.gamma(1.2, 0.045, shape), 0.5 + 0.5 * rng.beta(1.6, 1.3, shape))
    lo_val = 0.9 * rng.beta(1.4, 5.5, shape)
    val = np.clip(np.where(high, hi_val, lo_val), 0.0, 0.999)
    no_tracks = rng.uniform(size=shape) < np.where(np.abs(eta) < 2.4, default_prob_central, 0.97)
    return np.where(no_tracks, -10.0, val)


def quark_gluon_likelihood(rng, fcls, pt, det: DetectorModel):
    shape = fcls.shape
    q = rng.beta(2.6, 1.0, shape)
    g = np.clip(rng.beta(0.9, 2.2, shape) + det.qgl_gluon_shift, 0.0, 1.0)
    b = rng.beta(1.4, 1.3, shape)
    val = np.select([fcls == 1, fcls == 3], [g, b], q)
    undefined = (pt < 20.0) | (rng.uniform(size=shape) < 0.04)
    return np.where(undefined, -1.0, val)


def jet_response(rng, fcls, pt, det: DetectorModel):
    mu = np.select([fcls == 1, fcls == 2, fcls == 3, fcls == 4],
                   [det.response["gluon"], det.response["c"], det.response["b"], det.response["tau"]],
                   det.response["light"])
    ptc = np.maximum(pt, 1.0)
    s = det.resolution_scale
    sigma = s * np.sqrt((4.0 / ptc) ** 2 + 0.8 ** 2 / ptc + 0.05 ** 2)
    r = mu * (1.0 + sigma * rng.standard_normal(pt.shape))
    semilep = (fcls == 3) & (rng.uniform(size=pt.shape) < det.b_semileptonic)
    r = r * np.where(semilep, rng.uniform(0.75, 0.95, pt.shape), 1.0)
    return np.maximum(r, 0.3)


def hadronic_jet_id(rng, eta):
    ae = np.abs(eta)
    u = rng.uniform(size=eta.shape)
    central = np.where(u < 0.965, 6, np.where(u < 0.98, 2, 0))
    outer = np.where(u < 0.80, 6, 0)
    forward = np.where(u < 0.85, 6, 0)
    return np.select([ae < 2.7, ae < 3.0], [central, outer], forward).astype(np.int32)


def compact(block: dict, present, key="pt"):
    """Move present slots to the front (decreasing ``key``) and drop all-empty trailing columns."""
    order = np.argsort(-np.where(present, block[key], -np.inf), axis=1, kind="stable")
    width = int(present.sum(axis=1).max()) if present.size else 0
    out = {k: np.take_along_axis(np.asarray(v), order, axis=1)[:, :width] for k, v in block.items()}
    return out, np.take_along_axis(present, order, axis=1)[:, :width]


def reconstruct_leptons(rng, truth, muon_tight_fraction: float):
    """Prompt electrons and muons (from W or tau decays) of a chunk: efficiency and momentum smearing.

    Returns the padded block and a per-event mask of events with a lepton inside the analysis
    acceptance (pt > 30 GeV, |eta| < 2.1; muons only if they can be tight): a necessary condition
    for the generator-level filter, evaluated before the costly part of the simulation.
    """
    L = truth.leptons.stack(truth.LEPTON_KEYS)
    L, present = compact(L, L["present"])
    shp = present.shape
    lpdg = L["pdg"].astype(int)
    is_e, is_mu = np.abs(lpdg) == 11, np.abs(lpdg) == 13
    ae = np.abs(L["eta"].astype(float))
    eff = np.where(is_e, np.select([ae < 1.442, ae < 1.566, ae < 2.5], [0.93, 0.5, 0.87], 0.0),
                   np.where(ae < 2.4, 0.97, 0.0))
    valid = present & (rng.uniform(size=shp) < eff)
    pt = L["pt"] * (1.0 + np.where(is_e, 0.02, 0.015) * rng.standard_normal(shp))
    eta = L["eta"] + rng.normal(0.0, 0.002, shp)
    phi = kin.wrap_phi(L["phi"] + rng.normal(0.0, 0.002, shp))
    leps = {"pt": pt, "eta": eta, "phi": phi, "pdg": lpdg, "gencol": L["gencol"].astype(int),
            "is_e": valid & is_e & (pt > 5.0), "is_mu": valid & is_mu & (pt > 3.0)}
    usable = leps["is_e"] | (leps["is_mu"] & (muon_tight_fraction > 0))
    return leps, np.any(usable & (pt > 30.0) & (np.abs(eta) < 2.1), axis=1)


def identify_leptons(rng, truth, leps, muon_tight_fraction: float):
    """ID, impact parameter and isolation of the prompt leptons (in place); returns ``leps``.

    Isolation and ID depend on the distance to the nearest parton with pt > 10 GeV.
    """
    P = truth.partons.stack(truth.PARTON_KEYS)
    P, ppresent = compact(P, P["present"] & (P["pt"] > 10.0))
    eta, phi = leps["eta"], leps["phi"]
    shp = eta.shape
    is_e = np.abs(leps["pdg"]) == 11
    near = np.any(ppresent[:, None, :] & (kin.delta_r(eta[:, :, None], phi[:, :, None], P["eta"][:, None, :],
                                                       P["phi"][:, None, :]) < 0.4), axis=2)
    iso_probs, near_probs = [0.06, 0.03, 0.05, 0.08, 0.78], [0.7, 0.1, 0.1, 0.05, 0.05]
    cb = np.where(near, _choice(rng, shp, range(5), near_probs), _choice(rng, shp, range(5), iso_probs))
    gap = (np.abs(eta) > 1.442) & (np.abs(eta) < 1.566)
    leps["cutBased"] = np.where(gap & (rng.uniform(size=shp) < 0.6), 0, cb)
    leps["sip3d"] = np.abs(rng.standard_normal(shp)) * np.where(is_e, 1.9, 0.75)
    leps["iso"] = np.where(near, np.where(is_e, 0.15, 0.2) + rng.exponential(0.35, shp),
                           rng.exponential(1.0, shp) * np.where(is_e, 0.02, 0.025))
    leps["tightId"] = rng.uniform(size=shp) < muon_tight_fraction
    return leps


def lepton_candidates(leps) -> np.ndarray:
    """Events with at least one prompt lepton passing the analysis lepton selection."""
    e = leps["is_e"] & electron_mask(leps["pt"], leps["eta"], leps["cutBased"], leps["sip3d"])
    m = leps["is_mu"] & muon_mask(leps["pt"], leps["eta"], leps["tightId"], leps["sip3d"], leps["iso"])
    return np.any(e | m, axis=1)


def simulate(rng, truth, leps, det: DetectorModel, muon_tight_fraction: float, pileup_jets: float = 1.2):
    """Jets, non-prompt leptons, lepton jets and MET of a chunk whose prompt leptons are ``leps``."""
    n = truth.n
    P = truth.partons.stack(truth.PARTON_KEYS)
    P, ppresent = compact(P, P["present"])

    # --- partons -> jets
    pt, eta, phi, m, pdg, alive = merge_partons(P["pt"].astype(float), P["eta"].astype(float),
                                                P["phi"].astype(float), P["pdg"].astype(int), ppresent)
    fcls = _flavour_class(pdg)
    jpt = pt * jet_response(rng, fcls, pt, det)
    jeta = eta + rng.normal(0.0, 0.02, eta.shape)
    jphi = kin.wrap_phi(phi + rng.normal(0.0, 0.02, phi.shape))
    frac = rng.gamma(6.0, 0.018, pt.shape) + np.where(fcls == 3, 0.02, 0.0)
    jmass = np.sqrt(m * m + (jpt * frac) ** 2)
    had_flav = np.select([fcls == 3, fcls == 2], [5, 4], 0)
    part_flav = np.where(fcls == 4, 0, pdg)
    jid = hadronic_jet_id(rng, jeta)
    btag = btag_csvv2(rng, fcls, jeta, det)
    qgl = quark_gluon_likelihood(rng, fcls, jpt, det)
    jvalid = alive & (jpt > JET_PT_MIN) & (np.abs(jeta) < 4.7)

    # --- pile-up / underlying-event jets
    kpu = 4
    npu = np.minimum(rng.poisson(pileup_jets, n), kpu)
    pu_valid = np.arange(kpu)[None, :] < npu[:, None]
    pu_pt = JET_PT_MIN + rng.exponential(5.0, (n, kpu))
    pu_eta = rng.uniform(-4.7, 4.7, (n, kpu))
    pu_phi = rng.uniform(-np.pi, np.pi, (n, kpu))
    pu_cls = np.zeros((n, kpu), dtype=int)
    pu_id = np.where(rng.uniform(size=(n, kpu)) < 0.7, 6, 0).astype(np.int32)

    # --- non-prompt leptons from heavy-flavour jets (inside their jet); at most one per jet
    np_prob = np.select([fcls == 3, fcls == 2], [0.11, 0.08], 0.01)
    has_np = jvalid & (rng.uniform(size=fcls.shape) < np_prob)
    np_blk = {"pt": jpt * rng.uniform(0.03, 0.3, fcls.shape), "eta": jeta + rng.normal(0.0, 0.05, fcls.shape),
              "phi": kin.wrap_phi(jphi + rng.normal(0.0, 0.05, fcls.shape)),
              "is_e": rng.uniform(size=fcls.shape) < 0.5,
              "jetcol": np.broadcast_to(np.arange(fcls.shape[1]), fcls.shape)}
    np_blk, np_present = compact(np_blk, has_np)
    nshp = np_present.shape
    np_e = np_present & np_blk["is_e"] & (np_blk["pt"] > 5.0) & (np.abs(np_blk["eta"]) < 2.5)
    np_m = np_present & ~np_blk["is_e"] & (np_blk["pt"] > 3.0) & (np.abs(np_blk["eta"]) < 2.4)
    shp = leps["pt"].shape
    nl = shp[1]

    def cat(a, b):
        return np.concatenate([a, b], axis=1)

    ele = {"pt": cat(leps["pt"], np_blk["pt"]), "eta": cat(leps["eta"], np_blk["eta"]),
           "phi": cat(leps["phi"], np_blk["phi"]),
           "pdgId": cat(leps["pdg"], np.where(rng.uniform(size=nshp) < 0.5, 11, -11)),
           "cutBased": cat(leps["cutBased"], _choice(rng, nshp, range(5), [0.8, 0.08, 0.05, 0.03, 0.04])),
           "sip3d": cat(leps["sip3d"], 1.5 + rng.exponential(6.0, nshp)),
           "pfRelIso03_all": cat(leps["iso"], 0.1 + rng.exponential(0.5, nshp)),
           "gencol": cat(leps["gencol"], np.full(nshp, -1)),
           "valid": cat(leps["is_e"], np_e), "prompt": cat(leps["is_e"], np.zeros(nshp, bool))}
    mu = {"pt": ele["pt"], "eta": ele["eta"], "phi": ele["phi"],
          "pdgId": cat(leps["pdg"], np.where(rng.uniform(size=nshp) < 0.5, 13, -13)),
          "tightId": cat(leps["tightId"], rng.uniform(size=nshp) < 0.7 * muon_tight_fraction),
          "sip3d": cat(leps["sip3d"], 1.5 + rng.exponential(5.0, nshp)),
          "pfRelIso04_all": cat(leps["iso"], 0.15 + rng.exponential(0.6, nshp)),
          "gencol": ele["gencol"],
          "valid": cat(leps["is_mu"], np_m), "prompt": cat(leps["is_mu"], np.zeros(nshp, bool))}

    # --- lepton jets: an isolated lepton is clustered into its own jet, which fails tight ID
    def lepton_jets(valid, id_values, id_probs):
        lj_pt = leps["pt"] * (1.03 + rng.exponential(0.08, shp))
        return {"pt": lj_pt, "eta": leps["eta"] + rng.normal(0, 0.01, shp),
                "phi": kin.wrap_phi(leps["phi"] + rng.normal(0, 0.01, shp)),
                "mass": lj_pt * rng.gamma(3.0, 0.02, shp),
                "jetId": _choice(rng, shp, id_values, id_probs).astype(np.int32),
                "btag": np.where(rng.uniform(size=shp) < 0.6, -10.0, 0.9 * rng.beta(1.4, 6.0, shp)),
                "qgl": np.where(rng.uniform(size=shp) < 0.7, -1.0, rng.beta(2.6, 1.0, shp)),
                "valid": valid & (lj_pt > JET_PT_MIN)}

    ej = lepton_jets(leps["is_e"], [2, 0, 6], [0.83, 0.15, 0.02])
    mj = lepton_jets(leps["is_mu"], [2, 6, 0], [0.85, 0.08, 0.07])

    # --- all jets: hadronic | pile-up | electron jets | muon jets
    z = np.zeros(shp, dtype=int)
    jets = {
        "pt": np.concatenate([jpt, pu_pt, ej["pt"], mj["pt"]], axis=1),
        "eta": np.concatenate([jeta, pu_eta, ej["eta"], mj["eta"]], axis=1),
        "phi": np.concatenate([jphi, pu_phi, ej["phi"], mj["phi"]], axis=1),
        "mass": np.concatenate([jmass, pu_pt * rng.gamma(6.0, 0.02, (n, kpu)), ej["mass"], mj["mass"]], axis=1),
        "btagCSVV2": np.concatenate([btag, btag_csvv2(rng, pu_cls, pu_eta, det, 0.3), ej["btag"], mj["btag"]], axis=1),
        "qgl": np.concatenate([qgl, quark_gluon_likelihood(rng, np.ones((n, kpu), int), pu_pt, det),
                               ej["qgl"], mj["qgl"]], axis=1),
        "jetId": np.concatenate([jid, pu_id, ej["jetId"], mj["jetId"]], axis=1),
        "hadronFlavour": np.concatenate([had_flav, pu_cls, z, z], axis=1),
        "partonFlavour": np.concatenate([part_flav, pu_cls, z, z], axis=1),
        "valid": np.concatenate([jvalid, pu_valid, ej["valid"], mj["valid"]], axis=1),
    }
    nh = jpt.shape[1]
    own = np.broadcast_to(np.arange(nl), shp)
    ele["jetcol"] = cat(np.where(leps["is_e"], nh + kpu + own, -1), np_blk["jetcol"])
    mu["jetcol"] = cat(np.where(leps["is_mu"], nh + kpu + nl + own, -1), np_blk["jetcol"])

    met_x = truth.nu_px + rng.normal(0.0, 14.0, n)
    met_y = truth.nu_py + rng.normal(0.0, 14.0, n)
    return {"Jet": jets, "Electron": ele, "Muon": mu, "MET_pt": np.hypot(met_x, met_y),
            "MET_phi": np.arctan2(met_y, met_x)}
