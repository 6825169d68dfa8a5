"""Tests for the model registry: URIs, finders, loaders and the skops saver, on a real server."""

from __future__ import annotations

import pathlib
import uuid

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from components.core import models
from components.io import registries, services
from components.utils import signers
from tests.jobs.helpers import BIKE_CATEGORICAL, BIKE_NUMERICAL

pytestmark = pytest.mark.integration

FEATURES = dict(numerical=BIKE_NUMERICAL, categorical=BIKE_CATEGORICAL)
COLUMNS = [*BIKE_NUMERICAL, *BIKE_CATEGORICAL]


@pytest.fixture(scope="module")
def registry(mlflow_server, bike):
    """One registered model with two versions, each from a run that logged an `rmse`.

    v1 is gradient-boosted trees (rmse 40, Champion), v2 is a ridge regression (rmse 90).
    """
    suffix = uuid.uuid4().hex[:8]
    service = services.MlflowService(
        tracking_uri=mlflow_server, experiment_name=f"registries-{suffix}"
    )
    service.start()
    name = f"registries-{suffix}"
    train = bike.head(3000)
    refs, runs = [], []
    for model, rmse in [
        (models.HistGradientBoostingRegressorModel(**FEATURES, params={"max_iter": 10}), 40.0),
        (models.RidgeModel(**FEATURES), 90.0),
    ]:
        pipeline = model.build().fit(train[COLUMNS], train["cnt"])
        example = train[COLUMNS].head(5)
        signature = signers.InferSigner().sign(example, pipeline.predict(example))
        with mlflow.start_run(run_name="fit") as run:
            mlflow.log_metric("rmse", rmse)
            refs.append(registries.SklearnSaver().save(pipeline, name, signature, example))
            runs.append(run.info.run_id)
    client = service.client()
    client.set_registered_model_alias(name, "Champion", "1")
    return {
        "name": name,
        "experiment": service.experiment_name,
        "refs": refs,
        "runs": runs,
        "client": client,
        "inputs": bike[COLUMNS].iloc[5000:5100].reset_index(drop=True),
    }


@pytest.fixture(autouse=True)
def server(mlflow_server):
    """Point MLflow's global client at the session's server, wherever other tests left it."""
    mlflow.set_tracking_uri(mlflow_server)
    mlflow.set_registry_uri(mlflow_server)


def test_uri_for_aliases_and_versions():
    assert registries.uri_for("bike", "Champion") == "models:/bike@Champion"
    assert registries.uri_for("bike", 3) == "models:/bike/3"
    assert registries.uri_for("bike", "12") == "models:/bike/12"
    assert registries.is_version(3) and registries.is_version("3")
    assert not registries.is_version("Champion") and not registries.is_version("v3")


def test_saver_registers_increasing_versions(registry):
    first, second = registry["refs"]
    assert (first.version, second.version) == (1, 2)
    assert first.uri == f"models:/{registry['name']}/1"
    assert first.run_id == registry["runs"][0] and second.run_id == registry["runs"][1]
    assert first.describe() == f"{registry['name']} v1"
    assert registries.latest_version(registry["client"], registry["name"]) == 2


@pytest.mark.parametrize(
    ("alias_or_version", "version"), [("Champion", 1), (2, 2), ("2", 2), (1, 1)]
)
def test_registry_finder_resolves_to_a_concrete_version(registry, alias_or_version, version):
    finder = registries.RegistryFinder(name=registry["name"], alias_or_version=alias_or_version)
    ref = finder.find(registry["client"])
    assert ref.version == version
    assert ref.uri == f"models:/{registry['name']}/{version}"  # an alias never stays floating
    assert ref.run_id == registry["runs"][version - 1]


def test_registry_finder_lists_what_exists_instead(registry):
    client, name = registry["client"], registry["name"]
    with pytest.raises(registries.RegistryError) as caught:
        registries.RegistryFinder(name=name, alias_or_version="Staging").find(client)
    message = str(caught.value)
    assert f"model '{name}' has no alias 'Staging' (models:/{name}@Staging)" in message
    assert "aliases: Champion=v1; latest versions: v2, v1" in message
    with pytest.raises(registries.RegistryError, match="has no version '7'"):
        registries.RegistryFinder(name=name, alias_or_version=7).find(client)
    with pytest.raises(registries.RegistryError) as caught:
        registries.RegistryFinder(name=f"{name}-typo").find(client)
    assert f"no registered model named '{name}-typo'" in str(caught.value)
    assert name in str(caught.value).split("registered models: ")[1].split(", ")


def test_a_missing_alias_after_refused_candidates_says_why(registry, bike):
    # A first version that failed its evaluation leaves no Champion: predict said only that
    # the alias is missing, and the alert's "fix the input" did not say which input.
    client, name = registry["client"], f"{registry['name']}-refused"
    train = bike.head(500)
    pipeline = models.RidgeModel(**FEATURES).build().fit(train[COLUMNS], train["cnt"])
    example = train[COLUMNS].head(5)
    signature = signers.InferSigner().sign(example, pipeline.predict(example))
    # In an experiment of its own, away from the runs that the finders' tests rank.
    with mlflow.start_run(experiment_id=client.create_experiment(name)):
        version = registries.SklearnSaver().save(pipeline, name, signature, example).version
    registries.set_version_tags(
        client,
        name,
        int(version),
        {
            registries.REASONS_TAG: "r2=0.61 does not meet the threshold 0.8",
            registries.PASSED_TAG: "false",
        },
    )
    with pytest.raises(registries.RegistryError) as caught:
        registries.RegistryFinder(name=name).find(client)
    assert str(caught.value) == (
        f"model '{name}' has no alias 'Champion' (models:/{name}@Champion); aliases: none; "
        "latest versions: v1; v1 failed its evaluation (r2=0.61 does not meet the threshold "
        "0.8): train a version that passes (or review the thresholds), then run again"
    )


