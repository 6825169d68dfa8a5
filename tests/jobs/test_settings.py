"""Integration: jobs built from settings (`steps.run_job`), as the components build them.

Invalid settings fail like any job (a FAILED MLflow run with the error, for the pipeline's
alert) before any work; strategies are chosen by KIND; a model without a signature is refused
unless allowed; the best run of an experiment can be found by metric; integer class labels
stay integers, with one probability column per class. All against the session's MLflow server.
"""

from __future__ import annotations

import pathlib

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from components import steps
from components.core import models
from components.io import artifacts, registries
from components.jobs import base, inference, training
from tests.jobs.helpers import (
    BIKE_CATEGORICAL,
    BIKE_EXCLUDE,
    BIKE_NUMERICAL,
    COLUMNS,
    listing,
    native_model,
    settings,
    unique,
)

pytestmark = pytest.mark.integration

ROWS = 3000


@pytest.fixture(scope="module")
def small(bike, tmp_path_factory) -> pathlib.Path:
    """Rows from across the whole year (every 5th hour), small enough for quick fits."""
    path = tmp_path_factory.mktemp("settings") / "small.parquet"
    bike.iloc[::5].head(ROWS).to_parquet(path, index=False)
    return path


@pytest.fixture
def output(tmp_path) -> pathlib.Path:
    """An empty output folder."""
    path = tmp_path / "outputs"
    path.mkdir()
    return path


def reader(path: pathlib.Path, **options) -> dict:
    return {"KIND": "ParquetReader", "path": str(path), **options}


def writer(output: pathlib.Path) -> dict:
    return {"KIND": "ParquetWriter", "path": str(output / "predictions.parquet")}


def job_runs(tracking: str, experiment: str, kind: str) -> list:
    """The MLflow runs that jobs of a kind recorded in an experiment, oldest first."""
    client = MlflowClient(tracking)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment}"
    return client.search_runs(
        [found.experiment_id],
        filter_string=f"tags.`{base.JOB_TAG}` = '{kind}'",
        order_by=["attributes.start_time ASC"],
    )


def train(small: pathlib.Path, common: dict, name: str, max_iter: int):
    """Train and register a regressor of `cnt` through run_job, as the train component does."""
    return steps.run_job(
        training.TrainingJob,
        common,
        inputs=reader(small),
        target="cnt",
        model={"KIND": "HistGradientBoostingRegressor", "params": {"max_iter": max_iter}},
        model_name=name,
        exclude=BIKE_EXCLUDE,
        categorical=BIKE_CATEGORICAL,
    )


# %% INVALID SETTINGS


def test_invalid_setting_is_refused_before_any_work_and_recorded(tracking, small, output):
    experiment = unique("settings")
    with pytest.raises(base.SettingsError) as caught:
        steps.run_job(
            inference.InferenceJob,
            steps.step_settings(experiment, "run-x", "predict"),
            inputs=reader(small, batch_size=0),
            outputs=writer(output),
            finder={"KIND": "RegistryFinder", "name": unique("never-looked-up")},
        )
    message = str(caught.value)
    # The field by its path in the settings, without the KIND that pydantic puts in between.
    assert message == (
        "invalid InferenceJob settings: inputs.batch_size: Input should be greater than 0 (got 0)"
    )
    assert listing(output) == []
    assert mlflow.active_run() is None
    # The failure is in MLflow, where the pipeline's alert finds the step and its error.
    [run] = job_runs(tracking, experiment, "InferenceJob")
    assert run.info.status == "FAILED"
    assert run.info.run_name == "predict"  # the step's name, as the MLflow UI lists it
    assert run.data.tags[base.ERROR_TAG] == f"SettingsError: {message}"
    assert run.data.tags["kfp.task"] == "predict"
    assert run.data.tags[base.PIPELINE_RUN_TAG] == "run-x"


