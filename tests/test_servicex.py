"""ServiceX delivery of the AGC skim (spec §8.3, issue 7).

The integration tests run the real servicex 3.x client, unpatched, over real HTTP against a
ServiceX stand-in on loopback (tests/servers/servicex_standin.py) that executes the UprootRaw query
with uproot and stores results in a moto S3 server on loopback.
"""

from __future__ import annotations

import json
import pathlib
import time

import numpy as np
import pytest

from agc_ttbar import layout
from agc_ttbar.fileset import load_inputs
from agc_ttbar.remote import RemoteOptions, RemoteReadError
from agc_ttbar.servicex_delivery import (DELIVERED_TREE, SKIM_CUT, DeliveryError, build_spec, check_endpoint,
                                         deliver_fileset, delivered_inputs, sample_name, skim_branches,
                                         skim_query)
from servers import procs
from servers.workflow import histogram_contents, mock_run, rewrite_inputs, snakemake

TOKEN = "standin-refresh-token"


# ------------------------------------------------------------------------------------------------
# the query and the spec


def test_skim_query_matches_spec():
    sel = json.loads(skim_query(use_inference=False).generate_selection_string())
    assert len(sel) == 1
    q = sel[0]
    assert q["treename"] == {"Events": "servicex"}
    assert q["cut"] == SKIM_CUT
    # the AGC cut (spec §8.3), made strictly looser than the selection (servicex_delivery docstring)
    for part in ("(Electron_cutBased == 4)", "(Electron_sip3d < 4)", "(Muon_tightId != 0)",
                 "(Muon_pfRelIso04_all < 0.15)", "(Jet_pt > 20)", "((Jet_jetId & 4) != 0)",
                 "(Jet_btagCSVV2 > 0.5)", ">= 4", ">= 1"):
        assert part in q["cut"]
    assert "Muon_sip3d < 4" not in q["cut"] and "== 1" not in q["cut"] and "Jet_jetId == 6" not in q["cut"]
    base = set(q["filter_name"])
    assert {"Jet_qgl", "Muon_sip3d", "Jet_jetId", "run", "luminosityBlock", "event"} <= base
    assert not {"Electron_phi", "Muon_mass"} & base
    ml = set(json.loads(skim_query(use_inference=True).generate_selection_string())[0]["filter_name"])
    assert ml - base == {"Electron_phi", "Electron_mass", "Muon_phi", "Muon_mass"}
    assert skim_query(True).default_codegen == "uproot-raw"


def test_skim_jet_threshold_below_every_varied_selection_threshold():
    """A jet below SKIM_JET_PT cannot pass 30 GeV under any kinematic variation."""
    from agc_ttbar.servicex_delivery import SKIM_JET_PT
    from agc_ttbar.systematics import PT_RES_SIGMA, PT_SCALE_UP, uniform_from_hash
    from scipy.special import ndtri

    # the largest uniforms: top 53 hash bits all ones would round to u = 1.0 (an infinite factor)
    # and is clipped below 1; it and the next one give the largest factors
    extreme_u = uniform_from_hash(np.array([0, 2**64 - 1, 2**64 - 1 - 2**11], dtype=np.uint64))
    assert np.all((extreme_u > 0) & (extreme_u < 1))
    max_res = float(np.max(1.0 + PT_RES_SIGMA * ndtri(extreme_u)))
    assert 1.3 < max_res < 1.5
    assert SKIM_JET_PT * max(PT_SCALE_UP, max_res) < 30


def test_skim_keeps_every_branch_the_job_reads():
    from agc_ttbar.processing import branches_needed

    for variation in ("nominal", "scaleup"):
        for ml in (False, True):
            assert set(branches_needed(variation, ml)) <= set(skim_branches(ml)), (variation, ml)


def test_build_spec_one_sample_per_file(tmp_path):
    fileset = {"ttbar__nominal": {"files": [{"index": 0, "path": "root://h//a.root", "nevts": 5},
                                            {"index": 1, "path": "rel/b.root", "nevts": 7}]},
               "wjets__nominal": {"files": [{"index": 0, "path": "https://h/c.root", "nevts": 3}]}}
    spec = build_spec(fileset, use_inference=True, ignore_cache=True, delivery="LocalCache")
    names = [s["Name"] for s in spec["Sample"]]
    assert names == ["ttbar__nominal__00000", "ttbar__nominal__00001", "wjets__nominal__00000"]
    files = [s["Dataset"].files for s in spec["Sample"]]
    assert files[0] == ["root://h//a.root"] and files[2] == ["https://h/c.root"]
    assert pathlib.Path(files[1][0]).is_absolute() and files[1][0].endswith("rel/b.root")
    assert all(s["IgnoreLocalCache"] for s in spec["Sample"])
    assert spec["General"]["Delivery"] == "LocalCache"
    from servicex import ServiceXSpec

    ServiceXSpec(**spec)  # the client accepts it


