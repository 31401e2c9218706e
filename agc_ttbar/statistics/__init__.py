"""Statistical model and inference of the AGC ttbar analysis (spec section 5).

- :mod:`.model`: the cabinetry configuration generated from the workflow configuration, the list of
  required histogram keys, and the rebinning template router (spec section 3.3).
- :mod:`.workspace`: templates -> pyhf workspace (main and ML validation model).
- :mod:`.fit`: MLE fit with one retry, Asimov fit, ranking, goodness of fit, JSON result.
- :mod:`.plots`: mplhep figures (data/MC, pulls, correlations, ranking, templates).
- :mod:`.summary`: the HTML summary of the report; :mod:`.results`: the closing result line.

This package imports nothing on purpose: the Snakefile imports :mod:`.results`, which must load in
a Snakemake environment without numpy (REANA's Snakemake 7.32.4).
"""


def __getattr__(name):
    """``agc_ttbar.statistics.MissingHistogramError`` without importing numpy at package import."""
    if name == "MissingHistogramError":
        from .model import MissingHistogramError

        return MissingHistogramError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
