"""A user's alerter, named by LIFECYCLE_ALERTER, carries a real kfp.local run's alert.

The alerter (`tests/user_alerters.py:WebhookAlerter`) is no project kind: the notify step
imports it by its path, in its own subprocess, which inherits this process's environment as a
pod gets it from its Secret and ConfigMap. It posts to a real HTTP server on 127.0.0.1. One
run, the cheapest there is: an inference whose model is not registered fails in predict at
once, and the alert must say so. Also here: the cluster settings that give the notify step the
alerters' secret variables and LIFECYCLE_ALERTER (compiled, not run: no cluster here).
"""

# No `from __future__ import annotations`: KFP reads the test pipeline's annotations as types.
import logging
import pathlib

import pytest
import yaml
from kfp import compiler, dsl

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


@pytest.fixture(scope="module")
def webhook(environment):  # noqa: F811 - the fixture
    """A local HTTP server the user's alerter posts to, named by LIFECYCLE_ALERTER."""
    with SlackWebhookServer(path="/hooks/u53r-w3bh00k-t0k3n") as server:
        environment.setenv("LIFECYCLE_ALERTER", WEBHOOK)
        environment.setenv(WEBHOOK_ENV, server.url)
        yield server


def test_a_users_alerter_named_by_its_path_posts_the_runs_outcome(webhook, mlflow_server, tmp_path):
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
