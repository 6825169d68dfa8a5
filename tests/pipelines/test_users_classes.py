"""A user's own classes, named by their import paths, carry real kfp.local runs end to end.

None of them is a project kind: each step imports it by its path, in its own subprocess, which
inherits this process's environment as a pod gets it from its Secret and ConfigMap.

- A lifecycle run whose every pluggable part is the user's: their JSON Lines reader (training
  and inference data) and writer (the predictions), their model kind (a random forest the
  project does not offer), their explainer, and their alerter (`LIFECYCLE_ALERTER`), which
  posts to a real HTTP server on 127.0.0.1.
- The cheapest run there is for the alerter's failure path: an inference whose model is not
  registered fails in predict at once, and the alert must say so.
- The cluster settings that give the notify step the alerters' secret variables and
  LIFECYCLE_ALERTER (compiled, not run: no cluster here).
"""

# No `from __future__ import annotations`: KFP reads the test pipeline's annotations as types.
import json
import logging
import pathlib

import mlflow
import pandas as pd
import pytest
import yaml
from kfp import compiler, dsl
from mlflow import MlflowClient

from pipelines.dags.settings import Settings
from pipelines.local.runner import run_local
from tests.conftest import BIKE_PARQUET
from tests.io.slack_server import SlackWebhookServer
from tests.pipelines.test_local_runs import environment, unique  # noqa: F401 - a fixture
from tests.user_alerters import WEBHOOK_ENV

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:You may be attemping:RuntimeWarning"),
]

WEBHOOK = "tests.user_alerters:WebhookAlerter"
USER_KINDS = "tests.user_datasets"
TRAINING_ROWS, INFERENCE_ROWS, EXPLAINED = 3_000, 500, 20


@pytest.fixture(scope="module")
def webhook(environment):  # noqa: F811 - the fixture
    """A local HTTP server the user's alerter posts to, named by LIFECYCLE_ALERTER."""
    with SlackWebhookServer(path="/hooks/u53r-w3bh00k-t0k3n") as server:
        environment.setenv("LIFECYCLE_ALERTER", WEBHOOK)
        environment.setenv(WEBHOOK_ENV, server.url)
        yield server


def test_a_lifecycle_runs_on_the_users_reader_writer_model_explainer_and_alerter(
    webhook, mlflow_server, tmp_path
):
    webhook.reset()
    bike = pd.read_parquet(BIKE_PARQUET).drop(columns=["dteday"])
    training, rows = tmp_path / "training.jsonl", tmp_path / "rows.jsonl"
    bike.head(TRAINING_ROWS).to_json(training, orient="records", lines=True)
    bike.iloc[TRAINING_ROWS : TRAINING_ROWS + INFERENCE_ROWS].to_json(
        rows, orient="records", lines=True
    )
    model = unique("users-classes")
    params = {
        "data": str(training),
        "inference_data": str(rows),
        "target": "cnt",
        "exclude": ["instant", "casual", "registered"],
        "categorical": ["season", "weathersit"],
        "time_column": "instant",
        "passthrough": ["instant"],
        "thresholds": {"r2": 0.5},
        "max_samples": EXPLAINED,
        "model_name": model,
        "experiment": unique("users-classes"),
        # Every pluggable part the user's, by import path:
        "reader": {"KIND": f"{USER_KINDS}:JsonLinesReader"},
        "writer": {"KIND": f"{USER_KINDS}:JsonLinesWriter"},
        "model_kind": "tests.user_models:RandomForestRegressorModel",
        "explainer": {"KIND": "tests.user_models:OcclusionExplainer"},
    }

    succeeded, run_dir = run_local("lifecycle", params, root=tmp_path, tracking_uri=mlflow_server)

    assert succeeded
    # The user's model kind was trained on the rows their reader read, then registered.
    client = MlflowClient(mlflow_server, registry_uri=mlflow_server)
    assert client.get_model_version_by_alias(model, "Champion").version == "1"
    fitted = mlflow.sklearn.load_model(f"models:/{model}/1")
    assert type(fitted[-1]).__name__ == "RandomForestRegressor"
    # Their writer wrote the predictions: one JSON object per input row, ids passed through.
    lines = (run_dir / "predict" / "predictions").read_text().splitlines()
    predictions = [json.loads(line) for line in lines]
    assert len(predictions) == INFERENCE_ROWS
    assert [row["instant"] for row in predictions] == bike["instant"].iloc[
        TRAINING_ROWS : TRAINING_ROWS + INFERENCE_ROWS
    ].tolist()
    assert all(isinstance(row["prediction"], float) for row in predictions)
    # Their explainer explained the raw columns (Tree SHAP would explain one-hot columns).
    samples = pd.read_parquet(run_dir / "explain" / "samples_explanations")
    assert len(samples) == EXPLAINED
    assert {"shap_hr", "shap_season", "shap_temp"} <= set(samples.columns)
    assert "shap_season_1" not in samples.columns
    # Their alerter posted the run's one alert.
    [request] = webhook.requests
    assert request.body["title"] == "lifecycle: SUCCEEDED"
    assert request.body["status"] == "SUCCEEDED"
    assert f"{model} v1" in json.dumps(request.body)


