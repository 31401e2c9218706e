"""Toy semileptonic ttbar events in NanoAOD layout, with a GenPart record like real files.

Used by the ML tests: tops with physical two-body decays (t -> b W, W -> q q' or e nu), GenPart
copies (first copy -> last copy chains, isLastCopy in statusFlags bit 13, mother indices), jets
near the partons plus extra jets, one tight electron. Every event passes 4j2b most of the time, and
the four leading jets are the four partons in most events, so the truth labelling and a trained
model have something to find.
"""

from __future__ import annotations

import awkward as ak
import numpy as np
import uproot

LAST = np.int32(1 << 13)
M_TOP, M_W = 172.5, 80.4


def _boost(p4, beta):
    """Boost (E, px, py, pz) arrays (n, 4) by velocity vectors beta (n, 3)."""
    b2 = np.sum(beta**2, axis=1)
    gamma = 1 / np.sqrt(1 - b2)
    bp = np.sum(beta * p4[:, 1:], axis=1)
    g2 = np.where(b2 > 0, (gamma - 1) / np.where(b2 > 0, b2, 1), 0)
    e = gamma * (p4[:, 0] + bp)
    p = p4[:, 1:] + (g2 * bp + gamma * p4[:, 0])[:, None] * beta
    return np.column_stack([e, p])


