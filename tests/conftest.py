"""Shared test fixtures: repository paths and the optional ../shared data folder."""

import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_data_path(*parts: str) -> pathlib.Path:
    """Path under ../shared/data; the test is skipped when the folder is absent (users' clones)."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing in CI")
        pytest.skip(f"{path} not available (only present in the development checkout)")
    return path


@pytest.fixture
def repo() -> pathlib.Path:
    return REPO


@pytest.fixture
def agc_inputs() -> pathlib.Path:
    return shared_data_path("agc", "nanoaod_inputs.json")


@pytest.fixture
def real_nanoaod() -> pathlib.Path:
    return shared_data_path("real", "nanoAOD_2015_CMS_Open_Data_ttbar.root")
