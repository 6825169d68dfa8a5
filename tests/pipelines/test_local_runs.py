"""The pipelines run for real under kfp.local, against a real MLflow server and a fake Slack.

Each pipeline runs once per module (the runs are the slow part): `training` registers and
promotes a model while Slack answers 404, `inference` predicts the whole bike data set with that
Champion, and `lifecycle` trains, promotes, then meets bad inference data and fails in predict.
Every step runs in its own subprocess, as in a pod; the steps inherit this process's environment
(MLFLOW_TRACKING_URI, SLACK_WEBHOOK_URL). Slack's answers that only change how the alert is
delivered (429, 500, 404) are checked on the notify step's job against the MLflow runs that the
failed lifecycle run recorded, rather than by running the pipeline again for each.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import pathlib
import re
import subprocess
import sys
import time
import typing as T
import uuid

import pandas as pd
import pytest
from mlflow import MlflowClient

from components.io import alerts, datasets, parents, services
from components.jobs import base
from components.jobs.notification import NotificationJob
from pipelines.__main__ import main
from pipelines.common import outcomes
from pipelines.jobs import futures
from pipelines.local.runner import run_local
from tests.conftest import BIKE_PARQUET, BIKE_SCHEMA
from tests.io.slack_server import ReceivedRequest, SlackWebhookServer

pytestmark = [
    pytest.mark.integration,
    # kfp.local warns that the project image's steps run in this Python environment: they do.
    pytest.mark.filterwarnings("ignore:You may be attemping:RuntimeWarning"),
]

BIKE_ROWS = 17_379
SMALL_ROWS = 3_000  # enough for a model that passes r2 >= 0.5, quick to train
BAD_ROWS, BAD_TEMP_ROWS = 500, 7
SHARD_ROWS = 6_000  # rows per row group (or file) of the sharded runs' inputs: 3 shards
FAST = {"model_params": {"max_iter": 30}, "thresholds": {"r2": 0.5}}
# The demo data's columns, as confs/bike-sharing.yaml describes them.
BIKE = {
    "target": "cnt",
    "exclude": ["instant", "dteday", "casual", "registered"],
    "categorical": ["season", "weathersit"],
    "time_column": "instant",
}
PASSTHROUGH = ["instant", "dteday"]
PROXIES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


@dataclasses.dataclass(frozen=True)
class Run:
    """One pipeline run: its outcome, its outputs, and the Slack requests it made."""

    succeeded: bool
    run_dir: pathlib.Path
    alerts: list[ReceivedRequest]
    model_name: str
    experiment: str
    seconds: float
    printed: str = ""  # the terminal's text, for a run through the command line

    @property
    def lines(self) -> list[str]:
        return self.printed.splitlines()

    def output(self, task: str, artifact: str) -> pathlib.Path:
        return self.run_dir / task / artifact

    def returned(self, task: str) -> dict[str, T.Any]:
        """The parameters a task returned (its executor output)."""
        output = json.loads(self.output(task, "executor_output.json").read_text())
        return output.get("parameterValues", {})

    def alert(self) -> dict[str, T.Any]:
        assert len(self.alerts) == 1, [r.body for r in self.alerts]
        [request] = self.alerts
        return request.body


def header(body: dict) -> str:
    return body["blocks"][0]["text"]["text"]


def message(body: dict) -> str:
    return body["blocks"][1]["text"]["text"]


def fields(body: dict) -> dict[str, str]:
    """The alert's key facts, `*key*\\nvalue` back to {key: value}."""
    pairs = [f["text"] for block in body["blocks"] for f in block.get("fields", [])]
    return dict(pair.removeprefix("*").split("*\n", 1) for pair in pairs)


@pytest.fixture(scope="module")
def environment(mlflow_server):
    """This process's environment for the module's runs, restored afterwards."""
    with pytest.MonkeyPatch.context() as patch:
        for name in PROXIES:
            patch.delenv(name, raising=False)
        # run_local sets MLFLOW_TRACKING_URI for the steps; setting it first restores it after.
        patch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
        patch.delenv("SLACK_WEBHOOK_URL", raising=False)
        yield patch