def test_a_users_alerter_named_by_its_path_posts_the_runs_outcome(webhook, mlflow_server, tmp_path):
    webhook.reset()
    model = unique("no-such-model")
    params = {"data": str(BIKE_PARQUET), "model_name": model, "experiment": unique("alerter")}

    succeeded, run_dir = run_local("inference", params, root=tmp_path, tracking_uri=mlflow_server)

    assert not succeeded
    [request] = webhook.requests
    assert request.path == "/hooks/u53r-w3bh00k-t0k3n"
    body = request.body
    assert set(body) == {"title", "message", "status", "facts", "link"}
    assert body["title"] == "inference: FAILED"
    assert body["status"] == "FAILED"
    assert body["facts"]["failed step"] == "predict (InferenceJob)"
    assert "Failed step predict: RegistryError: no registered model named" in body["message"]
    assert model in body["message"]
    # The step logged where it delivered, and the URL its alerter declares secret is masked.
    logs = "".join(path.read_text() for path in (run_dir / "notify").glob("*.log"))
    assert "webhook alert 'inference: FAILED' delivered to ***" in logs
    assert "u53r-w3bh00k-t0k3n" not in logs


@dsl.component
def _step() -> str:
    return "done"


def _notify_executor(settings: Settings, tmp_path: pathlib.Path) -> dict:
    """Compile one task configured as the notify step; its Kubernetes settings."""

    @dsl.pipeline(name="alerter-settings")
    def pipeline() -> None:
        settings.configure(_step(), "notify", "Notify")

    path = tmp_path / "pipeline.yaml"
    compiler.Compiler().compile(pipeline, str(path))
    spec, platform = yaml.safe_load_all(path.read_text())
    [executor] = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"].values()
    [container] = [e["container"] for e in spec["deploymentSpec"]["executors"].values()]
    return {**executor, "env": container.get("env", [])}


def test_the_notify_step_reads_every_alerters_secret_and_a_users_keys(tmp_path):
    default = _notify_executor(Settings(gpu=False), tmp_path)
    [secret] = [s for s in default["secretAsEnv"] if s["secretName"] == "slack-webhook"]
    assert secret["keyToEnv"] == [{"envVar": "SLACK_WEBHOOK_URL", "secretKey": "SLACK_WEBHOOK_URL"}]
    assert secret["optional"] is True
    assert all(variable["name"] != "LIFECYCLE_ALERTER" for variable in default["env"])

    settings = Settings(
        gpu=False,
        slack_secret="alerts",
        alerter_secret_keys=(WEBHOOK_ENV, "SLACK_WEBHOOK_URL"),
        alerter=WEBHOOK,
    )
    configured = _notify_executor(settings, tmp_path)
    [secret] = [s for s in configured["secretAsEnv"] if s["secretName"] == "alerts"]
    assert secret["keyToEnv"] == [
        {"envVar": "SLACK_WEBHOOK_URL", "secretKey": "SLACK_WEBHOOK_URL"},
        {"envVar": WEBHOOK_ENV, "secretKey": WEBHOOK_ENV},
    ]
    assert {"name": "LIFECYCLE_ALERTER", "value": WEBHOOK} in configured["env"]


def test_a_refused_lifecycle_alerter_is_said_in_the_notify_steps_log_and_alerted_there(
    tracking, monkeypatch, caplog
):
    """The notify component as its step runs it (its function, in this process): an alerter
    that cannot be built must not cost the run its alert."""
    from components.alerts import notify

    caplog.set_level(logging.INFO)
    monkeypatch.setenv("LIFECYCLE_ALERTER", "TeamsAlerter")
    status = dsl.PipelineTaskFinalStatus("FAILED", "", "notify", 1, "step predict failed")

    delivered = notify.python_func(
        status=status, pipeline="alerted", run_id=unique("run"), experiment=unique("alerter")
    )

    assert delivered is True  # to the log
    [refused] = [r for r in caplog.records if "LIFECYCLE_ALERTER" in r.getMessage()]
    assert refused.levelno == logging.ERROR
    assert refused.getMessage() == (
        "LIFECYCLE_ALERTER: unknown alerter type 'TeamsAlerter'; allowed: 'ConsoleAlerter', "
        "'SlackAlerter', or the import path package.module:Class of a subclass of "
        "components.io.alerts:Alerter; alerts go to the log instead"
    )
    [alert] = [r for r in caplog.records if r.getMessage().startswith("[FAILED] alerted: FAILED")]
    assert "Pipeline alerted ended FAILED." in alert.getMessage()
    assert alert.created >= refused.created
