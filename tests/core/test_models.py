"""Tests for the template models: pipelines that bundle preprocessing with the estimator."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pydantic as pdt
import pytest
from sklearn.pipeline import Pipeline

from components.core import models

FEATURES = dict(numerical=models.BIKE_NUMERICAL, categorical=models.BIKE_CATEGORICAL)
LABELS = ["high", "low", "medium"]


@pytest.fixture(scope="module")
def data(bike) -> pd.DataFrame:
    """Rows with a numeric target and a string label derived from it."""
    rows = bike.iloc[::8].reset_index(drop=True)
    demand = pd.cut(rows["cnt"], [-1, 40, 280, np.inf], labels=["low", "medium", "high"])
    return rows.assign(demand=demand.astype(str), busy=np.where(rows["cnt"] > 150, "yes", "no"))


def fit(model: models.Model, data: pd.DataFrame, target: str) -> Pipeline:
    return model.build().fit(data[model.features], data[target])


@pytest.mark.parametrize(
    ("kind", "params"),
    [(models.HistGradientBoostingRegressorModel, {"max_iter": 20}), (models.RidgeModel, {})],
    ids=["trees", "ridge"],
)
def test_regressor_predicts_one_numeric_column(data, kind, params):
    model = kind(**FEATURES, params=params)
    pipeline = fit(model, data, "cnt")
    assert models.task_of(pipeline) == "regression"
    assert list(pipeline.named_steps) == ["preprocessor", "estimator"]
    predictions = models.predict_frame(pipeline, data[model.features])
    assert list(predictions.columns) == [models.PREDICTION]
    assert len(predictions) == len(data)
    assert predictions[models.PREDICTION].dtype == "float64"
    np.testing.assert_allclose(
        predictions[models.PREDICTION], pipeline.predict(data[model.features])
    )
    # Better than always predicting the mean.
    error = np.mean((predictions[models.PREDICTION] - data["cnt"]) ** 2)
    assert error < data["cnt"].var()


@pytest.mark.parametrize(
    "kind",
    [models.HistGradientBoostingClassifierModel, models.LogisticRegressionModel],
    ids=lambda k: k.__name__,
)
def test_classifier_predicts_the_label_and_one_probability_per_class(data, kind):
    params = {"max_iter": 30} if kind is models.HistGradientBoostingClassifierModel else {}
    model = kind(**FEATURES, params=params)
    pipeline = fit(model, data, "demand")
    assert models.task_of(pipeline) == "classification"
    predictions = models.predict_frame(pipeline, data[model.features])
    assert list(predictions.columns) == [models.PREDICTION] + [f"probability_{x}" for x in LABELS]
    assert len(predictions) == len(data)
    # The prediction is the original string label, the most probable one.
    assert set(predictions[models.PREDICTION]) <= set(LABELS)
    assert (
        predictions[models.PREDICTION].tolist() == pipeline.predict(data[model.features]).tolist()
    )
    probabilities = predictions[[f"probability_{x}" for x in LABELS]].to_numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-9)
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    best = np.asarray(LABELS)[probabilities.argmax(axis=1)]
    assert predictions[models.PREDICTION].tolist() == best.tolist()
    assert (predictions[models.PREDICTION] == data["demand"]).mean() > 0.6


def test_binary_classifier(data):
    model = models.HistGradientBoostingClassifierModel(**FEATURES, params={"max_iter": 20})
    predictions = models.predict_frame(fit(model, data, "busy"), data[model.features])
    assert list(predictions.columns) == ["prediction", "probability_no", "probability_yes"]
    np.testing.assert_allclose(predictions[["probability_no", "probability_yes"]].sum(axis=1), 1.0)


def test_preprocessing_travels_with_the_model(data):
    model = models.RidgeModel(**FEATURES)
    pipeline = fit(model, data, "cnt")
    names = list(pipeline[:-1].get_feature_names_out())
    assert names[: len(models.BIKE_NUMERICAL)] == [f"num__{c}" for c in models.BIKE_NUMERICAL]
    assert "cat__season_1" in names and "cat__weathersit_3" in names
    # Missing numbers are imputed and unseen categories ignored, instead of failing the batch.
    odd = data[model.features].head(3).copy()
    odd.loc[0, "temp"] = np.nan
    odd.loc[1, "season"] = 9
    assert np.isfinite(pipeline.predict(odd)).all()


def test_model_needs_features_that_do_not_overlap():
    with pytest.raises(pdt.ValidationError, match="at least one numerical or categorical"):
        models.RidgeModel()
    with pytest.raises(pdt.ValidationError, match=r"both numerical and categorical: \['hr'\]"):
        models.RidgeModel(numerical=["hr", "temp"], categorical=["hr"])
    model = models.RidgeModel(numerical=["temp"], categorical=["season"])
    assert model.features == ["temp", "season"]


def test_params_reach_the_estimator():
    model = models.HistGradientBoostingClassifierModel(numerical=["temp"], params={"max_iter": 3})
    estimator = model.estimator()
    assert estimator.max_iter == 3 and estimator.random_state == 42
    assert models.LogisticRegressionModel(numerical=["temp"]).estimator().max_iter == 1000
