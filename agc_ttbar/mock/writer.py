"""Write a generated sample file as a NanoAOD-style ROOT file (TTree ``Events`` + ``Runs``).

uproot's ``mktree`` is used with explicit counter names (``nJet`` for ``Jet_*`` ...), not
``file["Events"] = ...`` (which writes an RNTuple). uproot declares counters as int32; real NanoAOD
counters are UInt_t, see :func:`_uint32_counters`. Baskets hold ``basket_entries`` events, like
the clusters of a production file. ``Runs`` holds the pre-filter event count (genEventCount).

``fmt="rntuple"`` writes the same events as RNTuples ``Events`` and ``Runs`` (uproot's
``mkrntuple``/``extend``, one cluster per ``basket_entries`` events) in the layout of CMSSW's NanoAOD
RNTuple output: each collection is one field ``Jet`` (a list of records ``pt``, ``eta`` ...) and
the counters (``nJet``) are not stored, as they are the collection lengths; flat branches keep
their names. :class:`agc_ttbar.rntuple.NanoAODView` reads it back under the NanoAOD names.
"""

from __future__ import annotations

import contextlib

import awkward as ak
import numpy as np
import uproot

from ..atomic import atomic_path
from . import branches_2015
from .generator import GeneratedFile
from .schema import COLLECTIONS, branch_table, core_branches, round_mantissa

#: Mean bytes per event of the real AGC files (1.78 TB / 940,160,174 events), for full-layout sizes.
REAL_BYTES_PER_EVENT = 1.78e12 / 940_160_174

_COMPRESSION = {"ZLIB": uproot.ZLIB, "LZMA": uproot.LZMA, "LZ4": uproot.LZ4, "ZSTD": uproot.ZSTD}


def parse_compression(spec: str):
    """"ALGORITHM:LEVEL" (e.g. "ZLIB:4", "LZMA:9") -> uproot compression object (level 0: none)."""
    try:
        algo, level = spec.split(":")
        level = int(level)
        cls = _COMPRESSION[algo.upper()]
    except (ValueError, KeyError):
        raise ValueError(f"compression {spec!r} is not ALGORITHM:LEVEL with ALGORITHM in "
                         f"{', '.join(_COMPRESSION)} and LEVEL 0-9") from None
    if not 0 <= level <= 9:
        raise ValueError(f"compression level must be 0-9, got {level}")
    return None if level == 0 else cls(level)


def _branch_type(info):
    dt = info["dtype"].newbyteorder("=")
    # awkward type objects, not "var * float32" strings: parsing those costs ~20 ms per branch
    return ak.types.ListType(ak.types.NumpyType(dt.name)) if info["counter"] else dt


def _full_layout_values(rng, name, info, counts, n):
    """Values of a branch the generator does not simulate, sized by its real byte share.

    The entropy per entry is chosen so that the compressed size is about the branch's share of a
    real AGC file; the values themselves are plausible-looking noise (indices -1, flags rare).
    """
    dt = info["dtype"].newbyteorder("=")
    size = int(np.sum(counts)) if info["counter"] else n
    per_event = info["share"] * REAL_BYTES_PER_EVENT
    mean_count = max(float(np.mean(counts)), 1e-3) if info["counter"] else 1.0
    bits = 8.0 * per_event / mean_count
    if dt == np.bool_:
        p = float(np.clip(bits / 8.0, 0.002, 0.5))
        vals = rng.uniform(size=size) < p
    elif dt.kind == "f":
        k = int(np.clip(round(bits - 4), 0, 23))
        vals = round_mantissa(rng.standard_normal(size) * 10.0, k) if k < 23 else rng.standard_normal(size).astype(np.float32)
    elif name.endswith("Idx") or "Idx" in name:
        vals = np.where(rng.uniform(size=size) < min(1.0, bits / 8.0), rng.integers(0, 4, size), -1).astype(dt)
    else:
        top = 2 ** int(np.clip(round(bits), 1, 8 * dt.itemsize - 1))
        vals = rng.integers(0, min(top, np.iinfo(dt).max), size).astype(dt)
    vals = np.asarray(vals).astype(dt)
    return ak.unflatten(vals, counts) if info["counter"] else vals


def file_branches(gen: GeneratedFile, full_layout: bool, seed_seq=None) -> dict:
    """All branch arrays to write, in real-file order (core only, or the full real layout)."""
    table = branch_table()
    b = dict(gen.branches)
    n = gen.n_kept
    names = core_branches()
    counts = {}
    for coll, counter in COLLECTIONS.items():
        first = next(k for k in names if k.startswith(coll + "_"))
        counts[counter] = (np.asarray(ak.num(b[first])) if first in b else np.zeros(n, dtype=np.int64)).astype(np.uint32)
    if full_layout:
        names = tuple(table)
        rng = np.random.default_rng(seed_seq)
        for counter, mean in branches_2015.COUNTER_MEANS.items():
            if counter in counts:
                continue
            counts[counter] = (np.full(n, int(mean)) if mean >= 1 and float(mean).is_integer()
                               else rng.poisson(mean, n)).astype(np.uint32)
    out = {}
    for name in names:
        info = table[name]
        if name in counts:
            out[name] = counts[name]
        elif name in b:
            v = b[name]
            out[name] = v if info["counter"] else np.asarray(v).astype(info["dtype"].newbyteorder("="))
        elif n == 0:
            out[name] = (ak.Array(np.zeros(0, dtype=info["dtype"].newbyteorder("="))) if not info["counter"]
                         else ak.unflatten(np.zeros(0, dtype=info["dtype"].newbyteorder("=")), np.zeros(0, dtype=np.int64)))
        else:
            out[name] = _full_layout_values(rng, name, info, counts.get(info["counter"], None) if info["counter"] else None, n)
    return out


