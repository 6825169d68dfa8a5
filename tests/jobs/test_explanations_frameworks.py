"""Integration: the explanations job on models registered the way a notebook registers them.

An XGBoost classifier (label-encoded classes, pandas categoricals) logged with `mlflow.xgboost`,
a LightGBM regressor logged with `mlflow.lightgbm`, a CatBoost classifier logged with
`mlflow.catboost` (predicted too, natively and through pyfunc), a scikit-learn Pipeline
(one-hot + LightGBM) logged with `mlflow.sklearn` and a model only pyfunc knows
(`mlflow.pyfunc.PythonModel`) are registered on the session's real MLflow server, then
explained from a Parquet file, where the categoricals are text. The expected outputs come from
the frameworks' own calls.
"""

from __future__ import annotations

import functools
import html.parser
import pathlib
import typing as T

import catboost
import lightgbm
import mlflow
import numpy as np
import pandas as pd
import pytest
import xgboost
from mlflow.models import infer_signature
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import LabelEncoder, OneHotEncoder

from components.core import explainers
from components.io import datasets, registries
from components.jobs import explanations
from tests.components.test_report_browser import Resources
from tests.jobs.helpers import run, settings, unique

pytestmark = pytest.mark.integration

NUMERICAL = ["hr", "temp", "hum", "windspeed"]
TEXT = ["season", "weather"]
COLUMNS = [*NUMERICAL, *TEXT]
SAMPLES = 40
TOLERANCE = explainers.ADDITIVITY_TOLERANCE


@pytest.fixture(scope="module")
def data(bike) -> pd.DataFrame:
    rows = bike.iloc[::5].reset_index(drop=True)
    demand = pd.cut(rows["cnt"], [-1, 40, 280, np.inf], labels=["low", "medium", "high"])
    return pd.DataFrame(
        {
            "instant": rows["instant"],
            **{name: rows[name].astype(float) for name in NUMERICAL},
            "season": rows["season"].map({1: "winter", 2: "spring", 3: "summer", 4: "autumn"}),
            "weather": rows["weathersit"].map({1: "clear", 2: "mist", 3: "rain", 4: "storm"}),
            "cnt": rows["cnt"].astype(float),
            "demand": demand.astype(str),
        }
    ).astype({"season": object, "weather": object})


@pytest.fixture(scope="module")
def rows(data, tmp_path_factory) -> pathlib.Path:
    """The rows to explain, as a Parquet file: the categoricals are text there."""
    path = tmp_path_factory.mktemp("frameworks") / "rows.parquet"
    data.iloc[1000 : 1000 + SAMPLES][["instant", *COLUMNS]].to_parquet(path, index=False)
    return path


