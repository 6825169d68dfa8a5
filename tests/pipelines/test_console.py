"""The local run's console: a step's whole output on disk, one line per step, its progress.

Each step here is a real subprocess that prints as a KFP step does (the executor input JSON, the
job's log in KFP's format, a traceback), run through `Console.run_step` as kfp.local runs it.
"""

from __future__ import annotations

import io
import json
import pathlib
import sys

from components.io import services
from components.utils import cpus
from pipelines.local import console

STEP = """
import json, sys
print("[KFP Executor 2026-01-01 10:00:00,000 INFO]: Got executor_input:")
print(json.dumps(json.loads(sys.argv[2]), indent=4))
print("/venv/mlflow/types/utils.py:440: UserWarning: Hint: Inferred schema contains integers")
print("[KFP Executor 2026-01-01 10:00:05,000 INFO]: [PROGRESS] 1,000 of 4,000 rows (25%)")
if sys.argv[4] == "retrained":  # the alert step: a multi-line alert that started a training
    print("[KFP Executor 2026-01-01 10:00:09,000 INFO]: [SUCCEEDED] inference: SUCCEEDED: "
          "Pipeline inference succeeded.")
    print("Drift (predict): 3 of 12 features drifted over 17,379 rows")
    print("Retraining: started job local:3f2a, training bikes (the batch drifted (predict)) "
          "| run=1, retraining=started local:3f2a")
    sys.exit(0)
if sys.argv[4] == "warned":  # a job's alert with warnings, each a line of its message
    print("[KFP Executor 2026-01-01 10:00:09,000 INFO]: [SUCCEEDED] TrainingJob succeeded: "
          "Registered houses v1 (XGBRegressor).")
    print("Warning: dropping 30 rows without a value in 'price'")
    print("a line of the message that is no note")
    print("Drift: 2 of 5 features drifted over 300 rows: income (KS p=0e+00)")
    print("Warning: only 8 rows are held out | rows=40, rmse=1.5")
    print("[KFP Executor 2026-01-01 10:00:10,000 INFO]: [END] TrainingJob")
    print("Warning: a library's line, after the alert")
    sys.exit(0)
if sys.argv[4].startswith("alert-"):  # the exit step, its alert sent to Slack (or not)
    outcome = {"alert-sent": "delivered by SlackAlerter",
               "alert-lost": "NOT delivered by SlackAlerter: HTTP 404 'no_service'"}[sys.argv[4]]
    level = "INFO" if outcome.startswith("delivered") else "WARNING"
    print(f"[KFP Executor 2026-01-01 10:00:09,000 {level}]: Alert delivery: {outcome}")
    sys.exit(0)
if sys.argv[4] == "ok":
    print("[KFP Executor 2026-01-01 10:00:09,000 INFO]: [SUCCEEDED] InferenceJob succeeded: "
          "Predicted 4000 rows with bike-sharing v3. | shape=(4000, 1)")
    sys.exit(0)
cause = "SettingsError: invalid TrainingJob settings: drift_policy: 'warning' is not allowed"
rules = []
if sys.argv[4] == "rules":  # a message of many lines: the broken rules after the first
    cause = "ValidationError: input validation failed: 2 rule(s) broken; nothing was written"
    rules = ["  - column 'hr': missing (4 rows)", "", "  - column 'temp': out of range (2 rows)"]
print("[KFP Executor 2026-01-01 10:00:09,000 ERROR]: [FAILED] TrainingJob: " + cause[15:])
for rule in rules: print(rule)
print("[KFP Executor 2026-01-01 10:00:09,000 ERROR]: [FAILED] TrainingJob failed: " + cause)
for rule in rules: print(rule)
print("Traceback (most recent call last):")
print('  File "components/jobs/base.py", line 1, in run_job')
print("components.jobs.base." + cause, file=sys.stderr)
sys.exit(1)
"""


