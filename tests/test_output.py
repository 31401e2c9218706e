"""histograms.root / histograms_ml.root (spec §6.3, §7.1) and the merge / cutflow scripts."""

import importlib.util
import json
import os
import pathlib

import numpy as np
import pytest
import uproot

from agc_ttbar.histograms import ExactHistogram, HistogramSet
from agc_ttbar.ml.features import FEATURE_NAMES
from agc_ttbar.output import ML_OFFSET, write_histograms, write_histograms_ml
from agc_ttbar.processing import EDGES, SampleInfo, process_file
from agc_ttbar.samples import SAMPLES, sample_key, xsec_weight

import synthetic_nanoaod as synth
from handmade import FakeScorer

QUIET = lambda msg: None  # noqa: E731
REPO = pathlib.Path(__file__).resolve().parent.parent


def load_script(name):
    spec = importlib.util.spec_from_file_location(f"workflow_script_{name}", REPO / "workflow_scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def expected_keys():
    """The 124 keys of spec §7.1."""
    keys = []
    for region in ("4j1b", "4j2b"):
        for process in ("ttbar", "single_top_s_chan", "single_top_t_chan", "single_top_tW", "wjets"):
            keys.append(f"{region}_{process}")
            keys += [f"{region}_{process}_{v}" for v in ("pt_scale_up", "pt_res_up")]
            keys += [f"{region}_{process}_btag_var_{i}_{d}" for i in range(4) for d in ("up", "down")]
        keys += [f"{region}_ttbar_{v}" for v in ("scaleup", "scaledown", "ME_var", "PS_var")]
        keys += [f"{region}_wjets_scale_var_{d}" for d in ("up", "down")]
        keys.append(f"{region}_pseudodata")
    return sorted(keys)


@pytest.fixture(scope="module")
def workflow(tmp_path_factory):
    """Nine synthetic samples (two files for ttbar nominal) through process -> merge -> write."""
    tmp = tmp_path_factory.mktemp("wf")
    fileset, partials = {}, {}
    for n, (process, variation) in enumerate(SAMPLES):
        key = sample_key(process, variation)
        n_files = 2 if key == "ttbar__nominal" else 1
        files = []
        for i in range(n_files):
            path = tmp / "data" / key / f"{i}.root"
            path.parent.mkdir(parents=True, exist_ok=True)
            synth.write_nanoaod(str(path), synth.make_events(2500, seed=100 + 10 * n + i, first_event=1 + 5000 * i))
            files.append({"index": i, "path": str(path), "nevts": 2500})
        nevts = 2500 * n_files * 40
        fileset[key] = {"process": process, "variation": variation, "nevts_total": nevts,
                        "weight": xsec_weight(process, nevts), "files": files}
    (tmp / "fileset.json").write_text(json.dumps(fileset))
    proc = load_script("process_file")
    for key, s in fileset.items():
        partials[key] = []
        for f in s["files"]:
            out = tmp / "partial" / key / f"{f['index']:05d}.npz"
            assert proc.main(["--fileset", str(tmp / "fileset.json"), "--sample", key, "--index",
                              str(f["index"]), "--output", str(out), "--chunksize", "1000"]) == 0
            partials[key].append(str(out))
    merge = load_script("merge_sample")
    merged = []
    for key, paths in partials.items():
        out = tmp / "merged" / f"{key}.npz"
        assert merge.main(["--sample", key, "--inputs", *paths, "--output", str(out)]) == 0
        merged.append(str(out))
    assert load_script("write_histograms").main(["--inputs", *merged, "--output", str(tmp / "histograms.root")]) == 0
    assert load_script("cutflow").main(["--inputs", *merged, "--output", str(tmp / "cutflow.json"),
                                        "--table", str(tmp / "cutflow.md")]) == 0
    return {"tmp": tmp, "fileset": fileset, "partials": partials, "merged": merged}


def test_all_124_keys(workflow):
    with uproot.open(workflow["tmp"] / "histograms.root") as f:
        keys = sorted(f.keys(cycle=False))
        assert keys == expected_keys() and len(keys) == 124
        assert set(f.classnames().values()) == {"TH1D"}


def test_th1d_contents_variances_and_pseudodata(workflow):
    total = HistogramSet()
    for p in workflow["merged"]:
        total += HistogramSet.load(p)[0]
    with uproot.open(workflow["tmp"] / "histograms.root") as f:
        for key in ("4j1b_ttbar", "4j2b_wjets_btag_var_3_down", "4j1b_ttbar_ME_var", "4j2b_single_top_tW_pt_res_up"):
            h = f[key]
            assert np.array_equal(h.axis().edges(), np.linspace(50, 550, 26))
            assert np.array_equal(h.values(flow=True), total.hists[key].values(flow=True))
            assert np.array_equal(h.variances(flow=True), total.hists[key].variances(flow=True))
        for region in ("4j1b", "4j2b"):
            me, ps, wj = (total.hists[f"{region}_{k}"] for k in ("ttbar_ME_var", "ttbar_PS_var", "wjets"))
            pd = f[f"{region}_pseudodata"]
            assert np.allclose(pd.values(flow=True),
                               (me.values(flow=True) + ps.values(flow=True)) / 2 + wj.values(flow=True), rtol=1e-14)
            assert np.allclose(pd.variances(flow=True), (me.variances(flow=True) + ps.variances(flow=True)) / 4
                               + wj.variances(flow=True), rtol=1e-14)
    # weights: every nominal bin is an integer multiple of the sample weight
    w = workflow["fileset"]["ttbar__nominal"]["weight"]
    v = total.hists["4j2b_ttbar"].values(flow=True) / w
    assert np.allclose(v, np.round(v), rtol=0, atol=1e-9)


def test_merge_equals_sum_of_partials_and_cutflow(workflow):
    parts = [HistogramSet.load(p) for p in workflow["partials"]["ttbar__nominal"]]
    merged, meta = HistogramSet.load(str(workflow["tmp"] / "merged" / "ttbar__nominal.npz"))
    for key, h in merged.hists.items():
        s = sum((p[0].hists[key] for p in parts[1:]), parts[0][0].hists[key].copy())
        assert np.array_equal(s.sumw, h.sumw)
    assert meta["n_files"] == 2 and meta["nevents"] == 5000
    cf = json.loads((workflow["tmp"] / "cutflow.json").read_text())["samples"]
    assert [e["sample"] for e in cf] == [sample_key(*s) for s in SAMPLES]
    tt = cf[0]
    assert tt["raw"]["steps"]["all"] == 5000
    assert tt["raw"]["steps"]["4j1b"] == sum(p[1]["cutflow"]["steps"]["4j1b"] for p in parts)
    assert np.isclose(tt["weighted"]["steps"]["4j1b"], tt["raw"]["steps"]["4j1b"] * tt["weight"])
    # raw 4j1b count = nominal histogram sum / weight
    assert np.isclose(merged.hists["4j1b_ttbar"].values(flow=True).sum() / tt["weight"], tt["raw"]["steps"]["4j1b"])
    table = (workflow["tmp"] / "cutflow.md").read_text()
    assert "| ttbar__nominal | 5,000 (" in table and "exactly 1 lepton" in table


def test_one_job_samples_need_no_merge(workflow, tmp_path):
    """What the DAG gives write_histograms and cutflow (rules/common.smk sample_histograms): a
    sample of one per-file job passes its partial, unmerged. The outputs are byte-identical to
    those from every sample merged, and the partial reads as the same sample-level metadata."""
    from agc_ttbar.histograms import load_sample

    inputs = [paths[0] if len(paths) == 1 else str(workflow["tmp"] / "merged" / f"{key}.npz")
              for key, paths in workflow["partials"].items()]
    assert sum(p.endswith(f"{os.sep}00000.npz") for p in inputs) == len(inputs) - 1   # ttbar: merged
    out = {name: str(tmp_path / name) for name in ("histograms.root", "cutflow.json", "cutflow.md")}
    assert load_script("write_histograms").main(["--inputs", *inputs, "--output", out["histograms.root"]]) == 0
    assert load_script("cutflow").main(["--inputs", *inputs, "--output", out["cutflow.json"],
                                        "--table", out["cutflow.md"]]) == 0
    for name, path in out.items():
        assert pathlib.Path(path).read_bytes() == (workflow["tmp"] / name).read_bytes(), name
    key = "wjets__nominal"
    (part, meta_p), (merged, meta_m) = (load_sample(p) for p in (workflow["partials"][key][0],
                                                                  str(workflow["tmp"] / "merged" / f"{key}.npz")))
    drop = {"process_s", "peak_rss_mb_max"}   # measurements of the run
    assert {k: v for k, v in meta_p.items() if k not in drop} == {k: v for k, v in meta_m.items() if k not in drop}
    assert all(np.array_equal(part.hists[k].sumw, merged.hists[k].sumw) for k in merged.hists)


def test_merge_rejects_other_samples(workflow, capsys):
    merge = load_script("merge_sample")
    rc = merge.main(["--sample", "wjets__nominal", "--inputs", workflow["partials"]["ttbar__nominal"][0],
                     "--output", str(workflow["tmp"] / "x.npz")])
    assert rc == 1 and "other samples" in capsys.readouterr().err


def test_empty_histograms_and_missing_pseudodata_inputs(tmp_path):
    hs = HistogramSet()
    hs.get("4j1b_ttbar", EDGES).fill(np.array([100.0, 700.0]), 2.0)
    hs.get("4j1b_wjets", EDGES).fill(np.array([600.0, 10.0]), 3.0)        # flow only: in-range sum 0
    hs.get("4j2b_ttbar_ME_var", EDGES).fill(np.array([100.0]), 1.0)
    hs.get("4j2b_ttbar_PS_var", EDGES).fill(np.array([120.0]), 1.0)
    hs.get("4j2b_wjets", EDGES).fill(np.array([555.0]), 1.0)             # overflow only
    keys = write_histograms(hs, str(tmp_path / "h.root"))
    assert keys == ["4j1b_ttbar", "4j2b_ttbar_ME_var", "4j2b_ttbar_PS_var"]   # no pseudodata (wjets empty)
    with uproot.open(tmp_path / "h.root") as f:
        assert f["4j1b_ttbar"].values(flow=True)[-1] == 2.0   # overflow kept


def test_ml_file_offset_keys_and_pseudodata(tmp_path):
    hs = HistogramSet()
    samples = [("ttbar__nominal", 1.5), ("ttbar__ME_var", 1.25), ("ttbar__PS_var", 1.75), ("wjets__nominal", 40.0)]
    path = tmp_path / "ev.root"
    synth.write_nanoaod(str(path), synth.make_events(3000, seed=9))
    for key, w in samples:
        part, _ = process_file(str(path), SampleInfo.from_key(key, w, 1000), scorer=FakeScorer(), log=QUIET)
        hs += part
    # a feature histogram with entries only outside its range is not written
    only_flow = ExactHistogram(np.linspace(0, 6, 26))
    only_flow.fill(np.array([7.0]), 1.0)
    hs.hists["deltar_w1w2_single_top_tW"] = only_flow
    keys = write_histograms_ml(hs, str(tmp_path / "ml.root"))
    for name in FEATURE_NAMES:
        assert f"{name}_ttbar" in keys and f"{name}_ttbar_btag_var_0_up" in keys and f"{name}_pseudodata" in keys
        assert f"{name}_wjets_scale_var_down" in keys and f"{name}_ttbar_ME_var" in keys
    assert "deltar_w1w2_single_top_tW" not in keys
    assert not any(k.startswith("4j") for k in keys)
    assert len(keys) == 20 * (11 + 13 + 2 + 1)
    with uproot.open(tmp_path / "ml.root") as f:
        h, exact = f["mass_w1w2_ttbar"], hs.hists["mass_w1w2_ttbar"]
        assert np.allclose(h.values(flow=True), exact.values(flow=True) + ML_OFFSET, rtol=1e-15, atol=0)
        assert np.allclose(h.variances(flow=True), exact.variances(flow=True) + ML_OFFSET**2, rtol=1e-15, atol=0)
        assert np.allclose(h.axis().edges(), np.linspace(50, 300, 26))
        pd = f["mass_w1w2_pseudodata"].values(flow=True)
        parts = [hs.hists[f"mass_w1w2_{k}"].values(flow=True) + ML_OFFSET for k in ("ttbar_ME_var", "ttbar_PS_var", "wjets")]
        assert np.allclose(pd, (parts[0] + parts[1]) / 2 + parts[2], rtol=1e-14)


# ------------------------------------------------------------------------------------------------
# Reproducible ROOT files: output.py replaces uproot's clock while writing (an uproot internal).


def _small_templates():
    import hist

    h = hist.Hist.new.Reg(25, 50, 550).Weight()
    h.fill([60.0, 120.0, 300.0], weight=[1.0, 2.0, 0.5])
    return {"4j1b_ttbar": h}


def test_root_dates_are_the_fixed_date(tmp_path, monkeypatch):
    """The stamps uproot writes are 2000-01-01 (or SOURCE_DATE_EPOCH), not the time of writing."""
    import datetime

    from agc_ttbar.output import _write

    for epoch, expected in ((None, datetime.datetime(2000, 1, 1)), ("1700000000", datetime.datetime(2023, 11, 14, 22, 13, 20))):
        if epoch is None:
            monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
        else:
            monkeypatch.setenv("SOURCE_DATE_EPOCH", epoch)
        path = tmp_path / f"h_{epoch}.root"
        _write(str(path), _small_templates())
        with uproot.open(path) as f:
            assert (f.created_on, f.modified_on, f.key("4j1b_ttbar").created_on) == (expected,) * 3


def test_two_writes_seconds_apart_are_bitwise_identical(tmp_path, monkeypatch):
    """Two writes 1.1 s apart give the same bytes; without the patch they differ (the control),
    so a patch that silently stops working fails this test."""
    import time

    from agc_ttbar.output import _write

    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    templates = _small_templates()
    a, b = tmp_path / "a" / "h.root", tmp_path / "b" / "h.root"
    a.parent.mkdir()
    b.parent.mkdir()
    control = []
    for path in (a, b):
        _write(str(path), templates)
        plain = path.with_name("plain.root")
        with open(plain, "wb+") as fh, uproot.recreate(fh, uuid_function=lambda: __import__("uuid").UUID(int=0)) as f:
            f["4j1b_ttbar"] = templates["4j1b_ttbar"]
        control.append(plain.read_bytes())
        if path is a:
            time.sleep(1.1)   # ROOT dates have one-second resolution
    assert control[0] != control[1], "uproot no longer writes the time: the control cannot show the patch works"
    assert a.read_bytes() == b.read_bytes()


def test_missing_patch_target_fails_loudly(tmp_path, monkeypatch):
    from uproot.writing import _cascade

    from agc_ttbar.output import _write

    monkeypatch.delattr(_cascade, "datetime")
    with pytest.raises(RuntimeError, match="_cascade.datetime is gone"):
        _write(str(tmp_path / "h.root"), _small_templates())
    assert not (tmp_path / "h.root").exists()
