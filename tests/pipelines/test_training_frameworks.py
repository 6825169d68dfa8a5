"""The command line trains the frameworks' kinds: `run ... --local --config` under kfp.local.

One run each (kfp.local starts a process per step): the `training` pipeline with
`model_kind: XGBRegressor` on 2,000 rows of the bike data (regression) trains, evaluates and
promotes the version as it does the default kind; the `lifecycle` pipeline goes on to find it
again, predict and explain, with `model_kind: LGBMClassifier` on the wine data (classification,
integer labels), `XGBClassifier` on the wine data with its cultivars as text, `LGBMRegressor`
on a slice of the bike data (native categoricals), CatBoost's classifier named by its import
path (`catboost:CatBoostClassifier`) on the named cultivars with a text category that has
missing values (its own categorical splits), and a scikit-learn forest named by
its import path (`sklearn.ensemble:RandomForestRegressor`). All run against the session's real
MLflow server, with the alert posted to a local server that answers as Slack's webhook does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from components import demo
from components.core import explainers, models, schemas
from tests.pipelines.test_your_data import (  # noqa: F401 - env is a fixture
    SAMPLES,
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


# %% EVERY OTHER FRAMEWORK: ONE LIFECYCLE RUN EACH

# The wine cultivars by name (Forina's data: Barolo, Grignolino, Barbera): text labels.
CULTIVARS = {0: "barolo", 1: "grignolino", 2: "barbera"}
SHADES = ["pale", "ruby", "deep"]
BIKE_COLUMNS = {"exclude": ["instant", "dteday", "casual", "registered"]}


def wine_with_names(folder, bike) -> tuple[str, str]:
    """The wine data with its cultivars as text, for training and for predicting."""
    frame = pd.read_csv(demo.resolve("demo://wine/wine.csv"))
    frame["cultivar"] = frame["cultivar"].map(CULTIVARS)
    path = folder / "wine-names.parquet"
    frame.to_parquet(path, index=False)
    return str(path), str(path)


def wine_with_shades(folder, bike) -> tuple[str, str]:
    """The named cultivars, the colour as a text category (some rows without one) in its place."""
    path, _ = wine_with_names(folder, bike)
    frame = pd.read_parquet(path)
    shades = pd.cut(frame.pop("color_intensity"), [0, 3.5, 7, 99], labels=SHADES).astype(object)
    shades[frame["sample_id"] % 9 == 0] = None
    frame["shade"] = shades
    path = folder / "wine-shades.parquet"
    frame.to_parquet(path, index=False)
    return str(path), str(path)


def bike_slices(folder, bike) -> tuple[str, str]:
    """1,500 bike rows to train on, 200 others to predict."""
    rows = bike.sample(1700, random_state=5)
    train, predict = folder / "bike-train.parquet", folder / "bike-predict.parquet"
    rows.head(1500).to_parquet(train, index=False)
    rows.tail(200).to_parquet(predict, index=False)
    return str(train), str(predict)


FRAMEWORKS = {
    # XGBoost's classifier on text labels: it learns class indices, the pipeline decodes them.
    "xgboost-classifier": (
        wine_with_names,
        {
            "target": "cultivar",
            "model_kind": "XGBClassifier",
            "model_params": {"n_estimators": 30, "max_depth": 3},
            "exclude": ["sample_id"],
            "passthrough": ["sample_id"],
        },
        models.XGBClassifierModel,
    ),
    # LightGBM's regressor with native categoricals.
    "lightgbm-regressor": (
        bike_slices,
        {
            "target": "cnt",
            "model_kind": "LGBMRegressor",
            "model_params": {"n_estimators": 40, "num_leaves": 15, "verbose": -1},
            "categorical": ["season", "weathersit"],
            "passthrough": ["instant"],
            **BIKE_COLUMNS,
        },
        models.LGBMRegressorModel,
    ),
    # CatBoost's classifier by its import path (where catboost is installed), on text labels
    # and a text category with missing values, which CatBoost splits on itself: its own types
    # trusted, its own Tree SHAP.
    "catboost-classifier-by-path": (
        wine_with_shades,
        {
            "target": "cultivar",
            "model_kind": "catboost:CatBoostClassifier",
            "model_params": {"iterations": 60, "depth": 4, "thread_count": 1},
            "categorical": ["shade"],
            "exclude": ["sample_id"],
            "passthrough": ["sample_id"],
        },
        models.EstimatorModel,
    ),
    # A scikit-learn forest named by its import path (an EstimatorModel): shap's Tree SHAP.
    "sklearn-forest-by-path": (
        bike_slices,
        {
            "target": "cnt",
            "model_kind": "sklearn.ensemble:RandomForestRegressor",
            "model_params": {"n_estimators": 20, "max_depth": 8},
            "passthrough": ["instant"],
            **BIKE_COLUMNS,
        },
        models.EstimatorModel,
    ),
}


@pytest.mark.parametrize("framework", list(FRAMEWORKS))
def test_the_cli_runs_each_framework_through_the_whole_lifecycle(env, bike, framework):  # noqa: F811
    """Trained, promoted, found again as the Champion, predicted and explained: one run each.

    The predictions are the registered model's own, in the labels it was trained on (text for
    the XGBoost classifier), with probabilities summing to 1; the explanations add up to the
    model's raw output within the documented tolerance.
    """
    prepare, parameters, kind = FRAMEWORKS[framework]
    data, inference_data = prepare(env["dir"], bike)
    name = unique(framework)
    config = write_config(
        env["dir"],
        "lifecycle",
        {
            **parameters,
            "data": data,
            "inference_data": inference_data,
            "model_name": name,
            "experiment": name,
            "max_samples": SAMPLES,
        },
    )

    run = cli(env, "run", "lifecycle", "--local", "--config", config)

    assert run.status == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert run.stdout.splitlines()[-1].startswith("Pipeline lifecycle SUCCEEDED in ")
    client = MlflowClient(env["tracking"])
    champion = client.get_model_version_by_alias(name, "Champion")
    assert champion.version == "1"
    params = client.get_run(champion.run_id).data.params
    # The kind as the user named it: an estimator's import path stays its path.
    assert params["model_kind"] == parameters["model_kind"]
    assert type(models.MODELS.coerce(parameters["model_kind"])) is kind
    task = models.model_task(parameters["model_kind"])
    # Found again: the version that predicted and the one explained are the Champion.
    assert run.returned("predict")["version"] == 1
    assert run.returned("explain")["Output"] == 1
    source = pd.read_parquet(inference_data)
    key = parameters["passthrough"][0]
    predictions = pd.read_parquet(run.printed("predict/predictions"))
    assert len(predictions) == len(source)
    assert predictions[key].tolist() == source[key].tolist()
    model, signature = native(name, 1)
    if parameters["model_kind"].startswith("catboost:"):  # the category is its own split
        names = list(model[:-1].get_feature_names_out())
        split_on = [names[i].rpartition("__")[2] for i in model[-1].get_cat_feature_indices()]
        assert split_on == parameters["categorical"]
    expected = models.predict_frame(model, schemas.conform(source, signature))
    if task == "classification":
        classes = sorted(source[parameters["target"]].unique())
        assert set(predictions["prediction"]) <= set(classes)
        assert predictions["prediction"].map(type).eq(str).all()  # the trained labels, text
        probabilities = [models.probability_column(label) for label in classes]
        assert sorted(predictions.columns) == sorted([key, "prediction", *probabilities])
        np.testing.assert_allclose(predictions[probabilities].sum(axis=1), 1.0, rtol=1e-6)
        assert predictions["prediction"].tolist() == expected["prediction"].tolist()
    else:
        assert list(predictions.columns) == [key, "prediction"]
        assert predictions["prediction"].dtype.kind == "f"
        np.testing.assert_allclose(predictions["prediction"], expected["prediction"], rtol=1e-6)
    # Explained: one value per input column, adding up to the raw output, outputs by label.
    samples = pd.read_parquet(run.printed("explain/samples_explanations"))
    rows = source.head(SAMPLES)
    margins = explainers.raw_output(model, schemas.conform(rows, signature))
    margins = margins.reshape(len(rows), -1)
    assert len(samples) == SAMPLES * margins.shape[1]
    shap_columns = [c for c in samples.columns if c.startswith("shap_")]
    assert {c.removeprefix("shap_") for c in shap_columns} == set(signature.inputs.input_names())
    k = margins.shape[1]
    if task == "classification":
        assert samples["output"].tolist()[:k] == [str(label) for label in model.classes_]
        assert set(samples["output"]) == set(classes)
    totals = samples["base_value"].to_numpy() + samples[shap_columns].to_numpy().sum(axis=1)
    position = {value: i for i, value in enumerate(rows[key])}
    wanted = [margins[position[v], i % k] for i, v in enumerate(samples[key])]
    scale = max(1.0, float(np.abs(margins).max()))
    np.testing.assert_allclose(totals, wanted, rtol=0, atol=explainers.ADDITIVITY_TOLERANCE * scale)
    assert "SUCCEEDED" in str(run.alert())
