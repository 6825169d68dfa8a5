"""Steps' interpreters started ahead: a step handed over runs as a fresh one would, imports done.

Each test runs a real lightweight component through KFP's own command (as kfp.local builds it,
this Python in place of `python3`) in a real interpreter, waiting or fresh.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest
from kfp.dsl import component_factory
from kfp.local import subprocess_task_handler

from pipelines.local import warm


def probe() -> str:
    """Report what the step sees: its environment, OpenMP's threads, what was imported."""
    import json
    import os
    import sys

    from threadpoolctl import threadpool_info

    openmp = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "openmp"]
    report = {
        "marker": os.environ.get("STEP_MARKER"),
        "leftover": os.environ.get("ONLY_IN_THE_CLI"),
        "openmp": openmp,
        "sklearn_loaded": "sklearn" in sys.modules,
        "kfp_runtime": os.environ.get("_KFP_RUNTIME"),
    }
    print("PROBE " + json.dumps(report))
    if os.environ.get("STEP_FAILS"):
        raise RuntimeError("the step failed on purpose")
    return "done"


def command(folder: pathlib.Path) -> list[str]:
    """The probe's command line as kfp.local runs it, with its executor input."""
    script, args = component_factory._get_command_and_args_for_lightweight_component(probe)
    executor = {
        "inputs": {"parameterValues": {}},
        "outputs": {
            "parameters": {"Output": {"outputFile": str(folder / "Output")}},
            "outputFile": str(folder / "executor_output.json"),
        },
    }
    args = [json.dumps(executor) if arg == "{{$}}" else arg for arg in args]
    return subprocess_task_handler.replace_python_executable(script + args, sys.executable)


def report(process: subprocess.Popen) -> tuple[int, dict, str]:
    out, _ = process.communicate(timeout=300)
    lines = [line for line in out.splitlines() if line.startswith("PROBE ")]
    return process.returncode, json.loads(lines[-1][6:]) if lines else {}, out


@pytest.fixture
def interpreters():
    pool = warm.Interpreters(threads=2)
    pool.start()
    yield pool
    pool.close()


def test_the_command_kfp_local_runs_is_recognised_and_another_is_not(tmp_path):
    source, args = warm.component_call(command(tmp_path))
    assert "def probe() -> str:" in source
    assert args[0] == "--executor_input" and args[-2:] == ["--function_to_execute", "probe"]
    assert warm.component_call([sys.executable, "-c", "print(1)"]) is None
    other_python = [arg.replace(sys.executable, "/usr/bin/python3") for arg in command(tmp_path)]
    assert warm.component_call(other_python) is None


def test_a_handed_over_step_runs_with_its_own_environment_and_its_imports_done(
    interpreters, tmp_path
):
    env = {"STEP_MARKER": "step-7", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    process = interpreters.take(command(tmp_path), env)
    assert process is not None
    code, seen, out = report(process)
    assert code == 0, out
    assert seen["marker"] == "step-7" and seen["leftover"] is None  # the step's env, only
    assert seen["openmp"] and set(seen["openmp"]) == {1}  # resized from the 2 it started with
    assert seen["sklearn_loaded"] is True  # imported ahead
    assert seen["kfp_runtime"] == "true"
    assert json.loads((tmp_path / "executor_output.json").read_text()) == {
        "parameterValues": {"Output": "done"}
    }


def test_a_fresh_interpreter_imports_nothing_ahead(tmp_path):
    """The same command run as kfp.local runs it: the contrast with the test above."""
    process = subprocess.Popen(command(tmp_path), stdout=subprocess.PIPE, text=True)
    code, seen, out = report(process)
    assert code == 0, out
    assert seen["sklearn_loaded"] is False


def test_a_failing_step_exits_non_zero_with_its_traceback(interpreters, tmp_path):
    process = interpreters.take(command(tmp_path), {"STEP_FAILS": "1", "PATH": "/usr/bin:/bin"})
    code, seen, out = report(process)
    assert code != 0
    assert "RuntimeError: the step failed on purpose" in out


def test_each_step_takes_its_own_interpreter_and_none_is_left_running(interpreters, tmp_path):
    first = interpreters.take(command(tmp_path / "a"), {"PATH": "/usr/bin:/bin"})
    waiting = interpreters._waiting
    second = interpreters.take(command(tmp_path / "b"), {"PATH": "/usr/bin:/bin"})
    assert first.pid != second.pid and second is waiting
    assert report(first)[0] == 0 and report(second)[0] == 0
    last = interpreters._waiting
    interpreters.close()
    assert last is not None and last.poll() is not None  # stopped, not left waiting
    assert interpreters.take(command(tmp_path / "c"), {}) is None  # closed: none waits


def test_the_switch_turns_it_off(monkeypatch):
    monkeypatch.setenv(warm.SWITCH_VARIABLE, "0")
    assert not warm.enabled()
    monkeypatch.setenv(warm.SWITCH_VARIABLE, "1")
    assert warm.enabled()
