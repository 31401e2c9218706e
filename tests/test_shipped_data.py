"""The reference data shipped in data/: checksums, licences, and no test depends on ../shared."""

import json
import pathlib
import re

import uproot

from agc_ttbar import layout, shipped_data
from agc_ttbar.config import validate_config
from conftest import DATA, REPO


def test_every_shipped_file_matches_its_checksum():
    listed = shipped_data.checksums()
    on_disk = {str(p.relative_to(DATA)) for p in DATA.rglob("*") if p.is_file()}
    docs = {"README.md", "SHA256SUMS", "agc/LICENSE"}
    assert on_disk - docs == set(listed), "data/SHA256SUMS must list every data file"
    assert shipped_data.verify() == []


def test_verify_reports_a_changed_file(tmp_path, monkeypatch):
    (tmp_path / "a.json").write_text("{}")
    (tmp_path / "SHA256SUMS").write_text("0" * 64 + "  a.json\n" + "1" * 64 + "  gone.json\n")
    monkeypatch.setattr(shipped_data, "DATA_DIR", str(tmp_path))
    monkeypatch.setattr(shipped_data, "CHECKSUMS", str(tmp_path / "SHA256SUMS"))
    bad = shipped_data.verify()
    assert len(bad) == 2 and bad[0].startswith("a.json: sha256 44136fa3") and bad[1] == "gone.json: missing"


def test_provenance_and_licences_are_documented():
    readme = (DATA / "README.md").read_text()
    for rel, digest in shipped_data.checksums().items():
        assert f"`{rel.split('/', 1)[1]}" in readme or f"`{rel}`" in readme, rel
        assert (DATA / rel).stat().st_size < 2_000_000, rel
    assert "github.com/iris-hep/analysis-grand-challenge" in readme and "MIT" in readme
    assert "opendata.cern.ch/record/19980" in readme and "CC0" in readme
    assert "MIT License" in (DATA / "agc" / "LICENSE").read_text()


def test_shipped_files_have_the_expected_content():
    inputs = json.loads((DATA / "agc" / "nanoaod_inputs.json").read_text())
    assert sum(len(v["files"]) for p in inputs.values() for v in p.values()) == 787
    for name in ("1", "5", "all"):
        ref = json.loads((DATA / "agc" / "reference" / f"histos_{name}_file_per_process.json").read_text())
        assert "4j2b_ttbar" in ref and "4j1b_ttbar" in ref
    for parity in ("even", "odd"):
        model = json.loads(pathlib.Path(shipped_data.published_model(parity)).read_text())
        assert model["learner"]["learner_model_param"]["num_feature"] == "20"
    with uproot.open(DATA / "real" / "nanoAOD_2015_CMS_Open_Data_ttbar.root") as f:
        assert f["Events"].num_entries == 200


def test_published_default_is_the_shipped_copy():
    config = {"ml": {"model": "published"}}
    validate_config(config)
    assert config["ml"]["published_models"] == {"even": None, "odd": None}
    assert layout.ml_models("results", config) == [str(DATA / "agc" / "models" / "model_even.json"),
                                                  str(DATA / "agc" / "models" / "model_odd.json")]
    config["ml"]["published_models"]["odd"] = "mine/odd.json"
    assert layout.ml_models("results", config)[1] == "mine/odd.json"


def test_no_test_reads_the_development_shared_folder():
    pattern = re.compile(r"""["']shared["']|\.\./shared|SHARED_DATA""")
    offenders = [p.name for p in (REPO / "tests").rglob("*.py") if pattern.search(p.read_text())
                 and p.name != "test_shipped_data.py"]
    assert offenders == []