@pytest.mark.parametrize(("mode", "best"), [("min", 0), ("max", 1)])
def test_best_run_finder_picks_the_run_by_metric_direction(registry, mode, best):
    finder = registries.BestRunFinder(
        experiment_name=registry["experiment"], metric="rmse", mode=mode
    )
    ref = finder.find(registry["client"])
    assert ref.run_id == registry["runs"][best]
    # The best run's model was registered: the version is named, for people and tags.
    assert ref == registry["refs"][best]
    predictor = registries.SklearnLoader().load(ref.uri)
    expected = registries.SklearnLoader().load(registry["refs"][best].uri)
    pd.testing.assert_frame_equal(
        predictor.predict(registry["inputs"]), expected.predict(registry["inputs"])
    )


def test_best_run_finder_errors(registry):
    client = registry["client"]
    with pytest.raises(registries.RegistryError, match="has the metric 'mae'; metrics logged"):
        registries.BestRunFinder(experiment_name=registry["experiment"], metric="mae").find(client)
    with pytest.raises(registries.RegistryError, match="no experiment named 'nowhere-"):
        registries.BestRunFinder(experiment_name=f"nowhere-{uuid.uuid4().hex}").find(client)


def test_best_run_finder_of_an_unregistered_run_gives_its_logged_model(registry):
    """A run that logged a model without registering it: the logged model's own URI."""
    import mlflow.sklearn

    client = registry["client"]
    experiment = client.get_experiment_by_name(registry["experiment"])
    with mlflow.start_run(experiment_id=experiment.experiment_id) as run:
        native = registries.SklearnLoader().load(registry["refs"][0].uri).model
        mlflow.sklearn.log_model(
            native, name="model", serialization_format="skops",
            skops_trusted_types=list(registries.TRUSTED_TYPES),
        )  # fmt: skip
        mlflow.log_metric("unregistered_score", 1.0)  # only this run has it
    finder = registries.BestRunFinder(
        experiment_name=registry["experiment"], metric="unregistered_score"
    )
    ref = finder.find(client)
    assert ref.run_id == run.info.run_id and ref.name is None
    assert ref.uri.startswith("models:/m-")


def test_uri_finder_passes_the_uri_through(registry):
    uri = f"models:/{registry['name']}@Champion"
    assert registries.UriFinder(uri=uri).find(registry["client"]) == registries.ModelRef(uri=uri)


@pytest.mark.parametrize("version", [1, 2])
def test_loaders_predict_the_same_values(registry, version):
    uri = registry["refs"][version - 1].uri
    inputs = registry["inputs"]
    pyfunc = registries.PyfuncLoader().load(uri)
    native = registries.SklearnLoader().load(uri)
    assert isinstance(pyfunc, registries.PyfuncPredictor)
    assert isinstance(native, registries.SklearnPredictor)
    assert isinstance(native.model, Pipeline)
    assert pyfunc.signature.inputs.input_names() == COLUMNS
    assert native.signature == pyfunc.signature
    # Extra columns and another column order are conformed to the signature.
    shuffled = inputs.assign(extra="x")[["extra", *reversed(COLUMNS)]]
    from_pyfunc, from_native = pyfunc.predict(shuffled), native.predict(shuffled)
    assert list(from_pyfunc.columns) == list(from_native.columns) == ["prediction"]
    assert len(from_pyfunc) == len(inputs)
    np.testing.assert_allclose(from_pyfunc["prediction"], from_native["prediction"])
    np.testing.assert_allclose(from_native["prediction"], native.model.predict(inputs))


def test_saver_stores_skops_not_pickle(registry, tmp_path):
    files = mlflow.artifacts.download_artifacts(
        artifact_uri=registry["refs"][0].uri, dst_path=str(tmp_path)
    )
    names = [path.name for path in pathlib.Path(files).rglob("*") if path.is_file()]
    assert "model.skops" in names
    assert not [name for name in names if name.endswith((".pkl", ".pickle", ".joblib"))]
    mlmodel = (pathlib.Path(files) / "MLmodel").read_text()
    assert "serialization_format: skops" in mlmodel
    assert registries.TRUSTED_TYPES[0] in mlmodel  # the trees' type, trusted by name


def test_saver_refuses_a_model_with_an_untrusted_type(registry, bike):
    client, name = registry["client"], f"untrusted-{uuid.uuid4().hex[:8]}"
    preprocessor = ColumnTransformer([("num", FunctionTransformer(np.nan_to_num), ["temp"])])
    pipeline = Pipeline([("preprocessor", preprocessor), ("estimator", Ridge())])
    frame = bike[["temp"]].head(50)
    pipeline.fit(frame, bike["cnt"].head(50))
    signature = signers.InferSigner().sign(frame, pipeline.predict(frame))
    with mlflow.start_run(), pytest.raises(registries.UntrustedTypesError) as caught:
        registries.SklearnSaver().save(pipeline, name, signature, frame.head(5))
    assert "numpy.nan_to_num" in str(caught.value)
    assert f"model '{name}'" in str(caught.value)
    assert not client.search_registered_models(filter_string=f"name = '{name}'")


def test_client_of_the_service_talks_to_the_server(registry):
    assert isinstance(registry["client"], MlflowClient)
    assert registry["client"].get_registered_model(registry["name"]).aliases == {"Champion": "1"}
