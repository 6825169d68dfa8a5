"""Tests for explaining any framework's model: XGBoost, LightGBM, sklearn, a pyfunc-only model.

The models are trained here as a data team would in a notebook (bare, on pandas categoricals,
or inside a scikit-learn Pipeline with one-hot encoding), then explained from the same columns
as Parquet gives them back (text, not categoricals). Each expected output is computed by the
framework's own call (XGBoost's `output_margin`, LightGBM's `raw_score`, sklearn's
`decision_function`), not by the explainers' code.
"""

from __future__ import annotations

import pathlib
import typing as T

import lightgbm
import mlflow
import numpy as np
import pandas as pd
import pytest
import xgboost
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import LabelEncoder, OneHotEncoder, PolynomialFeatures

from components.core import explainers

NUMERICAL = ["hr", "temp", "hum", "windspeed", "workingday"]
TEXT = ["season", "weather"]
COLUMNS = [*NUMERICAL, *TEXT]
WEATHER = {1: "clear", 2: "mist", 3: "rain", 4: "storm"}
SEASONS = {1: "winter", 2: "spring", 3: "summer", 4: "autumn"}
TOLERANCE = explainers.ADDITIVITY_TOLERANCE


def assert_additive(explained: explainers.Explanations, expected: np.ndarray) -> None:
    """base + the sum of a sample's values = the expected output, within the documented gap."""
    total = explained.totals()
    assert total.shape == expected.shape
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(total, expected, rtol=TOLERANCE, atol=TOLERANCE * scale)


@pytest.fixture(scope="module")
def data(bike) -> pd.DataFrame:
    """The bike data's rows with text categoricals, as a Parquet file gives them back."""
    rows = bike.iloc[::6].reset_index(drop=True)
    demand = pd.cut(rows["cnt"], [-1, 40, 280, np.inf], labels=["low", "medium", "high"])
    return pd.DataFrame(
        {
            **{name: rows[name] for name in NUMERICAL},
            "season": rows["season"].map(SEASONS).astype(object),
            "weather": rows["weathersit"].map(WEATHER).astype(object),
            "cnt": rows["cnt"].astype(float),
            "demand": demand.astype(str),
            "busy": np.where(rows["cnt"] > 150, "yes", "no"),
        }
    )


def categoricals(frame: pd.DataFrame) -> pd.DataFrame:
    """The text columns as pandas categoricals: how the frameworks train on them natively."""
    return frame.astype({name: "category" for name in TEXT})


@pytest.fixture(scope="module")
def inputs(data) -> pd.DataFrame:
    return data[COLUMNS].iloc[700:760].reset_index(drop=True)


@pytest.fixture(scope="module")
def background(data) -> pd.DataFrame:
    return data[COLUMNS].head(30)


def one_hot(estimator: T.Any, sparse: bool = False) -> Pipeline:
    """A Pipeline as a notebook makes one: one-hot text columns, the numbers passed through.

    Args:
        estimator: the final estimator.
        sparse: make the preprocessing's output a sparse matrix (XGBoost then takes its
            absent entries as missing values, not zeros).
    """
    columns = ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=sparse), TEXT),
            ("num", "passthrough", NUMERICAL),
        ],
        sparse_threshold=1.0 if sparse else 0.0,
    )
    return Pipeline([("preprocess", columns), ("estimator", estimator)])


TREES = {"n_estimators": 25, "max_depth": 4}
XGB = {**TREES, "enable_categorical": True, "tree_method": "hist"}
LGBM = {**TREES, "verbose": -1, "min_child_samples": 5}


def fit(case: str, data: pd.DataFrame) -> tuple[T.Any, list[str] | None]:
    """A fitted model of the case, and the labels its classes stand for (label-encoded ones)."""
    X, X_cat = data[COLUMNS], categoricals(data[COLUMNS])
    demand = LabelEncoder().fit(data["demand"])
    encoded = demand.transform(data["demand"])
    busy = (data["busy"] == "yes").astype(int)
    labels = [str(label) for label in demand.classes_]
    return {
        "xgb-regressor": lambda: (xgboost.XGBRegressor(**XGB).fit(X_cat, data["cnt"]), None),
        "xgb-multiclass": lambda: (xgboost.XGBClassifier(**XGB).fit(X_cat, encoded), labels),
        "xgb-binary": lambda: (xgboost.XGBClassifier(**XGB).fit(X_cat, busy), None),
        "xgb-pipeline": lambda: (one_hot(xgboost.XGBClassifier(**TREES)).fit(X, encoded), labels),
        "xgb-sparse-pipeline": lambda: (
            one_hot(xgboost.XGBRegressor(**TREES), sparse=True).fit(X, data["cnt"]),
            None,
        ),
        "lgbm-regressor": lambda: (lightgbm.LGBMRegressor(**LGBM).fit(X_cat, data["cnt"]), None),
        "lgbm-multiclass": lambda: (lightgbm.LGBMClassifier(**LGBM).fit(X_cat, encoded), labels),
        "lgbm-pipeline": lambda: (one_hot(lightgbm.LGBMClassifier(**LGBM)).fit(X, busy), None),
        "forest-pipeline": lambda: (
            one_hot(RandomForestClassifier(**TREES, random_state=0)).fit(X, data["demand"]),
            None,
        ),
        "forest-regressor": lambda: (
            one_hot(RandomForestRegressor(**TREES, random_state=0)).fit(X, data["cnt"]),
            None,
        ),
        "ridge-pipeline": lambda: (one_hot(Ridge()).fit(X, data["cnt"]), None),
    }[case]()


