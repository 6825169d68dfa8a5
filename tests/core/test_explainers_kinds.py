"""Every model kind the project trains is explained exactly, per user column, by its own routine.

The kinds' fitted pipelines (category caster, text for CatBoost, or one-hot encoder, then the
estimator) are explained as the explain step explains them; the values plus the base value add
up to the raw output (a regressor's prediction, a classifier's margin per class) within the
documented tolerance, and each value belongs to one of the user's columns.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components import demo
from components.core import explainers, models, schemas

NUMERICAL = ["temp", "hum", "windspeed", "hr"]
CATEGORICAL = ["season", "weathersit"]


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    frame = pd.read_parquet(demo.resolve("demo://bike-sharing/hour.parquet"))
    frame = frame.sample(1500, random_state=0).reset_index(drop=True)
    frame["season"] = frame["season"].map({1: "winter", 2: "spring", 3: "summer", 4: "fall"})
    frame["busy"] = np.where(frame["cnt"] > frame["cnt"].median(), "busy", "quiet")
    frame["level"] = pd.qcut(frame["cnt"], 3, labels=["low", "mid", "high"]).astype(str)
    return frame


@pytest.mark.parametrize(
    ("kind", "target", "explainer", "outputs"),
    [
        ("XGBRegressor", "cnt", "XGBoostExplainer", ["prediction"]),
        ("XGBClassifier", "busy", "XGBoostExplainer", ["quiet"]),
        ("XGBClassifier", "level", "XGBoostExplainer", ["high", "low", "mid"]),
        ("LGBMRegressor", "cnt", "LightGBMExplainer", ["prediction"]),
        ("LGBMClassifier", "level", "LightGBMExplainer", ["high", "low", "mid"]),
        # Where catboost is installed (the dev extra): CatBoost's own Tree SHAP.
        ("catboost:CatBoostRegressor", "cnt", "CatBoostExplainer", ["prediction"]),
        ("catboost:CatBoostClassifier", "busy", "CatBoostExplainer", ["quiet"]),
        ("catboost:CatBoostClassifier", "level", "CatBoostExplainer", ["high", "low", "mid"]),
        ("RandomForestRegressor", "cnt", "TreeExplainer", ["prediction"]),
        ("ExtraTreesClassifier", "level", "TreeExplainer", ["high", "low", "mid"]),
        ("sklearn.neighbors:KNeighborsRegressor", "cnt", "PermutationExplainer", ["prediction"]),
    ],
)
def test_each_kind_is_explained_exactly_per_user_column(data, kind, target, explainer, outputs):
    model = models.MODELS.coerce(kind)
    model = type(model).model_validate(
        {**dict(model), "numerical": NUMERICAL, "categorical": CATEGORICAL}
    )
    inputs = schemas.normalize(data[NUMERICAL + CATEGORICAL])
    pipeline = model.build().fit(inputs, data[target])
    chosen = explainers.explainer_for(pipeline)
    assert explainer == chosen.KIND
    explained = chosen.explain(pipeline, inputs.head(40), inputs.head(20)).grouped(inputs.columns)
    assert explained.features == NUMERICAL + CATEGORICAL
    assert explained.outputs == outputs
    raw = explainers.raw_output(pipeline, inputs.head(40))
    total = explained.base_values + explained.values.sum(axis=1)
    gap = np.max(np.abs(total - raw.reshape(total.shape))) / np.max(np.abs(raw))
    assert gap <= explainers.ADDITIVITY_TOLERANCE
