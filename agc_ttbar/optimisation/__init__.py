"""Differentiable analysis (issue 17, config ``optimisation.enabled``): tune the b-tag threshold and
the fit binning by the gradient of the expected ``ttbar_norm`` uncertainty, then check the result
with the ordinary hard-cut pipeline.

- :mod:`.columns`: compact per-event columns written by the per-file jobs.
- :mod:`.soft_model`: soft (sigmoid) b-tag, region membership, trijet choice and histograms in JAX.
- :mod:`.objective`: the expected (Asimov) uncertainty on ttbar_norm from the inverse Hessian of the
  NLL of the full model, with smooth interpolation (pyhf code4 / code4p), written in JAX.
- :mod:`.optimise`: the optax gradient descent from the configured choices, the hard-cut scan.

The paths of its outputs are below (kept here, next to the code that writes them).
"""

from __future__ import annotations

import os


def opt_dir(results: str) -> str:
    """Folder of every optimisation output."""
    return os.path.join(results, "optimisation")


def columns_file(results: str, sample: str, index: int | str) -> str:
    """Optimisation columns of one per-file job (named like its partial histograms)."""
    name = f"{int(index):05d}" if str(index).isdigit() else str(index)
    return os.path.join(results, "optimisation", "columns", sample, f"{name}.npz")


def soft_result(results: str) -> str:
    """Result of the gradient optimisation (parameters, soft objective, path, scan), JSON."""
    return os.path.join(results, "optimisation", "optimised.json")


def hard_dir(results: str) -> str:
    """Results folder of the hard re-check run of the ordinary rules with the optimised choices."""
    return os.path.join(results, "optimisation", "hard")


def hard_config(results: str) -> str:
    """Config file of the hard re-check run."""
    return os.path.join(results, "optimisation", "hard_config.yaml")


def result(results: str) -> str:
    """The final result: parameters, soft and hard objective before and after, the path, JSON."""
    return os.path.join(results, "optimisation", "result.json")


def plots_dir(results: str) -> str:
    """Plots of the optimisation (objective along the path, hard b-tag threshold scan)."""
    return os.path.join(results, "optimisation", "plots")
