"""ServiceX delivery of the AGC skim (spec §8.3) and the input list that points at the results.

The workflow submits one ServiceX ``Sample`` per input file (named ``{process}__{variation}__{index}``),
each an ``UprootRaw`` query with the AGC skim cut on tree ``Events`` written to tree ``servicex``.
One sample per file makes the delivered files map 1:1 onto the original files, whatever names the
ServiceX object store gives them, so:

* the per-file jobs of the DAG are the same jobs as without ServiceX (the DAG, and ``snakemake -n``,
  are known at parse time from the original input list);
* each delivered file keeps the ``nevts`` of its original file, so the weight denominators
  (``nevts_total``, spec §1.3) are unchanged.

The result is an input list in the ``nanoaod_inputs.json`` format whose file entries carry
``path`` (the delivered file or URL), ``nevts`` (original count), ``tree_name: "servicex"``,
``skimmed: true`` (the entry count is not ``nevts``) and ``source`` (the original URL).

The skim keeps every branch the per-file job reads: the AGC list, the ML branches with inference,
and the event identity (``run``, ``luminosityBlock``, ``event``) used by the deterministic jet pT
smearing. ML training does not read the skim: it needs GenPart, so it reads each delivered file's
``source`` (the original file) through the same reading layer.

**The cut is strictly looser than the selection**, so every event that any kinematic variation
selects is delivered and the histograms from delivered files equal those from the original files
bin for bin. The AGC's cut (spec §8.3) is not: its lepton count ``== 1`` without ``Muon_sip3d < 4``
drops events with one selected lepton plus a muon that fails only sip3d, ``Jet_jetId == 6`` drops
jets with jetId 4, 5 or 7 that the selection's ``(jetId & 4) != 0`` keeps, and 25 GeV jets can pass
30 GeV in ``pt_res_up`` (factors up to 1.41). Here:

* leptons: at least one electron passing the selection or muon passing it without sip3d (the
  selection's exactly one implies it); ``Muon_tightId != 0`` (a flag of any integer type);
* jets: ``(Jet_jetId & 4) != 0``, ``|eta| < 2.4`` and pT > :data:`SKIM_JET_PT` GeV, below
  30 GeV divided by the largest factor of every kinematic variation (checked by the tests);
  >= 4 such jets and >= 1 of them b-tagged (both regions need it).
"""

from __future__ import annotations

import json
import os
from typing import Iterable, Mapping

from .atomic import atomic_write_text
from .remote import RemoteOptions, is_remote, local_path, with_retries
from .samples import split_sample_key

#: Output tree name of the AGC delivery (``{'treename': {'Events': 'servicex'}}``).
DELIVERED_TREE = "servicex"

#: Jet pT threshold of the skim (GeV): 30 / 20 = 1.5 exceeds every kinematic variation's factor
#: (pt_scale_up 1.03, pt_res_up at most 1 + 0.05 * 8.3 with 53-bit uniforms).
SKIM_JET_PT = 20

_SKIM_JET = f"(Jet_pt > {SKIM_JET_PT}) & (abs(Jet_eta) < 2.4) & ((Jet_jetId & 4) != 0)"

#: The skim cut: the AGC uproot-raw cut (spec §8.3) made strictly looser than the selection.
SKIM_CUT = (
    "((count_nonzero((Electron_pt > 30) & (abs(Electron_eta) < 2.1) & (Electron_cutBased == 4) "
    "& (Electron_sip3d < 4), axis=1) + count_nonzero((Muon_pt > 30) & (abs(Muon_eta) < 2.1) "
    "& (Muon_tightId != 0) & (Muon_pfRelIso04_all < 0.15), axis=1)) >= 1) "
    f"& (count_nonzero({_SKIM_JET}, axis=1) >= 4) "
    f"& (count_nonzero({_SKIM_JET} & (Jet_btagCSVV2 > 0.5), axis=1) >= 1)"
)

