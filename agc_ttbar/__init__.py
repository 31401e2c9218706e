"""Shared physics logic of the AGC CMS Open Data ttbar workflow.

Each module is named for what it does: :mod:`agc_ttbar.config` validates the workflow
configuration, :mod:`agc_ttbar.samples` holds cross sections and luminosity,
:mod:`agc_ttbar.fileset` builds the per-file job list, and so on. The Snakemake rules call thin
scripts in ``workflow_scripts/`` that import from here.
"""

__version__ = "0.1.0"