def test_unknown_finder_kind_lists_the_allowed_kinds(tracking, small, output):
    experiment = unique("settings")
    with pytest.raises(base.SettingsError) as caught:
        steps.run_job(
            inference.InferenceJob,
            steps.step_settings(experiment, "", "predict"),
            inputs=reader(small),
            outputs=writer(output),
            finder={"KIND": "NoSuchFinder"},
        )
    message = str(caught.value)
    assert message.startswith("invalid InferenceJob settings: finder: ")
    assert "'NoSuchFinder'" in message
    assert "'RegistryFinder', 'BestRunFinder', 'UriFinder', 'FolderFinder'" in message
    assert "package.module:Class of a subclass of components.io.registries:Finder" in message
    kinds = ("RegistryFinder", "BestRunFinder", "UriFinder", "FolderFinder")
    assert kinds == registries.FINDER_KINDS
    assert listing(output) == []
    [run] = job_runs(tracking, experiment, "InferenceJob")
    assert run.info.status == "FAILED"
    assert "NoSuchFinder" in run.data.tags[base.ERROR_TAG]
    assert run.data.tags["kfp.task"] == "predict"
    assert base.PIPELINE_RUN_TAG not in run.data.tags  # no pipeline run id: none recorded


def test_a_components_own_check_fails_like_a_setting(tracking):
    experiment = unique("settings")
    common = steps.step_settings(experiment, "run-y", "predict")
    with pytest.raises(base.SettingsError) as caught:
        steps.guard(inference.InferenceJob, common, lambda: artifacts.input_location("", None))
    message = str(caught.value)
    assert message == (
        "invalid InferenceJob settings: no input: set data (a path or URI) or connect a "
        "Dataset artifact"
    )
    [run] = job_runs(tracking, experiment, "InferenceJob")
    assert run.info.status == "FAILED"
    assert run.data.tags[base.ERROR_TAG] == f"SettingsError: {message}"
    assert run.data.tags["kfp.task"] == "predict"


# %% A MODEL WITHOUT A SIGNATURE


def test_unsigned_model_is_refused_unless_allowed(tracking, small, output):
    experiment, name = unique("settings"), unique("unsigned")
    data = pd.read_parquet(small)
    pipeline = models.HistGradientBoostingRegressorModel(
        numerical=BIKE_NUMERICAL,
        categorical=BIKE_CATEGORICAL,
        params={"max_iter": 10},
    ).build()
    pipeline.fit(data[COLUMNS], data["cnt"])
    mlflow.set_tracking_uri(tracking)
    mlflow.set_experiment(experiment)
    with mlflow.start_run():
        mlflow.sklearn.log_model(
            pipeline,
            name="model",
            signature=None,
            input_example=None,
            serialization_format="skops",
            skops_trusted_types=list(registries.TRUSTED_TYPES),
            # Stated, not inferred: inferring loads the model in a subprocess (seconds).
            pip_requirements=mlflow.sklearn.get_default_pip_requirements(include_skops=True),
            registered_model_name=name,
        )
    assert mlflow.models.get_model_info(registries.uri_for(name, 1)).signature is None
    common = settings(tracking, experiment)
    fields = dict(
        inputs=reader(small, batch_size=1000),
        outputs=writer(output),
        finder={"KIND": "RegistryFinder", "name": name, "alias_or_version": 1},
        passthrough=["instant"],
        drift_policy="off",  # logged by hand, without a reference profile: not the point here
    )
    # Refused: nothing could check the inputs.
    with pytest.raises(registries.UnsignedModelError) as caught:
        steps.run_job(inference.InferenceJob, common, **fields)
    message = str(caught.value)
    assert f"{name} v1 has no input signature" in message
    assert "allow_unsigned" in message
    assert listing(output) == []
    [refused] = job_runs(tracking, experiment, "InferenceJob")
    assert refused.info.status == "FAILED"
    assert refused.data.tags[base.ERROR_TAG] == f"UnsignedModelError: {message}"
    # Allowed: it predicts, and says so in the result and on its MLflow run.
    done = steps.run_job(inference.InferenceJob, common, allow_unsigned=True, **fields)
    warning = f"{name} v1 has no input signature: its inputs were not validated"
    assert done.warnings == [warning]
    assert done.rows == ROWS
    assert listing(output) == ["predictions.parquet"]
    predictions = pd.read_parquet(output / "predictions.parquet")
    assert predictions.columns.tolist() == ["instant", "prediction"]
    assert predictions["instant"].tolist() == data["instant"].tolist()
    np.testing.assert_allclose(predictions["prediction"], pipeline.predict(data[COLUMNS]))
    _, allowed = job_runs(tracking, experiment, "InferenceJob")
    assert allowed.info.status == "FINISHED"
    assert allowed.data.tags[base.WARNING_TAG] == warning
    assert base.ERROR_TAG not in allowed.data.tags


