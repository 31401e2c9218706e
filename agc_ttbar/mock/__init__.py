"""Synthetic CMS NanoAOD generator for the nine AGC samples (the embedded default dataset).

- :mod:`.processes`: hard processes and per-sample physics knobs (the variations differ here);
- :mod:`.truth`: GenPart records (NanoAOD mothers, status codes, statusFlags), decays, radiation;
- :mod:`.detector`: jets, leptons, b tagging, jet ID, lepton jets, MET;
- :mod:`.generator`: generation class, generator-level filter, event numbering, seeding;
- :mod:`.writer`: uproot TTree or RNTuple writing (NanoAOD dtypes, UInt_t counters, full layout);
- :mod:`.schema` / :mod:`.branches_2015`: real 2015 NanoAOD branch names, dtypes and counters;
- :mod:`.validation`: yields, observables, truth matching and the plots in docs/mock_validation.
"""

from .generator import GeneratedFile, MockConfigError, generate_events, rng_for
from .writer import read_counts, write_file

__all__ = ["GeneratedFile", "MockConfigError", "generate_events", "rng_for", "read_counts", "write_file"]