def categoricals(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.astype({name: "category" for name in TEXT})


def register(tracking: str, name: str, log: T.Callable[..., T.Any], model: T.Any, X, y) -> None:
    """Log and register a model as a notebook does: its flavour, a signature, version 1."""
    mlflow.set_tracking_uri(tracking)
    mlflow.set_experiment(unique("notebook"))
    signature = infer_signature(X.astype({n: object for n in TEXT if n in X}), y)
    with mlflow.start_run():
        log(model, name="model", signature=signature, registered_model_name=name)


def explain(tracking: str, name: str, rows: pathlib.Path, folder: pathlib.Path, **fields):
    """Run the explanations job on version 1 of the registered model; its result and samples."""
    done = run(
        explanations.ExplanationsJob(
            inputs_samples=datasets.ParquetReader(path=str(rows)),
            models_explanations=datasets.ParquetWriter(path=str(folder / "models.parquet")),
            samples_explanations=datasets.ParquetWriter(path=str(folder / "samples.parquet")),
            finder=registries.RegistryFinder(name=name, alias_or_version=1),
            passthrough=["instant"],
            background_samples=20,
            **fields,
            **settings(tracking, unique("explain")),
        )
    )
    return done, pd.read_parquet(folder / "samples.parquet")


def assert_adds_up(samples: pd.DataFrame, expected: np.ndarray) -> None:
    """Each sample's base_value + its shap_ values = the expected output, sample by sample."""
    k = expected.shape[1]
    shap_columns = [c for c in samples.columns if c.startswith("shap_")]
    totals = samples["base_value"].to_numpy() + samples[shap_columns].to_numpy().sum(axis=1)
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(
        totals.reshape(-1, k), expected, rtol=TOLERANCE, atol=TOLERANCE * scale
    )


class Tables(html.parser.HTMLParser):
    """The text of every table cell of a page, table by table and row by row."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def assert_report(page: str, samples: int = 3) -> None:
    """The report loads nothing, has one summary chart and each shown sample's values."""
    resources = Resources()
    resources.feed(page)
    assert not resources.elements and not resources.remote and not resources.css
    assert all(src.startswith("data:image/png;base64,") for src in resources.images)
    assert page.count('alt="summary"') == 1
    assert page.count('alt="sample"') == samples
    tables = Tables()
    tables.feed(page)
    sample_tables = [
        rows for rows in tables.tables if rows[0] == ["feature", "value", "SHAP value"]
    ]
    assert len(sample_tables) == samples
    for shown in sample_tables:
        assert {row[0] for row in shown[1:]} <= set(COLUMNS)
        assert all(row[1] != "" for row in shown[1:])  # each with the sample's value
    assert "Sample 1: " in page


def test_an_xgboost_classifier_registered_with_its_flavour(tracking, data, rows, tmp_path):
    name = unique("notebook-xgb")
    encoder = LabelEncoder().fit(data["demand"])
    model = xgboost.XGBClassifier(n_estimators=30, max_depth=4, enable_categorical=True)
    X = categoricals(data[COLUMNS])
    model.fit(X, encoder.transform(data["demand"]))
    register(tracking, name, mlflow.xgboost.log_model, model, data[COLUMNS], model.predict(X))
    done, samples = explain(tracking, name, rows, tmp_path)
    assert done.explainer == "XGBoostExplainer" and done.samples == SAMPLES
    assert samples.columns.tolist() == [
        "instant", "output", "base_value", *[f"shap_{c}" for c in COLUMNS]
    ]  # fmt: skip
    assert samples["output"].tolist() == ["0", "1", "2"] * SAMPLES  # the encoded classes
    inputs = pd.read_parquet(rows)
    loaded = mlflow.xgboost.load_model(registries.uri_for(name, 1))
    margins = loaded.predict(categoricals(inputs[COLUMNS]), output_margin=True)
    assert_adds_up(samples, np.asarray(margins, dtype=float))
    assert sorted(done.importances["feature"]) == sorted(COLUMNS)
    assert_report(done.report)


def test_a_lightgbm_regressor_registered_with_its_flavour(tracking, data, rows, tmp_path):
    name = unique("notebook-lgbm")
    model = lightgbm.LGBMRegressor(n_estimators=30, verbose=-1)
    X = categoricals(data[COLUMNS])
    model.fit(X, data["cnt"])
    register(tracking, name, mlflow.lightgbm.log_model, model, data[COLUMNS], model.predict(X))
    done, samples = explain(tracking, name, rows, tmp_path)
    assert done.explainer == "LightGBMExplainer"
    assert samples["output"].unique().tolist() == ["prediction"]
    assert [c for c in samples.columns if c.startswith("shap_")] == [f"shap_{c}" for c in COLUMNS]
    inputs = pd.read_parquet(rows)
    loaded = mlflow.lightgbm.load_model(registries.uri_for(name, 1))
    expected = loaded.predict(categoricals(inputs[COLUMNS]), raw_score=True)
    assert_adds_up(samples, np.asarray(expected, dtype=float).reshape(-1, 1))
    # The text categoricals mattered, and their values are explained as the user's columns.
    assert samples["shap_weather"].abs().max() > 0
    assert_report(done.report)


def test_a_catboost_classifier_registered_with_its_flavour_predicts_and_is_explained(
    tracking, data, rows, tmp_path
):
    """`mlflow.catboost.log_model`, text categoricals and text labels, found as the Champion."""
    name = unique("notebook-catboost")
    model = catboost.CatBoostClassifier(
        iterations=30, depth=4, cat_features=TEXT, verbose=False, allow_writing_files=False
    )
    model.fit(data[COLUMNS], data["demand"])
    register(tracking, name, mlflow.catboost.log_model, model, data[COLUMNS], data["demand"])
    mlflow.MlflowClient(tracking).set_registered_model_alias(name, "Champion", "1")
    champion = registries.uri_for(name, "Champion")
    inputs = pd.read_parquet(rows)
    # Loaded natively: the labels it was trained on and one probability column per class.
    predictor = registries.FlavorLoader().load(champion)
    assert isinstance(predictor, registries.CatBoostPredictor)
    assert predictor.task == "classification"
    predicted = predictor.predict(inputs[COLUMNS])
    labels = ["high", "low", "medium"]
    assert predicted.columns.tolist() == ["prediction", *[f"probability_{c}" for c in labels]]
    np.testing.assert_allclose(predicted.iloc[:, 1:], model.predict_proba(inputs[COLUMNS]))
    assert predicted["prediction"].tolist() == model.predict(inputs[COLUMNS])[:, 0].tolist()
    # Through pyfunc too: the same labels.
    pyfunc = registries.PyfuncLoader().load(champion).predict(inputs[COLUMNS])
    assert pyfunc["prediction"].tolist() == predicted["prediction"].tolist()
    # Explained by CatBoost's own Tree SHAP, adding up to its raw values per class.
    done = run(
        explanations.ExplanationsJob(
            inputs_samples=datasets.ParquetReader(path=str(rows)),
            models_explanations=datasets.ParquetWriter(path=str(tmp_path / "models.parquet")),
            samples_explanations=datasets.ParquetWriter(path=str(tmp_path / "samples.parquet")),
            finder=registries.RegistryFinder(name=name, alias_or_version="Champion"),
            passthrough=["instant"],
            background_samples=20,
            **settings(tracking, unique("explain")),
        )
    )
    samples = pd.read_parquet(tmp_path / "samples.parquet")
    assert done.explainer == "CatBoostExplainer" and done.samples == SAMPLES
    assert samples["output"].tolist() == labels * SAMPLES
    assert [c for c in samples.columns if c.startswith("shap_")] == [f"shap_{c}" for c in COLUMNS]
    raw = model.predict(inputs[COLUMNS], prediction_type="RawFormulaVal")
    assert_adds_up(samples, np.asarray(raw, dtype=float))
    assert samples["shap_season"].abs().max() > 0
    assert_report(done.report)


def test_a_sklearn_pipeline_around_lightgbm_is_explained_per_user_column(
    tracking, data, rows, tmp_path
):
    name = unique("notebook-pipeline")
    preprocess = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), TEXT), ("num", "passthrough", NUMERICAL)]
    )
    model = Pipeline(
        [
            ("preprocess", preprocess),
            ("model", lightgbm.LGBMClassifier(n_estimators=20, verbose=-1)),
        ]
    ).fit(data[COLUMNS], data["demand"])
    # mlflow.sklearn saves with skops, which asks for the types that it does not know.
    trusted = [
        "collections.OrderedDict",
        "lightgbm.basic.Booster",
        "lightgbm.sklearn.LGBMClassifier",
    ]
    log = functools.partial(mlflow.sklearn.log_model, skops_trusted_types=trusted)
    register(tracking, name, log, model, data[COLUMNS], data["demand"])
    done, samples = explain(tracking, name, rows, tmp_path)
    assert done.explainer == "LightGBMExplainer"
    assert samples["output"].tolist() == ["high", "low", "medium"] * SAMPLES  # text labels
    # One value per user column, in their order: the one-hot columns summed, no cat__/num__.
    assert [c for c in samples.columns if c.startswith("shap_")] == [f"shap_{c}" for c in COLUMNS]
    inputs = pd.read_parquet(rows)
    assert_adds_up(samples, np.asarray(model.predict(inputs[COLUMNS], raw_score=True)))
    assert_report(done.report)


