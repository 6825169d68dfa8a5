"""A model registered outside the project, served by the `inference` pipeline under kfp.local.

The team's notebook trains an XGBoost classifier on pandas categoricals and label-encoded
species (XGBoost trains on class indices), logs it with `mlflow.xgboost.log_model` and a
signature, tags the version with its `label_mapping` and gives it the Champion alias; the
pipeline then predicts every row of a Parquet file (where the categoricals are text) with the
model's own predictions, labelled by the species. Every step runs for real as a subprocess,
against the session's real MLflow server.
"""

from __future__ import annotations

import json
import re

import mlflow
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from sklearn.preprocessing import LabelEncoder

from components.io import flavors
from tests.io.test_flavors import SPECIES, categorical, penguins
from tests.pipelines import test_your_data as your_data
from tests.pipelines.test_your_data import cli, unique

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:You may be attemping:RuntimeWarning"),
]

# The user's shell (MLflow server, Slack webhook, home folder) of the other CLI tests.
env = your_data.env


@pytest.fixture(scope="module")
def champion(env):
    """An XGBoost classifier on categoricals, registered by a notebook, tagged and Champion."""
    data = penguins(rows=400, seed=3)
    encoder = LabelEncoder().fit(data["species"])
    train = categorical(data)
    model = xgb.XGBClassifier(n_estimators=20, max_depth=3, n_jobs=1, enable_categorical=True)
    model.fit(train, encoder.transform(data["species"]))
    name = unique("notebook-xgboost")
    mlflow.set_tracking_uri(env["tracking"])
    mlflow.set_registry_uri(env["tracking"])
    mlflow.set_experiment(name)
    with mlflow.start_run():
        mlflow.xgboost.log_model(
            model, name="model", signature=infer_signature(train, model.predict(train)),
            registered_model_name=name,
        )  # fmt: skip
    client = MlflowClient(env["tracking"])
    client.set_model_version_tag(
        name, "1", flavors.LABEL_MAPPING_TAG, json.dumps(list(encoder.classes_))
    )
    client.set_registered_model_alias(name, "Champion", "1")
    rows = penguins(rows=250, seed=4).drop(columns="species")
    rows.insert(0, "id", np.arange(len(rows)))
    path = env["dir"] / f"{name}.parquet"
    rows.to_parquet(path, index=False)  # the categoricals are text in the file
    return {"name": name, "model": model, "rows": rows, "path": path}


def test_the_inference_pipeline_predicts_with_a_notebook_xgboost_model(env, champion):
    params = [
        f"data={champion['path']}",
        f"model_name={champion['name']}",
        'passthrough=["id"]',
        "max_samples=20",
    ]
    run = cli(env, "run", "inference", "--local", *sum((["--param", p] for p in params), []))
    predictions = pd.read_parquet(run.output("predict", "predictions"))
    rows = champion["rows"]
    # Every row, in order, with the model's own predictions, labelled by the species.
    assert predictions["id"].tolist() == rows["id"].tolist()
    model = champion["model"]
    expected = np.asarray(SPECIES, dtype=object)[model.predict(categorical(rows))]
    assert predictions["prediction"].tolist() == expected.tolist()
    columns = [f"probability_{species}" for species in SPECIES]
    assert list(predictions.columns) == ["id", "prediction", *columns]
    np.testing.assert_allclose(
        predictions[columns].to_numpy(), model.predict_proba(categorical(rows)), rtol=1e-6
    )
    np.testing.assert_allclose(predictions[columns].sum(axis=1), 1.0, rtol=1e-6)
    # The predict step succeeded, said which device XGBoost ran on, and predicted every row.
    assert re.search(rf"^predict +done .* Predicted {len(rows)} rows with ", run.stdout, re.M)
    log = run.output("predict", "output.log").read_text()
    assert "XGBoost predicts on cpu (" in log
    # The whole run succeeded: the explain step explained the same model natively, each class
    # named by its species, and each sample's values add up to the model's margin for it.
    assert run.status == 0, run.stdout[-3000:] + run.stderr[-3000:]
    samples = pd.read_parquet(run.printed("explain/samples_explanations"))
    assert set(samples["output"]) == set(SPECIES)
    assert len(samples) == 20 * len(SPECIES)
    shap_columns = [column for column in samples.columns if column.startswith("shap_")]
    assert sorted(shap_columns) == sorted(f"shap_{column}" for column in model.feature_names_in_)
    margins = model.get_booster().inplace_predict(
        categorical(rows.drop(columns="id").head(20)), predict_type="margin"
    )
    explained = samples["base_value"] + samples[shap_columns].sum(axis=1)
    for index, species in enumerate(SPECIES):
        of_class = explained[samples["output"] == species].to_numpy()
        np.testing.assert_allclose(of_class, margins[:, index], rtol=1e-4, atol=1e-4)
