"""KFP's MLflow plugin: with `MLFLOW_RUN_ID` set, each job records a run nested under it.

Against the session's real MLflow server. A KFP deployment with its MLflow plugin on creates a
run per step (in the pipeline run's experiment) and gives the step `MLFLOW_RUN_ID`; the test
creates that run as the plugin would, sets the variable, and runs the jobs. Without the
variable, the jobs record in their own experiment (every other job test).
"""

from __future__ import annotations

import os

import pytest
from mlflow.tracking import MlflowClient

from components.io import datasets, parents, registries
from components.jobs import base, training
from components.jobs.notification import NotificationJob
from tests.jobs.helpers import features, run, settings, unique, with_demand

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def data(bike, tmp_path_factory):
    path = tmp_path_factory.mktemp("plugin") / "bike.parquet"
    with_demand(bike.head(1500)).to_parquet(path, index=False)
    return path


@pytest.fixture
def plugin_run(mlflow_server, monkeypatch) -> tuple[str, str]:
    """The plugin's run for this step, in the plugin's experiment: (run id, experiment id)."""
    client = MlflowClient(mlflow_server, registry_uri=mlflow_server)
    experiment = client.create_experiment(unique("kfp-plugin"))
    parent = client.create_run(experiment, run_name="train-task").info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", parent)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", experiment)
    return parent, experiment


def train(data, name, common, **fields):
    defaults = {
        "target": "cnt",
        "model": {"KIND": "HistGradientBoostingRegressor", "params": {"max_iter": 3}},
        "run_tags": {base.PIPELINE_RUN_TAG: "run-plugin", "kfp.task": "train"},
        **features("cnt"),
    }
    return training.TrainingJob(
        inputs=datasets.ParquetReader(path=str(data)),
        model_name=name,
        **{**defaults, **fields},
        **common,
    )


def job_runs(client: MlflowClient, experiment: str):
    """The jobs' runs of the KFP run, without the parent run that the jobs make for it."""
    found = client.search_runs([experiment], f"tags.`{base.PIPELINE_RUN_TAG}` = 'run-plugin'")
    return [run for run in found if run.data.tags.get(parents.PARENT_TAG) != "true"]


def test_with_the_plugin_a_job_records_a_nested_run_in_the_plugins_experiment(
    mlflow_server, data, plugin_run
):
    parent, experiment = plugin_run
    name = unique("plugin")
    # The job's own experiment setting must not fight the plugin's.
    common = settings(mlflow_server, unique("ours"))
    result = run(train(data, name, common))
    client = MlflowClient(mlflow_server, registry_uri=mlflow_server)
    [job_run] = job_runs(client, experiment)
    assert job_run.info.experiment_id == experiment
    assert job_run.data.tags["mlflow.parentRunId"] == parent
    assert job_run.data.tags[base.JOB_TAG] == "TrainingJob"
    assert job_run.info.status == "FINISHED"
    assert job_run.info.run_id != parent
    # The version comes from the job's run; the plugin's run is left for the plugin to end.
    assert result.model_ref.run_id == job_run.info.run_id
    assert client.get_run(parent).info.status == "RUNNING"
    assert client.get_experiment_by_name(common["mlflow_service"].experiment_name) is None
    # MLflow consumes MLFLOW_RUN_ID when it starts a run; the next job still sees it.
    assert os.environ["MLFLOW_RUN_ID"] == parent


def test_with_the_plugin_a_failed_job_records_its_error_on_its_nested_run(
    mlflow_server, data, plugin_run
):
    parent, experiment = plugin_run
    common = settings(mlflow_server, unique("ours"))
    with pytest.raises(Exception, match="no-such-column"):
        run(train(data, unique("plugin"), common, target="no-such-column"))
    client = MlflowClient(mlflow_server, registry_uri=mlflow_server)
    [job_run] = job_runs(client, experiment)
    assert job_run.info.status == "FAILED"
    assert job_run.data.tags["mlflow.parentRunId"] == parent
    assert "no-such-column" in job_run.data.tags[base.ERROR_TAG]
    assert client.get_run(parent).info.status == "RUNNING"
    # The exit step (with the plugin's variables too) finds the step in the plugin's experiment.
    alert = NotificationJob(
        pipeline="training", run_id="run-plugin", state="FAILED", **common
    ).run()
    assert "Failed step train: FeatureError: target column 'no-such-column'" in alert.message


def test_the_deployments_experiment_name_alone_is_where_the_jobs_record(
    mlflow_server, data, monkeypatch
):
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    experiment_name = unique("kfp-plugin-name")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", experiment_name)
    common = settings(mlflow_server, unique("ours"))
    run(train(data, unique("plugin"), common))
    client = MlflowClient(mlflow_server, registry_uri=mlflow_server)
    experiment = client.get_experiment_by_name(experiment_name)
    [job_run] = job_runs(client, experiment.experiment_id)
    # Without the plugin's run, the job nests under the parent run it made for the KFP run.
    [parent] = parents.find(client, experiment.experiment_id, "run-plugin")
    assert job_run.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert job_run.info.status == "FINISHED"


def test_without_the_plugin_the_jobs_record_in_their_own_experiment(
    mlflow_server, data, monkeypatch
):
    for variable in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(variable, raising=False)
    name, common = unique("plugin"), settings(mlflow_server, unique("ours"))
    result = run(train(data, name, common))
    client = MlflowClient(mlflow_server, registry_uri=mlflow_server)
    ours = client.get_experiment_by_name(common["mlflow_service"].experiment_name)
    [job_run] = job_runs(client, ours.experiment_id)
    [parent] = parents.find(client, ours.experiment_id, "run-plugin")
    assert job_run.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert client.get_model_version(name, str(result.model_ref.version)).run_id == (
        job_run.info.run_id
    )
    assert registries.latest_version(client, name) == 1
    # The run records its training data: location and digest (MLflow's dataset input).
    [data_input] = client.get_run(job_run.info.run_id).inputs.dataset_inputs
    assert str(data) in data_input.dataset.source and data_input.dataset.digest
    assert {tag.key: tag.value for tag in data_input.tags}["mlflow.data.context"] == "training"
    assert job_run.data.tags["training.data"] == str(data)
    # MLflow exports the active experiment; the next job (or kfp.local step) must not take it
    # for the deployment's.
    assert "MLFLOW_EXPERIMENT_ID" not in os.environ
