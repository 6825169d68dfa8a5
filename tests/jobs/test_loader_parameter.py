"""Integration: the `loader` step parameter names a label-encoded classifier's classes.

An XGBoost classifier trained on label-encoded classes is registered with `mlflow.xgboost` on
the session's real MLflow server, without the `label_mapping` tag. The predict and explain
steps' jobs are built from the steps' parameters by the one mapping their components run
(`components.fields`), with the mapping given as the `loader` parameter: the predictions and
the explained outputs are named by the labels, where the same model without it gives indices.
"""

from __future__ import annotations

import pathlib
import types

import mlflow
import numpy as np
import pandas as pd
import pytest
import xgboost
from sklearn.preprocessing import LabelEncoder

from components import fields
from components.io import flavors, registries
from components.jobs import explanations, inference
from tests.jobs import test_explanations_frameworks as frameworks
from tests.jobs.helpers import run, settings, unique
from tests.jobs.test_explanations_frameworks import COLUMNS, SAMPLES, categoricals, register

# The bike rows with a demand class, and some of them to predict, as a Parquet file.
data, rows = frameworks.data, frameworks.rows

pytestmark = pytest.mark.integration


@pytest.fixture
def untagged(tracking, data) -> tuple[str, xgboost.XGBClassifier, list[str]]:
    """A classifier on the demand classes' codes, registered without its label mapping."""
    name = unique("untagged-xgb")
    encoder = LabelEncoder().fit(data["demand"])
    model = xgboost.XGBClassifier(n_estimators=20, max_depth=3, enable_categorical=True)
    X = categoricals(data[COLUMNS])
    model.fit(X, encoder.transform(data["demand"]))
    register(tracking, name, mlflow.xgboost.log_model, model, data[COLUMNS], model.predict(X))
    assert (
        flavors.LABEL_MAPPING_TAG
        not in mlflow.MlflowClient(tracking).get_model_version(name, "1").tags
    )
    return name, model, [str(label) for label in encoder.classes_]


def artifact(path: pathlib.Path) -> types.SimpleNamespace:
    """What a component hands its mapping for an output artifact: its local path."""
    return types.SimpleNamespace(path=str(path), uri=str(path))


def predict(tracking, name: str, source: pathlib.Path, out: pathlib.Path, loader) -> pd.DataFrame:
    """The predict step's job, mapped from its parameters as its component maps them."""
    mapped = fields.predict_fields(
        predictions=artifact(out), data=str(source), dataset=None, model_name=name,
        alias_or_version="1", finder=None, reader=None, writer=None, batch_size=1000,
        passthrough=["instant"], input_schema="", probabilities=True, allow_unsigned=False,
        drift_policy="off", drift_thresholds=None, challenger="", challenger_tolerance=0.0,
        loader=loader,
    )  # fmt: skip
    run(inference.InferenceJob(**mapped, **settings(tracking, unique("predict"))))
    return pd.read_parquet(out)


def test_a_label_mapping_given_as_the_loader_parameter_names_predictions_and_explanations(
    tracking, untagged, rows, tmp_path
):
    name, model, labels = untagged
    inputs = pd.read_parquet(rows)
    codes = model.predict(categoricals(inputs[COLUMNS]))
    # Without the tag or the parameter: the class indices it was trained on.
    bare = predict(tracking, name, rows, tmp_path / "bare.parquet", loader=None)
    assert bare["prediction"].tolist() == codes.tolist()
    assert list(bare.columns) == [
        "instant",
        "prediction",
        "probability_0",
        "probability_1",
        "probability_2",
    ]

    # KFP hands dict parameters over as JSON: the mapping as a list, index -> label.
    named = predict(tracking, name, rows, tmp_path / "named.parquet", {"label_mapping": labels})

    assert named["prediction"].tolist() == np.asarray(labels, dtype=object)[codes].tolist()
    assert list(named.columns) == ["instant", "prediction", *(f"probability_{x}" for x in labels)]
    np.testing.assert_allclose(named.filter(like="probability_").sum(axis=1), 1.0, rtol=1e-6)
    # A loader KIND takes it too, and the explain step names the explained classes by it.
    loader = {"KIND": "XGBoostLoader", "label_mapping": labels}
    mapped = fields.explain_fields(
        models_explanations=artifact(tmp_path / "models.parquet"),
        samples_explanations=artifact(tmp_path / "samples.parquet"),
        data=str(rows), dataset=None, the_plan=None, model_name=name, alias_or_version="1",
        finder=None, reader=None, explainer=None, max_samples=SAMPLES, passthrough=["instant"],
        input_schema="", allow_unsigned=False, loader=loader,
    )  # fmt: skip
    job = explanations.ExplanationsJob(**mapped, **settings(tracking, unique("explain")))
    assert type(job.loader) is registries.XGBoostLoader
    done = run(job)
    samples = pd.read_parquet(tmp_path / "samples.parquet")
    assert done.explainer == "XGBoostExplainer"
    assert samples["output"].tolist() == labels * SAMPLES


def test_a_loader_parameter_without_kind_is_the_default_loader_with_its_options():
    assert registries.loader_config(None) == {"KIND": "FlavorLoader"}
    assert registries.loader_config({"label_mapping": ["a", "b"]}) == {
        "KIND": "FlavorLoader",
        "label_mapping": ["a", "b"],
    }
    given = {"KIND": "PyfuncLoader", "label_mapping": {"0": "a"}}
    assert registries.loader_config(given) == given