def expected_output(case: str, model: T.Any, inputs: pd.DataFrame) -> np.ndarray:
    """The raw output by the framework's own call, as (samples, outputs)."""
    native = categoricals(inputs) if "pipeline" not in case else inputs
    if case.startswith("xgb"):
        margin = model.predict(native, output_margin=True)
    elif case.startswith("lgbm"):
        margin = model.predict(native, raw_score=True)
    elif case == "forest-pipeline":
        margin = model.predict_proba(native)  # a forest's raw output: the mean of its trees
    else:
        margin = model.predict(native)
    return np.asarray(margin, dtype=float).reshape(len(inputs), -1)


CASES = {
    "xgb-regressor": (explainers.XGBoostExplainer, ["prediction"]),
    "xgb-multiclass": (explainers.XGBoostExplainer, ["0", "1", "2"]),
    "xgb-binary": (explainers.XGBoostExplainer, ["1"]),
    "xgb-pipeline": (explainers.XGBoostExplainer, ["0", "1", "2"]),
    "xgb-sparse-pipeline": (explainers.XGBoostExplainer, ["prediction"]),
    "lgbm-regressor": (explainers.LightGBMExplainer, ["prediction"]),
    "lgbm-multiclass": (explainers.LightGBMExplainer, ["0", "1", "2"]),
    "lgbm-pipeline": (explainers.LightGBMExplainer, ["1"]),
    "forest-pipeline": (explainers.TreeExplainer, ["high", "low", "medium"]),
    "forest-regressor": (explainers.TreeExplainer, ["prediction"]),
    "ridge-pipeline": (explainers.LinearExplainer, ["prediction"]),
}


@pytest.fixture(scope="module")
def fitted(data) -> dict[str, T.Any]:
    return {case: fit(case, data)[0] for case in CASES}


@pytest.mark.parametrize("case", list(CASES))
def test_every_framework_adds_up_to_its_raw_output_per_user_column(
    fitted, inputs, background, case
):
    model = fitted[case]
    kind, outputs = CASES[case]
    explainer = explainers.explainer_for(model)
    assert type(explainer) is kind
    # Explained from text columns (as read from a file), though trained on categoricals.
    explained = explainer.explain(model, inputs, background)
    assert explained.outputs == outputs
    assert explained.values.shape[0] == len(inputs)
    expected = expected_output(case, model, inputs)
    assert_additive(explained, expected)
    np.testing.assert_allclose(
        explainer.raw_output(model, inputs), expected, rtol=TOLERANCE, atol=TOLERANCE
    )
    # Grouped back: one value per user column, named as the user named it, same totals.
    grouped = explained.grouped(COLUMNS)
    assert grouped.features == COLUMNS
    assert not any(name.startswith(("num__", "cat__")) for name in grouped.features)
    assert_additive(grouped, expected)


def test_one_hot_values_are_summed_into_their_column(fitted, data, inputs, background):
    model = fitted["xgb-pipeline"]
    explained = explainers.explainer_for(model).explain(model, inputs, background)
    assert "cat__weather_rain" in explained.features  # explained one-hot column by column
    grouped = explained.grouped(COLUMNS)
    weather = [i for i, column in enumerate(explained.columns) if column == "weather"]
    categories = sorted(data["weather"].unique())  # the ones it was fitted on
    assert [explained.features[i] for i in weather] == [f"cat__weather_{c}" for c in categories]
    np.testing.assert_allclose(
        grouped.values[:, grouped.features.index("weather"), :],
        explained.values[:, weather, :].sum(axis=1),
    )
    temp = explained.features.index("num__temp")
    np.testing.assert_array_equal(
        grouped.values[:, grouped.features.index("temp"), :], explained.values[:, temp, :]
    )


