"""The install and CI checks: lock files, the venv recipe, the type baseline, the audit.

These read the real files of the repo and run the real `make`, mypy output parser and
pip-audit verdict; the audit's network service is the one part not exercised here (the
verdict is fed pip-audit's JSON shapes), since this machine may not reach it.
"""

from __future__ import annotations

import importlib.util
import pathlib
import re
import subprocess
import tomllib

import pytest
from packaging.requirements import Requirement

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / ".ci" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pins(path: pathlib.Path) -> dict[str, str]:
    """`name==version` lines of a lock file (first pin per name), names normalised."""
    pins: dict[str, str] = {}
    for name, version in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", path.read_text(), re.M):
        pins.setdefault(re.sub(r"[-_.]+", "-", name).lower(), version)
    return pins


def _requirements(extra: str | None = None) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    listed = project["optional-dependencies"][extra] if extra else project["dependencies"]
    return [Requirement(text) for text in listed]


@pytest.mark.parametrize(
    ("lock", "extras"), [("requirements.lock", [None]), ("requirements-dev.lock", [None, "dev"])]
)
def test_each_lock_pins_every_dependency_within_its_range(lock, extras):
    pins = _pins(ROOT / lock)
    for extra in extras:
        for requirement in _requirements(extra):
            name = re.sub(r"[-_.]+", "-", requirement.name).lower()
            assert name in pins, f"{lock} has no pin for {requirement}: run `make lock`"
            assert requirement.specifier.contains(pins[name], prereleases=True), (
                f"{lock} pins {name}=={pins[name]}, outside {requirement}: run `make lock`"
            )


def test_the_runtime_lock_agrees_with_the_dev_lock():
    """The image (requirements.lock) runs the versions the tests ran (requirements-dev.lock)."""
    runtime, dev = _pins(ROOT / "requirements.lock"), _pins(ROOT / "requirements-dev.lock")
    assert runtime and set(runtime) <= set(dev)
    assert {name: dev[name] for name in runtime} == runtime
    assert "--hash=sha256:" in (ROOT / "requirements.lock").read_text()


def test_venv_image_and_ci_install_from_the_lock():
    makefile = (ROOT / "Makefile").read_text()
    assert "--require-hashes -r $(LOCK)" in makefile
    assert "LOCK ?= requirements-dev.lock" in makefile
    assert (
        "pip install --no-cache-dir --require-hashes -r requirements.lock"
        in (ROOT / "images" / "Dockerfile").read_text()
    )
    assert "make venv" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("python", ["python3.10", "/nowhere/python3.11"])
def test_make_venv_with_the_wrong_python_says_which_it_needs(tmp_path, python):
    venv = tmp_path / "venv"
    done = subprocess.run(
        ["make", "--no-print-directory", "venv", f"PYTHON={python}", f"VENV={venv}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "make venv needs CPython 3.11" in done.stderr
    assert "make venv PYTHON=/path/to/python3.11" in done.stderr
    assert not venv.exists()


def test_the_type_baseline_parser_reads_mypy_lines():
    mypy_baseline = _load("mypy_baseline")
    line = "pipelines/x.py:12: error: Function is missing a type annotation  [no-untyped-def]"
    match = mypy_baseline.ERROR.match(line)
    assert match and match["path"] == "pipelines/x.py" and match["code"] == "no-untyped-def"
    entries = mypy_baseline.read_baseline()
    assert entries, ".ci/mypy-baseline.txt is empty or missing"
    assert all(path.startswith(("components/", "pipelines/")) for path, _ in entries)


def test_the_audit_fails_on_a_known_vulnerability_and_says_which():
    audit = _load("audit")
    clean = [{"name": "kfp", "version": "2.17.3", "vulns": []}]
    vulnerable = [
        {"name": "urllib3", "version": "1.0", "vulns": [{"id": "GHSA-x", "fix_versions": ["2.5"]}]},
        *clean,
    ]
    unreachable = [{"name": "kfp", "skip_reason": "Dependency not found on PyPI"}]
    assert audit.verdict(clean) == (0, ["audit: no known vulnerabilities in 1 locked packages"])
    code, lines = audit.verdict(vulnerable)
    assert code == 1 and lines[0] == "urllib3==1.0: GHSA-x (fixed in: 2.5)"
    code, lines = audit.verdict(unreachable)
    assert code == 0 and "could be audited" in lines[-1]
    assert audit.verdict(unreachable, strict=True)[0] == 1
