"""Integration: a user's column names, whatever they hold, against the session's MLflow server.

XGBoost refuses feature names with `[`, `]` or `<`; LightGBM refuses `,`, `:`, `"`, brackets
and braces, fails on a tab, and saves each space as `_`. A table with such names ("area [m2]",
"rooms<5", "city, region", "contract type", "note:<tab>{a}") is trained with each booster
kind, loaded back with `mlflow.sklearn.load_model`, predicted from rows as a CSV gives them
(text categories) and explained under the user's own names. A user's own LightGBM model
trained on a categorical "contract type" (which its booster calls "contract_type") is
predicted from text and from columns in another order. A training on a small table with gaps
in its target and an id column tells each of these in its result, its MLflow run, its alert and
the version's model card, not in the step log alone. A CSV written with pandas' index (an
empty first header) trains on its named columns, then is evaluated and predicted.
"""

from __future__ import annotations

import logging
import pathlib

import lightgbm
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from components.core import explainers
from components.io import datasets, registries
from components.jobs import base, evaluation, inference, training
from tests.jobs.helpers import native_model, register_as_a_notebook, run, settings, unique

pytestmark = pytest.mark.integration

FEATURES = ["area [m2]", "rooms<5", "city, region", "contract type", "note:\t{a}"]
TOLERANCE = explainers.ADDITIVITY_TOLERANCE