def test_delivered_inputs_keeps_nevts_and_reports_failures():
    from servicex.servicex_client import GuardList

    fileset = {"ttbar__nominal": {"files": [{"index": 0, "path": "root://h//a.root", "nevts": 5},
                                            {"index": 1, "path": "root://h//b.root", "nevts": 7}]}}
    ok = {sample_name("ttbar__nominal", 0): GuardList(["/c/a.root"]),
          sample_name("ttbar__nominal", 1): GuardList(["https://s3/b.root?sig"])}
    inputs = delivered_inputs(fileset, ok)
    files = inputs["ttbar"]["nominal"]["files"]
    assert [f["path"] for f in files] == ["/c/a.root", "https://s3/b.root?sig"]
    assert [f["nevts"] for f in files] == [5, 7] and inputs["ttbar"]["nominal"]["nevts_total"] == 12
    assert all(f["tree_name"] == DELIVERED_TREE and f["skimmed"] for f in files)
    assert [f["source"] for f in files] == ["root://h//a.root", "root://h//b.root"]
    bad = {sample_name("ttbar__nominal", 0): GuardList(RuntimeError("transform failed: 1/1 files")),
           sample_name("ttbar__nominal", 1): GuardList([])}
    two = {sample_name("ttbar__nominal", 0): GuardList(["/c/a.root", "/c/a2.root"]),
           sample_name("ttbar__nominal", 1): GuardList(["/c/b.root"])}
    with pytest.raises(DeliveryError, match="expected 1 delivered file, got 2"):
        delivered_inputs(fileset, two)
    with pytest.raises(DeliveryError) as exc:
        delivered_inputs(fileset, bad)
    msg = str(exc.value)
    assert "root://h//a.root" in msg and "transform failed" in msg
    assert "(root://h//b.root): no delivered file" in msg


# ------------------------------------------------------------------------------------------------
# the stand-in and the real client


@pytest.fixture(scope="module")
def servicex_env(tmp_path_factory):
    moto = sx = None
    try:
        moto = procs.start_moto()
        sx = procs.start_servicex_standin(moto.url.split("//", 1)[1], token=TOKEN)
        cfg_dir = tmp_path_factory.mktemp("servicex-config")
        cfg = cfg_dir / "servicex.yaml"
        cfg.write_text(f"api_endpoints:\n  - name: standin\n    endpoint: {sx.url}\n    token: {TOKEN}\n")
        yield {"config": str(cfg), "url": sx.url, "server": sx, "moto": moto, "dir": cfg_dir}
    finally:
        procs.stop_all(sx, moto)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = procs.served_folder()
    xrd = nginx = None
    try:
        xrd = procs.start_xrootd(folder)
        nginx = procs.start_nginx(folder)
        yield {"folder": folder, "root": xrd.url, "http": nginx.url}
    finally:
        procs.stop_all(xrd, nginx)
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


