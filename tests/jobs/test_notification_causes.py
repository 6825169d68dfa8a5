"""The pipeline's alert names a step that died before recording its outcome, and why.

Against the session's real MLflow server and a local server that answers as Slack's webhook
does. A step's death is staged as its orchestrator keeps it: a kfp.local run folder with the
step's real log (written by the real job through LoggerService), or, for a cluster, two fakes
over real HTTP because no KFP API server nor Kubernetes API server can run here:
tests/pipelines/kfp_api_server.py answers the run's task details as the KFP v2beta1 API does,
and tests/io/kubernetes_api_server.py answers pods and pod logs as the Kubernetes API does.
"""

from __future__ import annotations

import logging
import sys

import pandas as pd
import pytest
from mlflow import MlflowClient

from components.io import alerts, datasets, registries, runs, services
from components.jobs import base
from components.jobs.inference import InferenceJob
from components.jobs.notification import NotificationJob
from tests.conftest import free_port
from tests.io.kubernetes_api_server import terminated_pod
from tests.io.slack_server import SlackWebhookServer
from tests.jobs.helpers import unique
from tests.pipelines.kfp_api_server import failed_step_details

pytestmark = pytest.mark.integration

SECRET = "s3cret-pa55"
TOKEN = "service-account-token-0123456789"
NAMESPACE = "ml-lifecycle"
POD = "training-x7k2p-system-container-impl-2718281828"
OOM_LOG = "".join(
    f"[KFP Executor 2024-05-01 10:00:{second:02d},000 INFO]: scored batch {second}\n"
    for second in range(30)
)


@pytest.fixture
def root_logging():
    """Log INFO records, and leave no step log handler or excepthook behind."""
    root = logging.getLogger()
    level, hook = root.level, sys.excepthook
    root.setLevel(logging.INFO)
    yield
    for handler in [h for h in root.handlers if isinstance(h, services.StepLogHandler)]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)
    sys.excepthook = hook


@pytest.fixture
def slack(monkeypatch):
    with SlackWebhookServer() as server:
        monkeypatch.setenv("SLACK_WEBHOOK_URL", server.url)
        yield server


def message(body: dict) -> str:
    return body["blocks"][1]["text"]["text"]


def fields(body: dict) -> dict[str, str]:
    pairs = [f["text"] for block in body["blocks"] for f in block.get("fields", [])]
    return dict(pair.removeprefix("*").split("*\n", 1) for pair in pairs)


def notify(tracking_uri: str, experiment: str, run_id: str, **fields) -> NotificationJob:
    """The notify step's job, as the component builds it."""
    return NotificationJob(
        pipeline="inference",
        run_id=run_id,
        mlflow_service=services.MlflowService(
            tracking_uri=tracking_uri, experiment_name=experiment
        ),
        **{"alerter": alerts.default_alerter(), **fields},
    )


def test_a_step_failing_on_an_unreachable_mlflow_is_named_with_its_cause(
    tmp_path, root_logging, slack, capfd
):
    """kfp.local: MLflow is down for the step and for the exit step; the step's log tells."""
    down = f"http://alice:{SECRET}@127.0.0.1:{free_port()}"
    run_folder = tmp_path / "inference-2024-05-01-10-00-00-000000"
    data = tmp_path / "in.parquet"
    pd.DataFrame({"x": [1.0, 2.0]}).to_parquet(data)
    step = InferenceJob(
        inputs=datasets.ParquetReader(path=str(data)),
        outputs=datasets.ParquetWriter(path=str(run_folder / "predict" / "predictions")),
        finder=registries.RegistryFinder(name="bikes"),
        mlflow_service=services.MlflowService(tracking_uri=down, experiment_name="down"),
        alerter=alerts.ConsoleAlerter(),
        logger_service=services.LoggerService(file=str(run_folder / "predict" / "step.log")),
        run_tags={"kfp.task": "predict", base.PIPELINE_RUN_TAG: "run-1"},
    )
    with pytest.raises(services.MlflowUnavailableError), step:
        step.run()
    job = notify(
        down,
        "down",
        "run-1",
        state="FAILED",
        error="Task exit-handler-1 failed.",
        tasks=runs.LocalTaskReader(run_folder=str(run_folder), own_task="notify"),
    )
    with job:
        result = job.run()
    assert result.delivered
    [request] = slack.requests
    text = message(request.body)
    assert text.startswith(
        "Pipeline inference ended FAILED.\nFailed step predict: InferenceJob: cannot use MLflow at "
        "http://alice:***@127.0.0.1:"
    )
    assert "in step predict: MlflowException: API request to http://alice:***@127.0.0.1:" in text
    assert "Task exit-handler-1 failed." not in text  # the cause replaces KFP's generic line
    assert fields(request.body)["failed step"] == "predict"
    out = capfd.readouterr()
    assert SECRET not in request.raw.decode() + out.out + out.err
    assert SECRET not in (run_folder / "predict" / "step.log").read_text()


