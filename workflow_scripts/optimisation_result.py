"""Differentiable analysis: optimised.json + the hard re-check fit + the default fit -> result.json
(parameters, soft and hard objective before and after, the path) and two plots (objective along the
path, hard-cut b-tag threshold scan)."""

import argparse
import json
import os
import sys

from agc_ttbar.atomic import atomic_path, atomic_write_text


def asimov_minos(fit_path: str) -> dict:
    """Asimov ttbar_norm of a fit_results.json: MINOS (down, up, half width) and HESSE (piecewise)."""
    with open(fit_path) as f:
        doc = json.load(f)
    poi = (doc.get("asimov") or {}).get("poi")
    if not poi or "minos" not in poi:
        raise ValueError(f"{fit_path} has no Asimov MINOS interval of ttbar_norm "
                         "(config statistics.asimov and statistics.minos_poi must be true)")
    down, up = poi["minos"]["down"], poi["minos"]["up"]
    return {"minos_down": down, "minos_up": up, "minos_half_width": 0.5 * (up - down),
            "hesse_piecewise": poi["uncertainty"]}


def plots(doc: dict, outdir: str, formats: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(outdir, exist_ok=True)
    path = doc["path"]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(6.4, 6.0), sharex=True)
    ax1.plot([p["step"] for p in path], [p["objective"] for p in path], "o-", ms=3)
    ax1.set_ylabel("soft expected $\\sigma$(ttbar_norm)")
    ax1.set_title("gradient optimisation (optax Adam), smooth interpolation code4/code4p")
    ax2.plot([p["step"] for p in path], [p["btag_threshold"] for p in path], "o-", ms=3, color="C1")
    ax2.set_ylabel("b-tag threshold")
    ax2.set_xlabel("step")
    ax3 = ax2.twinx()
    ax3.plot([p["step"] for p in path], [p["edges"][0] for p in path], "s-", ms=3, color="C2")
    ax3.set_ylabel("lower fit edge [GeV]", color="C2")
    fig.tight_layout()
    for fmt in formats:
        with atomic_path(os.path.join(outdir, f"objective_path.{fmt}")) as tmp:
            fig.savefig(tmp, format=fmt, metadata={"Date": None} if fmt == "pdf" else None)
    plt.close(fig)

    scan = doc["btag_scan"]["points"]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    scan = [p for p in scan if p["objective"] is not None]
    ax.plot([p["btag_threshold"] for p in scan], [p["objective"] for p in scan], "o-",
            label="hard cuts, Hessian (code4/code4p), optimised edges")
    d, o = doc["default"], doc["optimised"]
    ax.axvline(o["btag_threshold"], color="C1", ls="--", label=f"optimum {o['btag_threshold']:.3f}")
    ax.axvline(d["btag_threshold"], color="grey", ls=":", label=f"default {d['btag_threshold']:.3f}")
    hard = doc["hard_recheck"]
    ax.plot([d["btag_threshold"]], [hard["default"]["minos_half_width"]], "k^",
            label="ordinary rules, default: Asimov MINOS")
    ax.plot([o["btag_threshold"]], [hard["optimised"]["minos_half_width"]], "rv",
            label="ordinary rules, optimised: Asimov MINOS")
    ax.set_xlabel("b-tag threshold (Jet_btagCSVV2)")
    ax.set_ylabel("expected $\\sigma$(ttbar_norm)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    for fmt in formats:
        with atomic_path(os.path.join(outdir, f"btag_scan.{fmt}")) as tmp:
            fig.savefig(tmp, format=fmt, metadata={"Date": None} if fmt == "pdf" else None)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--soft", required=True, help="optimised.json of the optimise rule")
    p.add_argument("--hard-fit", required=True, help="fit_results.json of the hard re-check run")
    p.add_argument("--default-fit", required=True, help="fit_results.json of the ordinary (default) run")
    p.add_argument("--output", required=True, help="result.json to write")
    p.add_argument("--plots", required=True, help="folder of the two plots")
    p.add_argument("--formats", nargs="+", default=["png"])
    args = p.parse_args(argv)
    with open(args.soft) as f:
        doc = json.load(f)
    try:
        doc["hard_recheck"] = {"default": asimov_minos(args.default_fit),
                               "optimised": asimov_minos(args.hard_fit),
                               "note": "Asimov fits of the ordinary rules (piecewise interpolation, as the "
                                       "workflow's fit); default = the main run, optimised = the re-check run"}
    except ValueError as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 1
    h = doc["hard_recheck"]
    doc["summary"] = {
        "btag_threshold": [doc["default"]["btag_threshold"], doc["optimised"]["btag_threshold"]],
        "edges": [doc["default"]["edges"], doc["optimised"]["edges_on_grid"]],
        "soft_objective": [doc["default"]["soft_objective"], doc["optimised"]["soft_objective"]],
        "hard_objective": [doc["default"]["hard_objective"], doc["optimised"]["hard_objective"]],
        "minos_half_width": [h["default"]["minos_half_width"], h["optimised"]["minos_half_width"]],
        "order": ["default", "optimised"],
    }
    atomic_write_text(args.output, json.dumps(doc, indent=2, sort_keys=True) + "\n")
    plots(doc, args.plots, args.formats)
    s = doc["summary"]
    print(f"b-tag threshold {s['btag_threshold'][0]} -> {s['btag_threshold'][1]}; edges {s['edges'][1]}")
    print(f"soft objective {s['soft_objective'][0]:.5f} -> {s['soft_objective'][1]:.5f}; hard (Hessian, "
          f"code4) {s['hard_objective'][0]:.5f} -> {s['hard_objective'][1]:.5f}; Asimov MINOS half width "
          f"{s['minos_half_width'][0]:.5f} -> {s['minos_half_width'][1]:.5f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