def _two_body(rng, parent, m1, m2):
    """Isotropic two-body decay of parent (n, 4) with mass M into masses m1, m2 (lab frame)."""
    n = len(parent)
    m = np.sqrt(np.maximum(parent[:, 0] ** 2 - np.sum(parent[:, 1:] ** 2, axis=1), 0))
    p = np.sqrt(np.maximum((m**2 - (m1 + m2) ** 2) * (m**2 - (m1 - m2) ** 2), 0)) / (2 * m)
    cos = rng.uniform(-1, 1, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    sin = np.sqrt(1 - cos**2)
    d = np.column_stack([sin * np.cos(phi), sin * np.sin(phi), cos]) * p[:, None]
    a = np.column_stack([np.sqrt(p**2 + m1**2), d])
    b = np.column_stack([np.sqrt(p**2 + m2**2), -d])
    beta = parent[:, 1:] / parent[:, :1]
    return _boost(a, beta), _boost(b, beta)


def _ptetaphim(p4):
    pt = np.hypot(p4[:, 1], p4[:, 2])
    eta = np.arcsinh(p4[:, 3] / np.maximum(pt, 1e-9))
    phi = np.arctan2(p4[:, 2], p4[:, 1])
    m = np.sqrt(np.maximum(p4[:, 0] ** 2 - np.sum(p4[:, 1:] ** 2, axis=1), 0))
    return pt, eta, phi, m


def _top(rng, n):
    pt = rng.exponential(90, n) + 5
    eta = rng.normal(0, 1.3, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    return np.column_stack([np.sqrt(px**2 + py**2 + pz**2 + M_TOP**2), px, py, pz])


def make_ttbar(n: int, seed: int = 3, first_event: int = 1000) -> dict:
    """Column dict of ``n`` toy events: event, Jet_*, Electron_*, Muon_*, GenPart_* (jagged)."""
    rng = np.random.default_rng(seed)
    t, tbar = _top(rng, n), _top(rng, n)
    b, wp = _two_body(rng, t, 4.8, M_W)
    bbar, wm = _two_body(rng, tbar, 4.8, M_W)
    q1, q2 = _two_body(rng, wp, 0.0, 0.0)          # W+ -> u dbar (hadronic)
    lep, nu = _two_body(rng, wm, 0.0, 0.0)         # W- -> e- nubar (leptonic)
    # GenPart: 0,1 gluons; 2 t, 3 tbar (first copies); 4 t, 5 tbar (last); 6 b, 7 W+, 8 bbar, 9 W-
    # (first copies); 10 b, 11 bbar, 12 W+, 13 W- (last); 14 u, 15 dbar, 16 e-, 17 nubar
    pdg = np.array([21, 21, 6, -6, 6, -6, 5, 24, -5, -24, 5, -5, 24, -24, 2, -1, 11, -12], np.int32)
    mother = np.array([-1, -1, 0, 0, 2, 3, 4, 4, 5, 5, 6, 8, 7, 9, 12, 12, 13, 13], np.int32)
    flags = np.array([0, 0, 0, 0, LAST, LAST, 0, 0, 0, 0, LAST, LAST, LAST, LAST, LAST, LAST, LAST, LAST], np.int32)
    vecs = [t, t, t, tbar, t, tbar, b, wp, bbar, wm, b, bbar, wp, wm, q1, q2, lep, nu]
    kin = [_ptetaphim(v) for v in vecs]
    gp = {name: np.column_stack([k[i] for k in kin]).astype(np.float32)
          for i, name in enumerate(("pt", "eta", "phi", "mass"))}
    gp["pt"][:, :2] = 0.0
    ngp = np.full(n, len(pdg))

    # jets: the four quarks smeared, plus 0-3 extra jets; stored in decreasing pt
    parton_vecs = [q1, q2, b, bbar]
    is_b = [False, False, True, True]
    rows = []
    for v, bq in zip(parton_vecs, is_b):
        pt, eta, phi, _ = _ptetaphim(v)
        rows.append((pt * rng.normal(1.0, 0.1, n), eta + rng.normal(0, 0.03, n), phi + rng.normal(0, 0.03, n),
                     np.where(bq, rng.random(n) < 0.8, rng.random(n) < 0.05)))
    n_extra = rng.integers(0, 4, n)
    extra = [(rng.exponential(25, n) + 25, rng.normal(0, 1.5, n), rng.uniform(-np.pi, np.pi, n),
              rng.random(n) < 0.05) for _ in range(3)]
    cols = rows + extra
    pt = np.column_stack([c[0] for c in cols])
    eta = np.column_stack([c[1] for c in cols])
    phi = np.column_stack([(c[2] + np.pi) % (2 * np.pi) - np.pi for c in cols])
    tag = np.column_stack([c[3] for c in cols])
    present = np.column_stack([np.ones((n, 4), bool), np.arange(3)[None, :] < n_extra[:, None]])
    pt = np.where(present, pt, -1.0)
    order = np.argsort(-pt, axis=1, kind="stable")
    take = lambda a: np.take_along_axis(a, order, axis=1)  # noqa: E731
    pt, eta, phi, tag, present = take(pt), take(eta), take(phi), take(tag), take(present)
    nj = present.sum(axis=1)
    flat = lambda a: a[present]  # noqa: E731
    btag = np.where(tag, rng.uniform(0.55, 1.0, pt.shape), rng.uniform(0.0, 0.45, pt.shape))
    jets = {"pt": flat(pt), "eta": flat(eta), "phi": flat(phi),
            "mass": flat(pt * rng.uniform(0.05, 0.15, pt.shape)), "btagCSVV2": flat(btag),
            "jetId": np.full(int(nj.sum()), 6, np.int32), "qgl": flat(rng.uniform(0, 1, pt.shape))}
    lpt, leta, lphi, _ = _ptetaphim(lep)
    lpt = np.maximum(lpt, 31.0)
    leta = np.clip(leta, -2.0, 2.0)
    ev = {
        "run": np.ones(n, np.uint32), "luminosityBlock": np.ones(n, np.uint32),
        "event": (first_event + np.arange(n)).astype(np.uint64),
        "Jet": ({k: v.astype(np.int32 if k == "jetId" else np.float32) for k, v in jets.items()}, nj),
        "Electron": ({"pt": lpt, "eta": leta, "phi": lphi, "mass": np.full(n, 0.000511),
                      "cutBased": np.full(n, 4, np.int32), "sip3d": np.full(n, 1.0)}, np.ones(n, np.int64)),
        "Muon": ({"pt": np.empty(0), "eta": np.empty(0), "phi": np.empty(0), "mass": np.empty(0),
                  "tightId": np.empty(0, bool), "sip3d": np.empty(0), "pfRelIso04_all": np.empty(0)},
                 np.zeros(n, np.int64)),
        "GenPart": ({"pt": gp["pt"].ravel(), "eta": gp["eta"].ravel(), "phi": gp["phi"].ravel(),
                     "mass": gp["mass"].ravel(), "pdgId": np.tile(pdg, n),
                     "genPartIdxMother": np.tile(mother, n), "statusFlags": np.tile(flags, n)}, ngp),
    }
    return ev


def write(path, ev: dict) -> None:
    """Write the toy events as a NanoAOD-style TTree ``Events`` (counters nJet, nGenPart, ...)."""
    data = {k: ev[k] for k in ("run", "luminosityBlock", "event")}
    types = {k: str(ev[k].dtype) for k in data}
    for coll in ("Jet", "Electron", "Muon", "GenPart"):
        fields, counts = ev[coll]
        fields = {f: np.asarray(v) for f, v in fields.items()}
        data[coll] = ak.zip({f: ak.unflatten(v, counts) for f, v in fields.items()})
        types[coll] = "var * {" + ", ".join(f"{f}: {v.dtype}" for f, v in fields.items()) + "}"
    with uproot.recreate(path) as f:
        tree = f.mktree("Events", types, field_name=lambda outer, inner: f"{outer}_{inner}",
                        counter_name=lambda counted: f"n{counted}")
        tree.extend(data)