@pytest.fixture
def cluster_reader(kfp_api, kubernetes_api, tmp_path):
    """A ClusterTaskReader for a run of the fake KFP API, with a service account's token."""
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text(TOKEN)

    def build(run_id: str) -> runs.ClusterTaskReader:
        return runs.ClusterTaskReader(
            run_id=run_id,
            kfp_host=kfp_api.url,
            kubernetes_host=kubernetes_api.url,
            service_account_path=str(account),
            kfp_token_path=str(account / "no-kfp-token"),
            namespace=NAMESPACE,
        )

    return build


def started_run(client: MlflowClient, experiment: str, run_id: str, task: str, kind: str) -> str:
    """An MLflow run as a step starts it: RUNNING, tagged with the pipeline run and task."""
    experiment_id = client.create_experiment(experiment)
    tags = {base.JOB_TAG: kind, base.PIPELINE_RUN_TAG: run_id, "kfp.task": task}
    return client.create_run(experiment_id, run_name=kind, tags=tags).info.run_id


def test_an_oom_killed_step_is_alerted_with_its_last_log_lines_and_its_run_failed(
    tracking, slack, kfp_api, kubernetes_api, cluster_reader
):
    """A cluster: the train pod was OOMKilled after its job started its MLflow run."""
    experiment = unique("oom")
    run_id = kfp_api.add_finished_run("FAILED", failed_step_details("train", POD))["run_id"]
    kubernetes_api.add_pod(terminated_pod(POD, "OOMKilled", 137, "2Gi"), OOM_LOG)
    client = MlflowClient(tracking)
    left = started_run(client, experiment, run_id, "train", "TrainingJob")
    job = notify(
        tracking,
        experiment,
        run_id,
        state="FAILED",
        error="Task exit-handler-1 failed.",
        tasks=cluster_reader(run_id),
    )
    with job:
        result = job.run()
    cause = (
        "OOMKilled (exit code 137, memory limit 2Gi); "
        "last log lines: scored batch 27 | scored batch 28 | scored batch 29"
    )
    [request] = slack.requests
    assert message(request.body) == f"Pipeline inference ended FAILED.\nFailed step train: {cause}"
    assert fields(request.body)["failed step"] == "train (TrainingJob)"
    assert result.closed == [left]
    run = client.get_run(left)
    assert run.info.status == "FAILED"
    assert run.data.tags[base.ERROR_TAG] == (
        f"step train ended without recording its outcome: {cause}"
    )


def test_runs_left_running_by_the_pipeline_run_are_ended_failed(tracking):
    """Nothing tells the cause: the run still ends FAILED, saying so; others are untouched."""
    experiment = unique("abandoned")
    client = MlflowClient(tracking)
    left = started_run(client, experiment, "run-1", "predict", "InferenceJob")
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    tags = {base.PIPELINE_RUN_TAG: "run-1", "kfp.task": "train", base.JOB_TAG: "TrainingJob"}
    finished = client.create_run(experiment_id, tags=tags).info.run_id
    client.set_terminated(finished, "FINISHED")
    other_tags = {**tags, base.PIPELINE_RUN_TAG: "run-2"}
    other = client.create_run(experiment_id, tags=other_tags).info.run_id  # still going
    job = notify(tracking, experiment, "run-1", state="FAILED", alerter=alerts.ConsoleAlerter())
    with job:
        result = job.run()
    assert result.closed == [left]
    closed = client.get_run(left)
    assert closed.info.status == "FAILED"
    assert closed.data.tags[base.ERROR_TAG] == (
        "step predict ended without recording its outcome: "
        "killed, or its pod lost, with no cause left"
    )
    assert "Failed step predict: killed, or its pod lost, with no cause left" in result.message
    assert result.fields["failed step"] == "predict (InferenceJob)"
    assert client.get_run(finished).info.status == "FINISHED"
    assert client.get_run(other).info.status == "RUNNING"