def command(folder: pathlib.Path, outcome: str) -> list[str]:
    """A step's command line, its executor input naming its output file in `folder`."""
    executor = {"outputs": {"outputFile": str(folder / "executor_output.json")}}
    return [sys.executable, "-c", STEP, "--executor_input", json.dumps(executor), "--", outcome]


def test_a_quiet_step_prints_its_progress_and_one_line_and_keeps_everything_on_disk(tmp_path):
    out = io.StringIO()
    folder = tmp_path / "run" / "predict"

    code = console.Console(out=out).run_step(command(folder, "ok"))

    assert code == 0
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("predict") and lines[0].endswith("1,000 of 4,000 rows (25%)")
    assert lines[1].startswith("predict              done")
    assert lines[1].endswith(" s  Predicted 4000 rows with bike-sharing v3.")
    log = (folder / console.STEP_OUTPUT).read_text()
    assert '"outputFile"' in log and "UserWarning" in log and "shape=(4000, 1)" in log


def test_verbose_prints_everything_the_step_prints(tmp_path):
    out = io.StringIO()
    folder = tmp_path / "run" / "for-loop-2-iteration-1" / "predict-shard"

    step = console.Console(verbose=True, out=out)
    step.run_step(command(folder, "ok"))

    assert '"outputFile"' in out.getvalue() and "UserWarning" in out.getvalue()
    assert [s.task for s in step.steps] == ["predict-shard-1"]  # as the alert names it


def test_a_failed_step_has_one_cause_and_advice(tmp_path):
    out = io.StringIO()
    runner = console.Console(out=out)

    code = runner.run_step(command(tmp_path / "run" / "train", "bad"))

    assert code == 1
    line = out.getvalue().splitlines()[-1]  # after its progress line
    assert line.startswith("train                FAILED") and "SettingsError" not in line
    failure = console.failure_of(runner.steps[0])
    assert failure.cause == (
        "SettingsError: invalid TrainingJob settings: drift_policy: 'warning' is not allowed"
    )
    assert failure.error == "SettingsError"
    assert failure.advice("sqlite:///x").startswith("fix the input or the parameter")
    assert "Traceback" in runner.steps[0].log.read_text()  # kept on disk, not printed


def test_a_cause_of_many_lines_is_told_whole_on_one_line(tmp_path):
    runner = console.Console(out=io.StringIO())

    assert runner.run_step(command(tmp_path / "run" / "predict", "rules")) == 1

    failure = console.failure_of(runner.steps[0])
    assert failure.cause == (
        "ValidationError: input validation failed: 2 rule(s) broken; nothing was written "
        "- column 'hr': missing (4 rows) - column 'temp': out of range (2 rows)"
    )
    assert failure.error == "ValidationError"


def test_progress_reports_at_most_every_ten_seconds_with_the_time_left():
    now = [0.0]
    asked = []
    progress = services.Progress(
        "rows", total=lambda: asked.append(1) or 1_000, clock=lambda: now[0]
    )

    now[0] = 2.0
    assert progress.add(100) is None  # a short loop says nothing
    now[0] = 5.0
    assert progress.add(100) == "200 of 1,000 rows (20%), 40 rows/s, about 20 s left"
    now[0] = 14.0
    assert progress.add(100) is None  # not 10 s since the last report
    now[0] = 15.0
    assert progress.add(100) == "400 of 1,000 rows (40%), 27 rows/s, about 22 s left"
    assert asked == [1]  # the total is counted once


def test_progress_without_a_total_says_rows_and_rate():
    now = [0.0]
    progress = services.Progress("rows", clock=lambda: now[0])
    now[0] = 10.0
    assert progress.add(5_000) == "5,000 rows, 500 rows/s"


THREADS_STEP = "import os; print('threads', os.environ['OMP_NUM_THREADS'])"


