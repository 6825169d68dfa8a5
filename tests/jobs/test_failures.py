"""Failures keep their cause, in bounded time, and never show credentials.

Against the session's real MLflow server, reached with credentials in its URI (the server has no
authentication and ignores them), and against a port where nothing listens (MLflow down).
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from mlflow import MlflowClient

from components.io import alerts, datasets, registries, services
from components.jobs import base
from components.jobs.inference import InferenceJob
from tests.conftest import MlflowServer, free_port
from tests.jobs.helpers import listing, unique

pytestmark = pytest.mark.integration

SECRET = "s3cret-pa55"


def with_credentials(url: str) -> str:
    return url.replace("http://", f"http://alice:{SECRET}@")


@pytest.fixture
def logs(caplog):
    """Every log record of the job (the redaction filter sits on the root handlers)."""
    logging.getLogger().addHandler(caplog.handler)
    caplog.set_level(logging.INFO)
    yield caplog
    logging.getLogger().removeHandler(caplog.handler)


def job(tracking_uri: str, tmp_path, experiment: str, **fields) -> InferenceJob:
    data = tmp_path / "in.parquet"
    pd.DataFrame({"x": [1.0, 2.0]}).to_parquet(data)
    return InferenceJob(
        inputs=datasets.ParquetReader(path=str(data)),
        outputs=datasets.ParquetWriter(path=str(tmp_path / "out" / "predictions.parquet")),
        finder=registries.RegistryFinder(name=f"no-such-{experiment}"),
        mlflow_service=services.MlflowService(
            tracking_uri=tracking_uri, experiment_name=experiment
        ),
        alerter=alerts.ConsoleAlerter(),
        run_tags={"kfp.task": "predict", base.PIPELINE_RUN_TAG: "run-1"},
        **fields,
    )


def test_mlflow_down_before_a_step_fails_it_in_bounded_time_with_its_cause(tmp_path, logs, capfd):
    down = with_credentials(f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    with (
        pytest.raises(services.MlflowUnavailableError) as caught,
        job(down, tmp_path, unique("down")) as failing,
    ):
        failing.run()
    seconds = time.monotonic() - started
    assert seconds < 60, f"took {seconds:.0f}s"
    message = str(caught.value)
    assert message.startswith("cannot use MLflow at http://alice:***@127.0.0.1:")
    assert "in step predict" in message
    # Logged and alerted with the cause; nowhere the password.
    assert "[FAILED] InferenceJob: cannot use MLflow at http://alice:***@" in logs.text
    assert "[FAILED] InferenceJob failed: MlflowUnavailableError" in logs.text
    out = capfd.readouterr()
    assert SECRET not in logs.text + out.out + out.err + message
    assert listing(tmp_path) == ["in.parquet"]


def test_a_failure_is_recorded_without_credentials(mlflow_server, tmp_path, logs, capfd):
    experiment = unique("redacted")
    with (
        pytest.raises(registries.RegistryError),
        job(with_credentials(mlflow_server), tmp_path, experiment) as failing,
    ):
        failing.run()
    out = capfd.readouterr()
    assert SECRET not in logs.text + out.out + out.err
    assert "MLflow run " in logs.text and "at http://alice:***@127.0.0.1" in logs.text
    client = MlflowClient(mlflow_server, registry_uri=mlflow_server)
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id])
    [run] = [run for run in runs if base.JOB_TAG in run.data.tags]  # the step, not its parent
    assert run.info.status == "FAILED"
    assert run.data.tags[base.ERROR_TAG].startswith("RegistryError: no registered model named")
    assert all(SECRET not in value for value in run.data.tags.values())


def test_a_request_mlflow_refuses_is_told_apart_from_mlflow_down(mlflow_server, tmp_path):
    # A user deleted the pipelines' experiment in the MLflow UI: every step failed with
    # "cannot use MLflow ...", and the run's advice said to check that MLflow answers.
    from pipelines.local import console

    experiment = unique("deleted")
    client = MlflowClient(mlflow_server)
    client.delete_experiment(client.create_experiment(experiment))

    with (
        pytest.raises(services.MlflowUnavailableError) as caught,
        job(mlflow_server, tmp_path, experiment) as failing,
    ):
        failing.run()

    cause = f"MlflowUnavailableError: {caught.value}"
    assert cause.startswith(
        f"MlflowUnavailableError: MLflow at {mlflow_server} refused a request of step predict: "
    )
    assert "Cannot set a deleted experiment" in cause
    step = console.Step("predict", tmp_path, False, 1.0, "", ())
    advice = console.Failure(step, cause, "MlflowUnavailableError").advice(mlflow_server)
    assert (
        advice
        == "MLflow answered and refused what the step asked: fix what it names, then run again"
    )


def test_artifacts_that_mlflow_keeps_on_its_own_disk_are_told_as_such(mlflow_server, tmp_path):
    # A server without artifact serving (`--no-serve-artifacts`, or an experiment created with
    # a plain folder as its artifact location) has clients write into its own disk: the step
    # failed with "FileNotFoundError: ... '/proc/...'" and "fix the input or the parameter".
    from components.jobs import training
    from pipelines.local import console
    from tests.jobs.helpers import settings

    experiment = unique("server-disk")
    MlflowClient(mlflow_server).create_experiment(experiment, artifact_location="/proc/no-such")
    data = tmp_path / "rows.parquet"
    pd.DataFrame(
        {"x": [float(i) for i in range(40)], "y": [2.0 * i for i in range(40)]}
    ).to_parquet(data)

    job = training.TrainingJob(
        inputs=datasets.ParquetReader(path=str(data)),
        target="y",
        model_name=unique("server-disk"),
        model={"KIND": "Ridge"},
        **settings(mlflow_server, experiment),
    )
    with pytest.raises(services.ArtifactStoreError) as caught, job:
        job.run()

    message = str(caught.value)
    assert message.startswith("step TrainingJob cannot write its artifacts to /proc/no-such/")
    assert f"MLflow at {mlflow_server} keeps them in a folder of its own disk" in message
    assert "`mlflow server --serve-artifacts`" in message
    step = console.Step("train", tmp_path, False, 1.0, "", ())
    failure = console.Failure(step, f"ArtifactStoreError: {message}", "ArtifactStoreError")
    assert failure.advice(mlflow_server) == (
        f"change where MLflow at {mlflow_server} keeps artifacts, as said above"
    )


def test_mlflow_killed_during_a_step_fails_it_in_bounded_time_with_its_cause(
    tmp_path, tmp_path_factory, logs
):
    """A throwaway real server answers the job's start, then dies: the step fails with the
    cause, in bounded time, and recording the failure in MLflow (impossible now) hides nothing."""
    server = MlflowServer(tmp_path_factory.mktemp("doomed-mlflow"))
    try:
        doomed = job(with_credentials(server.url), tmp_path, unique("killed"))
        with doomed:
            server.stop()  # between the job's start and its first registry call
            started = time.monotonic()
            with pytest.raises(Exception) as caught:
                doomed.run()
            raise caught.value
    except Exception as error:  # noqa: BLE001 - the job's own error, checked below
        seconds = time.monotonic() - started
        text = logs.text
        failed = text.index("[FAILED] InferenceJob: ")
        assert failed < text.index("the failure could not be recorded in MLflow")
        assert seconds < 60, f"took {seconds:.0f}s"
        assert SECRET not in text + str(error)
        assert "cannot use MLflow at http://alice:***@127.0.0.1" in text
        assert isinstance(error, services.MlflowUnavailableError)
    else:
        pytest.fail("the job succeeded without MLflow")
    finally:
        if server.process.poll() is None:
            server.stop()


STOPPED_STEP = """
import sys, time, typing as T
from components.io import alerts, services
from components import steps
from components.jobs import base

