"""The one reading layer (issue 14, point 6): a remote read that fails mid-file is retried,
bounded, on a reopened file; every try failing names the URL and the cause. Over real HTTP on
loopback, with a server that drops connections after part of a response."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import uproot

from agc_ttbar.io import InputFileError
from agc_ttbar.ml import dataset
from agc_ttbar.processing import SampleInfo, process_file
from agc_ttbar.remote import RemoteOptions, is_remote

import synthetic_nanoaod as synth
from handmade import FakeScorer
from scaleout_helpers import REPO
from servers.dropping_http import DroppingServer

QUIET = lambda msg: None  # noqa: E731
OPTIONS = RemoteOptions(timeout_s=5, retries=3, backoff_s=0.05)
INFO = SampleInfo.from_key("ttbar__nominal", 1.847533, 10_000)


def _basket_starts(path: str) -> set[int]:
    """Byte offsets of the tree's baskets: reads there are data reads, not metadata."""
    with uproot.open(path) as f:
        tree = f["Events"]
        return {int(b.member("fBasketSeek")[i]) for b in tree.branches for i in range(b.num_baskets)}


@pytest.fixture(scope="module")
def synth_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("drop")
    path = folder / "events.root"
    synth.write_nanoaod(str(path), synth.make_events(6000, seed=5), basket_events=2000)
    return path


def _limbs(hs):
    return {k: (h.sumw.copy(), h.sumw2.copy()) for k, h in hs.hists.items()}


def test_one_notion_of_remote():
    assert is_remote("root://h//f.root") and is_remote("https://h/f.root") and is_remote("HTTP://h/f")
    assert not is_remote("/data/f.root") and not is_remote("file:///data/f.root")
    import agc_ttbar.io as io
    import agc_ttbar.remote as remote

    assert io.is_remote is remote.is_remote
    assert not hasattr(remote, "open_tree") and not hasattr(remote, "read_arrays")


def test_dropped_connection_is_retried_on_a_reopened_file(synth_file):
    ref, _ = process_file(str(synth_file), INFO, chunksize=2000, scorer=FakeScorer(), log=QUIET)
    starts = _basket_starts(str(synth_file))
    logs = []
    with DroppingServer(str(synth_file.parent), starts, drops=2) as srv:
        got, meta = process_file(srv.url + synth_file.name, INFO, chunksize=2000, scorer=FakeScorer(),
                                 log=logs.append, remote_options=OPTIONS)
        assert srv.dropped == 2
    a, b = _limbs(ref), _limbs(got)
    assert a.keys() == b.keys() and len(a) > 20
    for k in a:
        assert np.array_equal(a[k][0], b[k][0]) and np.array_equal(a[k][1], b[k][1]), k
    assert meta["cutflow"]["steps"]["all"] == 6000


def test_every_try_dropped_fails_with_url_and_cause(synth_file):
    starts = _basket_starts(str(synth_file))
    with DroppingServer(str(synth_file.parent), starts, drops=None) as srv:
        url = srv.url + synth_file.name
        with pytest.raises(InputFileError) as exc:
            process_file(url, INFO, chunksize=2000, log=QUIET, remote_options=OPTIONS)
        assert srv.dropped >= 3
    msg = str(exc.value)
    assert f"cannot read {url}" in msg and "connection dropped during the transfer" in msg
    assert "3 attempts" in msg and "entries 0-2000" in msg


def test_ml_training_reads_through_the_same_layer(tmp_path):
    """Training data over the dropping server equal the local read; every try dropping fails
    with the URL (the training used to open files without timeouts or retries)."""
    path = tmp_path / "ttbar.root"
    subprocess.run([sys.executable, str(REPO / "workflow_scripts" / "generate_mock.py"), "--sample", "ttbar__nominal",
                    "--index", "00000", "--events", "3000", "--seed", "3", "--compression", "ZLIB:1",
                    "--muon-tight-fraction", "0.5", "--output", str(path)], check=True, capture_output=True)
    ref, _ = dataset.extract([str(path)], chunksize=1000, log=QUIET)
    assert len(ref["event"]) > 20
    starts = _basket_starts(str(path))
    with DroppingServer(str(tmp_path), starts, drops=2) as srv:
        got, summary = dataset.extract([srv.url + path.name], chunksize=1000, log=QUIET, remote_options=OPTIONS)
        assert srv.dropped == 2
    assert ref.keys() == got.keys()
    for k in ref:
        assert np.array_equal(ref[k], got[k], equal_nan=ref[k].dtype.kind == "f"), k
    with DroppingServer(str(tmp_path), starts, drops=None) as srv:
        with pytest.raises(InputFileError, match="connection dropped during the transfer") as exc:
            dataset.extract([srv.url + path.name], chunksize=1000, log=QUIET, remote_options=OPTIONS)
    assert srv.url + path.name in str(exc.value)
