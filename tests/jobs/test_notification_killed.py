"""A step killed hard (SIGKILL) under kfp.local: the alert names it and says how it ended.

A tiny pipeline runs for real under kfp.local's SubprocessRunner, against the session's real
MLflow server and a local server that answers as Slack's webhook does: one step starts its job
(and so its MLflow run), logs a line, then kills itself with SIGKILL, as the kernel's OOM killer
would; the project's `notify` component is its exit handler. Nothing of the step's own error
handling runs, so only its log file and its run folder can tell.
"""

# No `from __future__ import annotations` here: KFP reads the component's annotations as types.

import pathlib

import pytest
from kfp import dsl, local
from mlflow import MlflowClient

import components
from components.image import IMAGE
from components.io import services
from components.jobs import base
from tests.io.slack_server import SlackWebhookServer
from tests.jobs.helpers import unique

pytestmark = [
    pytest.mark.integration,
    # kfp.local warns that the project image's steps run in this Python environment: they do.
    pytest.mark.filterwarnings("ignore:You may be attemping:RuntimeWarning"),
]

PROXIES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
LAST_WORDS = "allocating the whole data set in memory"


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def doomed(experiment: str, run_id: str, last_words: str) -> str:
    """A step whose job starts, logs, then is killed with SIGKILL."""
    import logging
    import os
    import signal
    import typing as T

    from components import steps
    from components.jobs import base

    class DoomedJob(base.Job, frozen=True):
        KIND: T.Literal["DoomedJob"] = "DoomedJob"

        def run(self) -> None:
            logging.getLogger("doomed").info(last_words)
            os.kill(os.getpid(), signal.SIGKILL)

    return steps.run_job(DoomedJob, steps.step_settings(experiment, run_id, "doomed"))


@dsl.pipeline(name="doomed")
def doomed_pipeline(experiment: str):
    """The doomed step inside the project's exit handler."""
    alert = components.notify(
        pipeline="doomed", run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER, experiment=experiment
    )
    with dsl.ExitHandler(alert):
        doomed(experiment=experiment, run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER, last_words=LAST_WORDS)


@pytest.fixture
def killed_run(tracking, monkeypatch, tmp_path) -> tuple[pathlib.Path, list, str]:
    """Run the pipeline once; return its run folder, Slack's requests and the experiment."""
    for name in PROXIES:
        monkeypatch.delenv(name, raising=False)
    # As `run --local` does: every step writes its log beside its outputs.
    monkeypatch.setenv(services.STEP_LOG_VARIABLE, services.STEP_LOG)
    experiment = unique("killed")
    root = tmp_path / "pipeline-root"
    with SlackWebhookServer() as slack:
        monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.url)
        local.init(
            runner=local.SubprocessRunner(use_venv=False),
            pipeline_root=str(root),
            raise_on_error=True,
        )
        with pytest.raises(RuntimeError, match="finished with status"):
            doomed_pipeline(experiment=experiment)
        requests = slack.requests
    [run_folder] = root.iterdir()
    return run_folder, requests, experiment


def test_a_killed_step_is_alerted_with_its_last_log_line_and_its_run_ended_failed(
    killed_run, tracking
):
    run_folder, requests, experiment = killed_run
    # The step left its log and no output; the exit step ran and delivered one alert.
    assert not (run_folder / "doomed" / "executor_output.json").exists()
    assert LAST_WORDS in (run_folder / "doomed" / services.STEP_LOG).read_text()
    assert (run_folder / "notify" / "executor_output.json").exists()
    [request] = requests
    blocks = request.body["blocks"]
    assert blocks[0]["text"]["text"].startswith(":x: doomed: FAILED")
    text = blocks[1]["text"]["text"]
    assert text.startswith(
        "Pipeline doomed ended FAILED.\n"
        "Failed step doomed: killed (no output, no error logged); last log lines: "
    )
    assert text.endswith(f"| {LAST_WORDS}")
    assert "Task exit-handler-1 failed." not in text
    facts = [field["text"] for block in blocks for field in block.get("fields", [])]
    assert "*failed step*\ndoomed (DoomedJob)" in facts
    # The step's MLflow run, left RUNNING by the kill, was ended FAILED by the exit step.
    client = MlflowClient(tracking)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    [run] = client.search_runs([experiment_id], filter_string="tags.`kfp.task` = 'doomed'")
    # It is nested under the pipeline run's parent run, which the exit step ended FAILED too.
    parent = client.get_run(run.data.tags["mlflow.parentRunId"])
    assert parent.data.tags["kfp.pipeline_run"] == "true"
    assert parent.info.status == "FAILED"
    assert run.data.tags["kfp.task"] == "doomed"
    assert run.info.status == "FAILED"
    error = run.data.tags[base.ERROR_TAG]
    assert error.startswith("step doomed ended without recording its outcome: killed")
    assert error.endswith(LAST_WORDS)
