"""Configuration schema: defaults, descriptions, and clear errors naming the key."""

import subprocess
import sys

import pytest
import yaml

from agc_ttbar.config import ConfigError, load_schema, validate_config


def _walk(schema, path="config"):
    if schema.get("type") == "object" or "properties" in schema:
        for name, sub in schema.get("properties", {}).items():
            yield f"{path}.{name}", sub
            yield from _walk(sub, f"{path}.{name}")


def test_every_knob_has_default_and_description():
    schema = load_schema()
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    missing = [p for p, sub in _walk(schema) if "default" not in sub or not sub.get("description")]
    assert missing == []


def test_defaults_are_filled_and_valid():
    cfg = validate_config({})
    assert cfg["dataset"] == "mock"
    assert cfg["n_files_max_per_sample"] == -1
    assert cfg["processing"]["chunksize"] == 200000
    assert len(cfg["samples"]) == 9
    assert cfg["use_inference"] is True


def test_repo_config_is_valid(repo):
    with open(repo / "config.yaml") as f:
        cfg = validate_config(yaml.safe_load(f))
    assert cfg["dataset"] == "mock"


@pytest.mark.parametrize(
    "config, fragments",
    [
        ({"n_files_max_per_sample": "five"}, ["n_files_max_per_sample", "is not of type 'integer'"]),
        ({"n_files_max_per_sample": 0}, ["n_files_max_per_sample"]),
        ({"dataset": "cms"}, ["dataset", "allowed values: 'mock', 'agc'"]),
        ({"processing": {"chunksize": -5}}, ["processing.chunksize", "minimum"]),
        ({"processing": {"chunk_size": 10}}, ["processing", "unknown key(s) 'chunk_size'", "chunksize"]),
        ({"bogus": 1}, ["unknown key(s) 'bogus'"]),
        ({"samples": ["ttbar__nominal", "zjets__nominal"]}, ["samples[1]", "zjets__nominal", "allowed values"]),
        ({"mock": {"events_per_file": -1}}, ["mock.events_per_file"]),
    ],
)
def test_bad_values_name_the_key(config, fragments):
    with pytest.raises(ConfigError) as err:
        validate_config(config)
    for fragment in fragments:
        assert fragment in str(err.value)


def test_snakemake_rejects_bad_config_before_any_job(repo, tmp_path):
    """A wrong type fails at parse time with the key name, and nothing is written."""
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--snakefile", str(repo / "Snakefile"),
         "--directory", str(tmp_path), "--configfile", str(repo / "config.yaml"),
         "--config", "processing={'chunksize': 'big'}"],
        capture_output=True, text=True, cwd=repo,
    )
    assert proc.returncode != 0
    assert "processing.chunksize" in proc.stderr + proc.stdout
    assert not (tmp_path / "results").exists()


def test_command_line_strings_are_parsed_as_yaml():
    """`snakemake --config use_inference=false mock='{files_per_sample: 1}'` passes strings."""
    cfg = validate_config({"use_inference": "false", "mock": "{files_per_sample: 1}",
                           "processing": {"chunksize": "5000"}, "results_dir": "123"})
    assert cfg["use_inference"] is False
    assert cfg["mock"]["files_per_sample"] == 1 and cfg["mock"]["seed"] == 20240521
    assert cfg["processing"]["chunksize"] == 5000
    assert cfg["results_dir"] == "123"
    with pytest.raises(ConfigError, match="use_inference"):
        validate_config({"use_inference": "maybe"})
