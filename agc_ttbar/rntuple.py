"""NanoAOD branches from an RNTuple: the TTree view the reading code uses (names, types, arrays).

An RNTuple NanoAOD file does not store ``nJet`` and ``Jet_pt`` as TTree branches. It groups a
collection's columns into one field, a list of records sharing one offset column:

- CMSSW's NanoAOD RNTuple output and this project's mock (``mock.format: rntuple``) write a
  collection field ``Jet`` with members ``pt``, ``eta`` ...; flat values (``run``, ``MET_pt``)
  are top-level fields; a named singleton may be a record ``MET`` with members ``pt`` ...
- ROOT's ``RNTupleImporter`` (TTree -> RNTuple) writes ``_collection0`` whose members keep the
  branch names (``Jet_pt``); its ``nJet``/``Jet_pt`` are *projected* fields, which uproot does not read.
  uproot 5.7.7 reads projected fields (``nJet`` as a cardinality, int64) and the collection.
- A plain ``std::vector<float>`` field ``Jet_pt`` (RDataFrame's RNTuple ``Snapshot``; ``mkrntuple``
  of a dict of TTree arrays), with ``nJet`` a stored field or not.

:class:`NanoAODView` maps each of these back to the NanoAOD branch names: ``Jet_pt`` is
``Jet.pt`` (or ``_collection0.Jet_pt``, or the field ``Jet_pt``); a counter ``nJet`` that is not a
stored field is the collection's length per entry, as ``uint32`` like NanoAOD's ``UInt_t``.
Values and dtypes are those uproot reads from a TTree of the same events (the tests compare them).

Own code (not coffea's RNTuple NanoEvents) because the reading layer hands the per-file job a
dict of branch arrays, whatever the format; this is only the name mapping.
"""

from __future__ import annotations

from dataclasses import dataclass

import awkward as ak
import numpy as np
import uproot

#: Epoch of the RNTuple on-disk format that uproot 5.7 reads (RNTuple 1.x, ROOT 6.34 and later).
SUPPORTED_EPOCH = 1


def is_rntuple(obj) -> bool:
    """True for an uproot RNTuple object (``ROOT::RNTuple`` in the file)."""
    return isinstance(obj, uproot.behaviors.RNTuple.RNTuple)


def format_version(ntuple) -> tuple[int, int, int, int]:
    """(epoch, major, minor, patch) of the RNTuple anchor."""
    m = ntuple.members
    return (int(m["fVersionEpoch"]), int(m["fVersionMajor"]), int(m["fVersionMinor"]),
            int(m["fVersionPatch"]))


@dataclass(frozen=True)
class Column:
    """Where a NanoAOD branch lives in the RNTuple and what it is."""

    path: tuple[str, ...]        # field path read from uproot (("Jet", "pt") or ("run",))
    jagged: bool                 # one list per entry (a collection member or a vector field)
    dtype: np.dtype | None       # numeric dtype, None if not a number
    counter: bool = False        # the length of the collection at ``path[0]``, not a stored value
    cast: bool = False           # a stored RNTupleCardinality (int64 in uproot) read as uint32
    form: str = ""               # the awkward form, for error messages


class NanoAODView:
    """An RNTuple seen as a NanoAOD TTree: ``name``, ``num_entries``, ``keys()``, ``column(name)``,
    ``arrays(branches, entry_start, entry_stop, ...) -> {branch: ak.Array}``."""

    def __init__(self, ntuple):
        self.ntuple = ntuple
        self.name = ntuple.name if hasattr(ntuple, "name") else "Events"
        self.num_entries = int(ntuple.num_entries)
        form = ntuple.to_akform()
        self._columns = _columns(form[0] if isinstance(form, tuple) else form)

    def keys(self) -> list[str]:
        return list(self._columns)

    def column(self, name: str) -> Column:
        return self._columns[name]

    def arrays(self, branches, entry_start=None, entry_stop=None, how=dict, array_cache=None, **_):
        """The branches as ``{name: ak.Array}`` for ``entry_start:entry_stop``."""
        cols = {b: self._columns[b] for b in branches}
        paths = []
        for b, c in cols.items():
            if c.counter:
                # the length of any member gives the counts: take one the request reads anyway
                same = [o.path for o in cols.values() if o.jagged and o.path[0] == c.path[0]]
                member = (same or [o.path for o in self._columns.values()
                                   if o.jagged and o.path[0] == c.path[0]])[0]
                paths.append(member)
            else:
                paths.append(c.path)
        wanted = list(dict.fromkeys(".".join(p) for p in paths))
        data = self.ntuple.arrays(wanted, entry_start=entry_start, entry_stop=entry_stop,
                                  array_cache=array_cache)
        out = {}
        for (b, c), p in zip(cols.items(), paths):
            arr = data
            for part in p:
                arr = arr[part]
            if c.counter:
                arr = ak.Array(ak.to_numpy(ak.num(arr, axis=1)).astype(np.uint32))
            elif c.cast:
                arr = ak.Array(ak.to_numpy(arr).astype(np.uint32))
            out[b] = arr
        return out


def _columns(form) -> dict[str, Column]:
    """NanoAOD branch name -> :class:`Column` for the top-level record form of the RNTuple."""
    out: dict[str, Column] = {}
    derived: dict[str, Column] = {}
    for field, sub in zip(form.fields, form.contents):
        if isinstance(sub, ak.forms.NumpyForm) and "cardinality" in str(sub.form_key):
            # a projected RNTupleCardinality<std::uint32_t> (ROOT's importer, CMSSW): NanoAOD's UInt_t
            out[field] = Column((field,), False, np.dtype(np.uint32), cast=True, form="RNTupleCardinality")
        elif isinstance(sub, ak.forms.NumpyForm):
            out[field] = Column((field,), False, np.dtype(sub.primitive), form=str(sub.type))
        elif isinstance(sub, ak.forms.ListOffsetForm) and isinstance(sub.content, ak.forms.RecordForm):
            members = list(zip(sub.content.fields, sub.content.contents))
            if field.startswith("_collection"):     # RNTupleImporter: members keep the branch names
                names = [m for m, _ in members]
                prefix = names[0].split("_")[0] if names else field
            else:
                names = [f"{field}_{m}" for m, _ in members]
                prefix = field
            for name, (m, mform) in zip(names, members):
                out[name] = _leaf((field, m), True, mform)
            derived["n" + prefix] = Column((field,), False, np.dtype(np.uint32), counter=True)
        elif isinstance(sub, ak.forms.ListOffsetForm):
            out[field] = _leaf((field,), True, sub.content)
            if "_" not in field:                    # LHEPdfWeight and the like: counter nLHEPdfWeight
                derived["n" + field] = Column((field,), False, np.dtype(np.uint32), counter=True)
        elif isinstance(sub, ak.forms.RecordForm):  # a singleton record: MET.pt -> MET_pt
            for m, mform in zip(sub.fields, sub.contents):
                out[f"{field}_{m}"] = _leaf((field, m), False, mform)
        else:
            out[field] = Column((field,), False, None, form=str(sub.type))
    for name, c in derived.items():
        out.setdefault(name, c)                     # a stored counter field wins
    return out


def _leaf(path, jagged, form) -> Column:
    if isinstance(form, ak.forms.NumpyForm) and not form.inner_shape:
        return Column(tuple(path), jagged, np.dtype(form.primitive), form=str(form.type))
    return Column(tuple(path), jagged, None, form=str(form.type))
