"""ML plots: permutation score distributions, ROC curves, the assignment accuracy table (models vs
trijet vs random) and the prefit distributions of the 20 features from histograms_ml.root."""

import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from agc_ttbar.atomic import atomic_path, atomic_write_text  # noqa: E402
from agc_ttbar.ml.features import FEATURES  # noqa: E402
from agc_ttbar.ml.metrics import roc_curve  # noqa: E402
from agc_ttbar.samples import PROCESSES  # noqa: E402

LABELS = {"bdt": "BDT (xgboost)", "torch": "MLP (torch)", "published": "AGC BDT (published)",
          "trijet": "trijet method", "random": "random choice"}


def _kv(items):
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"expected KIND=PATH, got {item!r}")
        out[key] = value
    return out


class Saver:
    def __init__(self, outdir, formats):
        self.outdir, self.formats, self.files = outdir, formats, []

    def save(self, fig, name):
        for fmt in self.formats:
            path = os.path.join(self.outdir, f"{name}.{fmt}")
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format=fmt, dpi=110, bbox_inches="tight")
            self.files.append(os.path.basename(path))
        plt.close(fig)


def accuracy_rows(metrics: dict) -> tuple[list[str], list[list[str]], dict]:
    """Rows of the accuracy table (one per model kind, then trijet and random)."""
    first = next(iter(metrics.values()))
    top_key = next(k for k in first if k.startswith("top") and k[3:].isdigit())
    header = ["method", "AUC", "all 4 correct (leading 4)", "per-jet (leading 4)",
              "top_had triplet (leading 4)", f"all 4 correct ({top_key})", f"top_had triplet ({top_key})"]
    table = {}
    for kind, m in metrics.items():
        table[kind] = {"auc": m["leading4"]["model"]["auc"], "leading4": m["leading4"]["model"],
                       top_key: m[top_key]["model"], "n_validation_events": m["n_validation_events"]}
    for base in ("trijet", "random"):
        table[base] = {"auc": m["leading4"][base].get("auc", float("nan")), "leading4": m["leading4"][base],
                       top_key: m[top_key][base], "n_validation_events": m["n_validation_events"]}
    rows = []
    for name, t in table.items():
        auc = "-" if name == "trijet" else f"{t['auc']:.4f}"
        rows.append([LABELS.get(name, name), auc, f"{t['leading4']['all_correct']:.3f}",
                     f"{t['leading4']['per_jet']:.3f}", f"{t['leading4']['top_had_triplet']:.3f}",
                     f"{t[top_key]['all_correct']:.3f}", f"{t[top_key]['top_had_triplet']:.3f}"])
    return header, rows, table


def plot_scores(saver, kind, val):
    scores, target = val["scores"].ravel(), val["target"].ravel()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    bins = np.linspace(min(0.0, scores.min()), max(1.0, scores.max()), 41)
    ax.hist(scores[~target], bins=bins, histtype="step", density=True, label="wrong / partly correct")
    ax.hist(scores[target], bins=bins, histtype="step", density=True, label="all jets correct")
    ax.set_yscale("log")
    ax.set_xlabel(f"{LABELS.get(kind, kind)} score per permutation (leading 4 jets)")
    ax.set_ylabel("normalised")
    ax.legend()
    saver.save(fig, f"scores_{kind}")


def plot_roc(saver, validations, metrics):
    fig, ax = plt.subplots(figsize=(5, 5))
    for kind, val in validations.items():
        fpr, tpr = roc_curve(val["scores"], val["target"])
        auc = metrics[kind]["leading4"]["model"]["auc"]
        ax.plot(fpr, tpr, label=f"{LABELS.get(kind, kind)} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], ls=":", color="gray", label="random")
    ax.set_xlabel("false positive rate (permutations)")
    ax.set_ylabel("true positive rate")
    ax.legend(loc="lower right")
    saver.save(fig, "roc")


def plot_table(saver, header, rows):
    fig, ax = plt.subplots(figsize=(12, 0.5 + 0.4 * len(rows)))
    ax.axis("off")
    tab = ax.table(cellText=rows, colLabels=header, loc="center", cellLoc="center")
    tab.auto_set_font_size(False)
    tab.set_fontsize(8)
    tab.scale(1, 1.4)
    saver.save(fig, "accuracy_table")


def plot_features(saver, path):
    import uproot

    with uproot.open(path) as f:
        keys = {k.split(";")[0] for k in f.keys()}
        fig, axes = plt.subplots(5, 4, figsize=(16, 18))
        for ax, (name, low, high) in zip(axes.ravel(), FEATURES):
            bottom = None
            edges = None
            for proc in PROCESSES:
                key = f"{name}_{proc}"
                if key not in keys:
                    continue
                values, edges = f[key].to_numpy()
                ax.stairs(values + (0 if bottom is None else bottom), edges,
                          baseline=0 if bottom is None else bottom, fill=True, label=proc, alpha=0.8)
                bottom = values + (0 if bottom is None else bottom)
            if f"{name}_pseudodata" in keys:
                values, edges = f[f"{name}_pseudodata"].to_numpy()
                centers = 0.5 * (edges[1:] + edges[:-1])
                ax.errorbar(centers, values, yerr=np.sqrt(np.maximum(values, 0)), fmt="ko", ms=2,
                            label="pseudodata")
            ax.set_xlim(low, high)
            ax.set_xlabel(name)
            ax.set_ylabel("events")
        axes.ravel()[0].legend(fontsize=7)
        fig.suptitle("ML features, 4j2b, prefit (best permutation per event)")
        fig.tight_layout(rect=(0, 0, 1, 0.985))
    saver.save(fig, "features_prefit")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--metrics", nargs="+", required=True, help="KIND=metrics.json")
    p.add_argument("--validation", nargs="+", required=True, help="KIND=validation.npz")
    p.add_argument("--histograms-ml", default=None, help="histograms_ml.root (feature plots)")
    p.add_argument("--output", required=True, help="index.json listing the plots")
    p.add_argument("--formats", nargs="+", default=["png"])
    args = p.parse_args(argv)

    metrics = {}
    for kind, path in _kv(args.metrics).items():
        with open(path) as f:
            metrics[kind] = json.load(f)
    validations = {}
    for kind, path in _kv(args.validation).items():
        with np.load(path) as z:
            validations[kind] = {k: z[k] for k in z.files}
    outdir = os.path.dirname(os.path.abspath(args.output))
    os.makedirs(outdir, exist_ok=True)
    saver = Saver(outdir, args.formats)

    for kind, val in validations.items():
        plot_scores(saver, kind, val)
    plot_roc(saver, validations, metrics)
    header, rows, table = accuracy_rows(metrics)
    plot_table(saver, header, rows)
    md = "| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n"
    md += "".join("| " + " | ".join(r) + " |\n" for r in rows)
    atomic_write_text(os.path.join(outdir, "accuracy_table.md"), md)
    atomic_write_text(os.path.join(outdir, "accuracy_table.json"), json.dumps(table, indent=1, sort_keys=True) + "\n")
    saver.files += ["accuracy_table.md", "accuracy_table.json"]
    if args.histograms_ml:
        plot_features(saver, args.histograms_ml)
    index = {"plots": saver.files, "models": sorted(metrics), "accuracy": table}
    atomic_write_text(args.output, json.dumps(index, indent=1, sort_keys=True) + "\n")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