# %% THE BEST RUN OF AN EXPERIMENT


def test_best_run_finder_picks_the_better_version(tracking, small, output):
    experiment, name = unique("settings"), unique("best-run")
    common = settings(tracking, experiment)
    # The better model first: the newest version is not the answer by chance.
    better = train(small, common, name, max_iter=30)
    worse = train(small, common, name, max_iter=2)
    assert (better.model_ref.version, worse.model_ref.version) == (1, 2)
    assert better.scores["rmse"] < worse.scores["rmse"]
    done = steps.run_job(
        inference.InferenceJob,
        common,
        inputs=reader(small),
        outputs=writer(output),
        finder={"KIND": "BestRunFinder"},  # the job's experiment, test_rmse, lowest
    )
    assert done.model_ref == better.model_ref
    assert done.model_ref.describe() == f"{name} v1"
    predictions = pd.read_parquet(output / "predictions.parquet")
    data = pd.read_parquet(small)
    np.testing.assert_allclose(
        predictions["prediction"], native_model(name, 1).predict(data[COLUMNS]), rtol=1e-9
    )
    [predicted] = job_runs(tracking, experiment, "InferenceJob")
    assert predicted.data.tags["model_version"] == "1"


# %% INTEGER CLASS LABELS


def test_integer_labels_stay_integers_with_a_probability_per_class(
    tracking, small, tmp_path, output
):
    experiment, name = unique("settings"), unique("int-labels")
    data = pd.read_parquet(small)
    level = pd.cut(data["cnt"], [-1, 40, 280, np.inf], labels=[0, 1, 2]).astype("int64")
    labelled = data.assign(level=level)
    assert sorted(labelled["level"].unique()) == [0, 1, 2]
    source = tmp_path / "labelled.parquet"
    labelled.to_parquet(source, index=False)
    common = settings(tracking, experiment)
    trained = steps.run_job(
        training.TrainingJob,
        common,
        inputs=reader(source),
        target="level",
        model={"KIND": "HistGradientBoostingClassifier", "params": {"max_iter": 30}},
        model_name=name,
        exclude=[*BIKE_EXCLUDE, "cnt"],
        categorical=BIKE_CATEGORICAL,
    )
    assert trained.task == "classification"
    assert trained.numerical == BIKE_NUMERICAL
    assert set(trained.scores) == {"accuracy", "f1_macro", "roc_auc", "log_loss"}
    assert 0.5 < trained.scores["roc_auc"] <= 1.0
    assert 0.0 < trained.scores["log_loss"] < np.log(3)  # better than a uniform guess
    done = steps.run_job(
        inference.InferenceJob,
        common,
        inputs=reader(source, batch_size=700),
        outputs=writer(output),
        finder={"KIND": "RegistryFinder", "name": name, "alias_or_version": 1},
        passthrough=["instant"],
    )
    assert done.rows == ROWS
    predictions = pd.read_parquet(output / "predictions.parquet")
    probabilities = ["probability_0", "probability_1", "probability_2"]
    assert predictions.columns.tolist() == ["instant", "prediction", *probabilities]
    assert pd.api.types.is_integer_dtype(predictions["prediction"])
    assert set(predictions["prediction"]) <= {0, 1, 2}
    np.testing.assert_allclose(predictions[probabilities].sum(axis=1), 1.0, rtol=1e-9)
    model = native_model(name, 1)
    assert model.classes_.tolist() == [0, 1, 2]
    assert predictions["prediction"].tolist() == model.predict(data[COLUMNS]).tolist()
    np.testing.assert_allclose(
        predictions[probabilities].to_numpy(), model.predict_proba(data[COLUMNS]), rtol=1e-9
    )
