"""Shared test fixtures: repository paths and the reference data shipped in data/."""

import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
DATA = REPO / "data"


def data_path(*parts: str) -> pathlib.Path:
    """Path of a file shipped under data/ (data/README.md); a missing file fails the test."""
    path = DATA.joinpath(*parts)
    if not path.is_file():
        pytest.fail(f"{path} is missing: data/ comes with the repository (git checkout -- data/)")
    return path


@pytest.fixture
def repo() -> pathlib.Path:
    return REPO


@pytest.fixture
def agc_inputs() -> pathlib.Path:
    return data_path("agc", "nanoaod_inputs.json")


@pytest.fixture
def real_nanoaod() -> pathlib.Path:
    return data_path("real", "nanoAOD_2015_CMS_Open_Data_ttbar.root")
