"""Physics validation of the mock dataset: region yields, observables, truth matching, plots.

Everything here reads the written ROOT files (as the analysis does) and uses the selection of
:mod:`agc_ttbar.selection`. ``python -m agc_ttbar.mock.validation --inputs results/mock/nanoaod_inputs.json
--out docs/mock_validation`` regenerates the committed validation plots and numbers.
"""

from __future__ import annotations

import argparse
import json
import os

import awkward as ak
import numpy as np

from .. import selection as S
from ..samples import LUMI_PB, XSEC_PB

#: Weighted yields of the AGC reference for N_FILES_MAX_PER_SAMPLE = 1 (spec section 7.2), (4j1b, 4j2b).
REFERENCE_YIELDS_N1 = {
    "ttbar__nominal": (23450.73, 52869.00), "ttbar__ME_var": (30259.65, 62323.66),
    "ttbar__PS_var": (26004.42, 50486.58), "ttbar__scaleup": (23584.02, 54889.91),
    "ttbar__scaledown": (22679.96, 48118.38), "single_top_s_chan__nominal": (8.17, 18.98),
    "single_top_t_chan__nominal": (533.63, 995.92), "single_top_tW__nominal": (1784.23, 2367.89),
    "wjets__nominal": (6073.10, 2010.41),
}

def reference_fractions(reference: str = "histos_1_file_per_process.json") -> dict[str, tuple[float, float]]:
    """Fraction of a sample's events in (4j1b, 4j2b) in the AGC reference: the sum of the region's
    histogram (flow bins included) / (xsec x lumi), since every event weighs xsec x lumi / nevts.
    With N = 1 that is the unweighted selection efficiency of each sample's first real file
    (statistical precision 3-8%, W+jets 4j2b 14%: 145 / 48 W+jets events)."""
    from ..shipped_data import path
    from ..samples import SAMPLES, sample_key

    with open(path("agc", "reference", reference)) as f:
        ref = json.load(f)
    out = {}
    for process, variation in SAMPLES:
        name = process if variation == "nominal" else f"{process}_{variation}"
        sums = [float(np.sum(ref[f"{region}_{name}"]["contents"])) for region in ("4j1b", "4j2b")]
        norm = XSEC_PB[process] * LUMI_PB
        out[sample_key(process, variation)] = (sums[0] / norm, sums[1] / norm)
    return out


READ = S.BRANCHES + S.ML_BRANCHES + ("nJet", "GenPart_pt", "GenPart_eta", "GenPart_phi", "GenPart_pdgId",
                                     "GenPart_genPartIdxMother", "GenPart_statusFlags")


def read(path: str, branches=READ, tree: str = "Events") -> ak.Array:
    """The branches of ``path`` as one record array (TTree or RNTuple, through :mod:`agc_ttbar.io`)."""
    from ..io import open_tree, read_chunk

    with open_tree(path, tree) as t:
        return ak.zip(read_chunk(t, path, list(dict.fromkeys(branches)), 0, t.num_entries), depth_limit=1)


def regions(ev: ak.Array):
    """Region masks and the selected-jet mask (nominal jet pt), with the analysis selection."""
    ele, mu = S.lepton_masks(ev)
    n_lep = np.asarray(ak.sum(ele, axis=1) + ak.sum(mu, axis=1))
    jets = S.jet_mask(ev.Jet_pt, ev.Jet_eta, ev.Jet_jetId)
    n_jet = np.asarray(ak.sum(jets, axis=1))
    n_b = np.asarray(ak.sum(jets & S.btag_mask(ev.Jet_btagCSVV2), axis=1))
    return S.region_masks(n_lep, n_jet, n_b), jets


def _p4(pt, eta, phi, m):
    return pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta), np.sqrt((pt * np.cosh(eta)) ** 2 + m * m)


