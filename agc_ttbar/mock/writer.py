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

:func:`write_unskimmed_file` streams the chunks of an unskimmed file (``mock.skim: false``) in the
same layouts, so a full-size file (>= 1M events, ~1.9 kB/event with the full layout) never sits
in memory at once.
"""

from __future__ import annotations

import contextlib
import functools
import time
import zlib
from typing import Iterable

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


#: Entries of the probes that calibrate the compressed size of the filler values.
_PROBE = 16_384
#: Grids of the filler parameters: float mantissa bits, bool / index occupancy, integer bits.
_P_GRID = tuple(float(x) for x in np.geomspace(0.0005, 1.0, 48))


def _filler(rng, kind: str, param: float, size: int, dt: np.dtype) -> np.ndarray:
    """Filler values of one dtype kind: ``param`` sets their entropy (see :func:`_size_table`).

    "f": N(0, 10) rounded to ``param`` mantissa bits; "b": True with probability ``param``;
    "idx": an index 0-15 with probability ``param``, else -1; "i": uniform in [0, 2**param).
    A negative ``param`` ("f", "i") is a sparse branch: 0 except a fraction ``-param`` of the
    entries (floats with 2 mantissa bits, integers 1-3), as default-valued NanoAOD columns are.
    """
    if param < 0:
        hit = rng.uniform(size=size) < -param
        if kind == "f":
            vals = round_mantissa(rng.standard_normal(size) * 10.0, 2)
        else:
            vals = rng.integers(1, 4, size)
        return np.where(hit, vals, 0).astype(dt)
    if kind == "f":
        k = int(param)
        x = rng.standard_normal(size) * 10.0
        return (round_mantissa(x, k) if k < 23 else x.astype(np.float32)).astype(dt)
    if kind == "b":
        return rng.uniform(size=size) < param
    if kind == "idx":
        return np.where(rng.uniform(size=size) < param, rng.integers(0, 16, size), -1).astype(dt)
    top = min(2 ** int(param), int(np.iinfo(dt).max))
    return rng.integers(0, top, size).astype(dt)


def _kind(name: str, dt: np.dtype) -> str:
    if dt == np.bool_:
        return "b"
    if dt.kind == "f":
        return "f"
    if "Idx" in name and dt.kind == "i":
        return "idx"
    return "i"


def _params(kind: str, dt: np.dtype) -> tuple:
    sparse = tuple(-p for p in _P_GRID[:-1])
    if kind == "f":
        return sparse + tuple(range(0, 24))
    if kind in ("b", "idx"):
        return _P_GRID
    return sparse + tuple(range(1, 8 * dt.itemsize - (1 if dt.kind == "i" else 0)))


@functools.lru_cache(maxsize=None)
def _size_table(kind: str, dtype_str: str) -> tuple[np.ndarray, np.ndarray]:
    """(parameters, compressed bytes per entry) of the filler values of one kind and dtype.

    Measured once per process on ``_PROBE`` big-endian entries (as ROOT stores them) with zlib
    level 4, the mock's default compression; a fixed seed makes the table, and so every choice
    made from it, deterministic.
    """
    dt = np.dtype(dtype_str)
    rng = np.random.default_rng(20240521)
    params = _params(kind, dt)
    sizes = [len(zlib.compress(_filler(rng, kind, p, _PROBE, dt).astype(dt.newbyteorder(">")).tobytes(), 4))
             / _PROBE for p in params]
    return np.asarray(params, dtype=float), np.asarray(sizes)


def _offsets_bytes_per_event(counts: np.ndarray, itemsize: int) -> float:
    """Compressed bytes per event of the entry offsets a jagged TBasket stores next to its data."""
    c = np.asarray(counts[:_PROBE], dtype=np.int64)
    if len(c) == 0:
        return 0.0
    offsets = (np.cumsum(c * itemsize) + 100).astype(">i4")
    return len(zlib.compress(offsets.tobytes(), 4)) / len(c)


#: Largest compressed bytes per entry a filler branch is asked for, as a fraction of its dtype size
#: (noise floats compress to ~0.95 of 4 bytes at full precision).
_MAX_FILL = 0.75


@functools.lru_cache(maxsize=None)
def _filler_multiplicities() -> dict[str, float]:
    """Mean multiplicity a collection the generator does not simulate needs for its branches'
    byte shares: the real file's (``COUNTER_MEANS``, 200 events) is too low for some (FatJet 0.01
    against a 0.04% byte share per branch), which no entry size could reach."""
    need: dict[str, float] = {}
    for name, dt, counter, share in branches_2015.BRANCHES:
        if counter and counter not in COLLECTIONS.values():
            per_event = share * REAL_BYTES_PER_EVENT
            need[counter] = max(need.get(counter, 0.0), per_event / (_MAX_FILL * np.dtype(dt).itemsize))
    return need


def _full_layout_values(rng, name, info, counts, n):
    """Values of a branch the generator does not simulate, sized by its real byte share.

    The target is the branch's share of a real AGC file (``info["share"]`` x 1893 bytes/event),
    less the entry offsets of a jagged branch, per stored entry. The filler parameter whose
    calibrated compressed size (:func:`_size_table`) is nearest to it (in log) is used: the
    branch then compresses to about its real size whatever its dtype. The values are noise of
    the right entropy (floats with few mantissa bits, indices mostly -1, rare flags), not physics.
    """
    dt = info["dtype"].newbyteorder("=")
    size = int(np.sum(counts)) if info["counter"] else n
    per_event = info["share"] * REAL_BYTES_PER_EVENT
    if info["counter"]:
        mean_count = max(float(np.mean(counts)), 1e-3)
        per_event = max(per_event - _offsets_bytes_per_event(counts, dt.itemsize), 0.02 * per_event)
    else:
        mean_count = 1.0
    target = per_event / mean_count
    kind = _kind(name, dt)
    params, sizes = _size_table(kind, dt.str)
    param = params[int(np.argmin(np.abs(np.log(sizes) - np.log(max(target, 1e-6)))))]
    vals = _filler(rng, kind, param, size, dt)
    return ak.unflatten(vals, counts) if info["counter"] else vals


def file_branches(gen: GeneratedFile, full_layout: bool, seed_seq=None, rng=None) -> dict:
    """All branch arrays to write, in real-file order (core only, or the full real layout).

    The full-layout values come from ``rng`` if given (a stream shared by the chunks of a file),
    else from a new generator of ``seed_seq``.
    """
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
        rng = rng if rng is not None else np.random.default_rng(seed_seq)
        needed = _filler_multiplicities()
        for counter, mean in branches_2015.COUNTER_MEANS.items():
            if counter in counts:
                continue
            if mean >= 1 and float(mean).is_integer():
                counts[counter] = np.full(n, int(mean), dtype=np.uint32)
            else:
                counts[counter] = rng.poisson(max(mean, needed.get(counter, 0.0)), n).astype(np.uint32)
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


def write_unskimmed_file(path: str, chunks: Iterable[GeneratedFile], compression: str = "ZLIB:4",
                         full_layout: bool = False, basket_entries: int = 10_000, seed_seq=None,
                         fmt: str = "ttree", progress=None) -> dict:
    """Stream the chunks of an unskimmed file (:func:`~agc_ttbar.mock.generator.unskimmed_chunks`)
    to ``path`` atomically, in the layout of :func:`write_file`; memory stays that of one chunk.

    ``Runs`` holds the summed event count (every event is stored: ``genEventCount`` = entries).
    ``progress(n_done)`` is called after each chunk. Returns {"events", "generate_s", "write_s"}.
    """
    if fmt not in FORMATS:
        raise ValueError(f"mock file format {fmt!r} is not one of {', '.join(FORMATS)} (config key mock.format)")
    table = branch_table()
    rng = np.random.default_rng(seed_seq)
    n_total, sumw, sumw2, t_gen, t_write = 0, 0.0, 0.0, 0.0, 0.0
    counters, types = None, None
    with atomic_path(path) as tmp:
        with uproot.recreate(tmp, compression=parse_compression(compression)) as f:
            out = None
            it = iter(chunks)
            while True:
                t0 = time.perf_counter()
                part = next(it, None)
                if part is None:
                    break
                arrays = file_branches(part, full_layout, rng=rng)
                t1 = time.perf_counter()
                t_gen += t1 - t0
                n = part.n_kept
                if fmt == "rntuple":
                    fields = rntuple_fields(arrays, table)
                    for start in range(0, n, basket_entries):
                        chunk = {k: v[start:start + basket_entries] for k, v in fields.items()}
                        if out is None:
                            out = f.mkrntuple("Events", chunk)
                        else:
                            out.extend(chunk)
                else:
                    if out is None:
                        counters = {table[k]["counter"] for k in arrays if table[k]["counter"]}
                        types = {k: _branch_type(table[k]) for k in arrays if k not in counters}
                        with _uint32_counters():
                            out = f.mktree("Events", types, title="Events",
                                           counter_name=lambda b: table[b]["counter"])
                    for start in range(0, n, basket_entries):
                        out.extend({k: v[start:start + basket_entries] for k, v in arrays.items()
                                    if k not in counters})
                del arrays
                t_write += time.perf_counter() - t1
                n_total += n
                sumw += part.sum_genweight
                sumw2 += part.sum_genweight2
                if progress is not None:
                    progress(n_total)
            if out is None:
                raise ValueError("an unskimmed file needs at least one event (mock events per file >= 1)")
            runs_data = {"run": np.array([1], np.uint32), "genEventCount": np.array([n_total], np.int64),
                         "genEventSumw": np.array([sumw], np.float64),
                         "genEventSumw2": np.array([sumw2], np.float64)}
            if fmt == "rntuple":
                f.mkrntuple("Runs", runs_data)
            else:
                runs = f.mktree("Runs", {"run": np.uint32, "genEventCount": np.int64, "genEventSumw": np.float64,
                                         "genEventSumw2": np.float64}, title="Runs")
                runs.extend(runs_data)
    return {"events": n_total, "generate_s": t_gen, "write_s": t_write}


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

