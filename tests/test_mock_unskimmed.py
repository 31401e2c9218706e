"""Unskimmed mock files (config ``mock.skim: false``, issue 16): composition, byte shares, wiring.

The composition tests generate 100k-200k events per sample (a few CPU seconds each) and compare
the fraction of events in 4j1b / 4j2b with the AGC reference at N = 1 (sum of a region's histogram
/ (xsec x lumi): the selection efficiency of each sample's first real file). The bounds are the
mock's modelling agreement (ratios 0.75-1.1 on the skimmed default dataset, docs/mock_validation)
widened by at least 4 standard deviations of both statistics: an unskimmed file without the
all-hadronic / tau / muon ttbar modes would sit ~4x above the reference, a skimmed one ~25x.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import awkward as ak
import numpy as np
import pytest
import uproot

from agc_ttbar import layout, selection
from agc_ttbar.mock import validation as V
from agc_ttbar.mock.generator import EVENT_STRIDE, MockConfigError, unskimmed_chunks
from agc_ttbar.mock.schema import COLLECTIONS, CORE_BRANCHES, branch_table
from agc_ttbar.mock.writer import REAL_BYTES_PER_EVENT, read_counts, write_unskimmed_file
from agc_ttbar.shipped_data import branch_ratios
from scaleout_helpers import REPO, require_workflow, snakemake_env

SEED = 4242

#: (events generated, (low, high) bounds of the ratio to the reference for 4j1b, for 4j2b).
#: Expected counts: ttbar ~1,400 / 3,200 (stat 2.7% / 1.8%, reference 0.9% / 0.6%); tW ~650 / 750;
#: t-channel ~65 / 100; s-channel ~75 / 130; W+jets ~25 / 5 (hence its wide bounds).
COMPOSITION = {
    "ttbar__nominal": (150_000, (0.75, 1.2), (0.8, 1.2)),
    "single_top_tW__nominal": (100_000, (0.7, 1.3), (0.6, 1.3)),
    "single_top_t_chan__nominal": (100_000, (0.5, 1.6), (0.5, 1.5)),
    "single_top_s_chan__nominal": (100_000, (0.5, 1.6), (0.45, 1.5)),
    "wjets__nominal": (200_000, (0.4, 2.5), (0.0, 4.0)),
}


def _write(tmp, sample, n, full_layout=False, chunk_size=50_000):
    path = layout.mock_file(str(tmp), sample, 0)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    stats = write_unskimmed_file(path, unskimmed_chunks(sample, 0, n, SEED, chunk_size=chunk_size),
                                 full_layout=full_layout, seed_seq=[SEED, 7])
    return path, stats


@pytest.mark.parametrize("sample", list(COMPOSITION))
def test_region_fractions_match_the_agc_reference(tmp_path, sample):
    n, bounds_1b, bounds_2b = COMPOSITION[sample]
    path, stats = _write(tmp_path, sample, n)
    assert stats["events"] == n
    assert read_counts(path) == (n, n)          # every generated event is stored: nevts = entries
    ev = V.read(path, selection.BRANCHES)
    masks, _ = V.regions(ev)
    ref = V.reference_fractions()[sample]
    for region, ref_fraction, (lo, hi) in (("4j1b", ref[0], bounds_1b), ("4j2b", ref[1], bounds_2b)):
        ratio = float(np.mean(masks[region])) / ref_fraction
        assert lo <= ratio <= hi, f"{sample} {region}: fraction / reference = {ratio:.3f}, bounds {lo}-{hi}"
    if sample == "ttbar__nominal":
        # the composition itself: no lepton selected in most events (all-hadronic, taus, muons never tight)
        ele, mu = selection.lepton_masks(ev)
        n_lep = np.asarray(ak.sum(ele, axis=1) + ak.sum(mu, axis=1))
        assert 0.08 < np.mean(n_lep == 1) < 0.25


def test_chunks_are_deterministic_and_consecutive(tmp_path):
    a = list(unskimmed_chunks("ttbar__nominal", 3, 5_000, SEED, chunk_size=2_000))
    b = list(unskimmed_chunks("ttbar__nominal", 3, 5_000, SEED, chunk_size=2_000))
    assert [c.n_kept for c in a] == [2_000, 2_000, 1_000]
    for x, y in zip(a, b):
        assert x.branches.keys() == y.branches.keys()
        for k in x.branches:
            assert ak.all(ak.Array(x.branches[k]) == ak.Array(y.branches[k])), k
    event = np.concatenate([c.branches["event"] for c in a])
    assert np.array_equal(event, 3 * EVENT_STRIDE + np.arange(1, 5_001, dtype=np.uint64))
    other = next(unskimmed_chunks("ttbar__nominal", 3, 2_000, SEED + 1, chunk_size=2_000))
    assert not np.array_equal(other.branches["MET_pt"], a[0].branches["MET_pt"])


def test_bad_parameters_name_the_problem():
    with pytest.raises(MockConfigError, match="unknown sample"):
        next(unskimmed_chunks("ttbar__nope", 0, 10, SEED))
    with pytest.raises(MockConfigError, match="chunk size"):
        next(unskimmed_chunks("ttbar__nominal", 0, 10, SEED, chunk_size=0))
    proc = subprocess.run([sys.executable, "workflow_scripts/generate_mock.py", "--sample", "ttbar__nominal",
                           "--index", "0", "--events", "0", "--seed", "1", "--unskimmed", "--output", "x.root"],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2 and "unskimmed_events_per_file" in proc.stderr


def test_shipped_branch_ratios_are_the_embedded_shares():
    """data/agc/nanoaod_branch_ratios.json (AGC) is the source of the shares in branches_2015."""
    ratios = branch_ratios()
    table = branch_table()
    assert set(ratios) == set(table) and len(table) == 947
    assert all(table[k]["share"] == ratios[k] for k in table)
    assert abs(sum(ratios.values()) - 1.0) < 1e-6


def test_full_layout_branches_have_the_real_byte_shares(tmp_path):
    """Compressed bytes per event of every branch the generator does not simulate vs its real
    share x 1893 B/event (1.78 TB / 940,160,174 events).

    Checked: flat branches and collections the generator does not simulate with >= 0.5 B/event
    (~250 branches, half of the real bytes; measured: median 1.05, 5-95% 0.98-1.6). Not checked: the simulated collections (Jet,
    Electron, Muon, GenPart: their multiplicities are the mock's physics, GenPart is ~20 particles
    against a pruned real record of more), so the total file is ~12% below the real size.
    """
    path, _ = _write(tmp_path, "ttbar__nominal", 20_000, full_layout=True, chunk_size=10_000)
    table = branch_table()
    simulated = set(COLLECTIONS.values())
    with uproot.open(path) as f:
        tree = f["Events"]
        n = tree.num_entries
        per_event = {b.name: b.compressed_bytes / n for b in tree.branches}
    assert set(per_event) == set(table)
    ratios = []
    for name, info in table.items():
        target = info["share"] * REAL_BYTES_PER_EVENT
        if name in CORE_BRANCHES or info["counter"] in simulated or target < 0.5:
            continue
        ratios.append(per_event[name] / target)
    ratios = np.array(ratios)
    assert len(ratios) > 200
    assert 0.85 < np.median(ratios) < 1.2
    lo, hi = np.percentile(ratios, [5, 95])
    assert lo > 0.5 and hi < 1.8, (lo, hi)
    filler = sum(per_event[k] for k in table if k not in CORE_BRANCHES)
    real_filler = sum(table[k]["share"] for k in table if k not in CORE_BRANCHES) * REAL_BYTES_PER_EVENT
    assert 0.85 < filler / real_filler < 1.15
    total = sum(per_event.values())
    assert 0.75 * REAL_BYTES_PER_EVENT < total < 1.1 * REAL_BYTES_PER_EVENT


def test_skim_false_is_wired_into_the_rule(tmp_path):
    """mock.skim: false makes generate_mock_file write unskimmed files of unskimmed_events_per_file;
    the default keeps the skimmed files (tests/test_digests.py pins their outputs)."""
    require_workflow()
    common = [sys.executable, "-m", "snakemake", "-n", "-p", "--cores", "1", "--forceall",
              str(tmp_path / "results" / "mock" / "ttbar__nominal" / "00000.root")]
    rel = f"results_dir={tmp_path / 'results'}"
    default = subprocess.run(common + ["--config", rel], cwd=REPO, env=snakemake_env(),
                             capture_output=True, text=True, timeout=300)
    assert default.returncode == 0, default.stdout[-3000:] + default.stderr[-3000:]
    unskimmed = subprocess.run(common + ["--config", rel, "mock={'skim': False, 'unskimmed_events_per_file': 1000}"],
                               cwd=REPO, env=snakemake_env(), capture_output=True, text=True, timeout=300)
    assert unskimmed.returncode == 0, unskimmed.stdout[-3000:] + unskimmed.stderr[-3000:]
    out_default, out_unskimmed = default.stdout + default.stderr, unskimmed.stdout + unskimmed.stderr
    assert "--unskimmed" not in out_default and re.search(r"--events 28000\b", out_default)
    assert "--unskimmed" in out_unskimmed and re.search(r"--events 1000\b", out_unskimmed)
    assert re.search(r"mem_mb=2500\b", out_unskimmed)
