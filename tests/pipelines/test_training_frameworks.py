"""The command line trains the frameworks' kinds: `run ... --local --config` under kfp.local.

Two runs (kfp.local starts a process per step): the `training` pipeline with
`model_kind: XGBRegressor` on 2,000 rows of the bike data (regression) trains, evaluates and
promotes the version as it does the default kind; the `lifecycle` pipeline with
`model_kind: LGBMClassifier` on the wine data (classification, integer labels) goes on to find
it again, predict and explain. Both run against the session's real MLflow server, with the alert
posted to a local server that answers as Slack's webhook does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from components import demo
from components.core import explainers, models, schemas
from tests.pipelines.test_your_data import (  # noqa: F401 - env is a fixture
    assert_additive,
    cli,
    env,
    native,
    unique,
    write_config,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:You may be attemping:RuntimeWarning"),
]


def test_the_cli_trains_evaluates_and_promotes_an_xgboost_model(env, bike):  # noqa: F811
    rows = env["dir"] / "bike-2000.parquet"
    bike.sample(2000, random_state=2).to_parquet(rows, index=False)
    name = unique("xgb-cli")
    config = write_config(
        env["dir"],
        "training",
        {
            "data": str(rows),
            "target": "cnt",
            "model_name": name,
            "experiment": name,
            "model_kind": "XGBRegressor",
            "model_params": {"n_estimators": 60, "max_depth": 6},
            "exclude": ["instant", "dteday", "casual", "registered"],
            "categorical": ["season", "weathersit"],
            "thresholds": {"r2": 0.7},
        },
    )

    run = cli(env, "run", "training", "--local", "--config", config)

    assert run.status == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert run.stdout.splitlines()[-1].startswith("Pipeline training SUCCEEDED in ")
    client = MlflowClient(env["tracking"])
    [version] = client.search_model_versions(f"name = '{name}'")
    assert client.get_model_version_by_alias(name, "Champion").version == version.version == "1"
    assert version.tags["evaluation.passed"] == "true"
    params = client.get_run(version.run_id).data.params
    assert params["model_kind"] == "XGBRegressor" and params["n_estimators"] == "60"
    model = models.MODELS.build({"KIND": params["model_kind"]})
    assert type(model) is models.XGBRegressorModel
    assert "SUCCEEDED" in str(run.alert())


def test_the_cli_runs_a_lightgbm_classifier_through_the_whole_lifecycle(env):  # noqa: F811
    """Trained, evaluated, promoted, found again, predicted and explained: one lifecycle run."""
    name = unique("lgbm-cli")
    config = write_config(
        env["dir"],
        "lifecycle",
        {
            "data": "demo://wine/wine.csv",
            "inference_data": "demo://wine/wine.csv",
            "target": "cultivar",
            "model_name": name,
            "experiment": name,
            "model_kind": "LGBMClassifier",
            "model_params": {"n_estimators": 40, "num_leaves": 8, "verbose": -1},
            "exclude": ["sample_id"],
            "passthrough": ["sample_id"],
            "max_samples": 30,
        },
    )

    run = cli(env, "run", "lifecycle", "--local", "--config", config)

    assert run.status == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert run.stdout.splitlines()[-1].startswith("Pipeline lifecycle SUCCEEDED in ")
    client = MlflowClient(env["tracking"])
    assert client.get_model_version_by_alias(name, "Champion").version == "1"
    source = pd.read_csv(demo.resolve("demo://wine/wine.csv"))
    predictions = pd.read_parquet(run.printed("predict/predictions"))
    classes = sorted(source["cultivar"].unique())
    # Every row, the labels it was trained on (integers), one probability per class.
    assert len(predictions) == len(source)
    assert set(predictions["prediction"]) <= set(classes)
    assert predictions["prediction"].dtype.kind == "i"
    probabilities = [f"probability_{label}" for label in classes]
    assert list(predictions.columns) == ["sample_id", "prediction", *probabilities]
    np.testing.assert_allclose(predictions[probabilities].sum(axis=1), 1.0, rtol=1e-9)
    model, signature = native(name, 1)
    expected = models.predict_frame(model, schemas.conform(source, signature))
    assert predictions["prediction"].tolist() == expected["prediction"].tolist()
    # Explained by LightGBM's own Tree SHAP, one value per input column, adding up to the margin.
    samples = pd.read_parquet(run.printed("explain/samples_explanations"))
    assert len(samples) == 30 * len(classes)
    shap_columns = {c.removeprefix("shap_") for c in samples.columns if c.startswith("shap_")}
    assert shap_columns == set(signature.inputs.input_names())
    rows = source.head(30)
    margins = explainers.raw_output(model, schemas.conform(rows, signature))
    assert_additive(samples, margins.reshape(len(rows), -1), "sample_id", rows["sample_id"])
    assert "SUCCEEDED" in str(run.alert())
