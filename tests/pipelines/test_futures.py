"""Futures of background runs, for real: kfp.local runs in background processes against a real
MLflow server, and KFP runs created through the real kfp.Client.

No KFP API server can run here: the KFP futures talk to the fake one on 127.0.0.1
(`tests.pipelines.kfp_api_server`), and the cluster's predict step is the real InferenceJob run
here with the KFP run's id on its MLflow run, as the step records it in a pod.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time

import pandas as pd
import pytest
from mlflow import MlflowClient

from components import steps
from components.io import datasets, registries
from components.jobs.inference import InferenceJob
from pipelines.checks import params
from pipelines.common import outcomes
from pipelines.jobs import backends, futures, management
from pipelines.local import background
from tests.conftest import BIKE_PARQUET
from tests.pipelines.kfp_api_server import (
    FakeKfpApiServer,
    failed_step_details,
    isolate_kfp_client,
)
from tests.pipelines.test_local_runs import BIKE, BIKE_ROWS, FAST, PROXIES, SMALL_ROWS, unique

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:You may be attemping:RuntimeWarning"),
]

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def home(mlflow_server, tmp_path_factory):
    """This process's environment for the module's jobs: the MLflow server, a jobs folder."""
    folder = tmp_path_factory.mktemp("lifecycle-home")
    with pytest.MonkeyPatch.context() as patch:
        for name in PROXIES:
            patch.delenv(name, raising=False)
        patch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
        patch.setenv("LIFECYCLE_HOME", str(folder))
        patch.delenv("SLACK_WEBHOOK_URL", raising=False)
        yield folder


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> pathlib.Path:
    path = tmp_path_factory.mktemp("data") / "small.parquet"
    pd.read_parquet(BIKE_PARQUET).head(SMALL_ROWS).to_parquet(path)
    return path


def follow(future: futures.JobFuture, timeout: float = 600) -> list[str]:
    """The states a future goes through, polled until it ends."""
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = future.status().state
        if not seen or seen[-1] != state:
            seen.append(state)
        if state in futures.FINAL_STATES:
            return seen
        time.sleep(0.2)
    raise AssertionError(f"{future.id} did not end: {seen}")


@pytest.fixture(scope="module")
def trained(home, small):
    """A training run in the background, followed to its end."""
    model_name = unique("futures")
    trainer = backends.LocalTrainer(
        parameters={**BIKE, **FAST, "model_name": model_name, "experiment": model_name}
    )
    started = time.monotonic()
    future = trainer.train(data=str(small))
    returned_after = time.monotonic() - started
    return future, returned_after, follow(future), model_name


@pytest.fixture(scope="module")
def predicted(trained):
    """A prediction run in the background with the version just trained."""
    _, _, _, model_name = trained
    predictor = backends.LocalJobPredictor(parameters={"max_samples": 50})
    future = predictor.predict(data=str(BIKE_PARQUET), model_name=model_name)
    return future, follow(future)


def test_training_returns_at_once_and_registers_a_version(trained, mlflow_server):
    future, returned_after, states, model_name = trained
    assert future.id.startswith("local:") and len(future.id) == len("local:") + 16
    assert returned_after < 10  # a pipeline run takes far longer: it ran in the background
    assert states[-1] == "completed", future.status().error
    assert states == [s for s in ("queued", "running", "completed") if s in states]
    status = future.status()
    assert status.submitted_at <= status.completed_at
    model = future.result()
    client = MlflowClient(mlflow_server, registry_uri=mlflow_server)
    champion = client.get_model_version_by_alias(model_name, "Champion")
    assert isinstance(model, outcomes.TrainedModel)
    assert (model.name, model.version, model.uri) == (
        model_name, int(champion.version), f"models:/{model_name}/{champion.version}",
    )  # fmt: skip
    assert model.run_id == champion.run_id
    assert model.passed is True
    assert model.metrics["test_r2"] == client.get_run(champion.run_id).data.metrics["test_r2"]


def test_prediction_result_is_where_how_many_and_which_version(trained, predicted):
    model = trained[0].result()
    future, states = predicted
    assert states[-1] == "completed", future.status().error
    predictions = future.result()
    assert isinstance(predictions, outcomes.Predictions)
    assert (predictions.rows, predictions.model_name, predictions.model_version) == (
        BIKE_ROWS, model.name, model.version,
    )  # fmt: skip
    assert len(pd.read_parquet(predictions.uri)) == BIKE_ROWS
    assert pathlib.Path(predictions.uri).is_relative_to(future.folder.path)


def test_a_future_is_found_again_from_its_id_in_a_new_process(trained, predicted, home):
    code = (
        "import json, sys\n"
        "from pipelines.common import outcomes\nfrom pipelines.jobs import management\n"
        "for future_id in sys.argv[1:]:\n"
        "    future = management.get_future(future_id)\n"
        "    status = future.status().to_dict()\n"
        "    print(json.dumps([future.pipeline, status, outcomes.to_dict(future.result())]))\n"
    )
    ids = [trained[0].id, predicted[0].id]
    found = subprocess.run(
        [sys.executable, "-c", code, *ids], capture_output=True, text=True, cwd=ROOT, check=True
    )
    lines = [json.loads(line) for line in found.stdout.splitlines()]
    assert [pipeline for pipeline, _, _ in lines] == ["training", "inference"]
    for (_, status, outcome), future in zip(lines, [trained[0], predicted[0]], strict=True):
        assert status == future.status().to_dict()
        assert outcomes.from_dict(outcome) == future.result()


def test_cancel_during_a_run_stops_it_and_leaves_no_output(trained, home, mlflow_server):
    _, _, _, model_name = trained
    predictor = backends.LocalJobPredictor()
    future = predictor.predict(
        data=str(BIKE_PARQUET), model_name=model_name, batch_size=500, max_samples=500
    )
    outputs = future.folder.path / background.OUTPUTS
    deadline = time.monotonic() + 120
    step_run = None
    while step_run is None:  # the predict step has started its MLflow run
        assert time.monotonic() < deadline, "the predict step never started"
        assert future.status().state in ("queued", "running")
        time.sleep(0.2)
        for log in outputs.glob("pipeline-root/*/predict/step.log"):
            step_run = next(iter(background._MLFLOW_RUN.findall(log.read_text())), None)
    time.sleep(0.5)  # the step is predicting
    assert future.status().state == "running"
    assert future.cancel() is True
    status = future.status()
    assert status.state == "canceled"
    assert status.completed_at is not None
    assert not outputs.exists()  # nothing published, nothing half-written
    pids = subprocess.run(["pgrep", "-f", str(future.folder.path)], capture_output=True, text=True)
    assert pids.stdout.strip() == ""  # the worker and its steps are gone
    with pytest.raises(futures.JobCanceled, match=f"job {future.id} was canceled"):
        future.result()
    assert future.cancel() is False  # already ended
    # The predict step's MLflow run does not stay RUNNING forever.
    client = MlflowClient(mlflow_server, registry_uri=mlflow_server)
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string="attributes.status = 'RUNNING' and tags.`job.kind` = 'InferenceJob'",
    )
    assert [run.info.run_id for run in runs] == []
    # Nor does any step's run, nor the pipeline run's parent run, which is KILLED. The predict
    # step may have finished before the cancel landed (it predicts 17k rows in well under a
    # second, and the cancel may land in a later step): its run then rightly stays FINISHED.
    parent = client.get_run(step_run).data.tags["mlflow.parentRunId"]
    assert client.get_run(parent).info.status == "KILLED"
    steps = client.search_runs(
        [client.get_run(parent).info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent}'",
    )
    assert step_run in [run.info.run_id for run in steps]
    statuses = {run.data.tags.get("job.kind", run.info.run_name): run.info.status for run in steps}
    assert "RUNNING" not in statuses.values(), statuses
    assert set(statuses.values()) <= {"KILLED", "FAILED", "FINISHED"}, statuses


def test_a_failed_run_errors_with_its_step_and_cause_through_the_cli(trained, home, tmp_path):
    # Not Parquet: found before the run starts (a missing file would be refused then), it
    # fails in the step that reads it.
    broken = tmp_path / "no-such-rows.parquet"
    broken.write_bytes(b"these bytes are not a Parquet file")
    detached = subprocess.run(
        [sys.executable, "-m", "pipelines", "run", "inference", "--local", "--detach",
         "--param", f"data={broken}", "--param", f"model_name={trained[3]}"],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert detached.returncode == 0, detached.stderr
    future_id = detached.stdout.strip()  # the id alone on stdout, for scripts
    assert future_id.startswith("local:") and "\n" not in future_id
    waited = subprocess.run(
        [sys.executable, "-m", "pipelines", "job", "wait", future_id, "--timeout", "300"],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert waited.returncode == 1, waited.stdout + waited.stderr
    status = json.loads(waited.stdout)
    assert status["state"] == "errored"
    assert "step predict: " in status["error"]
    assert "no-such-rows.parquet" in status["error"]
    result = subprocess.run(
        [sys.executable, "-m", "pipelines", "job", "result", future_id],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: job {future_id} failed: step predict: ")
    with pytest.raises(futures.JobError, match="step predict: .*no-such-rows.parquet"):
        management.get_future(future_id).result()


def test_bad_parameters_are_refused_before_anything_starts(home):
    jobs = background.jobs_home()
    before = set(jobs.iterdir()) if jobs.exists() else set()
    predictor = backends.LocalJobPredictor()
    with pytest.raises(params.ParameterError, match="parameter 'batch_size' is NUMBER_INTEGER"):
        predictor.predict(data="rows.parquet", model_name="m", batch_size="many")
    with pytest.raises(
        params.ParameterError, match="unknown parameter 'target' for pipeline inference"
    ):
        predictor.predict(data="rows.parquet", model_name="m", target="cnt")
    after = set(jobs.iterdir()) if jobs.exists() else set()
    assert after == before


def test_a_dead_worker_makes_the_job_errored(home, tmp_path):
    """A worker killed from outside (out of memory, a reboot) leaves no outcome behind."""
    folder = background.JobFolder(background.jobs_home() / background.new_id())
    folder.path.mkdir(parents=True)
    sleeper = subprocess.Popen(["sleep", "0"])
    sleeper.wait()
    folder.write_json(
        background.JOB_FILE,
        {"id": folder.id, "pipeline": "inference", "params": {}, "submitted_at": background.now(),
         "pid": sleeper.pid},
    )  # fmt: skip
    with folder.locked():
        folder.set_state(background.RUNNING)
    status = management.get_future(f"local:{folder.id}").status()
    assert status.state == "errored"
    assert "ended without recording an outcome" in status.error


# %% KFP


@pytest.fixture
def kfp(monkeypatch, tmp_path):
    """The fake KFP API server, with kfp.Client kept hermetic."""
    isolate_kfp_client(monkeypatch, tmp_path)
    with FakeKfpApiServer(polls_before_final=3) as server:
        yield server


def test_a_kfp_prediction_future_follows_the_run_and_reads_mlflow(kfp, trained, home, tmp_path):
    model = trained[0].result()
    predictor = backends.KFPJobPredictor(host=kfp.url, experiment="batch")
    future = predictor.predict(data="s3://rows/today.parquet", model_name=model.name)
    assert isinstance(future, futures.KFPFuture)
    run = kfp.runs[future.run_id]
    assert future.id == f"kfp:{run['run_id']}"
    sent = run["runtime_config"]["parameters"]
    assert (sent["data"], sent["model_name"]) == ("s3://rows/today.parquet", model.name)
    # The cluster's predict step: the real job, tagged with the KFP run id as a pod tags it.
    output = tmp_path / "predictions.parquet"
    with InferenceJob(
        **steps.step_settings("batch", future.run_id, "predict"),
        inputs=datasets.reader_config(str(BIKE_PARQUET), {}),
        outputs=datasets.writer_config(str(output), {}),
        finder=registries.RegistryFinder(name=model.name),
    ) as job:
        job.run()
    states = follow(future, timeout=60)
    assert states == ["running", "completed"]
    status = future.status()
    assert status.submitted_at is not None and status.completed_at is not None
    predictions = future.result()
    assert predictions == outcomes.Predictions(str(output), BIKE_ROWS, model.name, model.version)
    # Found again from its id alone, with the host from the environment.
    os.environ["KF_PIPELINES_ENDPOINT"] = kfp.url
    try:
        again = management.get_future(future.id)
    finally:
        del os.environ["KF_PIPELINES_ENDPOINT"]
    assert again.pipeline == "inference"
    assert again.result() == predictions


def test_a_failed_kfp_run_errors_with_the_failed_step(kfp, home):
    run = kfp.add_finished_run(
        "FAILED", failed_step_details("predict", "inference-x7k2p-1234", "DatasetError: no rows")
    )
    future = backends.KFPJobPredictor(host=kfp.url).get_future(run["run_id"])
    status = future.status()
    assert status.state == "errored"
    assert status.error == "step predict: DatasetError: no rows"
    with pytest.raises(futures.JobError, match="failed: step predict: DatasetError: no rows"):
        future.result()
    shown = subprocess.run(
        [sys.executable, "-m", "pipelines", "job", "status", future.id, "--host", kfp.url],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["state"] == "errored"


def test_cancel_terminates_the_kfp_run(kfp, trained, home):
    predictor = backends.KFPJobPredictor(host=kfp.url)
    future = predictor.predict(data="s3://rows/today.parquet", model_name=trained[3])
    assert future.cancel() is True
    assert kfp.terminated == [future.run_id]
    assert future.status().state == "canceled"
    with pytest.raises(futures.JobCanceled):
        future.result()
    assert future.cancel() is False
    assert kfp.terminated == [future.run_id]


def test_an_artifact_path_in_a_pod_is_reported_as_its_uri():
    assert (
        outcomes.artifact_uri("/minio/mlpipeline/v2/artifacts/x")
        == "minio://mlpipeline/v2/artifacts/x"
    )
    assert outcomes.artifact_uri("/gcs/bucket/p") == "gs://bucket/p"
    assert outcomes.artifact_uri("/s3/bucket/p") == "s3://bucket/p"
    assert outcomes.artifact_uri("/tmp/p.parquet") == "/tmp/p.parquet"