def trijet_mass(ev: ak.Array, region: np.ndarray, jets) -> np.ndarray:
    """m_bjj (spec 3.1): mass of the highest-pt trijet with at least one b-tag, per region event."""
    sel = ev[region]
    j = jets[region]
    tri = ak.combinations(ak.zip({"pt": sel.Jet_pt[j], "eta": sel.Jet_eta[j], "phi": sel.Jet_phi[j],
                                  "m": sel.Jet_mass[j], "b": sel.Jet_btagCSVV2[j]}), 3, fields=["a", "b", "c"])
    px, py, pz, e = 0.0, 0.0, 0.0, 0.0
    for k in ("a", "b", "c"):
        x, y, z, en = _p4(tri[k].pt, tri[k].eta, tri[k].phi, tri[k].m)
        px, py, pz, e = px + x, py + y, pz + z, e + en
    pt = np.hypot(px, py)
    mass = np.sqrt(np.maximum(e * e - px * px - py * py - pz * pz, 0))
    ok = np.maximum(tri.a.b, np.maximum(tri.b.b, tri.c.b)) > S.B_TAG_THRESHOLD
    best = ak.argmax(ak.where(ok, pt, -1.0), axis=1, keepdims=True)
    return np.asarray(ak.to_numpy(ak.drop_none(ak.flatten(mass[best]))), dtype=float)


def ht(ev: ak.Array, region: np.ndarray, jets) -> np.ndarray:
    return ak.to_numpy(ak.sum(ev.Jet_pt[jets][region], axis=1))


def peak_position(values: np.ndarray, lo=100.0, hi=260.0, width=5.0) -> float:
    """Mode of a distribution: maximum of a 5 GeV histogram smoothed over 25 GeV."""
    h, e = np.histogram(values, bins=np.arange(lo, hi + width, width))
    smooth = np.convolve(h, np.ones(5) / 5.0, mode="same")
    i = int(np.argmax(smooth))
    return 0.5 * (e[i] + e[i + 1])


def distinct_parent(pdg: np.ndarray, mother: np.ndarray) -> np.ndarray:
    """Global index of the first ancestor with a different pdgId (coffea's distinctParent), -1 if none."""
    dp = mother.copy()
    while True:
        same = (dp >= 0) & (pdg[np.maximum(dp, 0)] == pdg)
        if not same.any():
            return dp
        dp = np.where(same, mother[np.maximum(dp, 0)], dp)


