"""Processes, variations, cross sections and luminosity of the AGC ttbar analysis (spec §1, §4).

Cross sections are in pb, the luminosity in pb^-1. The event weight of a sample is
``xsec * lumi / nevts_total`` with ``nevts_total`` summed over the files actually processed.
"""

from __future__ import annotations

#: Integrated luminosity of the 2015 data in pb^-1 (hard-coded in the reference ``process()``).
LUMI_PB: float = 3378.0

#: Cross sections in pb, exactly as ``utils/file_input.py`` of the reference computes them.
XSEC_PB: dict[str, float] = {
    "ttbar": 396.87 + 332.97,
    "single_top_s_chan": 2.0268 + 1.2676,
    "single_top_t_chan": (36.993 + 22.175) / 0.252,
    "single_top_tW": 37.936 + 37.906,
    "wjets": 61457 * 0.252,
}

#: Processes in the order of the reference fileset.
PROCESSES: tuple[str, ...] = ("ttbar", "single_top_s_chan", "single_top_t_chan", "single_top_tW", "wjets")

#: The nine AGC samples as (process, variation); fileset keys are "{process}__{variation}".
SAMPLES: tuple[tuple[str, str], ...] = (
    ("ttbar", "nominal"),
    ("ttbar", "scaledown"),
    ("ttbar", "scaleup"),
    ("ttbar", "ME_var"),
    ("ttbar", "PS_var"),
    ("single_top_s_chan", "nominal"),
    ("single_top_t_chan", "nominal"),
    ("single_top_tW", "nominal"),
    ("wjets", "nominal"),
)

#: Regions and their observables (spec §2-3).
REGIONS: tuple[str, ...] = ("4j1b", "4j2b")

#: Histogram binning of the processor: 25 bins of 20 GeV from 50 to 550 GeV, with flow.
NUM_BINS, BIN_LOW, BIN_HIGH = 25, 50.0, 550.0

#: Jet kinematic variations, filled for nominal samples only (spec §4.2).
KINEMATIC_VARIATIONS: tuple[str, ...] = ("pt_scale_up", "pt_res_up")
#: b-tag weight variations, filled for nominal samples only.
BTAG_VARIATIONS: tuple[str, ...] = tuple(f"btag_var_{i}_{d}" for i in range(4) for d in ("up", "down"))
#: W+jets scale weight variations.
SCALE_VARIATIONS: tuple[str, ...] = ("scale_var_up", "scale_var_down")


def sample_key(process: str, variation: str) -> str:
    """Fileset key of a sample, e.g. ``ttbar__ME_var``."""
    return f"{process}__{variation}"


def split_sample_key(key: str) -> tuple[str, str]:
    """Inverse of :func:`sample_key`."""
    process, sep, variation = key.partition("__")
    if not sep:
        raise ValueError(f"sample key {key!r} is not of the form '{{process}}__{{variation}}'")
    return process, variation


def xsec_weight(process: str, nevts_total: int, lumi: float = LUMI_PB) -> float:
    """Per-event weight ``xsec * lumi / nevts_total`` (dimensionless)."""
    if process not in XSEC_PB:
        raise KeyError(f"unknown process {process!r}; known: {', '.join(XSEC_PB)}")
    if nevts_total <= 0:
        raise ValueError(f"nevts_total must be positive for {process}, got {nevts_total}")
    return XSEC_PB[process] * lumi / nevts_total


def variations_for(process: str, variation: str) -> tuple[str, ...]:
    """Histogram variation labels a sample fills (spec §4.1 step 3, §4.3).

    The nominal samples fill nominal, the jet kinematic variations, the b-tag variations and, for
    W+jets, the scale variations. An alternative ttbar sample fills only its own label.
    """
    if variation != "nominal":
        return (variation,)
    out = ("nominal",) + KINEMATIC_VARIATIONS + BTAG_VARIATIONS
    if process == "wjets":
        out += SCALE_VARIATIONS
    return out


def histogram_key(region: str, process: str, variation: str) -> str:
    """AGC key name: ``{region}_{process}`` for nominal, else ``{region}_{process}_{variation}``."""
    return f"{region}_{process}" if variation == "nominal" else f"{region}_{process}_{variation}"