@pytest.fixture(scope="module")
def slack(environment):
    """A fake Slack webhook that every step of the module's runs can reach."""
    with SlackWebhookServer() as server:
        environment.setenv("SLACK_WEBHOOK_URL", server.url)
        yield server


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, pathlib.Path]:
    """Small training data, and inference data that breaks the schema in two columns."""
    folder = tmp_path_factory.mktemp("data")
    bike = pd.read_parquet(BIKE_PARQUET)
    small = folder / "small.parquet"
    bike.head(SMALL_ROWS).to_parquet(small)
    bad = bike.head(BAD_ROWS).copy()
    bad["hr"] = bad["hr"].astype(str)  # every row: a string where the model wants an integer
    bad.loc[bad.index[:BAD_TEMP_ROWS], "temp"] = 5.0  # out of the schema's [0, 1]
    bad_path = folder / "bad.parquet"
    bad.to_parquet(bad_path)
    # For the sharded runs: three row groups in one file; three files, the second corrupt.
    grouped = folder / "grouped.parquet"
    bike.to_parquet(grouped, row_group_size=SHARD_ROWS)
    corrupt = folder / "corrupt"
    corrupt.mkdir()
    for number, start in enumerate(range(0, len(bike), SHARD_ROWS)):
        bike.iloc[start : start + SHARD_ROWS].to_parquet(corrupt / f"{number}.parquet")
    second = corrupt / "1.parquet"
    raw = bytearray(second.read_bytes())  # data pages overwritten, the footer intact
    raw[100 : len(raw) // 2] = b"\xff" * (len(raw) // 2 - 100)
    second.write_bytes(bytes(raw))
    return {"small": small, "bad": bad_path, "grouped": grouped, "corrupt": corrupt}


def run(
    slack: SlackWebhookServer,
    root: pathlib.Path,
    name: str,
    params: dict[str, T.Any],
    answers: list,
    model_name: str,
    experiment: str,
    tracking_uri: str,
) -> Run:
    slack.reset()
    slack.script(answers)
    started = time.monotonic()
    params = {**params, "model_name": model_name, "experiment": experiment}
    succeeded, run_dir = run_local(name, params, root=root, tracking_uri=tracking_uri)
    return Run(
        succeeded, run_dir, slack.requests, model_name, experiment, time.monotonic() - started
    )


def run_cli(
    slack: SlackWebhookServer,
    root: pathlib.Path,
    name: str,
    params: dict[str, T.Any],
    model_name: str,
    experiment: str,
) -> Run:
    """`python -m pipelines run NAME --local --config FILE --root ROOT`, its terminal kept."""
    slack.reset()
    config = root / "run.yaml"  # JSON is YAML
    parameters = {**params, "model_name": model_name, "experiment": experiment}
    config.write_text(json.dumps({"pipeline": name, "parameters": parameters}))
    before = set((root / "pipeline-root").glob("*"))
    printed = io.StringIO()
    started = time.monotonic()
    with contextlib.redirect_stdout(printed):
        code = main(["run", name, "--local", "--config", str(config), "--root", str(root)])
    [run_dir] = set((root / "pipeline-root").glob("*")) - before
    return Run(
        code == 0, run_dir, slack.requests, model_name, experiment,
        time.monotonic() - started, printed.getvalue(),
    )  # fmt: skip


def run_apart(
    slack: SlackWebhookServer,
    root: pathlib.Path,
    name: str,
    params: dict[str, T.Any],
    model_name: str,
    experiment: str,
    tracking_uri: str,
) -> Run:
    """`run`, in a process of its own: kfp.local keeps state in the process that ran a
    ParallelFor (a failed one most of all), which later in-process runs must not inherit."""
    slack.reset()
    started = time.monotonic()
    params = {**params, "model_name": model_name, "experiment": experiment}
    code = (
        "import json, pathlib, sys\n"
        "from pipelines.local.runner import run_local\n"
        "ok, run_dir = run_local(sys.argv[1], json.loads(sys.argv[2]), "
        "root=pathlib.Path(sys.argv[3]), tracking_uri=sys.argv[4])\n"
        "print('RUN-RESULT ' + json.dumps([ok, str(run_dir)]))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code, name, json.dumps(params), str(root), tracking_uri],
        capture_output=True, text=True, cwd=pathlib.Path(__file__).resolve().parents[2],
    )  # fmt: skip
    # kfp.local indents what a process prints after a failed ParallelFor: the leaked state.
    lines = re.findall(r"RUN-RESULT (.*)$", completed.stdout, flags=re.MULTILINE)
    assert lines, completed.stdout[-3000:] + completed.stderr[-3000:]
    succeeded, run_dir = json.loads(lines[-1])
    return Run(
        succeeded, pathlib.Path(run_dir), slack.requests, model_name, experiment,
        time.monotonic() - started,
    )  # fmt: skip


def unique(prefix: str) -> str:
    """A name no other test uses on the shared MLflow server."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def trained(slack, data, mlflow_server, tmp_path_factory) -> Run:
    """The training pipeline on small data, while Slack answers 404 no_service."""
    params = {"data": str(data["small"]), **BIKE, **FAST}
    return run(
        slack, tmp_path_factory.mktemp("training"), "training", params, [(404, "no_service")],
        unique("local-training"), unique("local-training"), mlflow_server,
    )  # fmt: skip


@pytest.fixture(scope="module")
def retrain(data, tmp_path_factory) -> dict[str, T.Any]:
    """A retraining policy: the small data trained under a model name of its own (so that the
    versions the module's other runs count stay theirs), refused by its evaluation, in background
    jobs of a folder of its own."""
    home = tmp_path_factory.mktemp("retraining-jobs")
    training = {**BIKE, "data": str(data["small"]), "model_params": {"max_iter": 20}}
    training["model_name"] = unique("local-retrained")
    return {
        "period_hours": 24,
        "trainer": {"type": "LocalTrainer", "config": {"home": str(home)}},
        "parameters": {**training, "thresholds": {"r2": 0.9999}},
    }


@pytest.fixture(scope="module")
def inferred(trained, slack, retrain, mlflow_server, tmp_path_factory) -> Run:
    """The inference pipeline on the whole bike data set, with the Champion just trained; the
    batch drifts, so its retraining policy starts a training."""
    params = {
        "data": str(BIKE_PARQUET),
        "input_schema": str(BIKE_SCHEMA),
        "passthrough": PASSTHROUGH,
        "max_samples": 50,
        "retraining": retrain,
    }
    done = run(
        slack, tmp_path_factory.mktemp("inference"), "inference", params, [],
        trained.model_name, unique("local-inference"), mlflow_server,
    )  # fmt: skip
    # The training it started runs in the background and alerts this module's Slack when it
    # ends: it must end before another run of the module starts counting alerts.
    started = fields(done.alert()).get("retraining", "")
    if started.startswith("started local:"):
        home = pathlib.Path(retrain["trainer"]["config"]["home"])
        futures.LocalFuture.find(started.removeprefix("started local:"), home).wait(timeout=600)
    return done


@pytest.fixture(scope="module")
def refused(trained, inferred, slack, retrain, mlflow_server, tmp_path_factory) -> Run:
    """The inference pipeline under drift_policy=fail: the Champion learnt from the first
    rows (winter); the whole year has drifted from them. Its retraining is due, within the
    period of the one `inferred` started."""
    params = {
        "data": str(BIKE_PARQUET),
        "drift_policy": "fail",
        "max_samples": 50,
        "retraining": retrain,
    }
    return run(
        slack, tmp_path_factory.mktemp("refused"), "inference", params, [],
        trained.model_name, unique("local-refused"), mlflow_server,
    )  # fmt: skip


@pytest.fixture(scope="module")
def failed(slack, data, mlflow_server, tmp_path_factory) -> Run:
    """The lifecycle pipeline: training passes, then predict meets bad data."""
    params = {
        "data": str(data["small"]),
        "inference_data": str(data["bad"]),
        "input_schema": str(BIKE_SCHEMA),
        "max_samples": 50,
        **BIKE,
        **FAST,
    }
    root = tmp_path_factory.mktemp("lifecycle")
    # An earlier run's outputs, which this run must not leave in latest/.
    (root / "latest").mkdir()
    (root / "latest" / "drift.html").write_text("an earlier run's report")
    return run_cli(
        slack, root, "lifecycle", params, unique("local-lifecycle"), unique("local-lifecycle")
    )


# training


def test_training_registers_a_version_and_promotes_it(trained, mlflow_server):
    assert trained.succeeded
    client = MlflowClient(mlflow_server, registry_uri=mlflow_server)
    versions = client.search_model_versions(f"name = '{trained.model_name}'")
    assert [version.version for version in versions] == ["1"]
    assert client.get_model_version_by_alias(trained.model_name, "Champion").version == "1"
    assert trained.returned("train") == {"version": 1}
    # No Champion to compare with: evaluate says so (the alias), promote serves the new version.
    assert trained.returned("evaluate") == {"Output": True}
    assert trained.output("evaluate", "champion").read_text() == "Champion"
    assert trained.returned("promote") == {"Output": "1"}
    assert "Passed" in trained.output("evaluate", "report").read_text()


def test_training_succeeds_when_slack_answers_404(trained):
    # One request, not retried: 404 no_service will not get better.
    body = trained.alert()
    assert trained.returned("notify") == {"Output": False}
    assert trained.succeeded, "an undelivered alert must not fail the pipeline"
    assert header(body).startswith(":white_check_mark: training: SUCCEEDED")
    facts = fields(body)
    assert facts["model"] == f"{trained.model_name} v1"
    assert "failed step" not in facts
    assert "Pipeline training succeeded." in message(body)


# inference


def test_inference_writes_every_row_with_the_passthrough_columns(inferred):
    assert inferred.succeeded
    predictions = pd.read_parquet(inferred.output("predict", "predictions"))
    assert list(predictions.columns) == [*PASSTHROUGH, "prediction"]
    assert len(predictions) == BIKE_ROWS
    source = pd.read_parquet(BIKE_PARQUET, columns=PASSTHROUGH)
    pd.testing.assert_frame_equal(predictions[PASSTHROUGH], source)
    assert predictions["prediction"].notna().all()
    assert inferred.returned("predict") == {"rows": BIKE_ROWS, "version": 1}


def test_inference_explains_the_model_and_samples(inferred):
    models = pd.read_parquet(inferred.output("explain", "models_explanations"))
    assert {"feature", "importance"} <= set(models.columns)
    assert len(models) >= 10 and (models["importance"] >= 0).all()
    samples = pd.read_parquet(inferred.output("explain", "samples_explanations"))
    assert len(samples) == 50
    assert any(column.startswith("shap_") for column in samples.columns)
    report = inferred.output("explain", "report").read_text()
    assert report.startswith("<!DOCTYPE html>") and "data:image/png;base64," in report
    assert inferred.returned("explain") == {"Output": 1}


def test_inference_alert_says_what_was_predicted(inferred):
    body = inferred.alert()
    assert inferred.returned("notify") == {"Output": True}
    assert header(body).startswith(":white_check_mark: inference: SUCCEEDED")
    facts = fields(body)
    assert facts["model"] == f"{inferred.model_name} v1"
    assert facts["rows predicted"] == f"{BIKE_ROWS:,}"
    assert facts["samples explained"] == "50"
    # The model learnt from the first rows only: the alert lists what drifted (warn: no failure).
    assert re.search(
        r"Drift \(predict\): \d+ of 12 features drifted over 17,379 rows: ", message(body)
    )


def test_inference_reports_drift_in_its_outputs(inferred):
    table = pd.read_parquet(inferred.output("predict", "drift_table"))
    assert len(table) == 13 and table["column"].iloc[-1] == "(prediction)"
    drifted = table.loc[table["status"] == "drift", "column"].tolist()
    assert drifted, "a model trained on winter rows sees the whole year drift"
    report = inferred.output("predict", "drift_report").read_text()
    executor = json.loads(inferred.output("predict", "executor_output.json").read_text())
    [metrics] = executor["artifacts"]["drift_metrics"]["artifacts"]
    features = [column for column in drifted if column != "(prediction)"]
    assert metrics["metadata"]["drift_drifted_features"] == len(features)
    assert f"{len(features)} of 12 features drifted" in report


def test_drift_policy_fail_publishes_nothing_and_the_alert_names_the_features(refused):
    assert not refused.succeeded
    assert not refused.output("predict", "predictions").exists()
    assert not (refused.run_dir / "explain").exists()
    body = refused.alert()
    assert header(body).startswith(":x: inference: FAILED")
    text = message(body)
    failure = re.search(r"Failed step predict: DriftError: (\d+) feature\(s\) drifted", text)
    assert failure, text
    assert "temp (Wasserstein" in text and "with drift_policy=fail nothing was published" in text
    assert fields(body)["failed step"] == "predict (InferenceJob)"


def test_retraining_starts_one_training_and_not_a_second_within_its_period(
    inferred, refused, retrain, mlflow_server
):
    """The drifted batch's alert step starts the training pipeline in the background (a real
    kfp.local run of its own); the next drifted run, within the period, starts none."""
    started = fields(inferred.alert())["retraining"]
    assert started.startswith("started local:"), message(inferred.alert())
    job = started.removeprefix("started ")
    text = message(inferred.alert())
    retrained = retrain["parameters"]["model_name"]
    assert f"Retraining: started job {job}, training {retrained} (the batch drifted " in text
    home = pathlib.Path(retrain["trainer"]["config"]["home"])
    assert [folder.name for folder in home.iterdir()] == [job.removeprefix("local:")]
    # The training ran for real: a version registered, refused by its evaluation (r2 >= 0.9999).
    outcome = futures.LocalFuture.find(job.removeprefix("local:"), home).result(timeout=600)
    assert (outcome.name, outcome.version, outcome.passed) == (retrained, 1, False)
    client = MlflowClient(mlflow_server, registry_uri=mlflow_server)
    assert client.get_registered_model(inferred.model_name).aliases == {"Champion": "1"}
    # A pipeline run of its own (its own parent run, named training), in the experiment of the
    # run that started it.
    experiment = client.get_experiment_by_name(inferred.experiment).experiment_id
    pipelines = {
        run.data.tags.get(parents.PIPELINE_TAG)
        for run in client.search_runs([experiment], f"tags.`{parents.PARENT_TAG}` = 'true'")
    }
    assert pipelines == {"inference", "training"}
    # The refused run is due too, within the period: not started, and the alert says by whom.
    assert fields(refused.alert())["retraining"] == "not started"
    assert re.search(
        rf"Retraining: due \(the batch drifted \(predict\)\), not started: job {job} started "
        r"one at \d{4}-\d\d-\d\d \d\d:\d\d UTC, within the 24 h period",
        message(refused.alert()),
    ), message(refused.alert())
    assert len(list(home.iterdir())) == 1


# inference over shards


@pytest.fixture(scope="module")
def sharded(trained, slack, data, mlflow_server, tmp_path_factory) -> Run:
    """The inference pipeline over 3 shards, on the bike data in row groups of 6,000 rows."""
    params = {
        "data": str(data["grouped"]),
        "input_schema": str(BIKE_SCHEMA),
        "passthrough": PASSTHROUGH,
        "max_samples": 50,
        "shards": 3,
    }
    return run_apart(
        slack, tmp_path_factory.mktemp("sharded"), "inference", params,
        trained.model_name, unique("local-sharded"), mlflow_server,
    )  # fmt: skip


@pytest.fixture(scope="module")
def shard_failed(trained, slack, data, mlflow_server, tmp_path_factory) -> Run:
    """The inference pipeline over 3 shards of 3 files, the second one corrupt."""
    params = {"data": str(data["corrupt"]), "max_samples": 20, "shards": 3}
    return run_apart(
        slack, tmp_path_factory.mktemp("shard-failed"), "inference", params,
        trained.model_name, unique("local-shard-failed"), mlflow_server,
    )  # fmt: skip


def test_sharded_inference_publishes_the_rows_of_one_pod(sharded, inferred):
    assert sharded.succeeded
    parts = sorted(sharded.run_dir.glob("for-loop-*-iteration-*/predict-shard/part"))
    assert len(parts) == 3
    assert not (sharded.run_dir / "predict").exists()  # the one-pod branch did not run
    published = sharded.output("publish-predictions", "predictions")
    manifest = json.loads((published / "_manifest.json").read_text())
    assert manifest["rows"] == BIKE_ROWS and manifest["model_version"] == 1
    assert sorted(manifest["files"]) == [str(part) for part in parts]
    assert [part["rows"] for part in manifest["parts"]] == [SHARD_ROWS, SHARD_ROWS, 5_379]
    assert sharded.returned("publish-predictions") == {"Output": BIKE_ROWS}
    one = pd.read_parquet(inferred.output("predict", "predictions"))
    every = datasets.reader_for(str(published)).read()
    pd.testing.assert_frame_equal(
        every.sort_values("instant").reset_index(drop=True),
        one.sort_values("instant").reset_index(drop=True),
    )
    samples = pd.read_parquet(sharded.output("explain-2", "samples_explanations"))
    assert len(samples) == 50
    # The published dataset names its model as one pod's predictions do (the outputs' lines).
    assert outcomes.versions(sharded.run_dir)["publish-predictions"] == (f"{sharded.model_name} v1")


def test_sharded_inference_alert_counts_the_rows_of_every_shard(sharded):
    body = sharded.alert()
    assert header(body).startswith(":white_check_mark: inference: SUCCEEDED")
    facts = fields(body)
    assert facts["rows predicted"] == f"{BIKE_ROWS:,}"
    assert facts["model"] == f"{sharded.model_name} v1"


def test_a_failed_shard_publishes_nothing_and_the_alert_names_it(shard_failed):
    assert not shard_failed.succeeded
    assert not (shard_failed.run_dir / "publish-predictions").exists()
    assert not list(shard_failed.run_dir.glob("explain*"))
    text = message(shard_failed.alert())
    assert "Failed step predict-shard-1: DatasetError: cannot read ParquetReader input" in text
    assert "1.parquet" in text
    assert "for-loop" not in text  # a loop's folder is not a step
    assert fields(shard_failed.alert())["failed step"] == "predict-shard-1 (InferenceJob)"


# lifecycle, failing on bad inference data


def test_bad_input_fails_the_pipeline_in_predict_and_writes_nothing(failed, mlflow_server):
    assert not failed.succeeded
    # Training and promotion ran; predict wrote nothing; explain never started.
    client = MlflowClient(mlflow_server, registry_uri=mlflow_server)
    assert client.get_model_version_by_alias(failed.model_name, "Champion").version == "1"
    assert not failed.output("predict", "predictions").exists()
    assert not failed.output("predict", "summary").exists()
    assert not (failed.run_dir / "explain").exists()
    assert failed.returned("notify") == {"Output": True}


def assert_failure_alert(body: dict, model_name: str) -> None:
    """The alert of the failed lifecycle run: state, failed step, and the validation error."""
    assert header(body).startswith(":x: lifecycle: FAILED")
    text = message(body)
    assert "Pipeline lifecycle ended FAILED." in text
    assert "Failed step predict: ValidationError: input validation failed" in text
    assert f"over {BAD_ROWS} rows checked; nothing was written" in text
    # The run trained `hr` (whole numbers, a numerical feature) into a double of its signature.
    assert f"column 'hr': type double expected, got str ({BAD_ROWS} rows)" in text
    assert f"column 'temp': must satisfy in_range(0, 1) ({BAD_TEMP_ROWS} rows)" in text
    facts = fields(body)
    assert facts["failed step"] == "predict (InferenceJob)"
    assert facts["model"] == f"{model_name} v1"
    assert "rows predicted" not in facts


def test_bad_input_alert_names_the_step_the_column_the_rule_and_the_rows(failed):
    assert_failure_alert(failed.alert(), failed.model_name)


def pipeline_run_id(failed: Run, mlflow_server: str) -> str:
    """The KFP run id the failed run's steps tagged their MLflow runs with."""
    client = MlflowClient(mlflow_server, registry_uri=mlflow_server)
    experiment = client.get_experiment_by_name(failed.experiment)
    runs = client.search_runs([experiment.experiment_id])
    steps = [run for run in runs if base.JOB_TAG in run.data.tags]
    ids = {run.data.tags[base.PIPELINE_RUN_TAG] for run in runs}
    assert len(ids) == 1 and len(steps) == 4  # train, evaluate, promote, predict
    # ... nested under the one parent run of the pipeline run
    [parent] = [run for run in runs if run.data.tags.get(parents.PARENT_TAG) == "true"]
    assert {run.data.tags["mlflow.parentRunId"] for run in steps} == {parent.info.run_id}
    return ids.pop()


@pytest.mark.parametrize(
    ("answers", "requests", "delivered", "waited"),
    [
        pytest.param([(200, "ok")], 1, True, 0.0, id="ok"),
        pytest.param([(429, "rate_limited", {"Retry-After": "1"})], 2, True, 1.0, id="429"),
        pytest.param([(500, "internal_error")], 2, True, 0.0, id="500"),
        pytest.param([(404, "no_service")], 1, False, 0.0, id="404-not-retried"),
    ],
)
def test_notify_job_delivers_the_failure_through_slack_answers(
    failed, mlflow_server, monkeypatch, answers, requests, delivered, waited
):
    """The notify step's job, as the component builds it, against the failed run's records."""
    run_id = pipeline_run_id(failed, mlflow_server)
    with SlackWebhookServer() as server:
        server.script(answers)
        monkeypatch.setenv("SLACK_WEBHOOK_URL", server.url)
        job = NotificationJob(
            pipeline="lifecycle",
            run_id=run_id,
            state="FAILED",
            mlflow_service=services.MlflowService(
                tracking_uri=mlflow_server, experiment_name=failed.experiment
            ),
            alerter=alerts.default_alerter(),
        )
        started = time.monotonic()
        with job:
            result = job.run()
        seconds = time.monotonic() - started
        received = server.requests
    assert result.delivered is delivered
    assert len(received) == requests
    assert seconds >= waited
    for request in received:  # a retry sends the same alert again
        assert request.body == received[0].body
    assert_failure_alert(received[-1].body, failed.model_name)
    assert fields(received[-1].body)["run"] == run_id


# lifecycle, a new version that does not pass


@pytest.fixture(scope="module")
def kept(trained, slack, data, mlflow_server, tmp_path_factory) -> Run:
    """The lifecycle pipeline on the trained model, with a threshold no version meets."""
    params = {
        "data": str(data["small"]),
        "inference_data": str(data["small"]),
        "max_samples": 20,
        **BIKE,
        **FAST,
        "thresholds": {"r2": 0.9999},
    }
    return run_cli(
        slack, tmp_path_factory.mktemp("kept"), "lifecycle", params,
        trained.model_name, unique("local-kept"),
    )  # fmt: skip


def test_a_version_that_does_not_pass_leaves_the_champion_that_predicts(kept, mlflow_server):
    assert kept.succeeded
    client = MlflowClient(mlflow_server, registry_uri=mlflow_server)
    # v2 was trained and failed its evaluation against v1, the Champion it read.
    assert kept.returned("train") == {"version": 2}
    assert kept.returned("evaluate") == {"Output": False}
    assert kept.output("evaluate", "champion").read_text() == "1"
    assert client.get_model_version(kept.model_name, "2").tags["evaluation.passed"] == "false"
    assert client.get_model_version_by_alias(kept.model_name, "Champion").version == "1"
    assert not (kept.run_dir / "promote").exists()
    # Predict and explain (the Else branch's, named predict-2 and explain-2 by KFP) used that
    # Champion, by its version.
    assert kept.returned("predict-2") == {"rows": SMALL_ROWS, "version": 1}
    assert kept.returned("explain-2") == {"Output": 1}
    assert not (kept.run_dir / "predict").exists()


def test_the_terminal_shows_one_line_per_step_and_the_outcome_of_each_version(kept):
    assert len(kept.lines) < 80
    assert "executor_input" not in kept.printed and "Warning" not in kept.printed
    steps = [line.split()[0] for line in kept.lines if line.split()[1:2] == ["done"]]
    assert steps == ["train", "evaluate", "predict-2", "explain-2", "notify"]
    evaluate = next(line for line in kept.lines if line.startswith("evaluate "))
    assert f"{kept.model_name} v2 did not pass: r2=" in evaluate
    # The last line: the candidate, its figures, why it was not promoted, what serves.
    final = kept.lines[-1]
    assert final.startswith("Pipeline lifecycle SUCCEEDED in ")
    assert f"{kept.model_name} v2 registered (test " in final
    assert "not promoted: r2=" in final and "does not meet the threshold 0.9999" in final
    assert "Champion v1 serves" in final
    assert final.endswith(f"{SMALL_ROWS:,} rows predicted with {kept.model_name} v1")
    # Each step's whole output stays on disk.
    log = (kept.run_dir / "train" / "output.log").read_text()
    assert "executor_input" in log and "[START] TrainingJob" in log
    # Outputs of two versions in latest/: each line says whose.
    evaluation = next(line for line in kept.lines if "latest/evaluation.html" in line)
    assert evaluation.endswith(f"({kept.model_name} v2)")
    drift = next(line for line in kept.lines if "latest/drift.html" in line)
    assert drift.endswith(f"({kept.model_name} v1)")


def test_the_alert_of_a_refused_candidate_names_the_version_that_serves(kept):
    body = kept.alert()
    text = message(body)
    assert f"{kept.model_name} v2 not promoted: r2=" in text
    assert "Champion v1 serves." in text
    facts = fields(body)
    assert facts["candidate"] == f"{kept.model_name} v2"
    assert facts["promoted"] == "no"
    assert facts["serving"] == f"{kept.model_name} v1"
    assert facts["model"] == f"{kept.model_name} v1"  # the version that predicted
    # Each figure names its version: the candidate's test scores, the Champion's predictions.
    assert "test rmse (v2)" in facts and "test rmse" not in facts
    assert facts["rows predicted (v1)"] == f"{SMALL_ROWS:,}"


def test_a_failed_run_ends_with_the_step_its_cause_once_and_what_to_do(failed):
    last = failed.lines[-3:]
    assert last[0].startswith("Pipeline lifecycle FAILED at step predict after ")
    assert "ValidationError: input validation failed" in last[0]
    # The broken rules come after the error's first line: the last line names them too.
    assert f"column 'hr': type double expected, got str ({BAD_ROWS} rows)" in last[0]
    assert f"column 'temp': must satisfy in_range(0, 1) ({BAD_TEMP_ROWS} rows)" in last[0]
    assert last[1] == f"  step log: {failed.run_dir / 'predict' / 'output.log'}"
    assert last[2].startswith("  what to do: fix the input or the parameter")
    assert failed.printed.count("input validation failed") == 1
    assert "Traceback" not in failed.printed
    assert "Traceback" in (failed.run_dir / "predict" / "output.log").read_text()
    assert any(line.startswith("predict              FAILED") for line in failed.lines)


def test_latest_holds_the_outputs_of_the_partial_run_only(failed):
    latest = failed.run_dir.parent.parent / "latest"
    names = sorted(path.name for path in latest.iterdir())
    # predict failed and explain never ran: no predictions, no drift report of an earlier run.
    assert names == ["evaluation.html", "model_card.md"]
    for name in names:  # each a copy of this run's artifact
        artifacts = failed.run_dir.glob(f"*/{'report' if name.endswith('.html') else 'card'}")
        assert any(path.read_bytes() == (latest / name).read_bytes() for path in artifacts)


def test_training_steps_nest_under_one_parent_run_with_the_pipelines_parameters(
    trained, mlflow_server
):
    """The MLflow UI's view of a kfp.local run: one parent, the steps' runs named and nested."""
    from components.io import parents

    client = MlflowClient(mlflow_server, registry_uri=mlflow_server)
    experiment = client.get_experiment_by_name(trained.experiment).experiment_id
    [parent] = client.search_runs([experiment], f"tags.`{parents.PARENT_TAG}` = 'true'")
    kfp_run_id = parent.data.tags[base.PIPELINE_RUN_TAG]
    steps = client.search_runs([experiment], f"tags.`{base.PIPELINE_RUN_TAG}` = '{kfp_run_id}'")
    children = {run.info.run_name: run for run in steps if run.info.run_id != parent.info.run_id}
    assert sorted(children) == ["evaluate", "promote", "train"]
    assert {run.data.tags["mlflow.parentRunId"] for run in children.values()} == {
        parent.info.run_id
    }
    assert parent.data.tags[parents.PIPELINE_TAG] == "training"
    assert parent.info.run_name.startswith("training")
    assert parent.data.params["model_name"] == trained.model_name
    assert parent.data.params["target"] == "cnt"
    assert parent.data.params["model_params"] == '{"max_iter": 30}'
    assert parent.data.params["tolerance"] == "0.0"  # a default, not given
    assert parent.info.status == "FINISHED"  # ended by the exit step


@pytest.fixture(scope="module")
def gated(trained, slack, data, tmp_path_factory) -> Run:
    """The lifecycle pipeline on the trained model with `promotion: manual`: a passing version
    awaits approval while the Champion keeps serving."""
    params = {
        "data": str(data["small"]),
        "inference_data": str(data["small"]),
        "max_samples": 20,
        "promotion": "manual",
        **BIKE,
        **FAST,
    }
    return run_cli(
        slack, tmp_path_factory.mktemp("gated"), "lifecycle", params,
        trained.model_name, unique("local-gated"),
    )  # fmt: skip


def test_a_manual_promotion_waits_for_approval_and_the_champion_keeps_serving(
    gated, mlflow_server, capsys
):
    """Last in the module: it approves, then rolls back, the trained model's Champion."""
    from components.io import history

    assert gated.succeeded, gated.printed[-2000:]
    client = MlflowClient(mlflow_server, registry_uri=mlflow_server)
    name, version = gated.model_name, gated.returned("train")["version"]
    serving = client.get_model_version_by_alias(name, "Champion").version
    assert serving != str(version)
    assert client.get_model_version(name, str(version)).tags["approval.status"] == "awaiting"
    # The promote step answered the Champion that serves; predict used it.
    assert gated.returned("promote") == {"Output": serving}
    assert gated.returned("predict")["version"] == int(serving)
    command = f"model approve {name} {version}"
    assert f"v{version} registered" in gated.lines[-1]
    assert f"awaiting approval (`{command}`); Champion v{serving} serves" in gated.lines[-1]
    body = gated.alert()
    assert f"{name} v{version} passed and awaits approval" in message(body)
    assert fields(body)["promoted"] == "awaiting approval"
    # A person approves it: it serves, and the history says who; then rolls it back.
    capsys.readouterr()
    assert main(["model", "approve", name, str(version), "--by", "risk-bob"]) == 0
    assert client.get_model_version_by_alias(name, "Champion").version == str(version)
    assert main(["model", "rollback", name, "--reason", "back to the trained one"]) == 0
    assert client.get_model_version_by_alias(name, "Champion").version == serving
    actions = [(e.action, e.to_version) for e in history.entries(client, name)][-3:]
    assert actions == [
        ("awaiting_approval", version),
        ("approved", version),
        ("rolled_back", int(serving)),
    ]