def threads_seen(folder: pathlib.Path, compiled: str) -> str:
    """What OMP_NUM_THREADS a step run here sees, given the value compiled for its pod."""
    executor = {"outputs": {"outputFile": str(folder / "executor_output.json")}}
    step = [sys.executable, "-c", THREADS_STEP, "--executor_input", json.dumps(executor)]
    code = console.Console(out=io.StringIO()).run_step(step, {"OMP_NUM_THREADS": compiled})
    assert code == 0
    return (folder / console.STEP_OUTPUT).read_text().split()[-1]


def test_a_step_gets_no_more_openmp_threads_than_this_machine_has_cpus(tmp_path):
    """A pod's CPU limit (OMP_NUM_THREADS=4 for train) oversubscribes a 2-core machine."""
    here = cpus.available_cpus()
    assert threads_seen(tmp_path / "a" / "train", str(here + 62)) == str(here)
    assert threads_seen(tmp_path / "b" / "train", "1") == "1"
    assert threads_seen(tmp_path / "c" / "train", str(here)) == str(here)


def test_the_alert_step_line_says_when_it_started_a_training(tmp_path):
    out = io.StringIO()

    code = console.Console(out=out).run_step(command(tmp_path / "run" / "notify", "retrained"))

    assert code == 0
    line = out.getvalue().splitlines()[-1]  # after the progress line
    assert line.startswith("notify               done")
    assert line.endswith(
        " s  Pipeline inference succeeded. Retraining: started job local:3f2a, training bikes "
        "(the batch drifted (predict))"
    )


def test_a_steps_warnings_and_drift_are_told_under_its_line(tmp_path):
    out = io.StringIO()

    code = console.Console(out=out).run_step(command(tmp_path / "run" / "train", "warned"))

    assert code == 0
    lines = out.getvalue().splitlines()[1:]  # after the progress line
    assert len(lines) == 4
    assert lines[0].startswith("train                done")
    assert lines[0].endswith(" s  Registered houses v1 (XGBRegressor).")
    # Under the headline, without the alert's facts; what follows the alert is not one.
    indent = " " * len(lines[0].split("Registered")[0])
    assert lines[1] == f"{indent}Warning: dropping 30 rows without a value in 'price'"
    assert lines[2] == f"{indent}Drift: 2 of 5 features drifted over 300 rows: income (KS p=0e+00)"
    assert lines[3] == f"{indent}Warning: only 8 rows are held out"


def test_the_alert_step_line_says_where_the_alert_went_and_when_it_was_lost(tmp_path):
    out = io.StringIO()

    console.Console(out=out).run_step(command(tmp_path / "run" / "notify", "alert-sent"))
    console.Console(out=out).run_step(command(tmp_path / "run2" / "notify", "alert-lost"))

    lines = [line for line in out.getvalue().splitlines() if " ...  " not in line]  # progress
    sent, lost, note = lines
    assert sent.startswith("notify               done")
    assert sent.endswith(" s  Alert delivered by SlackAlerter.")
    assert lost.startswith("notify               done") and lost.endswith(" s")
    assert note.strip() == ("Warning: alert NOT delivered by SlackAlerter: HTTP 404 'no_service'")


def test_the_advice_for_an_mlflow_that_refuses_the_client_names_the_credentials(tmp_path):
    step = console.Step("predict", tmp_path, False, 2.0, "", ())
    uri = "https://mlflow.example.org"
    refused = console.Failure(
        step,
        "MlflowUnavailableError: cannot use MLflow at https://mlflow.example.org in step "
        "predict: MlflowException: API request to endpoint /api/2.0/mlflow/experiments/"
        "get-by-name failed with error code 401 != 200. Response body: 'You are not "
        "authenticated.'",
        "MlflowUnavailableError",
    )
    down = console.Failure(
        step,
        "MlflowUnavailableError: cannot use MLflow: connection refused",
        "MlflowUnavailableError",
    )

    assert refused.advice(uri) == (
        "MLflow at https://mlflow.example.org refused this client: set MLFLOW_TRACKING_USERNAME "
        "and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) to an account it knows, then "
        "run again"
    )
    assert down.advice(uri) == f"check that MLflow answers at {uri}, then run again"
