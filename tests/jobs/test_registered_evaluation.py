"""Evaluation and promotion of models registered outside the project, by their own flavour.

A notebook's LightGBM classifier (text labels, pandas categoricals) is evaluated on held-out
rows read from Parquet, where the categoricals are text, and promoted; then a notebook's
XGBoost classifier on label-encoded species, tagged with its label mapping, is registered as
the next version and evaluated against that Champion. Real MLflow server, real jobs.
"""

from __future__ import annotations

import json

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from sklearn import metrics as skm
from sklearn.preprocessing import LabelEncoder

from components.io import datasets, flavors
from components.jobs import evaluation, promotion
from tests.io.test_flavors import categorical, penguins
from tests.jobs.helpers import register_as_a_notebook, run, settings, unique

pytestmark = pytest.mark.integration


def test_a_registered_lightgbm_model_is_evaluated_promoted_and_challenged(mlflow_server, tmp_path):
    name = unique("notebook-lightgbm")
    common = settings(mlflow_server, name)
    common["mlflow_service"].start()
    client = common["mlflow_service"].client()
    train, holdout = penguins(rows=300, seed=5), penguins(rows=200, seed=6)
    holdout.to_parquet(tmp_path / "holdout.parquet", index=False)  # categoricals as text
    lightgbm = lgb.LGBMClassifier(n_estimators=20, num_leaves=7, n_jobs=1, verbose=-1)
    lightgbm.fit(categorical(train), train["species"])  # LightGBM keeps the text labels
    register_as_a_notebook(name, "lightgbm", lightgbm, categorical(train))

    def evaluate():
        return run(
            evaluation.EvaluationJob(
                inputs=datasets.ParquetReader(path=str(tmp_path / "holdout.parquet")),
                target="species",
                model_name=name,
                thresholds={"accuracy": 0.8, "roc_auc": 0.9},
                tolerance=0.5,
                **common,
            )
        )

    evaluated = evaluate()
    assert evaluated.task == "classification"
    expected = lightgbm.predict(categorical(holdout))
    assert evaluated.scores["accuracy"] == pytest.approx(
        skm.accuracy_score(holdout["species"], expected)
    )
    assert evaluated.predicted.tolist() == expected.tolist()
    # Probabilities were there: the metrics that need them were computed.
    assert {"roc_auc", "log_loss"} <= set(evaluated.scores)
    assert evaluated.passed, evaluated.reasons
    promoted = run(promotion.PromotionJob(model_name=name, **common))
    assert promoted.promoted
    assert client.get_model_version_by_alias(name, "Champion").version == "1"
    # v2, an XGBoost model on label-encoded species, is compared with the LightGBM Champion.
    encoder = LabelEncoder().fit(train["species"])
    booster = xgb.XGBClassifier(n_estimators=20, max_depth=3, n_jobs=1, enable_categorical=True)
    booster.fit(categorical(train), encoder.transform(train["species"]))
    register_as_a_notebook(name, "xgboost", booster, categorical(train))
    mapping = json.dumps(list(encoder.classes_))
    client.set_model_version_tag(name, "2", flavors.LABEL_MAPPING_TAG, mapping)
    challenged = evaluate()
    assert challenged.candidate_ref.version == 2 and challenged.champion_ref.version == 1
    labels = encoder.inverse_transform(booster.predict(categorical(holdout)))
    assert challenged.predicted.tolist() == labels.tolist()
    assert challenged.scores["accuracy"] == pytest.approx(
        skm.accuracy_score(holdout["species"], labels)
    )
    assert challenged.champion_scores["accuracy"] == pytest.approx(evaluated.scores["accuracy"])
    assert np.isfinite(challenged.scores["log_loss"])


def refused_candidate(mlflow_server, folder, champion, candidate, holdout) -> tuple[str, str]:
    """Register (model, frame) pairs as a notebook does, v1 the Champion; evaluate v2 on the
    holdout; the refusal's message, and the model's name."""
    name = unique("mismatch")
    common = settings(mlflow_server, name)
    common["mlflow_service"].start()
    client = common["mlflow_service"].client()
    for model, frame in (champion, candidate):
        register_as_a_notebook(name, "xgboost", model, frame)
    client.set_registered_model_alias(name, "Champion", "1")
    holdout.to_parquet(folder / "holdout.parquet", index=False)
    with pytest.raises(evaluation.ChampionMismatchError) as caught:
        run(
            evaluation.EvaluationJob(
                inputs=datasets.ParquetReader(path=str(folder / "holdout.parquet")),
                target="y",
                model_name=name,
                alias_or_version=2,
                **common,
            )
        )
    # Nothing moved: the Champion still serves.
    assert client.get_registered_model(name).aliases == {"Champion": "1"}
    return str(caught.value), name


def test_a_champion_that_cannot_read_the_holdout_is_told_with_the_way_forward(
    mlflow_server, tmp_path
):
    # The team dropped a feature: v2 is trained without it and its holdout lacks it. The
    # Champion, v1, needs it: evaluate failed with sklearn's "columns are missing: {'x2'}".
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x1": rng.normal(size=300), "x2": rng.normal(size=300)})
    frame["y"] = 2 * frame["x1"] + frame["x2"]
    old = xgb.XGBRegressor(n_estimators=5).fit(frame[["x1", "x2"]], frame["y"])
    new = xgb.XGBRegressor(n_estimators=5).fit(frame[["x1"]], frame["y"])

    message, name = refused_candidate(
        mlflow_server,
        tmp_path,
        (old, frame[["x1", "x2"]]),
        (new, frame[["x1"]]),
        frame[["x1", "y"]],
    )

    assert message == (
        f"the Champion, {name} v1, cannot score these held-out rows, so {name} v2 cannot be "
        "compared with it: column 'x2': missing, required by the model signature (300 rows). "
        "The data changed since the Champion was trained (a column dropped or retyped?): "
        f"evaluate on rows that the Champion can read, or, if you trust {name} v2, serve it by "
        f'hand: python -m pipelines model rollback {name} --to 2 --reason "..."'
    )


def test_a_champion_of_another_task_is_not_compared(mlflow_server, tmp_path):
    # A regressor Champion (r2 0.97) lost to a classifier of the same target (accuracy 0.19):
    # the regressor's numbers, scored as class labels, were all wrong.
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"x": rng.normal(size=300)})
    frame["y"] = (frame["x"] > 0).astype(int)
    regressor = xgb.XGBRegressor(n_estimators=5).fit(frame[["x"]], frame["y"])
    classifier = xgb.XGBClassifier(n_estimators=5).fit(frame[["x"]], frame["y"])

    message, name = refused_candidate(
        mlflow_server, tmp_path, (regressor, frame[["x"]]), (classifier, frame[["x"]]), frame
    )

    assert message.startswith(
        f"the Champion, {name} v1, is a regression model and {name} v2 a classification one: "
        "they have no metric in common to be compared on."
    )