def truth_labels(ev: ak.Array, region: np.ndarray, jets, max_jets: int = 4):
    """Jet labels of the AGC training filter (spec 6.4) for the leading ``max_jets`` selected jets.

    Candidates: quarks (1 <= |pdgId| <= 6) with isLastCopy whose distinct parent is a top or a W.
    Each jet takes the nearest candidate within dR < 0.4; its label is |pdgId| of the candidate's
    distinct parent (100 if unmatched), or -6 when that parent's distinct grandchildren contain both
    a charged lepton and a neutrino. Returns the (n_events, max_jets) labels; events whose labels
    sum to 48 are kept for training.
    """
    sel = ev[region]
    counts = np.asarray(ak.num(sel.GenPart_pdgId))
    offsets = np.concatenate([[0], np.cumsum(counts)])
    pdg = ak.to_numpy(ak.flatten(sel.GenPart_pdgId)).astype(np.int64)
    local_mother = ak.to_numpy(ak.flatten(sel.GenPart_genPartIdxMother)).astype(np.int64)
    ev_of = np.repeat(np.arange(len(counts)), counts)
    mother = np.where(local_mother >= 0, local_mother + offsets[ev_of], -1)
    flags = ak.to_numpy(ak.flatten(sel.GenPart_statusFlags))
    dp = distinct_parent(pdg, mother)
    apdg = np.abs(pdg)
    # distinct grandchildren: particles g with distinctParent(distinctParent(g)) == P
    gdp = np.where(dp >= 0, dp[np.maximum(dp, 0)], -1)
    charged = np.isin(apdg, (11, 13, 15, 17))
    neutrino = np.isin(apdg, (12, 14, 16, 18))
    has_l = np.zeros(len(pdg), bool)
    has_n = np.zeros(len(pdg), bool)
    np.logical_or.at(has_l, gdp[(gdp >= 0) & charged], True)
    np.logical_or.at(has_n, gdp[(gdp >= 0) & neutrino], True)
    cand = (dp >= 0) & np.isin(np.abs(pdg[np.maximum(dp, 0)]), (6, 24)) & (apdg >= 1) & (apdg <= 6) \
        & ((flags & (1 << 13)) != 0)
    label_of = np.where(cand, np.abs(pdg[np.maximum(dp, 0)]), 100)
    label_of = np.where(cand & has_l[np.maximum(dp, 0)] & has_n[np.maximum(dp, 0)], -6, label_of)

    cands = ak.unflatten(np.nonzero(cand)[0], np.bincount(ev_of[cand], minlength=len(counts)))
    geta = ak.to_numpy(ak.flatten(sel.GenPart_eta))
    gphi = ak.to_numpy(ak.flatten(sel.GenPart_phi))
    k = max(int(ak.max(ak.num(cands))) if len(cands) else 0, 1)
    cpad = ak.to_numpy(ak.fill_none(ak.pad_none(cands, k, clip=True), -1))
    j = jets[region]
    jeta = ak.to_numpy(ak.fill_none(ak.pad_none(sel.Jet_eta[j], max_jets, clip=True), 0.0))
    jphi = ak.to_numpy(ak.fill_none(ak.pad_none(sel.Jet_phi[j], max_jets, clip=True), 0.0))
    ce, cp = np.where(cpad >= 0, geta[np.maximum(cpad, 0)], 1e9), np.where(cpad >= 0, gphi[np.maximum(cpad, 0)], 0)
    dphi = (jphi[:, :, None] - cp[:, None, :] + np.pi) % (2 * np.pi) - np.pi
    dr = np.hypot(jeta[:, :, None] - ce[:, None, :], dphi)
    best = np.argmin(dr, axis=2)
    best_dr = np.take_along_axis(dr, best[:, :, None], axis=2)[:, :, 0]
    matched = np.take_along_axis(cpad, best, axis=1)
    return np.where((best_dr < 0.4) & (matched >= 0), label_of[np.maximum(matched, 0)], 100)


def sample_summary(path_list, process: str, nevts_total: int, ev_cache=None):
    """Weighted region yields, raw counts, observables and truth-match count of one sample."""
    w = XSEC_PB[process] * LUMI_PB / nevts_total
    out = {"raw": [0, 0], "mbjj": [], "ht": [], "truth_kept": 0}
    for path in path_list:
        ev = read(path)
        reg, jets = regions(ev)
        out["raw"][0] += int(reg["4j1b"].sum())
        out["raw"][1] += int(reg["4j2b"].sum())
        out["ht"].append(ht(ev, reg["4j1b"], jets))
        out["mbjj"].append(trijet_mass(ev, reg["4j2b"], jets))
        if process == "ttbar":
            out["truth_kept"] += int(np.sum(truth_labels(ev, reg["4j2b"], jets).sum(axis=1) == 48))
    out["weight"] = w
    out["yields"] = [out["raw"][0] * w, out["raw"][1] * w]
    out["mbjj"] = np.concatenate(out["mbjj"])
    out["ht"] = np.concatenate(out["ht"])
    return out


def summarise(inputs_path: str, root: str = ".") -> dict:
    with open(inputs_path) as f:
        inputs = json.load(f)
    res = {}
    for process, variations in inputs.items():
        for variation, s in variations.items():
            paths = [os.path.join(root, f["path"]) for f in s["files"]]
            res[f"{process}__{variation}"] = sample_summary(paths, process, s["nevts_total"])
    return res


