"""Integration: one TrainingJob per framework against the session's real MLflow server.

XGBoost (regression, native categoricals), LightGBM (classification, text labels) and a
scikit-learn forest named by its import path are each trained on 2,000 rows of the demo data,
registered in skops format with the types their kind declares, and loaded back with
`mlflow.sklearn.load_model` (no project code in the way): the same predictions, the labels of
the trained type. An estimator whose fitted types nobody declared is refused before anything is
registered, naming the types and the field that allows them.
"""

from __future__ import annotations

import pathlib
import typing as T

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from components.core import frameworks, models
from components.io import datasets, registries
from components.jobs import training
from tests.jobs.helpers import COLUMNS, features, native_model, run, settings, unique, with_demand

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def rows(bike, tmp_path_factory) -> pathlib.Path:
    """2,000 rows of the demo data with its class targets."""
    path = tmp_path_factory.mktemp("frameworks") / "rows.parquet"
    sample = bike.sample(2000, random_state=1).reset_index(drop=True)
    with_demand(sample).to_parquet(path, index=False)
    return path


def train(
    mlflow_server: str, rows: pathlib.Path, target: str, model: T.Any, holdout: pathlib.Path
) -> T.Any:
    """Train and register a model of `target`, keeping the held-out rows."""
    return run(
        training.TrainingJob(
            inputs=datasets.ParquetReader(path=str(rows)),
            target=target,
            model_name=unique("framework"),
            model=model,
            holdout=datasets.ParquetWriter(path=str(holdout)),
            **features(target),
            **settings(mlflow_server, unique("frameworks")),
        )
    )


def stored(uri: str, folder: pathlib.Path) -> tuple[pathlib.Path, dict[str, T.Any]]:
    """The registered model's files, and its sklearn flavour as MLmodel records it."""
    files = pathlib.Path(
        mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(folder))
    )
    return files, yaml.safe_load((files / "MLmodel").read_text())["flavors"]["sklearn"]


def assert_never_pickled(files: pathlib.Path) -> None:
    """skops only: no pickle, joblib or cloudpickle file among the model's."""
    assert (files / "model.skops").is_file()
    assert not [p for p in files.rglob("*") if p.suffix in (".pkl", ".pickle", ".joblib")]


def test_an_xgboost_regressor_is_trained_registered_and_loaded_back(tracking, rows, tmp_path):
    holdout = tmp_path / "holdout.parquet"
    trained = train(
        tracking,
        rows,
        "cnt",
        {"KIND": "XGBRegressor", "params": {"n_estimators": 80.0, "max_depth": 6.0}},
        holdout,
    )
    assert trained.model_kind == "XGBRegressor" and trained.task == "regression"
    assert trained.scores["r2"] > 0.8
    files, flavor = stored(trained.model_ref.uri, tmp_path / "files")
    assert_never_pickled(files)
    assert flavor["serialization_format"] == "skops"
    assert set(flavor["skops_trusted_types"]) <= set(models.XGBRegressorModel.TRUSTED_TYPES)
    assert models.XGB_BOOSTER in flavor["skops_trusted_types"]
    # The serving environment gets the framework the model needs, at the version trained with.
    requirements = (files / "requirements.txt").read_text().split()
    assert any(line.startswith(("xgboost==", "xgboost-cpu==")) for line in requirements)
    # Loaded back by MLflow alone: the same booster, fed categories, predicts the holdout so.
    model = native_model(trained.model_ref.name, 1)
    assert type(model[-1]).__name__ == "XGBRegressor" and model[-1].n_estimators == 80
    assert isinstance(model[0].named_transformers_["cat"], frameworks.CategoryCaster)
    test = pd.read_parquet(holdout)
    predicted = model.predict(test[COLUMNS])
    rmse = float(np.sqrt(np.mean((predicted - test["cnt"]) ** 2)))
    assert rmse == pytest.approx(trained.scores["rmse"], rel=1e-5)
    params = MlflowClient().get_run(trained.model_ref.run_id).data.params
    assert params["model_kind"] == "XGBRegressor" and params["enable_categorical"] == "True"


