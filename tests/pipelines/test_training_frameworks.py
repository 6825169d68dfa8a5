"""The command line trains an XGBoost model: `run training --local --config` under kfp.local.

One run only (kfp.local starts a process per step): the `training` pipeline with
`model_kind: XGBRegressor` on 2,000 rows of the demo data trains, evaluates and promotes the
version as it does the default kind, against the session's real MLflow server, with the alert
posted to a local server that answers as Slack's webhook does.
"""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from components.core import models
from tests.pipelines.test_your_data import cli, env, unique, write_config  # noqa: F401 - fixture

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
