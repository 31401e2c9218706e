"""Names and histogram ranges of the 20 jet-parton assignment features (spec §6.2)."""

from __future__ import annotations

#: (name, low, high) of each feature; every ML histogram has 25 bins.
FEATURES: tuple[tuple[str, float, float], ...] = (
    ("deltar_leptonbtoplep", 0.0, 6.0),
    ("deltar_w1w2", 0.0, 6.0),
    ("deltar_w1btophad", 0.0, 6.0),
    ("deltar_w2btophad", 0.0, 6.0),
    ("mass_leptonbtoplep", 50.0, 300.0),
    ("mass_w1w2", 50.0, 300.0),
    ("mass_w1w2btophad", 50.0, 550.0),
    ("pt_w1w2btophad", 50.0, 550.0),
    ("pt_w1", 25.0, 300.0),
    ("pt_w2", 25.0, 300.0),
    ("pt_btophad", 25.0, 300.0),
    ("pt_btoplep", 25.0, 300.0),
    ("btag_w1", 0.0, 1.0),
    ("btag_w2", 0.0, 1.0),
    ("btag_btophad", 0.0, 1.0),
    ("btag_btoplep", 0.0, 1.0),
    ("qgl_w1", -1.0, 1.0),
    ("qgl_w2", -1.0, 1.0),
    ("qgl_btophad", -1.0, 1.0),
    ("qgl_btoplep", -1.0, 1.0),
)
FEATURE_NAMES: tuple[str, ...] = tuple(f[0] for f in FEATURES)
NUM_BINS = 25
