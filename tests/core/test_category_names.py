"""Category names outside ASCII ("Zürich", "東京", "😀") in XGBoost models.

XGBoost up to 3.2 stores the names of a model's pandas categories with offsets counted in
characters over their UTF-8 bytes: the stored names come back cut and shifted, or as bytes that
do not decode (dmlc/xgboost#12371). The explain step failed on the project's own XGBoost models
with a bare `UnicodeDecodeError`. The project's models cast their columns from the categories
kept beside the booster, so they predict and explain right; a notebook's model whose only copy
of the names is XGBoost's is refused with the cause, never coded wrongly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xgboost

from components.core import categories, explainers, models
from components.io import registries

CITIES = ["Zürich", "Genève", "東京", "😀", "Oslo"]


def table(rows: int) -> pd.DataFrame:
    """A city that decides the class (Tokyo is "yes"), beside a number of noise."""
    rng = np.random.default_rng(3)
    city = rng.choice(CITIES, rows)
    return pd.DataFrame(
        {
            "city": city.astype(object),
            "x": rng.normal(size=rows),
            "y": np.where(city == "東京", "yes", "no"),
        }
    )


def notebook_model(cities: list[str]) -> xgboost.XGBClassifier:
    """A bare XGBoost classifier trained on pandas categoricals, as a notebook trains one."""
    frame = table(300).assign(city=lambda f: f["city"].map(dict(zip(CITIES, cities, strict=True))))
    features = frame[["city", "x"]].astype({"city": "category"})
    model = xgboost.XGBClassifier(n_estimators=5, max_depth=2, enable_categorical=True)
    return model.fit(features, (frame["y"] == "yes").astype(int))


@pytest.mark.skipif(
    tuple(int(p) for p in xgboost.__version__.split(".")[:2]) > (3, 2),
    reason="XGBoost after 3.2 stores category names whole",
)
def test_a_notebook_model_with_damaged_names_is_refused_with_the_cause() -> None:
    model = notebook_model(CITIES)
    booster = model.get_booster()

    with pytest.raises(categories.CategoriesError) as error:
        categories.xgboost_categories(booster)
    message = str(error.value)
    assert "'city'" in message and "damaged" in message and "ASCII" in message
    # The predictor that the loader gives such a model refuses it before any row.
    with pytest.raises(categories.CategoriesError):
        registries.XGBoostPredictor(model, None)
    # Explaining it from text, as Parquet gives the column back, is refused alike.
    rows = table(20)[["city", "x"]]
    with pytest.raises(categories.CategoriesError):
        explainers.XGBoostExplainer().explain(booster, rows, rows)


def test_a_notebook_model_with_ascii_names_keeps_its_categories() -> None:
    ascii_names = ["Zurich", "Geneva", "Tokyo", "Smile", "Oslo"]
    booster = notebook_model(ascii_names).get_booster()

    assert categories.xgboost_categories(booster) == {"city": sorted(ascii_names)}


def test_the_project_model_predicts_and_explains_names_outside_ascii() -> None:
    train, test = table(400), table(60)
    model = models.MODELS.build(
        {
            "KIND": "XGBClassifier",
            "params": {"n_estimators": 20, "max_depth": 3},
            "numerical": ["x"],
            "categorical": ["city"],
        }
    )
    pipeline = model.build().fit(train[model.features], train["y"])

    predicted = models.predict_frame(pipeline, test[model.features])
    # The city is the whole signal: every row is classed by it, Tokyo included.
    assert (predicted[models.PREDICTION] == test["y"]).all()
    explained = explainers.explainer_for(pipeline).explain(
        pipeline, test[model.features], train[model.features].head(30)
    )
    margins = pipeline[-1].decision_function(pipeline[0].transform(test[model.features]))
    np.testing.assert_allclose(
        explained.totals().ravel(), np.ravel(margins), atol=explainers.ADDITIVITY_TOLERANCE
    )
    assert sorted(explained.grouped(test[model.features].columns).features) == ["city", "x"]
