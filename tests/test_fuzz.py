"""Input fuzzing (issue 8): random corruptions of a small NanoAOD file never crash the per-file job
with an error that hides the file name.

Each case corrupts a copy of one small file (seeded: the same cases every run) and processes it.
Allowed outcomes: the job succeeds (the damage hit bytes the analysis does not read), or it raises
:class:`agc_ttbar.io.InputFileError` whose message names the file. Anything else (an uproot,
numpy or zlib exception escaping, a hang) fails the test with the case that caused it. Every case
has a time limit and the whole run a bounded count.
"""

from __future__ import annotations

import collections
import os
import signal
import time

import numpy as np
import pytest
import uproot

import synthetic_nanoaod as synth
from agc_ttbar.io import InputFileError
from agc_ttbar.processing import SampleInfo, branches_needed, process_file

SEED = 20240807
N_CASES = 90
CASE_TIMEOUT_S = 30
N_EVENTS = 400
QUIET = lambda msg: None  # noqa: E731


class _CaseTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise _CaseTimeout()


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "clean.root"
    synth.write_nanoaod(str(path), synth.make_events(N_EVENTS, seed=5), basket_events=100)
    baskets = []   # (seek, bytes) of every basket of the branches the job reads
    with uproot.open(path) as f:
        tree = f["Events"]
        for name in branches_needed("nominal", with_ml=False):
            b = tree[name]
            for i in range(b.num_baskets):
                baskets.append((int(b.member("fBasketSeek")[i]), int(b.member("fBasketBytes")[i])))
    return path, path.read_bytes(), baskets


def _corrupt(data: bytes, baskets, rng) -> tuple[str, bytes]:
    b = bytearray(data)
    mode = ("truncate", "flip_anywhere", "flip_in_basket", "zero_block", "header")[rng.integers(5)]
    if mode == "truncate":
        b = b[:int(rng.integers(0, len(b)))]
    elif mode == "flip_anywhere":
        for pos in rng.integers(0, len(b), int(rng.integers(1, 17))):
            b[pos] ^= int(rng.integers(1, 256))
    elif mode == "flip_in_basket":
        seek, size = baskets[int(rng.integers(len(baskets)))]
        for pos in seek + rng.integers(0, size, int(rng.integers(1, 5))):
            b[pos] ^= int(rng.integers(1, 256))
    elif mode == "zero_block":
        start = int(rng.integers(0, len(b)))
        b[start:start + 512] = bytes(len(b[start:start + 512]))
    else:
        for pos in rng.integers(0, 100, int(rng.integers(1, 5))):
            b[pos] ^= int(rng.integers(1, 256))
    return mode, bytes(b)


def _signature(hists) -> dict:
    return {k: h.sumw.tobytes() for k, h in hists.hists.items()}


def test_random_corruptions_fail_with_the_file_name(clean, tmp_path):
    path, data, baskets = clean
    info = SampleInfo.from_key("ttbar__nominal", 1.0, N_EVENTS)
    reference = _signature(process_file(str(path), info, chunksize=150, log=QUIET)[0])
    rng = np.random.default_rng(SEED)
    outcomes: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    failures = []
    slowest = 0.0
    old = signal.signal(signal.SIGALRM, _alarm)
    t_all = time.monotonic()
    try:
        for case in range(N_CASES):
            mode, damaged = _corrupt(data, baskets, rng)
            target = tmp_path / f"case{case:03d}_{mode}.root"
            target.write_bytes(damaged)
            t0 = time.monotonic()
            signal.alarm(CASE_TIMEOUT_S)
            try:
                hists, _ = process_file(str(target), info, chunksize=150, log=QUIET)
                outcomes[mode]["ok, same" if _signature(hists) == reference else "ok, different"] += 1
            except InputFileError as err:
                if str(target) not in str(err):
                    failures.append(f"case {case} ({mode}): the error does not name the file: {err}")
                outcomes[mode]["InputFileError"] += 1
            except _CaseTimeout:
                failures.append(f"case {case} ({mode}): no result within {CASE_TIMEOUT_S} s")
            except Exception as err:  # noqa: BLE001 - exactly what the test looks for
                failures.append(f"case {case} ({mode}): unhandled {type(err).__name__}: "
                                f"{' '.join(str(err).split())[:300]}")
            finally:
                signal.alarm(0)
            slowest = max(slowest, time.monotonic() - t0)
            os.remove(target)
    finally:
        signal.signal(signal.SIGALRM, old)
    total = time.monotonic() - t_all
    print(f"\n{N_CASES} cases in {total:.1f} s (slowest {slowest:.1f} s):")
    for mode, counter in sorted(outcomes.items()):
        print(f"  {mode:15s} {dict(counter)}")
    assert not failures, "\n".join(failures)
    # every mode ran, and the corruptions were real: most cases must be detected
    assert len(outcomes) == 5
    assert sum(c["InputFileError"] for c in outcomes.values()) >= N_CASES // 2
    # a cut file is always detected (ROOT keeps its directory at the end)
    assert set(outcomes["truncate"]) == {"InputFileError"}
    assert total < 240