def test_source_columns_take_the_longest_column_and_keep_unknown_names():
    frame = pd.DataFrame(
        {
            "temp": [0.1, 0.5],
            "temp_max": [0.2, np.nan],
            "hum": [0.3, 0.4],
            "weather": ["rain_x", "a"],
        }
    )
    preprocessor = ColumnTransformer(
        [
            ("num", SimpleImputer(add_indicator=True), ["temp", "temp_max"]),
            ("cat", OneHotEncoder(), ["weather"]),
            (
                "poly",
                PolynomialFeatures(interaction_only=True, include_bias=False),
                ["temp", "hum"],
            ),
        ]
    ).fit(frame)
    features = [str(name) for name in preprocessor.get_feature_names_out()]
    assert features == [
        "num__temp", "num__temp_max", "num__missingindicator_temp_max",
        "cat__weather_a", "cat__weather_rain_x",
        "poly__temp", "poly__hum", "poly__temp hum",
    ]  # fmt: skip
    sources = explainers.source_columns(features, list(frame.columns), preprocessor)
    assert sources == [
        "temp", "temp_max", "temp_max", "weather", "weather", "temp", "hum", "temp hum"
    ]  # fmt: skip


def test_xgboost_reports_the_device_it_ran_on(fitted, inputs, background, caplog, monkeypatch):
    monkeypatch.setenv("LIFECYCLE_DEVICE", "cpu")
    with caplog.at_level("INFO", logger="components.core.explainers"):
        explainers.XGBoostExplainer().explain(fitted["xgb-regressor"], inputs, background)
    assert "XGBoost computes SHAP values on cpu" in caplog.text


# %% ANY OTHER MODEL: PERMUTATION SHAP THROUGH PYFUNC, WITH A BOUNDED BUDGET


class CountingModel(mlflow.pyfunc.PythonModel):
    """A model only pyfunc knows: a formula of numbers and text, counting the rows it scores."""

    def __init__(self) -> None:
        self.rows = 0

    def predict(self, context: T.Any, model_input: pd.DataFrame, params: T.Any = None) -> T.Any:
        self.rows += len(model_input)
        rainy = (model_input["weather"] == "rain").to_numpy(float)
        return 3.0 * model_input["temp"].to_numpy(float) - 2.0 * rainy + model_input["hr"] / 24


class LabellingModel(mlflow.pyfunc.PythonModel):
    """A pyfunc classifier that gives labels only, no probabilities."""

    def predict(self, context: T.Any, model_input: pd.DataFrame, params: T.Any = None) -> T.Any:
        return np.where(model_input["temp"].to_numpy(float) > 0.5, "warm", "cold")


@pytest.fixture(scope="module")
def pyfunc_models(tmp_path_factory) -> dict[str, pathlib.Path]:
    folder = tmp_path_factory.mktemp("pyfunc")
    paths = {"counting": folder / "counting", "labelling": folder / "labelling"}
    mlflow.pyfunc.save_model(paths["counting"], python_model=CountingModel())
    mlflow.pyfunc.save_model(paths["labelling"], python_model=LabellingModel())
    return paths


def test_a_pyfunc_only_model_gets_permutation_shap_within_its_budget(
    pyfunc_models, inputs, background
):
    model = mlflow.pyfunc.load_model(str(pyfunc_models["counting"]))
    explainer = explainers.explainer_for(model)
    assert type(explainer) is explainers.PermutationExplainer
    budget = explainers.PermutationExplainer(max_evals=40, max_background=10)
    counter = model.unwrap_python_model()
    samples = inputs.head(8)
    counter.rows = 0
    explained = budget.explain(model, samples, background)
    rows = counter.rows
    assert explained.features == COLUMNS and explained.outputs == ["prediction"]
    expected = np.asarray(model.predict(samples), dtype=float).reshape(-1, 1)
    assert_additive(explained, expected)
    # At most (max_evals + 1) evaluations of max_background rows per sample.
    assert 0 < rows <= len(samples) * (40 + 1) * 10
    # Columns the formula ignores get nothing; those it reads, something.
    values = explained.values[:, :, 0]
    assert np.abs(values[:, COLUMNS.index("hum")]).max() == 0.0
    assert np.abs(values[:, COLUMNS.index("temp")]).max() > 0.0
    # A bigger budget costs more rows, and the same columns still add up.
    counter.rows = 0
    explainers.PermutationExplainer(max_evals=200, max_background=20).explain(
        model, samples, background
    )
    assert counter.rows > rows


