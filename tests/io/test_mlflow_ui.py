"""What a user sees in the MLflow UI, read back with the MLflow client from the session's server.

One module fixture drives the jobs of one pipeline run directly, as its steps would (the run
tags a step gets: the KFP run id and its task; the pipeline's name and parameters in the
environment, as the compiled pipeline and `run --local` give them): train, evaluate, explain,
predict, then the exit step's notification. The tests then read the runs, their params,
metrics and artifacts, and the registered model, as the MLflow UI shows them. The pipeline run
itself under kfp.local is checked in tests/pipelines/test_local_runs.py.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import threading
import typing as T

import pytest
from mlflow.tracking import MlflowClient

from components.core import results
from components.io import cards as card_store
from components.io import datasets, monitoring, parents, registries
from components.jobs import base, evaluation, explanations, training
from components.jobs.inference import InferenceJob
from components.jobs.notification import NotificationJob
from tests.jobs.helpers import features, run, settings, unique, with_demand

pytestmark = pytest.mark.integration

PIPELINE_PARAMETERS = {"data": "bike.parquet", "target": "cnt", "model_params": {"max_iter": 20}}


@dataclasses.dataclass
class Pipeline:
    """One pipeline run's jobs, driven directly: their results and where they recorded."""

    kfp_run_id: str
    name: str
    experiment_id: str
    client: MlflowClient
    trained: results.TrainingResult
    evaluated: results.EvaluationResult
    explained: results.ExplanationsResult
    inferred: results.InferenceResult
    notified: results.NotificationResult

    def step_runs(self) -> dict[str, T.Any]:
        """The steps' runs by their name (train, evaluate...), parents left out."""
        found = self.client.search_runs(
            [self.experiment_id], f"tags.`{base.PIPELINE_RUN_TAG}` = '{self.kfp_run_id}'"
        )
        return {
            run.info.run_name: run
            for run in found
            if run.data.tags.get(parents.PARENT_TAG) != "true"
        }

    def artifacts(self, run: T.Any, folder: str) -> list[str]:
        return [item.path for item in self.client.list_artifacts(run.info.run_id, folder)]


@pytest.fixture(scope="module")
def pipeline(mlflow_server, bike, tmp_path_factory) -> Pipeline:
    """Train, evaluate, explain and predict as the steps of one KFP run, then notify."""
    folder = tmp_path_factory.mktemp("mlflow-ui")
    data, holdout = folder / "train.parquet", folder / "holdout.parquet"
    with_demand(bike.head(2000)).to_parquet(data, index=False)
    name, kfp_run_id = unique("ui"), unique("run")
    common = settings(mlflow_server, unique("ui"))

    def step(task: str) -> dict[str, T.Any]:
        return {**common, "run_tags": {base.PIPELINE_RUN_TAG: kfp_run_id, base.TASK_TAG: task}}

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
        patch.delenv("MLFLOW_RUN_ID", raising=False)
        patch.setenv(parents.PIPELINE_VARIABLE, "training")
        patch.setenv(parents.PARAMETERS_VARIABLE, json.dumps(PIPELINE_PARAMETERS))
        trained = run(
            training.TrainingJob(
                inputs=datasets.ParquetReader(path=str(data)),
                target="cnt",
                model={"KIND": "HistGradientBoostingRegressor", "params": {"max_iter": 20}},
                model_name=name,
                holdout=datasets.ParquetWriter(path=str(holdout)),
                **features("cnt"),
                **step("train"),
            )
        )
        evaluated = run(
            evaluation.EvaluationJob(
                inputs=datasets.ParquetReader(path=str(holdout)),
                target="cnt",
                model_name=name,
                alias_or_version=trained.model_ref.version,
                **step("evaluate"),
            )
        )
        finder = registries.RegistryFinder(name=name, alias_or_version=trained.model_ref.version)
        explained = run(
            explanations.ExplanationsJob(
                inputs_samples=datasets.ParquetReader(path=str(holdout)),
                models_explanations=datasets.ParquetWriter(path=str(folder / "models.parquet")),
                samples_explanations=datasets.ParquetWriter(path=str(folder / "samples.parquet")),
                finder=finder,
                max_samples=30,
                **step("explain"),
            )
        )
        inferred = run(
            InferenceJob(
                inputs=datasets.ParquetReader(path=str(holdout)),
                outputs=datasets.ParquetWriter(path=str(folder / "predictions.parquet")),
                finder=finder,
                **step("predict"),
            )
        )
        notified = run(NotificationJob(pipeline="training", run_id=kfp_run_id, **step("notify")))
    client = common["mlflow_service"].client()
    experiment = client.get_experiment_by_name(common["mlflow_service"].experiment_name)
    return Pipeline(
        kfp_run_id, name, experiment.experiment_id, client,
        trained, evaluated, explained, inferred, notified,
    )  # fmt: skip


def test_the_training_run_logs_every_hyperparameter_given_and_default(pipeline):
    train = pipeline.client.get_run(pipeline.trained.model_ref.run_id)
    params = train.data.params
    # The one the config gave, and the estimator's defaults, under the estimator's own names.
    assert params["max_iter"] == "20"
    assert params["learning_rate"] == "0.1"
    assert params["loss"] == "squared_error"
    assert params["l2_regularization"] == "0.0"
    estimator = registries.SklearnLoader().load(pipeline.trained.model_ref.uri).model[-1]
    hyperparameters = estimator.get_params(deep=False)
    assert set(hyperparameters) <= set(params)
    assert {key: params[key] for key in hyperparameters} == {
        key: str(value) for key, value in hyperparameters.items()
    }
    assert train.data.tags["model.params_set"] == "max_iter"
    # What it was trained on stays beside them.
    assert params["model_kind"] == "HistGradientBoostingRegressor"
    assert params["target"] == "cnt"
    assert int(params["train_rows"]) + int(params["test_rows"]) == 2000


