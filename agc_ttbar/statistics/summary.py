"""HTML summary of the measurement for the Snakemake report: ttbar_norm, fit status, yields."""

from __future__ import annotations

import html
from typing import Any


def _num(x: float | None, fmt: str = ".3f") -> str:
    return "n/a" if x is None else format(x, fmt)


def summary_html(doc: dict[str, Any], yields: dict[str, Any]) -> str:
    """A self-contained HTML page: result line, expected result, fit quality, yield tables."""
    poi = doc["poi"]
    def with_minos(p):
        text = f"{_num(p['value'])} &plusmn; {_num(p['uncertainty'])} (Hesse)"
        if p.get("minos"):
            text += f"; MINOS {p['minos']['down']:+.3f} / {p['minos']['up']:+.3f}"
        return text

    rows = [("Measured " + poi["name"], with_minos(poi))]
    if doc.get("asimov"):
        rows.append(("Expected (Asimov, pre-fit)", with_minos(doc["asimov"]["poi"])))
    rows.append(("Minimisation", ("converged" if doc["converged"] else "NOT converged")
                 + f", Minuit strategy {doc['strategy']}, {doc['retries']} retr{'y' if doc['retries'] == 1 else 'ies'}"))
    rows.append(("Minimum NLL", _num(doc["min_nll"], ".4f")))
    if doc.get("goodness_of_fit"):
        g = doc["goodness_of_fit"]
        rows.append(("Goodness of fit (saturated model)",
                     f"p = {_num(g['p_value'], '.4f')} (2&Delta;NLL = {_num(g['twice_delta_nll'], '.2f')}, "
                     f"ndof = {g['ndof']})"))
    model = doc.get("model", {})
    if model:
        chans = ", ".join(f"{html.escape(c)} ({n} bins)" for c, n in model["channels"].items())
        rows.append(("Model", f"{model['n_parameters']} parameters; channels {chans}"))
    if doc.get("ranking"):
        r = doc["ranking"]
        score = [max(abs(u or 0.0), abs(d or 0.0)) for u, d in zip(r["postfit_up"], r["postfit_down"])]
        top = sorted(range(len(score)), key=lambda i: -score[i])[:5]
        rows.append(("Largest post-fit impacts",
                     "; ".join(f"{html.escape(r['labels'][i])}: {score[i]:.3f}" for i in top)))
    prov = doc.get("provenance", {})
    if prov:
        rows.append(("Software", html.escape(", ".join(f"{k} {v}" for k, v in prov.get("packages", {}).items()))))
        rows.append(("Config hash / git commit",
                     f"{html.escape(str(prov.get('config_hash')))[:16]} / {html.escape(str(prov.get('git_commit')))}"))

    out = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'><title>AGC ttbar fit summary</title>",
           "<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse;margin:0.5em 0 1.5em}"
           "td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}td:first-child,th:first-child"
           "{text-align:left}th{background:#eee}</style></head><body>",
           "<h2>AGC CMS Open Data ttbar: fit summary</h2>",
           f"<p><b>fit result for {html.escape(poi['name'])}: {_num(poi['value'])} &plusmn; "
           f"{_num(poi['uncertainty'])}</b></p>", "<table>"]
    out += [f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in rows]
    out.append("</table>")
    for channel, block in yields["channels"].items():
        out.append(f"<h3>Yields in {html.escape(channel)}</h3><table>")
        out.append("<tr><th>sample</th><th>pre-fit</th><th>post-fit</th></tr>")
        for sample, y in block["samples"].items():
            name = "<b>total MC</b>" if sample == "total" else html.escape(sample)
            out.append(f"<tr><td>{name}</td><td>{y['prefit']:.1f} &plusmn; {y['prefit_unc']:.1f}</td>"
                       f"<td>{y['postfit']:.1f} &plusmn; {y['postfit_unc']:.1f}</td></tr>")
        out.append(f"<tr><td><b>pseudodata</b></td><td colspan='2'>{block['data']:.1f}</td></tr></table>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
