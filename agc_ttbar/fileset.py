"""Fileset construction from an AGC-format input list (spec §1.3-1.5).

The input list maps ``process -> variation -> {"nevts_total", "files": [{"path", "nevts"}]}``.
:func:`build_fileset` keeps the first ``n_files_max_per_sample`` files of each sample, rewrites path
prefixes, and attaches the metadata a per-file job needs: process, variation, cross section,
luminosity and the sample-level ``nevts_total`` (the sum of ``nevts`` over the files used).
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.request
from typing import Iterable, Sequence

from .atomic import atomic_write_text
from .samples import LUMI_PB, XSEC_PB, sample_key, split_sample_key, xsec_weight

#: The AGC's own rewrite for INPUT_FROM_EOS (utils/file_input.py).
EOS_REWRITE = ("https://xrootd-local.unl.edu:1094//store/user/AGC/nanoAOD",
               "root://eospublic.cern.ch//eos/opendata/cms/upload/agc/1.0.0/")


class InputsError(ValueError):
    """The input list is malformed; the message names the file and the key."""


def load_inputs(path: str) -> dict:
    """Read and structurally check an input list (nanoaod_inputs.json format)."""
    try:
        with open(path) as f:
            inputs = json.load(f)
    except FileNotFoundError:
        raise InputsError(f"input list {path} does not exist") from None
    except json.JSONDecodeError as err:
        raise InputsError(f"input list {path} is not valid JSON: {err}") from None
    if not isinstance(inputs, dict):
        raise InputsError(f"input list {path}: top level must map process -> variation -> sample")
    for process, variations in inputs.items():
        if not isinstance(variations, dict):
            raise InputsError(f"input list {path}: '{process}' must map variation names to samples")
        for variation, sample in variations.items():
            where = f"input list {path}: sample '{process}' / '{variation}'"
            if not isinstance(sample, dict) or "files" not in sample:
                raise InputsError(f"{where} has no key 'files'")
            if not isinstance(sample["files"], list):
                raise InputsError(f"{where}: 'files' must be a list")
            for i, entry in enumerate(sample["files"]):
                for key in ("path", "nevts"):
                    if not isinstance(entry, dict) or key not in entry:
                        raise InputsError(f"{where}: files[{i}] has no key '{key}'")
                if not isinstance(entry["nevts"], int) or entry["nevts"] < 0:
                    raise InputsError(f"{where}: files[{i}].nevts must be a non-negative integer, "
                                      f"got {entry['nevts']!r}")
    return inputs


def rewrite_path(path: str, rewrites: Sequence[tuple[str, str]], xcache: str | None = None) -> str:
    """Apply prefix rewrites in order, then the optional XCache prefix to remote paths."""
    for old, new in rewrites:
        if path.startswith(old):
            path = new + path[len(old):]
    if xcache and "://" in path:
        path = f"{xcache.rstrip('/')}//{path}"
    return path


def rewrites_from_config(config: dict) -> list[tuple[str, str]]:
    """The ordered prefix rewrites a config asks for (INPUT_FROM_EOS first, then the user's)."""
    rewrites = [EOS_REWRITE] if config.get("input_from_eos") else []
    rewrites += [(r["from"], r["to"]) for r in config.get("prefix_rewrites", [])]
    return rewrites


def n_files_used(n_available: int, n_files_max: int) -> int:
    """Number of files kept by ``file_list[:N]`` (N = -1 keeps all)."""
    return n_available if n_files_max == -1 else min(n_available, n_files_max)


def group_files(nevents: Sequence[int], events_per_job: int) -> list[list[int]]:
    """Per-file jobs of one sample: consecutive file indices, grouped while a group's events stay
    within ``events_per_job`` (config ``processing.events_per_job``; 0 = one file per job). A file
    larger than the limit is a job of its own, so big files are never combined, and each job is
    named by its first file index (with 0, job ``i`` is file ``i``)."""
    groups: list[list[int]] = []
    total = 0
    for i, n in enumerate(nevents):
        if groups and events_per_job > 0 and total + n <= events_per_job:
            groups[-1].append(i)
            total += n
        else:
            groups.append([i])
            total = n
    return groups


def files_and_events(inputs: dict, samples: Iterable[str], n_files_max: int = -1) -> tuple[int, int]:
    """(files, events) that a run over ``samples`` with ``n_files_max`` per sample reads: the
    first N files of each sample and the sum of their ``nevts`` (spec §1.5)."""
    n_files = n_events = 0
    for key in samples:
        process, variation = split_sample_key(key)
        files = inputs.get(process, {}).get(variation, {}).get("files", [])
        files = files[: None if n_files_max == -1 else n_files_max]
        n_files += len(files)
        n_events += sum(int(f["nevts"]) for f in files)
    return n_files, n_events


def build_fileset(inputs: dict, samples: Iterable[str], n_files_max: int = -1,
                  rewrites: Sequence[tuple[str, str]] = (), xcache: str | None = None,
                  lumi: float = LUMI_PB, source: str = "<inputs>") -> dict:
    """Build the fileset for the requested sample keys.

    Returns ``{key: {"process", "variation", "xsec", "lumi", "nevts_total", "weight",
    "files": [{"index", "path", "nevts", ...}]}}`` in the order of ``samples``; extra per-file keys
    of the input list (e.g. ``nentries`` of the mock dataset) are kept.
    """
    fileset = {}
    for key in samples:
        process, variation = split_sample_key(key)
        if process not in inputs or variation not in inputs[process]:
            raise InputsError(f"input list {source} has no sample '{process}' / '{variation}' "
                              f"(config key 'samples' asks for {key}); remove it from 'samples' "
                              "or use an input list that has it")
        if process not in XSEC_PB:
            raise InputsError(f"input list {source}: no cross section known for process {process!r}")
        files = inputs[process][variation]["files"][: None if n_files_max == -1 else n_files_max]
        if not files:
            raise InputsError(f"input list {source}: sample {key} has no files")
        nevts_total = sum(int(f["nevts"]) for f in files)
        fileset[key] = {
            "process": process,
            "variation": variation,
            "xsec": XSEC_PB[process],
            "lumi": lumi,
            "nevts_total": nevts_total,
            "weight": xsec_weight(process, nevts_total, lumi),
            "files": [dict(f, index=i, path=rewrite_path(f["path"], rewrites, xcache))
                      for i, f in enumerate(files)],
        }
    return fileset


def fileset_from_config(config: dict, inputs_path: str) -> dict:
    """:func:`build_fileset` with every knob taken from a validated config."""
    inputs = load_inputs(inputs_path)
    return build_fileset(inputs, config["samples"], config["n_files_max_per_sample"],
                         rewrites_from_config(config), config.get("xcache"), source=inputs_path)


def add_fileset_arguments(parser) -> None:
    """The command-line options that choose the files (shared by the fileset and ServiceX scripts)."""
    parser.add_argument("--inputs", required=True, help="input list in nanoaod_inputs.json format")
    parser.add_argument("--samples", nargs="+", required=True, help="fileset keys {process}__{variation}")
    parser.add_argument("--n-files-max", type=int, default=-1, help="N_FILES_MAX_PER_SAMPLE (-1: all)")
    parser.add_argument("--input-from-eos", action="store_true", help="AGC INPUT_FROM_EOS rewrite")
    parser.add_argument("--xcache", default=None, help="XCache prefix for remote paths")
    parser.add_argument("--rewrite", nargs=2, action="append", default=[], metavar=("FROM", "TO"),
                        help="extra prefix rewrite (repeatable, applied in order)")


def fileset_from_args(args) -> dict:
    """:func:`build_fileset` from the options of :func:`add_fileset_arguments`."""
    rewrites = ([EOS_REWRITE] if args.input_from_eos else []) + [tuple(r) for r in args.rewrite]
    return build_fileset(load_inputs(args.inputs), args.samples, args.n_files_max, rewrites,
                         args.xcache, source=args.inputs)


def write_fileset(fileset: dict, path: str) -> None:
    """Write the fileset as JSON, atomically."""
    atomic_write_text(path, json.dumps(fileset, indent=1, sort_keys=False) + "\n")


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch_inputs(location: str, cache_dir: str, sha256: str | None = None, timeout: float = 60) -> str:
    """Return a local path of the input list; a URL is downloaded once into ``cache_dir``.

    The download is atomic and, when ``sha256`` is given, checked (a mismatch removes nothing that
    was already valid and raises with both digests).
    """
    if "://" not in location or location.startswith("file://"):
        path = location.removeprefix("file://")
        if sha256 and sha256_file(path) != sha256:
            raise InputsError(f"input list {path}: SHA-256 {sha256_file(path)} != expected {sha256} "
                              "(config key inputs_sha256)")
        return path
    name = hashlib.sha256(location.encode()).hexdigest()[:12] + "_" + os.path.basename(location.split("?")[0])
    local = os.path.join(cache_dir, name)
    if not os.path.exists(local):
        os.makedirs(cache_dir, exist_ok=True)
        try:
            with urllib.request.urlopen(location, timeout=timeout) as resp:
                data = resp.read()
        except Exception as err:  # noqa: BLE001 - re-raised with the URL
            raise InputsError(f"cannot download input list {location}: {err}. Without network, "
                              "set 'inputs' to a local copy") from err
        from .atomic import atomic_write_bytes
        atomic_write_bytes(local, data)
    if sha256 and sha256_file(local) != sha256:
        raise InputsError(f"input list {location} (cached as {local}): SHA-256 {sha256_file(local)} "
                          f"!= expected {sha256} (config key inputs_sha256); delete the cached copy "
                          "or fix the checksum")
    return local