def _skim_mask(arrays) -> np.ndarray:
    """The skim cut (servicex_delivery docstring), computed independently with numpy/awkward."""
    import awkward as ak

    a = arrays
    n_el = ak.sum((a.Electron_pt > 30) & (abs(a.Electron_eta) < 2.1) & (a.Electron_cutBased == 4)
                  & (a.Electron_sip3d < 4), axis=1)
    n_mu = ak.sum((a.Muon_pt > 30) & (abs(a.Muon_eta) < 2.1) & a.Muon_tightId & (a.Muon_pfRelIso04_all < 0.15), axis=1)
    jets = (a.Jet_pt > 20) & (abs(a.Jet_eta) < 2.4) & (a.Jet_jetId // 4 % 2 == 1)
    return ak.to_numpy(((n_el + n_mu) >= 1) & (ak.sum(jets, axis=1) >= 4)
                       & (ak.sum(jets & (a.Jet_btagCSVV2 > 0.5), axis=1) >= 1))


@pytest.mark.integration
@pytest.mark.parametrize("delivery", ["URLs", "LocalCache"])
def test_deliver_real_client_synthetic_and_real_file(servicex_env, served, tmp_path, delivery):
    """deliver() end to end; the delivered files hold exactly the events passing the skim, with
    every kept branch equal to the original."""
    import awkward as ak
    import uproot

    from agc_ttbar.remote import open_file

    from synthetic_nanoaod import make_events, write_nanoaod

    src = tmp_path / "synthetic.root"
    write_nanoaod(str(src), make_events(3000, seed=7))
    name = procs.publish(str(src), served["folder"], "sx/ttbar_mock.root")
    from conftest import data_path

    real = data_path("real", "nanoAOD_2015_CMS_Open_Data_ttbar.root")
    real_name = procs.publish(str(real), served["folder"], "sx/real.root")
    fileset = {"ttbar__nominal": {"files": [{"index": 0, "path": f"{served['root']}/{name}", "nevts": 123456}]},
               "wjets__nominal": {"files": [{"index": 0, "path": f"{served['http']}{real_name}", "nevts": 200}]}}
    t0 = time.monotonic()
    inputs = deliver_fileset(fileset, use_inference=True, config_path=servicex_env["config"],
                             cache_dir=str(tmp_path / "cache"), delivery=delivery, ignore_cache=True)
    elapsed = time.monotonic() - t0
    assert elapsed < 90
    for (process, original, nevts) in (("ttbar", src, 123456), ("wjets", real, 200)):
        entry = inputs[process]["nominal"]["files"][0]
        assert entry["nevts"] == nevts and entry["tree_name"] == "servicex" and entry["skimmed"]
        if delivery == "URLs":
            assert entry["path"].startswith(servicex_env["moto"].url + "/")
        else:
            assert pathlib.Path(entry["path"]).is_file() and str(tmp_path / "cache") in entry["path"]
        branches = skim_branches(True)
        with uproot.open(original) as f:
            orig = f["Events"].arrays(branches)
        mask = _skim_mask(orig)
        tree = open_file(entry["path"], RemoteOptions(10, 2))["servicex"]
        assert set(tree.keys()) >= set(branches)
        got = tree.arrays(branches)
        assert len(got) == int(mask.sum())
        assert 0 < len(got) < len(orig)  # the real file: a few events pass (none the regions)
        for b in branches:
            assert ak.to_list(got[b]) == ak.to_list(orig[b][mask]), b


@pytest.mark.integration
def test_deliver_missing_file_names_url(servicex_env, served, tmp_path):
    url = f"{served['http']}sx/missing.root"
    fileset = {"ttbar__nominal": {"files": [{"index": 0, "path": url, "nevts": 10}]}}
    with pytest.raises(DeliveryError) as exc:
        deliver_fileset(fileset, use_inference=False, config_path=servicex_env["config"],
                        cache_dir=str(tmp_path / "cache"), ignore_cache=True)
    msg = str(exc.value)
    assert "ttbar__nominal__00000" in msg and url in msg and "failed" in msg


@pytest.mark.integration
def test_unreachable_endpoint_fails_fast_with_url(tmp_path):
    port = procs.free_port()
    cfg = tmp_path / "servicex.yaml"
    cfg.write_text(f"api_endpoints:\n  - name: dead\n    endpoint: http://127.0.0.1:{port}\n    token: x\n")
    t0 = time.monotonic()
    with pytest.raises(RemoteReadError) as exc:
        deliver_fileset({"ttbar__nominal": {"files": [{"index": 0, "path": "root://h//a.root", "nevts": 1}]}},
                        use_inference=False, config_path=str(cfg), cache_dir=str(tmp_path / "c"),
                        remote_options=RemoteOptions(2, 2, 0.1))
    assert time.monotonic() - t0 < 15
    assert f"http://127.0.0.1:{port}/servicex" in str(exc.value) and "connection refused" in str(exc.value)
    with pytest.raises(DeliveryError, match="not in"):
        check_endpoint(str(cfg), "nosuchbackend")
    with pytest.raises(DeliveryError, match="does not exist"):
        deliver_fileset({}, use_inference=False, config_path=str(tmp_path / "none.yaml"))


@pytest.mark.slow
@pytest.mark.integration
def test_workflow_servicex_histograms_equal_direct(servicex_env, served, tmp_path_factory):
    """servicex.enabled: the workflow delivers the skim of the mock files (served over http and
    root://), processes the delivered files, and its histograms.root equals the direct run."""
    mock = mock_run(tmp_path_factory.getbasetemp())
    wd = mock["workdir"]

    def to_url(process, variation, i, path):
        src = pathlib.Path(path)
        src = src if src.is_absolute() else wd / src
        rel = procs.publish(str(src), served["folder"], f"sxwf/{process}__{variation}/{i:05d}.root")
        return f"{served['root']}/{rel}" if process == "ttbar" else f"{served['http']}{rel}"

    inputs = rewrite_inputs(load_inputs(str(mock["inputs"])), to_url)
    (wd / "inputs_sx.json").write_text(json.dumps(inputs, indent=1))
    name = "results_sx"
    cfg = {"dataset": "agc", "inputs": str(wd / "inputs_sx.json"), "use_inference": False, "results_dir": name,
           "servicex": {"enabled": True, "config_path": servicex_env["config"], "ignore_cache": True},
           "processing": {"remote_timeout_s": 20, "remote_retries": 2}}
    # the dry run already shows the whole DAG: 1 delivery + the 9 per-file jobs
    dry = snakemake(wd, cfg, [layout.histograms(name)], "-n", "--quiet", "rules", cores=1)
    assert "servicex_deliver" in dry.stdout and "process_file" in dry.stdout
    snakemake(wd, cfg, [layout.histograms(name), layout.cutflow(name)])
    assert histogram_contents(wd / layout.histograms(name)) == histogram_contents(mock["histograms"])
    delivered = json.loads((wd / layout.servicex_inputs(name)).read_text())
    fileset = json.loads((wd / layout.fileset(name)).read_text())
    original = json.loads((mock["workdir"] / layout.fileset("results_mock")).read_text())
    for key, sample in fileset.items():
        assert sample["nevts_total"] == original[key]["nevts_total"]  # weights from the original nevts
        assert sample["weight"] == original[key]["weight"]
        for f in sample["files"]:
            assert f["tree_name"] == "servicex" and f["path"].startswith(servicex_env["moto"].url)
    n_files = sum(len(s["files"]) for v in delivered.values() for s in v.values())
    assert n_files == 9
    # fewer events were read than the originals hold: the jobs processed the skim
    cut = json.loads((wd / layout.cutflow(name)).read_text())
    cut_direct = json.loads((mock["workdir"] / layout.cutflow("results_mock")).read_text())
    from test_remote import _raw_cutflow

    n_skim = n_direct = 0
    for key in fileset:
        skim, direct = _raw_cutflow(cut, key), _raw_cutflow(cut_direct, key)
        assert skim["steps"]["all"] <= direct["steps"]["all"]
        n_skim, n_direct = n_skim + skim["steps"]["all"], n_direct + direct["steps"]["all"]
        assert skim["steps"]["4j1b"] == direct["steps"]["4j1b"]
        assert skim["steps"]["4j2b"] == direct["steps"]["4j2b"]
    assert n_skim < n_direct


@pytest.mark.slow
@pytest.mark.integration
def test_workflow_servicex_with_ml_equals_direct(servicex_env, tmp_path_factory):
    """servicex.enabled with the default use_inference: training reads the original files (they
    hold GenPart), processing the delivered skims; histograms.root and histograms_ml.root equal
    the run without ServiceX on the same inputs bin for bin. The ServiceX run is the default
    target, as a user runs it: through the fit, the ML workspace, the plots and the report pieces."""
    from servers.workflow import copy_workflow, require_workflow

    from agc_ttbar.ml import dataset

    wd = copy_workflow(tmp_path_factory.mktemp("sx-ml") / "wf")
    require_workflow(wd)
    # muons too (the mock default has none), so the skim's muon cut is exercised
    small = {"mock": {"files_per_sample": 1, "events_per_file": 2000, "compression": "ZLIB:1",
                      "muon_tight_fraction": 0.5, "events_per_file_overrides": {"ttbar__nominal": 6000}},
             "ml": {"compare_models": ["bdt"], "max_train_events": 2000, "threads": 1}}
    direct = dict(small, dataset="mock", results_dir="results_direct")
    snakemake(wd, direct, [layout.histograms("results_direct"), layout.histograms_ml("results_direct"),
                           layout.cutflow("results_direct")])
    name = "results_sx"
    sx = dict(small, dataset="agc", inputs=str(wd / layout.mock_inputs("results_direct")), results_dir=name,
              servicex={"enabled": True, "config_path": servicex_env["config"], "ignore_cache": True},
              processing={"remote_timeout_s": 20, "remote_retries": 2})
    dry = snakemake(wd, sx, [], "-n", "--quiet", "rules", cores=1)     # the default target
    for rule in ("servicex_deliver", "ml_training_data", "ml_train_bdt", "fit", "ml_workspace"):
        assert rule in dry.stdout, (rule, dry.stdout)
    assert "generate_mock_file" not in dry.stdout
    snakemake(wd, sx, [])
    fit = json.loads((wd / layout.fit_results(name)).read_text())
    assert fit["converged"] and 0.5 < fit["poi"]["value"] < 1.5, fit["poi"]
    assert (wd / layout.workspace_ml(name)).is_file()
    for path in (layout.histograms, layout.histograms_ml):
        got, ref = histogram_contents(wd / path(name)), histogram_contents(wd / path("results_direct"))
        assert got.keys() == ref.keys() and len(got) > 20
        assert got == ref, [k for k in ref if got.get(k) != ref[k]][:5]
    # processing read the delivered skims, training the original files
    fileset = json.loads((wd / layout.fileset(name)).read_text())
    assert all(f["path"].startswith(servicex_env["moto"].url) and f["tree_name"] == "servicex"
               for s in fileset.values() for f in s["files"])
    _, summary = dataset.load(str(wd / layout.ml_training_data(name)))
    sources = [f["source"] for f in fileset["ttbar__nominal"]["files"]]
    assert summary["files"] == sources[:len(summary["files"])] and summary["n_even"] > 10
    assert not any("://" in f for f in summary["files"])
    cut = json.loads((wd / layout.cutflow(name)).read_text())
    cut_direct = json.loads((wd / layout.cutflow("results_direct")).read_text())
    from test_remote import _raw_cutflow

    for key in fileset:   # the mock files are pre-filtered: the skim may keep all of a sample
        skim, full = _raw_cutflow(cut, key), _raw_cutflow(cut_direct, key)
        assert skim["steps"]["all"] <= full["steps"]["all"], key
        for step in ("4j1b", "4j2b"):
            assert skim["steps"][step] == full["steps"][step], (key, step)
    assert sum(_raw_cutflow(cut_direct, k)["single"]["exactly_1l_muon"] for k in fileset) > 100


#: The AGC's uproot-raw cut (spec §8.3), verbatim: not strictly looser than the selection.
AGC_CUT = (
    "((count_nonzero((Electron_pt > 30) & (abs(Electron_eta) < 2.1) & (Electron_cutBased == 4) "
    "& (Electron_sip3d < 4), axis=1) + count_nonzero((Muon_pt > 30) & (abs(Muon_eta) < 2.1) "
    "& (Muon_tightId) & (Muon_pfRelIso04_all < 0.15), axis=1)) == 1) "
    "& (count_nonzero((Jet_pt > 25) & (abs(Jet_eta) < 2.4) & (Jet_jetId == 6), axis=1) >= 4) "
    "& (count_nonzero((Jet_pt > 25) & (abs(Jet_eta) < 2.4) & (Jet_jetId == 6) "
    "& (Jet_btagCSVV2 > 0.5), axis=1) >= 1)"
)


def _cut_mask(arrays: dict, cut: str) -> np.ndarray:
    """Evaluate a ServiceX uproot-raw cut on arrays (reducers default to axis=1, as ServiceX)."""
    import awkward as ak

    names = dict(arrays, count_nonzero=lambda x, axis=1: ak.count_nonzero(x, axis=axis), abs=abs)
    return ak.to_numpy(eval(cut, {"__builtins__": {}}, names))  # noqa: S307 - our own constant


def test_skim_keeps_every_event_any_variation_selects():
    """Histograms (every kinematic variation, ML features) of the events passing SKIM_CUT equal
    those of all events; the AGC's verbatim cut loses selected events on the same input."""
    from handmade import FakeScorer
    from synthetic_nanoaod import make_events

    from agc_ttbar.processing import FileProcessor, SampleInfo, branches_needed

    ev = make_events(20000, seed=17, muon_tight_fraction=0.7)
    import awkward as ak

    arrays = {"run": ev["run"], "luminosityBlock": ev["luminosityBlock"], "event": ev["event"]}
    for coll in ("Jet", "Electron", "Muon"):
        for field, flat in ev[coll].items():
            arrays[f"{coll}_{field}"] = ak.unflatten(flat, ev["n" + coll])
    arrays = {k: v for k, v in arrays.items() if k in set(branches_needed("nominal", True))}
    info = SampleInfo.from_key("ttbar__nominal", 1.0, 20000)

    def hists(mask=None):
        proc = FileProcessor(info, scorer=FakeScorer())
        proc.process_chunk(arrays if mask is None else {k: v[mask] for k, v in arrays.items()})
        return {k: (h.sumw.tolist(), h.sumw2.tolist()) for k, h in proc.hists.hists.items()}

    full = hists()
    keep = _cut_mask(arrays, SKIM_CUT)
    assert 0 < keep.sum() < len(keep)
    assert hists(keep) == full
    agc = hists(_cut_mask(arrays, AGC_CUT))
    assert agc != full   # the reason SKIM_CUT is not the AGC's cut