def make_plots(res: dict, out_dir: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(out_dir, exist_ok=True)
    edges = np.linspace(50, 550, 26)
    order = [("wjets__nominal", "W+jets", "tab:green"), ("single_top_s_chan__nominal", "single top s-chan", "tab:olive"),
             ("single_top_t_chan__nominal", "single top t-chan", "tab:cyan"),
             ("single_top_tW__nominal", "tW", "tab:purple"), ("ttbar__nominal", "ttbar", "tab:red")]
    files = []
    for region, key, xlabel in (("4j1b", "ht", "$H_T$ [GeV]"), ("4j2b", "mbjj", "$m_{bjj}$ [GeV]")):
        fig, ax = plt.subplots(figsize=(6, 4.5))
        hs, labels, colors = [], [], []
        for sample, label, color in order:
            if sample in res:
                v = np.clip(res[sample][key], edges[0], edges[-1] - 1e-6)
                hs.append(np.histogram(v, edges, weights=np.full(len(v), res[sample]["weight"]))[0])
                labels.append(label)
                colors.append(color)
        ax.hist([edges[:-1]] * len(hs), edges, weights=hs, stacked=True, label=labels, color=colors)
        ax.set_xlabel(xlabel + " (flow in the edge bins)")
        ax.set_ylabel("events / 20 GeV (3378 pb$^{-1}$)")
        ax.set_title(f"mock dataset, {region}")
        ax.legend(frameon=False)
        path = os.path.join(out_dir, f"{region}_{key}_stack.png")
        fig.tight_layout()
        fig.savefig(path, dpi=90)
        plt.close(fig)
        files.append(path)
    # ttbar variations in 4j2b
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for sample, color in (("ttbar__nominal", "k"), ("ttbar__scaleup", "tab:blue"), ("ttbar__scaledown", "tab:cyan"),
                          ("ttbar__ME_var", "tab:red"), ("ttbar__PS_var", "tab:orange")):
        if sample in res:
            v = np.clip(res[sample]["mbjj"], edges[0], edges[-1] - 1e-6)
            ax.hist(v, edges, weights=np.full(len(v), res[sample]["weight"]), histtype="step", color=color,
                    label=sample.split("__")[1])
    ax.set_xlabel("$m_{bjj}$ [GeV]")
    ax.set_ylabel("events / 20 GeV")
    ax.set_title("mock ttbar, 4j2b: variations")
    ax.legend(frameon=False)
    path = os.path.join(out_dir, "4j2b_mbjj_ttbar_variations.png")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    files.append(path)
    # yields vs the AGC reference
    fig, ax = plt.subplots(figsize=(7, 4.5))
    names = [k for k in REFERENCE_YIELDS_N1 if k in res]
    x = np.arange(len(names))
    for i, region in enumerate(("4j1b", "4j2b")):
        ratio = [res[k]["yields"][i] / REFERENCE_YIELDS_N1[k][i] for k in names]
        ax.bar(x + (i - 0.5) * 0.38, ratio, 0.38, label=region)
    ax.axhline(1.0, color="k", lw=0.8)
    for lim in (0.5, 2.0):
        ax.axhline(lim, color="gray", ls="--", lw=0.8)
    ax.set_yscale("log")
    ax.set_xticks(x, [k.replace("__nominal", "").replace("single_top_", "st_") for k in names], rotation=35, ha="right")
    ax.set_ylabel("mock / AGC reference (N=1) yield")
    ax.legend(frameon=False)
    path = os.path.join(out_dir, "yields_vs_reference.png")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    files.append(path)
    return files


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--inputs", required=True, help="mock nanoaod_inputs.json")
    p.add_argument("--out", required=True, help="folder for the PNG plots and summary.json")
    args = p.parse_args(argv)
    res = summarise(args.inputs)
    files = make_plots(res, args.out)
    table = {}
    for k, r in res.items():
        ref = REFERENCE_YIELDS_N1[k]
        table[k] = {"raw_4j1b": r["raw"][0], "raw_4j2b": r["raw"][1], "yield_4j1b": round(r["yields"][0], 2),
                    "yield_4j2b": round(r["yields"][1], 2), "ratio_to_reference_4j1b": round(r["yields"][0] / ref[0], 3),
                    "ratio_to_reference_4j2b": round(r["yields"][1] / ref[1], 3)}
        if k.startswith("ttbar"):
            table[k]["mbjj_peak_GeV"] = peak_position(r["mbjj"])
            table[k]["truth_matched_4j2b"] = r["truth_kept"]
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(table, f, indent=1)
    for k, row in table.items():
        print(k, row)
    print("plots:", ", ".join(files))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