class Waiting(base.Job, frozen=True):
    KIND: T.Literal["Waiting"] = "Waiting"

    def run(self):
        print("READY", flush=True)
        time.sleep(120)

# "while-creating": the stop comes once MLflow created the run, before start_run returns.
if sys.argv[3] == "while-creating":
    from mlflow.tracking import MlflowClient

    create_run = MlflowClient.create_run

    def slow_create_run(self, *args, **kwargs):
        run = create_run(self, *args, **kwargs)
        print("READY", flush=True)
        time.sleep(5)
        return run

    MlflowClient.create_run = slow_create_run

settings = {
    "mlflow_service": services.MlflowService(tracking_uri=sys.argv[1], experiment_name=sys.argv[2]),
    "alerter": alerts.ConsoleAlerter(),
}
steps.run_job(Waiting, settings)
"""


@pytest.mark.parametrize("when", ["while-running", "while-creating"])
def test_a_step_stopped_by_sigterm_ends_its_mlflow_run_failed_with_the_cause(mlflow_server, when):
    """A canceled local run or a deleted pod sends SIGTERM: the run must not stay RUNNING.

    Also when the stop comes while MLflow creates the run: the server has it, the job does not
    know it yet.
    """
    experiment = unique("stopped")
    step = subprocess.Popen(
        [sys.executable, "-c", STOPPED_STEP, mlflow_server, experiment, when],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert step.stdout is not None
    for line in step.stdout:  # the job runs: its MLflow run is started
        if line.startswith("READY"):
            break
    step.send_signal(signal.SIGTERM)
    rest, _ = step.communicate(timeout=60)
    assert step.returncode != 0
    assert "Terminated: the step was stopped (SIGTERM" in rest
    client = MlflowClient(mlflow_server)
    [run] = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert run.info.status == "FAILED"
    assert run.data.tags[base.ERROR_TAG].startswith("Terminated: the step was stopped (SIGTERM")
