"""What a step imports before its job runs: only what it uses.

A step is a fresh interpreter running KFP's executor on the component's source, which imports
the job and its modules (see bench/startup.py, which times the same chains). Libraries that
cost a second each at start-up must stay out of the steps that do not need them at all, or
need them only later (matplotlib to chart a drift report, skops to load or save a model,
pandera to check a schema given): each test runs the real chain in a fresh interpreter, as
the step does, and names what it loaded.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

from bench import startup

ROOT = pathlib.Path(__file__).resolve().parents[2]
# Never at any step's start: charts, cards and models are drawn, rendered and loaded later,
# SHAP values computed later (shap loads numba and matplotlib), and sklearn's test utilities
# (pytest) come with skops only.
NEVER_AT_START = {"matplotlib", "skops", "pandera", "pytest", "shap"}
# Needed at the start of some steps only.
ONLY_IN: dict[str, set[str]] = {}
# The exit step reads MLflow and posts an alert: no model library at all.
NOT_IN_NOTIFY = {"sklearn", "shap", "pyarrow.parquet"}


# Every module the tests look for, by name as sys.modules holds it.
WATCHED = sorted(NEVER_AT_START | set(ONLY_IN) | NOT_IN_NOTIFY | {"mlflow"})


@pytest.fixture(scope="module")
def loaded() -> dict[str, set[str]]:
    """Which WATCHED modules each step's import chain loads, each in a fresh interpreter."""
    report = f"\nimport json, sys\nprint(json.dumps([m for m in {WATCHED!r} if m in sys.modules]))"
    processes = {
        step: subprocess.Popen(
            [sys.executable, "-c", startup.KFP_HEADER + startup.body_imports(step) + report],
            cwd=ROOT,
            env={**os.environ, **startup.STEP_ENVIRONMENT},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for step in startup.STEPS
    }
    found = {}
    for step, process in processes.items():
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, f"{step}: {err[-3000:]}"
        found[step] = set(json.loads(out.splitlines()[-1]))
    return found


def test_the_body_imports_are_read_from_the_component_source():
    """The chain is the component's own import lines: a change to them changes what is tested."""
    assert "from components.jobs.inference import InferenceJob" in startup.body_imports("predict")
    assert "from components.jobs.notification import NotificationJob" in startup.body_imports(
        "notify"
    )


@pytest.mark.parametrize("step", startup.STEPS)
def test_a_step_imports_no_library_it_does_not_use_at_start(loaded, step):
    forbidden = set(NEVER_AT_START)
    for module, steps in ONLY_IN.items():
        if step in steps:
            forbidden.discard(module)
        else:
            forbidden.add(module)
    if step == "notify":
        forbidden |= NOT_IN_NOTIFY
    assert sorted(loaded[step] & forbidden) == [], f"{step} imports them before its job runs"


def test_the_check_sees_a_library_that_a_chain_imports(loaded):
    """The same check finds scikit-learn in the explain step, which uses it, and MLflow in all."""
    assert {"sklearn", "mlflow"} <= loaded["explain"]
    assert all("mlflow" in modules for modules in loaded.values())


def test_the_pre_run_check_builds_every_step_without_loading_shap():
    """`run --dry-run` builds the explain step's job too: shap is for computing, not for that."""
    program = (
        "import sys\nfrom pipelines.__main__ import main\n"
        "code = main(['run', 'lifecycle', '--local', '--config', 'confs/bike-sharing.yaml', "
        "'--dry-run'])\n"
        "print(code, 'shap' in sys.modules, 'components.jobs.explanations' in sys.modules)"
    )
    completed = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.splitlines()[-1] == "0 False True"