#: Branches of the AGC skim without inference (spec §8.3).
SKIM_BRANCHES = (
    "Electron_pt", "Electron_eta", "Electron_cutBased", "Electron_sip3d",
    "Muon_pt", "Muon_eta", "Muon_tightId", "Muon_sip3d", "Muon_pfRelIso04_all",
    "Jet_mass", "Jet_pt", "Jet_eta", "Jet_phi", "Jet_qgl", "Jet_btagCSVV2", "Jet_jetId",
)
#: Added with USE_INFERENCE (spec §8.3).
SKIM_ML_BRANCHES = ("Electron_phi", "Electron_mass", "Muon_phi", "Muon_mass", "event")
#: Added here: the event identity the per-file job uses for the deterministic pT smearing.
SKIM_ID_BRANCHES = ("run", "luminosityBlock", "event")


class DeliveryError(RuntimeError):
    """ServiceX did not deliver what the workflow needs; the message names samples and files."""


def skim_branches(use_inference: bool) -> list[str]:
    """The ``filter_name`` list of the skim query."""
    out = list(SKIM_BRANCHES) + (list(SKIM_ML_BRANCHES) if use_inference else []) + list(SKIM_ID_BRANCHES)
    return list(dict.fromkeys(out))


def skim_query(use_inference: bool, tree_name: str = "Events"):
    """The AGC ``UprootRaw`` skim query (servicex 3 client)."""
    from servicex import query

    return query.UprootRaw([{
        "treename": {tree_name: DELIVERED_TREE},
        "cut": SKIM_CUT,
        "filter_name": skim_branches(use_inference),
    }])


def sample_name(key: str, index: int) -> str:
    """ServiceX sample (transform title) of one input file."""
    return f"{key}__{index:05d}"


def submission_path(path: str) -> str:
    """The path ServiceX is asked to read: URLs unchanged, local paths made absolute."""
    return path if is_remote(path) else os.path.abspath(local_path(path))


def build_spec(fileset: Mapping, use_inference: bool, ignore_cache: bool = False,
               delivery: str = "URLs", tree_name: str = "Events") -> dict:
    """The ``deliver`` specification: one sample per input file of ``fileset``."""
    from servicex import dataset

    q = skim_query(use_inference, tree_name)
    samples = []
    for key, sample in fileset.items():
        for entry in sample["files"]:
            samples.append({
                "Name": sample_name(key, entry["index"]),
                "Dataset": dataset.FileList([submission_path(entry["path"])]),
                "Query": q,
                "IgnoreLocalCache": ignore_cache,
            })
    return {"General": {"Delivery": delivery, "OutputFormat": "root-ttree"}, "Sample": samples}


def _failure(result) -> str | None:
    """The cause of a failed sample in a ``deliver`` result, or None if it has files."""
    try:
        list(result)
    except Exception as err:  # noqa: BLE001 - GuardList re-raises the delivery exception
        inner = getattr(err, "_exc", err)
        return f"{type(inner).__name__}: {' '.join(str(inner).split())[:400]}"
    return None


def delivered_inputs(fileset: Mapping, results: Mapping[str, Iterable[str]]) -> dict:
    """An input list (nanoaod_inputs.json format) pointing at the delivered files.

    Raises :class:`DeliveryError` listing every input file without exactly one delivered file.
    """
    inputs: dict = {}
    problems = []
    for key, sample in fileset.items():
        process, variation = split_sample_key(key)
        files = []
        for entry in sample["files"]:
            name = sample_name(key, entry["index"])
            if name not in results:
                problems.append(f"{name} ({entry['path']}): no result returned")
                continue
            cause = _failure(results[name])
            if cause:
                problems.append(f"{name} ({entry['path']}): {cause}")
                continue
            delivered = list(results[name])
            if not delivered:
                problems.append(f"{name} ({entry['path']}): no delivered file (the ServiceX transform "
                                "of this file failed or returned nothing; see the client log above)")
                continue
            if len(delivered) != 1:
                problems.append(f"{name} ({entry['path']}): expected 1 delivered file, got "
                                f"{len(delivered)}")
                continue
            files.append({"path": str(delivered[0]), "nevts": int(entry["nevts"]),
                          "tree_name": DELIVERED_TREE, "skimmed": True, "source": entry["path"]})
        inputs.setdefault(process, {})[variation] = {
            "nevts_total": sum(f["nevts"] for f in sample["files"]), "files": files}
    if problems:
        raise DeliveryError("ServiceX did not deliver every input file:\n  " + "\n  ".join(problems))
    return inputs


