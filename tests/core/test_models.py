"""Tests for the template models: pipelines that bundle preprocessing with the estimator."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pydantic as pdt
import pytest
import skops.io
from sklearn.pipeline import Pipeline

from components.core import features, metrics, models, schemas
from tests.jobs.helpers import BIKE_CATEGORICAL, BIKE_NUMERICAL

FEATURES = dict(numerical=BIKE_NUMERICAL, categorical=BIKE_CATEGORICAL)
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
    assert names[: len(BIKE_NUMERICAL)] == [f"num__{c}" for c in BIKE_NUMERICAL]
    assert "cat__season_1" in names and "cat__weathersit_3" in names
    # Missing numbers are imputed and unseen categories ignored, instead of failing the batch.
    odd = data[model.features].head(3).copy()
    odd.loc[0, "temp"] = np.nan
    odd.loc[1, "season"] = 9
    assert np.isfinite(pipeline.predict(odd)).all()


def test_model_features_may_be_left_to_inference_but_must_not_overlap():
    model = models.RidgeModel()
    assert model.features == []
    with pytest.raises(ValueError, match="Ridge has no feature to build on: name numerical or"):
        model.build()
    with pytest.raises(pdt.ValidationError, match=r"both numerical and categorical: \['hr'\]"):
        models.RidgeModel(numerical=["hr", "temp"], categorical=["hr"])
    model = models.RidgeModel(numerical=["temp"], categorical=["season"])
    assert model.features == ["temp", "season"]


def test_model_task_by_kind():
    kinds = models.MODELS.kinds.items()
    assert {name: kind.TASK for name, kind in kinds if kind is not models.EstimatorModel} == {
        "HistGradientBoostingRegressor": "regression",
        "HistGradientBoostingClassifier": "classification",
        "Ridge": "regression",
        "LogisticRegression": "classification",
        "RandomForestRegressor": "regression",
        "RandomForestClassifier": "classification",
        "ExtraTreesRegressor": "regression",
        "ExtraTreesClassifier": "classification",
        "XGBRegressor": "regression",
        "XGBClassifier": "classification",
        "LGBMRegressor": "regression",
        "LGBMClassifier": "classification",
    }
    assert models.model_task("xgboost:XGBRegressor") == "regression"
    with pytest.raises(ValueError, match="an EstimatorModel's task is its estimator's"):
        models.model_task("EstimatorModel")
    assert models.model_task("LogisticRegression") == "classification"
    assert models.model_task("tests.user_models:RandomForestRegressorModel") == "regression"
    with pytest.raises(ValueError, match=r"unknown model type 'XGB'; allowed: 'Hist") as caught:
        models.model_task("XGB")
    assert "\n" not in str(caught.value)
    assert str(caught.value).endswith(models.MODELS.allowed())


def test_params_reach_the_estimator():
    model = models.HistGradientBoostingClassifierModel(numerical=["temp"], params={"max_iter": 3})
    estimator = model.estimator()
    assert estimator.max_iter == 3 and estimator.random_state == 42
    assert models.LogisticRegressionModel(numerical=["temp"]).estimator().max_iter == 1000


# %% ANY DATA


@pytest.fixture(scope="module")
def messy() -> pd.DataFrame:
    """Awkward names, text with holes, numeric NaN, booleans, codes: as any data set has."""
    rng = np.random.default_rng(0)
    n = 90
    frame = pd.DataFrame(
        {
            "temp ratio": rng.normal(size=n),
            "wind.speed": rng.integers(0, 30, size=n),
            "température": rng.normal(20, 5, size=n),
            "holiday": rng.random(n) > 0.8,
            "visits": pd.array(rng.integers(0, 5, size=n), dtype="Int64"),
            "member": pd.array(rng.random(n) > 0.5, dtype="boolean"),
            "city name": pd.Series(rng.choice(["Paris", "Lyon", "Nice"], size=n), dtype=object),
            "weather": pd.Categorical(rng.choice(["sun", "rain", "snow"], size=n)),
            "plan": pd.array(rng.choice(["a", "b"], size=n), dtype="string[pyarrow]"),
            "mixed": pd.Series(rng.choice(["a", "1", "2.5"], size=n), dtype=object),
            "code": rng.integers(1, 4, size=n),
        }
    )
    frame.loc[::7, "temp ratio"] = np.nan
    frame.loc[::9, "visits"] = pd.NA
    frame.loc[::11, "member"] = pd.NA
    frame.loc[::5, "weather"] = np.nan
    frame.loc[::6, "plan"] = pd.NA
    frame.loc[::4, "city name"] = None
    frame.loc[1::4, "mixed"] = 1  # numbers among the text
    y = frame["temp ratio"].fillna(0) * 3 + frame["wind.speed"] * 0.1
    return frame.assign(y=y, classes=pd.qcut(y, 3, labels=False), busy=y > y.median())


# Every kind with a task of its own (an EstimatorModel's is its estimator's: test_frameworks).
KINDS_AND_TARGETS = [
    (kind, target)
    for kind in models.MODELS.kinds.values()
    if kind is not models.EstimatorModel
    for target in (["y"] if kind.TASK == "regression" else ["classes", "busy"])
]


@pytest.mark.parametrize(
    ("kind", "target"), KINDS_AND_TARGETS, ids=[f"{k.__name__}-{t}" for k, t in KINDS_AND_TARGETS]
)
def test_every_kind_fits_and_predicts_any_data(messy, kind, target):
    task = kind.TASK
    data = schemas.normalize(messy)
    found = features.infer(data, target, exclude=["y", "classes", "busy"], categorical=["code"])
    assert found.numerical == [
        "temp ratio", "wind.speed", "température", "holiday", "visits", "member"
    ]  # fmt: skip
    assert found.categorical == ["city name", "weather", "plan", "mixed", "code"]
    params = {"max_iter": 20} if kind.__name__.startswith("Hist") else {}
    model = kind(numerical=found.numerical, categorical=found.categorical, params=params)
    labels = features.check_target(task, data[target], target)
    pipeline = model.build().fit(data[found.columns], labels)
    # Batches with unseen categories and every kind of missing value, once normalized.
    batch = messy[found.columns].head(5).copy()
    batch["city name"] = ["Berlin", None, np.nan, pd.NA, "Paris"]
    batch["plan"] = pd.array(["z", None, "a", "b", None], dtype="string[pyarrow]")
    batch["temp ratio"] = np.nan
    predictions = models.predict_frame(pipeline, schemas.normalize(batch))
    assert len(predictions) == 5
    if task == "regression":
        assert np.isfinite(predictions[models.PREDICTION]).all()
    else:
        classes = sorted(pd.unique(labels))
        expected = [models.probability_column(c) for c in classes]
        assert list(predictions.columns) == [models.PREDICTION, *expected]
        assert set(predictions[models.PREDICTION]) <= set(classes)
        scores = metrics.score(task, labels, models.predict_frame(pipeline, data[found.columns]))
        assert set(scores) == {"accuracy", "f1_macro", "roc_auc", "log_loss"}
    # The model saves with skops, holding no type beyond those its kind declares.
    untrusted = skops.io.get_untrusted_types(data=skops.io.dumps(pipeline))
    assert set(untrusted) <= set(kind.TRUSTED_TYPES)
    loaded = skops.io.loads(skops.io.dumps(pipeline), trusted=untrusted)
    pd.testing.assert_frame_equal(
        models.predict_frame(loaded, schemas.normalize(batch)), predictions
    )


def test_rare_categories_share_one_column():
    rows = 400
    frame = pd.DataFrame({"user": [f"u{i % 300}" for i in range(rows)], "x": np.arange(rows) % 7})
    model = models.HistGradientBoostingRegressorModel(
        numerical=["x"], categorical=["user"], params={"max_iter": 5}
    )
    pipeline = model.build().fit(frame, np.arange(rows, dtype=float))
    names = list(pipeline[:-1].get_feature_names_out())
    assert len(names) == 1 + models.MAX_CATEGORIES
    assert "cat__user_infrequent_sklearn" in names
    unseen = pd.DataFrame({"user": ["never seen"], "x": [1]})
    assert np.isfinite(pipeline.predict(unseen)).all()
    untrusted = skops.io.get_untrusted_types(data=skops.io.dumps(pipeline))
    assert set(untrusted) <= set(models.HistGradientBoostingRegressorModel.TRUSTED_TYPES)


# %% THE REGISTRY OF MODEL KINDS


def test_an_unknown_model_kind_is_refused_in_one_line_listing_the_kinds():
    with pytest.raises(ValueError) as caught:
        models.MODELS.build({"KIND": "CatBoost", "params": {}})
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("unknown model type 'CatBoost'; allowed: ")
    for name in models.MODELS.names:
        assert repr(name) in message
    assert "package.module:Class of a subclass of components.core.models:Model" in message


def test_a_class_that_is_not_a_model_is_refused():
    with pytest.raises(ValueError) as caught:
        models.MODELS.build({"KIND": "tests.user_models:NotAKind"})
    assert str(caught.value).startswith(
        "model type 'tests.user_models:NotAKind' is not a subclass of "
        "components.core.models:Model; allowed: 'HistGradientBoostingRegressor'"
    )


def test_a_users_model_kind_is_built_by_its_import_path(data):
    """The task, trusted types and tree ensemble are read from the user's class."""
    from tests import user_models

    path = "tests.user_models:RandomForestRegressorModel"
    model = models.MODELS.build({"type": path, "config": {"params": {"n_estimators": 3.0}}})
    assert type(model) is user_models.RandomForestRegressorModel
    assert path == model.KIND  # it declares none: its path names it where a step rebuilds it
    assert model.TASK == models.model_task(path) == "regression"
    assert model.params == {"n_estimators": 3}  # a KFP float back to the int sklearn expects
    assert models.MODELS.config_of(model)["KIND"] == path
    fitted = fit(model.model_copy(update=FEATURES), data, "cnt")
    untrusted = skops.io.get_untrusted_types(data=skops.io.dumps(fitted))
    assert set(untrusted) == set(model.TRUSTED_TYPES)  # what it declares, and no more
    # A tree ensemble it says it is, and the explainers will know it.
    assert type(model.estimator()) in models.tree_estimators()
    with pytest.raises(pdt.ValidationError, match="unknown parameter 'n_trees'"):
        models.MODELS.coerce({"KIND": path, "params": {"n_trees": 3}})


def test_the_project_kinds_declare_what_their_saving_and_explaining_need():
    kinds = models.MODELS.kinds
    linear = {"Ridge", "LogisticRegression", "EstimatorModel"}  # an estimator's: not declared
    assert {name: kind.TREE_ENSEMBLE for name, kind in kinds.items()} == {
        name: name not in linear for name in kinds
    }
    assert {kind.FLAVOR for kind in kinds.values()} == {"sklearn"}
    # Each kind's declared types, once each, make the types the project trusts.
    assert models.trusted_types() == (
        models.HIST_TREES,
        "numpy.dtype",
        models.SKLEARN_TREE,
        models.CATEGORY_CASTER,
        models.BOOSTER_NAMES,
        models.XGB_BOOSTER,
        "xgboost.sklearn.XGBRegressor",
        "components.core.frameworks.LabelledXGBClassifier",
        *models.LGBM_BOOSTER,
        "lightgbm.sklearn.LGBMRegressor",
        "lightgbm.sklearn.LGBMClassifier",
    )