def test_a_lightgbm_classifier_gives_its_text_labels_back(tracking, rows, tmp_path):
    holdout = tmp_path / "holdout.parquet"
    trained = train(
        tracking, rows, "demand", {"KIND": "LGBMClassifier", "params": {"n_jobs": 1.0}}, holdout
    )
    assert trained.task == "classification" and trained.scores["accuracy"] > 0.75
    files, flavor = stored(trained.model_ref.uri, tmp_path / "files")
    assert_never_pickled(files)
    assert "lightgbm.basic.Booster" in flavor["skops_trusted_types"]
    assert any(
        line.startswith("lightgbm==") for line in (files / "requirements.txt").read_text().split()
    )
    model = native_model(trained.model_ref.name, 1)
    test = pd.read_parquet(holdout)
    assert list(model.classes_) == ["high", "low", "medium"]
    through_loader = registries.FlavorLoader().load(trained.model_ref.uri).predict(test[COLUMNS])
    assert through_loader[models.PREDICTION].tolist() == list(model.predict(test[COLUMNS]))
    probabilities = through_loader[[f"probability_{c}" for c in model.classes_]]
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    accuracy = float((through_loader[models.PREDICTION] == test["demand"]).mean())
    assert accuracy == pytest.approx(trained.scores["accuracy"])


def test_a_forest_named_by_its_import_path_is_trained_as_its_kind(tracking, rows, tmp_path):
    holdout = tmp_path / "holdout.parquet"
    path = "sklearn.ensemble:RandomForestRegressor"
    trained = train(
        tracking,
        rows,
        "cnt",
        {"KIND": path, "params": {"n_estimators": 20.0, "n_jobs": 1}},
        holdout,
    )
    assert trained.model_kind == path and trained.task == "regression"
    files, flavor = stored(trained.model_ref.uri, tmp_path / "files")
    assert_never_pickled(files)
    assert flavor["skops_trusted_types"] == [models.SKLEARN_TREE]
    model = native_model(trained.model_ref.name, 1)
    assert type(model[-1]).__name__ == "RandomForestRegressor" and model[-1].n_estimators == 20
    test = pd.read_parquet(holdout)
    through_loader = registries.FlavorLoader().load(trained.model_ref.uri).predict(test[COLUMNS])
    np.testing.assert_allclose(through_loader[models.PREDICTION], model.predict(test[COLUMNS]))
    params = MlflowClient().get_run(trained.model_ref.run_id).data.params
    assert params["model_kind"] == path and params["n_estimators"] == "20"


def test_an_estimator_with_undeclared_types_is_refused_before_registering(tracking, rows, tmp_path):
    """GradientBoostingRegressor: no kind trains it, so its trees are trusted only when listed."""
    path = "sklearn.ensemble:GradientBoostingRegressor"
    name = unique("undeclared")
    job = training.TrainingJob(
        inputs=datasets.ParquetReader(path=str(rows)),
        target="cnt",
        model_name=name,
        model={"KIND": path, "params": {"n_estimators": 5}},
        **features("cnt"),
        **settings(tracking, unique("frameworks")),
    )
    with pytest.raises(registries.UntrustedTypesError) as caught:
        run(job)
    message = str(caught.value)
    assert "holds types that skops does not trust: ['sklearn.tree._tree.Tree']" in message
    assert "model kind EstimatorModel trusts ['numpy.dtype']" in message
    assert f'"estimator_class": "{path}", "trusted_types": [...]' in message
    assert not MlflowClient().search_model_versions(f"name='{name}'")
    # Listed by the user, reviewed: trained and registered.
    trusting = job.model_copy(
        update={
            "model": models.MODELS.build(
                {
                    "KIND": path,
                    "params": {"n_estimators": 5},
                    "trusted_types": [models.SKLEARN_TREE],
                }
            )
        }
    )
    trained = run(trusting)
    assert trained.model_ref.version == 1
    assert type(native_model(name, 1)[-1]).__name__ == "GradientBoostingRegressor"
