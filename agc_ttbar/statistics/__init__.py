"""Statistical model and inference of the AGC ttbar analysis (spec section 5).

- :mod:`.model`: the cabinetry configuration generated from the workflow configuration, the list of
  required histogram keys, and the rebinning template router (spec section 3.3).
- :mod:`.workspace`: templates -> pyhf workspace (main and ML validation model).
- :mod:`.fit`: MLE fit with one retry, Asimov fit, ranking, goodness of fit, JSON result.
- :mod:`.plots`: mplhep figures (data/MC, pulls, correlations, ranking, templates).
"""

from .model import MissingHistogramError  # noqa: F401