def test_one_parent_run_per_pipeline_run_with_every_step_nested_under_it(pipeline):
    [parent] = parents.find(pipeline.client, pipeline.experiment_id, pipeline.kfp_run_id)
    steps = pipeline.step_runs()
    assert sorted(steps) == ["evaluate", "explain", "predict", "train"]
    for name, step in steps.items():
        assert step.data.tags["mlflow.parentRunId"] == parent.info.run_id, name
        assert step.data.tags[base.TASK_TAG] == name
        assert step.data.tags[base.PIPELINE_RUN_TAG] == pipeline.kfp_run_id
    # The steps keep the tags that the alert and the outcomes read.
    assert steps["train"].data.tags[base.JOB_TAG] == "TrainingJob"
    assert steps["predict"].data.tags[base.JOB_TAG] == "InferenceJob"
    # The parent: the pipeline's name, its parameters and the KFP run id; ended by notify.
    assert parent.info.run_name == f"training {pipeline.kfp_run_id}"
    assert parent.data.tags[parents.PIPELINE_TAG] == "training"
    assert parent.data.tags[base.PIPELINE_RUN_TAG] == pipeline.kfp_run_id
    assert parent.data.params == {
        "data": "bike.parquet",
        "target": "cnt",
        "model_params": '{"max_iter": 20}',
    }
    assert parent.info.status == "FINISHED"
    # The alert reads the steps, not the parent, and nothing was left to close.
    assert pipeline.notified.closed == []
    assert pipeline.notified.fields["model"] == f"{pipeline.name} v1"


def test_each_steps_report_is_an_artifact_of_its_run(pipeline, tmp_path):
    steps = pipeline.step_runs()
    assert pipeline.artifacts(steps["evaluate"], "reports") == [evaluation.REPORT_PATH]
    assert pipeline.artifacts(steps["explain"], "reports") == [explanations.REPORT_PATH]
    assert monitoring.REPORT_PATH in pipeline.artifacts(steps["predict"], "monitoring")
    # The same page as the step's HTML output.
    path = pipeline.client.download_artifacts(
        steps["evaluate"].info.run_id, evaluation.REPORT_PATH, str(tmp_path)
    )
    assert pathlib.Path(path).read_text(encoding="utf-8") == pipeline.evaluated.report
    assert "Evaluation: " in pipeline.evaluated.report
    assert "<html" in pipeline.explained.report


def test_one_metric_name_for_one_figure_on_training_and_evaluation(pipeline):
    steps = pipeline.step_runs()
    trained, evaluated = steps["train"].data.metrics, steps["evaluate"].data.metrics
    assert not [name for name in evaluated if name.startswith("holdout_")]
    for name in ("rmse", "mae", "r2"):
        assert trained[f"test_{name}"] == pytest.approx(evaluated[f"test_{name}"]), name
    # The best run by the README's metric is the training run, which logged the model.
    ref = registries.BestRunFinder(
        experiment_name=pipeline.client.get_experiment(pipeline.experiment_id).name
    ).find(pipeline.client)
    assert ref.run_id == pipeline.trained.model_ref.run_id
    assert ref.version == pipeline.trained.model_ref.version


def test_the_registered_model_describes_its_task_target_features_and_latest_card(
    pipeline, mlflow_server
):
    description = pipeline.client.get_registered_model(pipeline.name).description
    trained = pipeline.trained
    assert "Predicts `cnt` (regression, HistGradientBoostingRegressor)." in description
    assert f"Features ({len(trained.numerical) + len(trained.categorical)}):" in description
    assert "`temp`" in description and "`season`" in description
    url = (
        f"{mlflow_server}/#/experiments/{pipeline.experiment_id}/runs/"
        f"{trained.model_ref.run_id}/artifacts/{card_store.MARKDOWN_PATH}"
    )
    assert f"Latest version: 1; its model card: [{card_store.MARKDOWN_PATH}]({url})" in description


def test_a_card_link_never_carries_credentials_and_a_local_store_names_the_artifact():
    card = type("Card", (), {"run_id": "abc"})()
    link = card_store.card_link("https://user:secret@mlflow.example.com:8443/base/", "7", card)
    assert "secret" not in link and "user" not in link
    assert "https://mlflow.example.com:8443/base/#/experiments/7/runs/abc/artifacts/" in link
    assert card_store.card_link("sqlite:///m.db", "7", card) == "`card/model_card.md` of run `abc`"


def test_steps_that_start_at_once_end_with_one_parent(mlflow_server):
    """Five steps (threads, each with its own client) find-or-create the parent together."""
    client = MlflowClient(mlflow_server, registry_uri=mlflow_server)
    experiment = client.create_experiment(unique("parents"))
    kfp_run_id = unique("race")
    barrier = threading.Barrier(5)
    chosen: list[str] = []
    errors: list[BaseException] = []

    def step() -> None:
        own = MlflowClient(mlflow_server, registry_uri=mlflow_server)
        barrier.wait()
        try:
            chosen.append(parents.find_or_create(own, experiment, kfp_run_id))
        except Exception as error:  # reported below, with the parents found
            errors.append(error)

    threads = [threading.Thread(target=step) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    found = parents.find(client, experiment, kfp_run_id)
    assert not errors, errors
    assert len(found) == 1, [(run.info.run_id, run.info.start_time) for run in found]
    [parent] = found
    assert chosen == [parent.info.run_id] * 5
    # The losers' runs are deleted: the experiment shows one run.
    assert [run.info.run_id for run in client.search_runs([experiment])] == [parent.info.run_id]
