"""Shared test fixtures: repository paths and the reference data shipped in data/."""

import os
import pathlib
import subprocess
import sys
import time

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


# ---- HTCondor (tests/test_htcondor.py, tests/test_htcondor_faults.py) ----

@pytest.fixture(scope="session")
def submit_python():
    """Python with the HTCondor executor plugin: the main venv plus envs/requirements-htcondor.txt."""
    from scaleout_helpers import cached_venv, requirement_lines

    packages = requirement_lines(REPO / "envs" / "requirements-htcondor.txt")
    try:
        import snakemake_executor_plugin_htcondor  # noqa: F401  (already in this environment)
        return pathlib.Path(sys.executable)
    except ImportError:
        pass
    # Overlay venv: sees the main venv's packages; the plugin's own deps (htcondor) come with it,
    # snakemake's interface packages are already in the main venv.
    python = cached_venv("htcondor", packages, overlay=True, no_deps=True)
    proc = subprocess.run([str(python), "-c", "import snakemake_executor_plugin_htcondor, htcondor2"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return python


@pytest.fixture(scope="session")
def pool(request):
    """The single-machine HTCondor pool (scripts/htcondor_pool.sh), shared by every HTCondor test
    module: one fixture instance, so no module stops it under another's running workflow."""
    from scaleout_helpers import require_workflow, skip_or_fail
    from test_htcondor import _debootstrap_possible, _pool

    reason = _debootstrap_possible()
    if reason:
        skip_or_fail(reason)
    require_workflow()
    submit_python = request.getfixturevalue("submit_python")
    env = dict(os.environ, AGC_CONDOR_PYTHON=str(submit_python))
    t0 = time.monotonic()
    built = _pool("setup", env=env, check=False)  # debootstrap + minicondor, cached after the first run
    if built.returncode != 0:
        skip_or_fail(f"cannot build the HTCondor chroot (debootstrap/apt):\n{built.stderr[-2000:]}")
    proc = _pool("start", env=env)
    setup_s = time.monotonic() - t0
    print(f"\nhtcondor pool up in {setup_s:.1f} s\n{proc.stderr}")
    root = pathlib.Path(_pool("root-path").stdout.strip())
    user = _pool("user").stdout.strip()
    yield {"root": root, "user": user, "env": env, "setup_s": setup_s}
    if os.environ.get("AGC_CONDOR_KEEP") != "1":
        _pool("stop", env=env, check=False)
