"""The conda environment, the container recipe and the pip requirements pin the same packages."""

import pathlib
import re

import yaml

REPO = pathlib.Path(__file__).resolve().parent.parent
ENVS = REPO / "envs"


def _normalize(requirement: str) -> str:
    """'Coffea[dask-awkward] == 2026.9.0  # comment' -> 'coffea[dask-awkward]==2026.9.0'."""
    requirement = requirement.split("#", 1)[0].strip()
    name, sep, version = requirement.partition("==")
    assert sep, f"unpinned requirement {requirement!r}: every package needs an exact == pin"
    name = re.sub(r"[-_.]+", "-", name.strip().lower())
    return f"{name}=={version.strip()}"


def _requirements(path: pathlib.Path) -> list[str]:
    lines = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
    return [_normalize(line) for line in lines if line]


def _conda_pip_pins() -> tuple[dict, list[str]]:
    env = yaml.safe_load((ENVS / "environment.yaml").read_text())
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, "environment.yaml needs exactly one pip: section"
    return env, [_normalize(r) for r in pip_sections[0]]


def test_requirements_are_all_pinned_and_unique():
    reqs = _requirements(ENVS / "requirements.txt")
    names = [r.split("==")[0].split("[")[0] for r in reqs]
    assert len(names) == len(set(names)), f"duplicate packages in requirements.txt: {names}"
    assert "snakemake" in names


def test_conda_env_pins_equal_requirements():
    env, pins = _conda_pip_pins()
    reqs = _requirements(ENVS / "requirements.txt")
    missing = sorted(set(reqs) - set(pins))
    extra = sorted(set(pins) - set(reqs))
    assert not missing and not extra, (
        f"envs/environment.yaml and envs/requirements.txt differ: only in requirements.txt {missing}, "
        f"only in environment.yaml {extra}")
    assert len(pins) == len(set(pins)), "duplicate pins in environment.yaml"


def test_conda_env_python_matches_the_tested_interpreter():
    env, _ = _conda_pip_pins()
    conda_deps = [d for d in env["dependencies"] if isinstance(d, str)]
    assert "pip" in conda_deps
    pythons = [d for d in conda_deps if d.startswith("python")]
    assert pythons == ["python=3.11"], pythons
    # Only packages conda has to provide itself: everything else comes from the pinned pip list.
    assert set(conda_deps) == {"python=3.11", "pip"}, conda_deps


def test_containerfile_installs_the_same_pins():
    text = (ENVS / "Containerfile").read_text()
    base = re.search(r"^FROM\s+(\S+)", text, re.M).group(1)
    if base == "${BASE}":   # the registry base is the ARG's default (scripts/build_image.sh overrides it)
        base = re.search(r"^ARG\s+BASE=(\S+)", text, re.M).group(1)
    assert re.match(r"python:3\.11(\.\d+)?-slim(-bookworm)?$", base), base
    # Every `pip install` installs requirement files of envs/ or the workflow itself (--no-deps),
    # never a package named on the side, unpinned.
    commands = [c for c in re.split(r"&&|\n(?=RUN)", text.replace("\\\n", " ")) if "pip install" in c]
    assert commands, "Containerfile has no pip install"
    files = []
    for command in commands:
        tokens = command.split()
        tokens = tokens[tokens.index("install") + 1:]
        i = 0
        while i < len(tokens):
            tok = tokens[i]
            if tok in {"-r", "--requirement"}:
                files.append(tokens[i + 1]); i += 2
            elif tok in {"--extra-index-url", "--index-url"}:
                i += 2
            elif tok == "-e" or tok.startswith("/"):
                assert "--no-deps" in tokens, "the workflow package must be installed with --no-deps"
                i += 2 if tok == "-e" else 1
            elif tok.strip("'\"").startswith("setuptools>="):
                # the build backend of pyproject.toml, for --no-build-isolation
                assert "setuptools" in (REPO / "pyproject.toml").read_text()
                i += 1
            else:
                assert tok.startswith("-"), f"Containerfile pip-installs {tok!r} outside the pinned files"
                i += 1
    assert sorted(pathlib.PurePosixPath(f).name for f in files) == ["requirements.txt"], files


def test_htcondor_requirements_pin_plugin_and_bindings():
    reqs = dict(r.split("==") for r in _requirements(ENVS / "requirements-htcondor.txt"))
    assert reqs["snakemake-executor-plugin-htcondor"] == "0.3.0"
    major = int(reqs["htcondor"].split(".")[0])
    assert major < 25, "snakemake-executor-plugin-htcondor 0.3.0 requires htcondor<25"