@contextlib.contextmanager
def _uint32_counters():
    """Make uproot declare counter branches as UInt_t (real NanoAOD) instead of Int_t.

    uproot 5 hard-codes int32 counters when it creates a TTree; the counter datum is built by
    ``Tree._branch_np(..., kind="counter")``, so that call gets uint32 while the tree is created.
    The tree metadata is written once, already with the right leaf type.
    """
    from uproot.writing import _cascadetree

    original = _cascadetree.Tree._branch_np

    def branch_np(self, branch_name, branch_type, branch_dtype, counter=None, kind="normal"):
        if kind == "counter":
            branch_type = branch_dtype = np.dtype(np.uint32)
        return original(self, branch_name, branch_type, branch_dtype, counter=counter, kind=kind)

    _cascadetree.Tree._branch_np = branch_np
    try:
        yield
    finally:
        _cascadetree.Tree._branch_np = original


#: Formats of the mock files (config key mock.format).
FORMATS = ("ttree", "rntuple")


def rntuple_fields(arrays: dict, table: dict | None = None) -> dict:
    """NanoAOD branch arrays -> RNTuple fields: ``Jet_*`` -> collection ``Jet`` (records), counters
    dropped; a jagged branch named after its counter (``LHEPdfWeight``) stays a vector field."""
    table = table or branch_table()
    counters = {table[k]["counter"] for k in arrays if table[k]["counter"]}
    out, groups = {}, {}
    for name, values in arrays.items():
        counter = table[name]["counter"]
        if name in counters:
            continue
        if counter and name.startswith(counter[1:] + "_"):
            coll = counter[1:]
            if coll not in groups:
                groups[coll] = {}
                out[coll] = None               # keep the real-file order of the first member
            groups[coll][name[len(coll) + 1:]] = values
        else:
            out[name] = values
    for coll, members in groups.items():
        out[coll] = ak.zip(members, depth_limit=2)
    return out


def write_file(path: str, gen: GeneratedFile, compression: str = "ZLIB:4", full_layout: bool = False,
               basket_entries: int = 10_000, seed_seq=None, fmt: str = "ttree") -> None:
    """Write ``gen`` to ``path`` atomically: ``Events`` (NanoAOD schema) and ``Runs`` (event counts),
    as TTrees (``fmt="ttree"``) or RNTuples (``fmt="rntuple"``)."""
    if fmt not in FORMATS:
        raise ValueError(f"mock file format {fmt!r} is not one of {', '.join(FORMATS)} (config key mock.format)")
    table = branch_table()
    arrays = file_branches(gen, full_layout, seed_seq)
    runs_data = {"run": np.array([1], np.uint32), "genEventCount": np.array([gen.nevts], np.int64),
                 "genEventSumw": np.array([gen.sum_genweight], np.float64),
                 "genEventSumw2": np.array([gen.sum_genweight2], np.float64)}
    if fmt == "rntuple":
        _write_rntuple(path, gen.n_kept, rntuple_fields(arrays, table), runs_data, compression, basket_entries)
        return
    types = {name: _branch_type(table[name]) for name in arrays if not name.startswith("n") or table[name]["counter"]
             or name not in {c for c in (table[k]["counter"] for k in arrays) if c}}
    counters = {table[k]["counter"] for k in arrays if table[k]["counter"]}
    types = {k: v for k, v in types.items() if k not in counters}
    with atomic_path(path) as tmp:
        with uproot.recreate(tmp, compression=parse_compression(compression)) as f:
            with _uint32_counters():
                tree = f.mktree("Events", types, title="Events", counter_name=lambda b: table[b]["counter"])
            n = gen.n_kept
            for start in range(0, max(n, 1), basket_entries):
                stop = min(n, start + basket_entries)
                if stop <= start:
                    break
                tree.extend({k: v[start:stop] for k, v in arrays.items() if k not in counters})
            runs = f.mktree("Runs", {"run": np.uint32, "genEventCount": np.int64, "genEventSumw": np.float64,
                                     "genEventSumw2": np.float64}, title="Runs")
            runs.extend(runs_data)


def _write_rntuple(path: str, n: int, fields: dict, runs_data: dict, compression: str,
                   basket_entries: int) -> None:
    with atomic_path(path) as tmp:
        with uproot.recreate(tmp, compression=parse_compression(compression)) as f:
            ntuple = None
            for start in range(0, max(n, 1), basket_entries):
                stop = min(n, start + basket_entries)
                chunk = {k: v[start:stop] for k, v in fields.items()}
                if ntuple is None:
                    ntuple = f.mkrntuple("Events", chunk)   # the first cluster (also for 0 events)
                elif stop > start:
                    ntuple.extend(chunk)
                if stop >= n:
                    break
            f.mkrntuple("Runs", runs_data)


def read_counts(path: str, tree: str = "Events") -> tuple[int, int]:
    """(pre-filter event count from ``Runs``, entries of ``tree``) of a mock file."""
    with uproot.open(path) as f:
        nevts = int(np.sum(f["Runs"]["genEventCount"].array(library="np")))
        return nevts, int(f[tree].num_entries)