def deliver_fileset(fileset: Mapping, *, use_inference: bool, config_path: str | None = None,
                    backend: str | None = None, cache_dir: str | None = None,
                    ignore_cache: bool = False, delivery: str = "URLs", tree_name: str = "Events",
                    progress: bool = False, remote_options: RemoteOptions | None = None) -> dict:
    """Run ``servicex.deliver`` for ``fileset`` and return the delivered input list."""
    import servicex
    from servicex.servicex_client import ProgressBarFormat

    if config_path is not None and not os.path.exists(config_path):
        raise DeliveryError(f"ServiceX configuration {config_path} does not exist "
                            "(config key servicex.config_path)")
    check_endpoint(config_path, backend, remote_options)
    spec = build_spec(fileset, use_inference, ignore_cache, delivery, tree_name)
    kwargs = {"config_path": config_path, "servicex_name": backend,
              "progress_bar": ProgressBarFormat.expanded if progress else ProgressBarFormat.none}
    if cache_dir is not None:
        os.makedirs(cache_dir, exist_ok=True)
        kwargs["cache_dir"] = os.path.abspath(cache_dir)
    try:
        results = servicex.deliver(spec, **kwargs)
    except Exception as err:  # noqa: BLE001 - endpoint unreachable, auth, bad config, ...
        raise DeliveryError(f"ServiceX delivery failed before any result ({_endpoint(config_path, backend)}): "
                            f"{type(err).__name__}: {err}") from err
    return delivered_inputs(fileset, results)


def endpoint_url(config_path: str | None, backend: str | None) -> tuple[str, str]:
    """``(url, description)`` of the ServiceX endpoint the client will use (servicex.yaml)."""
    from servicex.configuration import Configuration

    try:
        cfg = Configuration.read(config_path)
    except Exception as err:  # noqa: BLE001 - NameError when no file is found
        raise DeliveryError(f"no usable ServiceX configuration (servicex.yaml / .servicex"
                            f"{' at ' + config_path if config_path else ''}): {err}") from err
    eps = cfg.endpoint_dict()
    name = backend or cfg.default_endpoint or cfg.api_endpoints[0].name
    if name not in eps:
        raise DeliveryError(f"ServiceX backend {name!r} is not in {cfg.config_file} "
                            f"(it has: {', '.join(eps)}; config key servicex.backend)")
    return eps[name].endpoint, f"endpoint {name} = {eps[name].endpoint} from {cfg.config_file}"


def _endpoint(config_path: str | None, backend: str | None) -> str:
    try:
        return endpoint_url(config_path, backend)[1]
    except DeliveryError as err:
        return str(err)


def check_endpoint(config_path: str | None, backend: str | None,
                   options: RemoteOptions | None = None) -> str:
    """Fail fast, naming the URL, when the ServiceX endpoint does not answer HTTP at all.

    The servicex client retries a dead endpoint with long back-offs (~90 s); this check uses the
    workflow's own timeout and bounded retries. Any HTTP answer (even 401) counts as reachable.
    """
    import urllib.error
    import urllib.request

    url, _ = endpoint_url(config_path, backend)
    info = url.rstrip("/") + "/servicex"
    options = options or RemoteOptions()

    def _get():
        try:
            with urllib.request.urlopen(info, timeout=options.timeout_s) as resp:
                return resp.status
        except urllib.error.HTTPError as err:  # the server answered
            return err.code
        except urllib.error.URLError as err:
            reason = err.reason if isinstance(err.reason, BaseException) else OSError(str(err.reason))
            raise reason from err

    with_retries(_get, info, options, action="reach ServiceX at")
    return url


def write_inputs(inputs: dict, path: str) -> None:
    atomic_write_text(path, json.dumps(inputs, indent=1) + "\n")