def table(rows: int, seed: int = 0) -> pd.DataFrame:
    """Rows with awkwardly named features and a price that depends on three of them."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "area [m2]": rng.uniform(20, 200, rows).round(1),
            "rooms<5": rng.integers(0, 2, rows),
            "city, region": rng.choice(["Paris, IDF", "Lyon, ARA", None], rows),
            "contract type": rng.choice(["month", "year", "two year"], rows),
            "note:\t{a}": rng.normal(size=rows),
        }
    )
    paris = (frame["city, region"] == "Paris, IDF").to_numpy()
    frame["price"] = frame["area [m2]"] * 3000 + np.where(paris, 1e5, 0) + rng.normal(0, 2e4, rows)
    return frame


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, pathlib.Path]:
    """The training table (Parquet) and rows to predict as a CSV file gives them back."""
    folder = tmp_path_factory.mktemp("column-names")
    table(600).to_parquet(folder / "train.parquet", index=False)
    table(80, seed=1)[FEATURES].to_csv(folder / "score.csv", index=False)
    return {"train": folder / "train.parquet", "score": folder / "score.csv"}


@pytest.mark.parametrize("kind", ["XGBRegressor", "LGBMRegressor"])
def test_a_booster_trains_predicts_and_explains_on_any_column_name(tracking, files, kind):
    name = unique("names")
    trained = run(
        training.TrainingJob(
            inputs=datasets.ParquetReader(path=str(files["train"])),
            target="price",
            model_name=name,
            model={"KIND": kind, "params": {"n_estimators": 40.0}},
            **settings(tracking, unique("names")),
        )
    )
    assert trained.numerical == ["area [m2]", "rooms<5", "note:\t{a}"]
    assert trained.categorical == ["city, region", "contract type"]
    assert trained.scores["r2"] > 0.8
    model = native_model(name, int(trained.model_ref.version))
    rows = datasets.CSVReader(path=str(files["score"])).read()  # text, as a file gives them
    assert not isinstance(rows["city, region"].dtype, pd.CategoricalDtype)
    predicted = np.asarray(model.predict(rows))
    assert predicted.shape == (80,) and np.isfinite(predicted).all()
    # Explained under the user's names, adding up to what the model predicts.
    explainer = explainers.explainer_for(model)
    explained = explainer.explain(model, rows, rows.head(20))
    grouped = explained.grouped(FEATURES)
    assert sorted(grouped.features) == sorted(FEATURES)
    total = grouped.totals()[:, 0]
    np.testing.assert_allclose(total, predicted, rtol=TOLERANCE, atol=TOLERANCE * 2e5)


def test_a_users_lightgbm_model_finds_its_spaced_categorical_again(tracking, tmp_path):
    """LightGBM saves "contract type" as "contract_type"; the text column is still cast to it."""
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "monthly charges": rng.uniform(10, 100, 500),
            "contract type": pd.Categorical(rng.choice(["month", "year", "two year"], 500)),
        }
    )
    target = np.where(
        (frame["contract type"] == "month") & (frame["monthly charges"] > 50), "yes", "no"
    )
    model = lightgbm.LGBMClassifier(n_estimators=20, verbose=-1).fit(frame, target)
    assert model.booster_.feature_name() == ["monthly_charges", "contract_type"]
    name = unique("user-lgbm")
    mlflow.set_experiment(unique("user-lgbm"))
    version = register_as_a_notebook(name, "lightgbm", model, frame)
    as_text = frame.astype({"contract type": object})  # as a CSV or Parquet file gives it
    predictor = registries.FlavorLoader().load(registries.uri_for(name, version))
    predicted = predictor.predict(as_text)
    expected = model.predict_proba(frame)
    np.testing.assert_allclose(
        predicted[["probability_no", "probability_yes"]].to_numpy(), expected
    )
    assert list(predicted["prediction"]) == list(model.predict(frame))
    # LightGBM reads a frame by position: columns in another order are put back in its own.
    unsigned = registries.LightGBMPredictor(model, signature=None)
    swapped = as_text[["contract type", "monthly charges"]]
    np.testing.assert_allclose(
        unsigned.predict(swapped)[["probability_no", "probability_yes"]], expected
    )
    explained = explainers.explainer_for(model).explain(model, swapped, swapped.head(10))
    assert explained.grouped(list(frame.columns)).features == list(frame.columns)
    margin = model.predict(frame, raw_score=True)
    np.testing.assert_allclose(explained.totals()[:, 0], margin, rtol=TOLERANCE, atol=TOLERANCE)


def test_what_a_user_should_know_of_the_data_reaches_the_result_run_and_alert(
    tracking, tmp_path, caplog
):
    frame = table(80, seed=2)
    frame.insert(0, "listing_id", [f"L{i:04d}" for i in range(80)])
    frame.loc[[3, 7], "price"] = np.nan
    path = tmp_path / "small.parquet"
    frame.to_parquet(path, index=False)
    caplog.set_level(logging.INFO)

    trained = run(
        training.TrainingJob(
            inputs=datasets.ParquetReader(path=str(path)),
            target="price",
            model_name=unique("small"),
            model={"KIND": "XGBRegressor", "params": {"n_estimators": 5.0}},
            **settings(tracking, unique("small")),
        )
    )

    assert len(trained.warnings) == 2 + 1, trained.warnings
    dropped, identifier, holdout = trained.warnings
    assert dropped == "dropping 2 rows without a value in 'price'"
    assert identifier.startswith("categorical column 'listing_id' has 78 distinct values")
    assert holdout.startswith("only 16 rows are held out: the holdout metrics")
    tags = MlflowClient().get_run(trained.model_ref.run_id).data.tags
    assert tags[base.WARNING_TAG] == "; ".join(trained.warnings)
    alert = next(
        r.getMessage() for r in caplog.records if "TrainingJob succeeded" in r.getMessage()
    )
    assert "\nWarning: only 16 rows are held out" in alert
    assert "\nWarning: dropping 2 rows" in alert
    # The version's card keeps them, for whoever reads it in the registry later.
    assert "What training warned of:" in trained.card
    assert "- only 16 rows are held out: the holdout metrics" in trained.card


def test_a_csv_written_with_its_index_trains_evaluates_and_predicts(tracking, tmp_path):
    # The empty header became column 0 of the MLflow signature: evaluate then failed with
    # "columns are missing: {''}" after training had registered the version.
    path = tmp_path / "indexed.csv"
    table(300, seed=3).to_csv(path)  # index=True, as pandas writes by default
    assert path.read_text().startswith(",area [m2]")
    name, experiment = unique("indexed"), unique("indexed")

    trained = run(
        training.TrainingJob(
            inputs=datasets.CSVReader(path=str(path)),
            target="price",
            model_name=name,
            model={"KIND": "HistGradientBoostingRegressor", "params": {"max_iter": 20.0}},
            **settings(tracking, experiment),
        )
    )

    assert "" not in trained.numerical + trained.categorical
    assert any(
        w.startswith("leaving out '' (column 1): a column without a name") for w in trained.warnings
    )
    evaluated = run(
        evaluation.EvaluationJob(
            inputs=datasets.CSVReader(path=str(path)),
            target="price",
            model_name=name,
            alias_or_version=trained.model_ref.version,
            **settings(tracking, experiment),
        )
    )
    assert evaluated.rows == 300
    predicted = run(
        inference.InferenceJob(
            inputs=datasets.CSVReader(path=str(path)),
            outputs=datasets.ParquetWriter(path=str(tmp_path / "predictions.parquet")),
            finder=registries.RegistryFinder(name=name, alias_or_version=trained.model_ref.version),
            **settings(tracking, experiment),
        )
    )
    assert predicted.rows == 300


@pytest.mark.parametrize(
    ("labels", "kind", "suffix"),
    [
        (pd.array([True, False], dtype="boolean"), "XGBClassifier", "parquet"),
        (pd.array([True, False], dtype="boolean"), "HistGradientBoostingClassifier", "csv"),
        (pd.array([1, 2, 3], dtype="Int64"), "HistGradientBoostingClassifier", "parquet"),
    ],
    ids=["booleans-parquet", "booleans-csv", "integers-parquet"],
)
def test_a_target_with_gaps_keeps_the_type_of_its_labels(tracking, tmp_path, labels, kind, suffix):
    # The frame was normalized before the unlabelled rows were dropped: a boolean target with
    # gaps became 1.0/0.0, and the classifier predicted 0 and 1, with probability_0 and
    # probability_1, for a column of True and False.
    frame = table(300, seed=4)
    rng = np.random.default_rng(4)
    codes = np.digitize(
        frame["area [m2]"], np.quantile(frame["area [m2]"], [0.5, 0.8][: len(labels) - 1])
    )
    frame["label"] = pd.Series(labels.take(codes), dtype=labels.dtype)
    frame.loc[rng.random(300) < 0.1, "label"] = pd.NA
    gaps = int(frame["label"].isna().sum())
    path = tmp_path / f"gaps.{suffix}"
    if suffix == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    name, experiment = unique("gaps"), unique("gaps")
    reader = (datasets.CSVReader if suffix == "csv" else datasets.ParquetReader)(path=str(path))

    trained = run(
        training.TrainingJob(
            inputs=reader,
            target="label",
            model_name=name,
            exclude=["price"],
            model={
                "KIND": kind,
                "params": {"max_iter" if "Hist" in kind else "n_estimators": 20.0},
            },
            **settings(tracking, experiment),
        )
    )
    assert f"dropping {gaps} rows without a value in 'label'" in trained.warnings
    evaluated = run(
        evaluation.EvaluationJob(
            inputs=reader,
            target="label",
            model_name=name,
            alias_or_version=trained.model_ref.version,
            **settings(tracking, experiment),
        )
    )
    assert evaluated.rows == 300 - gaps
    assert evaluated.scores["accuracy"] > 0.7, evaluated.scores  # labels met as the model says them
    output = tmp_path / "predictions.parquet"
    run(
        inference.InferenceJob(
            inputs=reader,
            outputs=datasets.ParquetWriter(path=str(output)),
            finder=registries.RegistryFinder(name=name, alias_or_version=trained.model_ref.version),
            **settings(tracking, experiment),
        )
    )
    predicted = pd.read_parquet(output)
    expected = [str(label) for label in labels]
    assert sorted(map(str, predicted["prediction"].unique())) == sorted(expected)
    assert [c.removeprefix("probability_") for c in predicted.columns[1:]] == sorted(expected)
    if labels.dtype == "boolean":
        assert predicted["prediction"].dtype == bool
    else:
        assert pd.api.types.is_integer_dtype(predicted["prediction"].dtype)
