"""Truth labels from GenPart (spec §6.4): candidates, distinct parents, matching, leptonic top."""

import math

import awkward as ak
import numpy as np
import uproot

from agc_ttbar.ml import truth

LAST = 1 << 13
# 0,1 gluons; 2 t, 3 tbar; 4 t, 5 tbar (last); 6 b, 7 W+, 8 bbar, 9 W- (first copies);
# 10 b, 11 bbar, 12 W+, 13 W- (last copies); 14 u, 15 dbar (from W+); 16 e-, 17 nubar (from W-)
PDG = [21, 21, 6, -6, 6, -6, 5, 24, -5, -24, 5, -5, 24, -24, 2, -1, 11, -12]
MOTHER = [-1, -1, 0, 0, 2, 3, 4, 4, 5, 5, 6, 8, 7, 9, 12, 12, 13, 13]
FLAGS = [0, 0, 0, 0, LAST, LAST, 0, 0, 0, 0, LAST, LAST, LAST, LAST, LAST, LAST, LAST, LAST]
ETA = [0, 0, 0.1, -0.2, 0.1, -0.2, 2.0, 0, -2.0, 0, 0.5, -0.5, 0, 0, 1.0, -1.0, 0.3, 0.2]
PHI = [0, 0, 0.0, 1.0, 0.0, 1.0, 2.0, 0, -2.0, 0, 0.5, 3.1, 0, 0, -1.0, 1.5, 2.5, -2.5]


def genparts(events):
    """Jagged GenPart columns of several copies of the event, with per-event modifications."""
    cols = {"pdgId": [], "genPartIdxMother": [], "statusFlags": [], "eta": [], "phi": []}
    for mod in events:
        ev = {"pdgId": list(PDG), "genPartIdxMother": list(MOTHER), "statusFlags": list(FLAGS),
              "eta": list(ETA), "phi": list(PHI)}
        mod(ev)
        for k in cols:
            cols[k].append(ev[k])
    return {k: ak.Array(v) for k, v in cols.items()}


def test_distinct_parent_walks_through_copies():
    pdg = np.array(PDG)
    parent = truth.distinct_parent(pdg, np.array(MOTHER))
    assert parent[10] == 4          # b last copy -> b first copy -> t (last copy)
    assert parent[12] == 4          # W+ last -> W+ first -> t
    assert parent[14] == 12 and parent[16] == 13
    assert parent[4] == 0 and parent[0] == -1


def test_labels_of_a_semileptonic_event():
    g = genparts([lambda ev: None])
    # jets at u, dbar, b (hadronic top), bbar (leptonic top, phi 3.1 vs jet at -3.1: wrapped),
    # one far from everything, one padding slot
    jet_eta = np.array([[1.0 + 0.1, -1.0, 0.5, -0.5, -2.4, np.nan]])
    jet_phi = np.array([[-1.0, 1.5 + 0.2, 0.5, -3.1, 0.0, np.nan]])
    labels = truth.jet_labels(jet_eta, jet_phi, np.array([5]), g)
    assert labels.tolist() == [[24, 24, 6, -6, 100, 0]]
    assert truth.fully_matched(labels).tolist() == [True]


def test_leptonic_tag_follows_the_w_decay_and_last_copy_is_required():
    def hadronic_both(ev):          # W- -> s cbar instead of e nu: no leptonic top
        ev["pdgId"][16], ev["pdgId"][17] = 3, -4

    def b_not_last_copy(ev):        # b last copy loses its flag: only first copies (not candidates)
        ev["statusFlags"][10] = 0

    def nu_only(ev):                # tau-neutrino and a photon: a neutrino alone is not enough
        ev["pdgId"][16] = 22
        ev["pdgId"][17] = 16

    g = genparts([lambda ev: None, hadronic_both, b_not_last_copy, nu_only])
    eta = np.tile([[1.0, -1.0, 0.5, -0.5]], (4, 1))
    phi = np.tile([[-1.0, 1.5, 0.5, 3.1]], (4, 1))
    labels = truth.jet_labels(eta, phi, np.full(4, 4), g)
    assert labels.tolist() == [[24, 24, 6, -6], [24, 24, 6, 6], [24, 24, 100, -6], [24, 24, 6, 6]]
    assert truth.fully_matched(labels).tolist() == [True, False, False, False]


def test_matching_radius():
    g = genparts([lambda ev: None])
    eta = np.array([[0.5 + 0.39, 0.5 + 0.41]])     # both near the hadronic b (eta 0.5, phi 0.5)
    phi = np.array([[0.5, 0.5]])
    assert truth.jet_labels(eta, phi, np.array([2]), g).tolist() == [[6, 100]]
    assert math.isclose(truth.MATCH_DR, 0.4)


def test_real_file_genpart_structure(real_nanoaod):
    """The real 2015 file: W copy chains are followed; it has no tops, so nothing is a training event."""
    with uproot.open(real_nanoaod) as f:
        a = f["Events"].arrays([f"GenPart_{c}" for c in ("eta", "phi", "pdgId", "genPartIdxMother", "statusFlags")],
                               entry_stop=1)
    g = {k.removeprefix("GenPart_"): a[k] for k in a.fields}
    c = truth.parton_candidates(g)
    # event 0: W chain 2 -> 3 -> 4 -> 5 -> 6 (last copy), then mu+ (7) and nu_mu (8)
    assert c["pdgId"][2:9].tolist() == [24, 24, 24, 24, 24, -13, 14]
    assert c["distinct_parent"][7] == 6 and c["distinct_parent"][6] == 0
    assert not c["candidate"].any()