class Formula(mlflow.pyfunc.PythonModel):
    """A model only pyfunc knows: no flavour of a framework, no trees, no coefficients."""

    def predict(self, context: T.Any, model_input: pd.DataFrame, params: T.Any = None) -> T.Any:
        rainy = (model_input["weather"] == "rain").to_numpy(float)
        return 100 * model_input["temp"].to_numpy(float) - 30 * rainy


def test_a_pyfunc_only_model_is_explained_by_permutation_not_refused(
    tracking, data, rows, tmp_path
):
    name = unique("notebook-pyfunc")
    mlflow.set_tracking_uri(tracking)
    mlflow.set_experiment(unique("notebook"))
    predicted = Formula().predict(None, data[COLUMNS])
    with mlflow.start_run():
        mlflow.pyfunc.log_model(
            name="model",
            python_model=Formula(),
            signature=infer_signature(data[COLUMNS], predicted),
            registered_model_name=name,
        )
    done, samples = explain(tracking, name, rows, tmp_path, max_samples=10)
    assert done.explainer == "PermutationExplainer" and done.samples == 10
    inputs = pd.read_parquet(rows).head(10)
    assert_adds_up(samples, Formula().predict(None, inputs[COLUMNS]).reshape(-1, 1))
    importance = done.importances.set_index("feature")["importance"]
    assert importance["temp"] > 0 and importance["hum"] == 0.0
    assert_report(done.report)