def test_a_model_that_gives_labels_only_is_explained_as_one_indicator_per_label(
    pyfunc_models, inputs, background
):
    model = mlflow.pyfunc.load_model(str(pyfunc_models["labelling"]))
    explained = explainers.PermutationExplainer(max_evals=30).explain(
        model, inputs.head(6), background
    )
    assert explained.outputs == ["cold", "warm"]
    warm = (inputs.head(6)["temp"].to_numpy(float) > 0.5).astype(float)
    assert_additive(explained, np.column_stack([1 - warm, warm]))


def test_permutation_shap_explains_text_columns_and_class_probabilities(fitted, inputs, background):
    """The error a notebook's Pipeline met: shap's masker cannot subtract text from text."""
    model = fitted["forest-pipeline"]
    explained = explainers.PermutationExplainer(max_evals=30).explain(
        model, inputs.head(5), background
    )
    assert explained.features == COLUMNS
    assert explained.outputs == ["high", "low", "medium"]
    assert_additive(explained, model.predict_proba(inputs.head(5)))
    np.testing.assert_allclose(explained.totals().sum(axis=1), 1.0, rtol=1e-9)


def _counts_model(case: str, features: pd.DataFrame, counts: np.ndarray) -> T.Any:
    """A regressor of counts (or of a share, for the logistic one) as a notebook fits it."""
    if case == "hgb-poisson":
        from sklearn.ensemble import HistGradientBoostingRegressor

        return HistGradientBoostingRegressor(loss="poisson", max_iter=20).fit(features, counts)
    if case == "glm-poisson":
        from sklearn.linear_model import PoissonRegressor

        return PoissonRegressor().fit(features, counts)
    if case == "xgboost-poisson":
        return xgboost.XGBRegressor(objective="count:poisson", n_estimators=20).fit(
            features, counts
        )
    if case == "lightgbm-tweedie":
        return lightgbm.LGBMRegressor(objective="tweedie", n_estimators=20, verbose=-1).fit(
            features, counts
        )
    if case == "catboost-poisson":
        catboost = pytest.importorskip("catboost")
        return catboost.CatBoostRegressor(
            loss_function="Poisson", iterations=20, verbose=0, allow_writing_files=False
        ).fit(features, counts)
    share = counts / counts.max()
    return xgboost.XGBRegressor(objective="reg:logistic", n_estimators=20).fit(features, share)


@pytest.mark.parametrize(
    ("case", "output"),
    [
        ("hgb-poisson", "log(prediction)"),
        ("glm-poisson", "log(prediction)"),
        ("xgboost-poisson", "log(prediction)"),
        ("lightgbm-tweedie", "log(prediction)"),
        ("catboost-poisson", "log(prediction)"),
        ("xgboost-logistic", "logit(prediction)"),
    ],
)
def test_a_regressor_with_a_link_is_explained_as_the_link_of_its_prediction(data, case, output):
    # A Poisson regressor's trees add up to the log of its prediction: the values were
    # labelled "prediction", and for scikit-learn's models the output they were said to add up
    # to was the prediction itself (25.96 where they summed to 3.26).
    from components.core import reports

    features = data[NUMERICAL]
    model = _counts_model(case, features, data["cnt"].to_numpy())
    rows = features.head(30)
    explainer = explainers.explainer_for(model)
    explained = explainer.explain(model, rows, features.head(10))
    assert explained.outputs == [output]
    predicted = np.asarray(model.predict(rows), dtype=float)
    back = [explainers.prediction_of(output, total) for total in explained.totals()[:, 0]]
    np.testing.assert_allclose(back, predicted, rtol=1e-4)
    assert_additive(explained, explainer.raw_output(model, rows))
    shown = explained.frame().head(1)
    _, said = reports.explained_row(shown)
    assert said.startswith(f"prediction {predicted[0]:.4g} ({output} ")


@pytest.mark.parametrize("framework", ["xgboost", "lightgbm"])
def test_a_bare_binary_booster_explains_the_margin_of_class_one(data, framework):
    features, labels = data[NUMERICAL], (data["busy"] == "yes").astype(int)
    if framework == "xgboost":
        booster = xgboost.train(
            {"objective": "binary:logistic"}, xgboost.DMatrix(features, labels), 10
        )
    else:
        booster = lightgbm.train(
            {"objective": "binary", "verbose": -1}, lightgbm.Dataset(features, labels), 10
        )
    explained = explainers.explainer_for(booster).explain(booster, features.head(20), features)
    assert explained.outputs == ["1"]  # was "prediction", which a label mapping cannot name