def test_a_succeeded_pipeline_asks_no_api(tracking, kfp_api, cluster_reader):
    run_id = kfp_api.add_finished_run("SUCCEEDED", [])["run_id"]
    job = notify(
        tracking,
        unique("fine"),
        run_id,
        alerter=alerts.ConsoleAlerter(),
        tasks=cluster_reader(run_id),
    )
    with job:
        result = job.run()
    assert result.message == "Pipeline inference succeeded."
    assert kfp_api.requests == []


def test_the_alert_goes_out_when_no_api_answers(tracking, slack, tmp_path, caplog):
    down = f"http://127.0.0.1:{free_port()}"
    reader = runs.ClusterTaskReader(
        run_id="run-1",
        kfp_host=down,
        kubernetes_host=down,
        service_account_path=str(tmp_path),
        kfp_token_path=str(tmp_path / "none"),
        namespace=NAMESPACE,
    )
    job = notify(
        tracking,
        unique("no-api"),
        "run-1",
        state="FAILED",
        error="Task exit-handler-1 failed.",
        tasks=reader,
    )
    with caplog.at_level(logging.WARNING), job:
        result = job.run()
    assert result.delivered
    assert message(slack.requests[-1].body) == (
        "Pipeline inference ended FAILED.\nTask exit-handler-1 failed."
    )
    assert "cannot read the run's tasks from KFP at http://127.0.0.1:" in caplog.text


def test_a_component_used_twice_fails_once_under_the_task_name_the_run_shows(
    tracking, tmp_path, root_logging, slack
):
    """kfp.local: the lifecycle's second predict (`predict-2`, the branch of a refused
    candidate) failed; its job's run is recorded as `predict`, the component's name."""
    experiment, run_id = unique("twice"), "run-twice"
    client = MlflowClient(tracking)
    recorded = started_run(client, experiment, run_id, "predict", "InferenceJob")
    cause = "RegistryError: model 'm' has no alias 'Champion' (models:/m@Champion)"
    client.set_tag(recorded, base.ERROR_TAG, cause)
    client.set_terminated(recorded, "FAILED")
    run_folder = tmp_path / "lifecycle-2024-05-01-10-00-00-000000"
    (run_folder / "predict-2").mkdir(parents=True)
    (run_folder / "predict-2" / "step.log").write_text(
        f"2024-05-01 10:00:00 ERROR components.jobs.base: InferenceJob failed: {cause}\n"
    )

    job = notify(
        tracking,
        experiment,
        run_id,
        state="FAILED",
        tasks=runs.LocalTaskReader(run_folder=str(run_folder), own_task="notify"),
    )
    with job:
        job.run()

    [request] = slack.requests
    text = message(request.body)
    assert text.count("Failed step") == 1, text
    assert f"Failed step predict-2: {cause}" in text
    assert fields(request.body)["failed step"] == "predict-2 (InferenceJob)"


def test_the_exit_step_says_whether_its_alert_was_delivered(
    tracking, root_logging, slack, monkeypatch, caplog
):
    """The local console's notify line reads this line: a webhook that is no URL (a value
    pasted without `https://`) left the run SUCCEEDED and the console silent."""
    caplog.set_level(logging.INFO)
    job = notify(tracking, unique("delivery"), "")
    with job:
        assert job.run().delivered
    assert "Alert delivery: delivered by SlackAlerter" in caplog.messages
    assert len(slack.requests) == 1

    monkeypatch.setenv("SLACK_WEBHOOK_URL", "hooks.slack.com/services/T0/B0/s3cret")
    caplog.clear()
    job = notify(tracking, unique("delivery"), "")
    with job:
        assert not job.run().delivered
    [line] = [m for m in caplog.messages if m.startswith("Alert delivery: ")]
    assert line == (
        "Alert delivery: NOT delivered by SlackAlerter: SLACK_WEBHOOK_URL is not an http(s) URL "
        "(a Slack webhook's starts with https://hooks.slack.com/)"
    )
    assert "s3cret" not in caplog.text
