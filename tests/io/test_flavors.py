"""Models registered the way a notebook registers them, loaded back through the loaders.

Each model is logged with its framework's own MLflow flavour (`mlflow.xgboost`,
`mlflow.lightgbm`, `mlflow.sklearn` of a Pipeline around an XGBoost or LightGBM estimator) and
a signature, on the session's real MLflow server; the loaders must predict what the model
itself predicts, with labels of the type it was trained on (text through a label mapping for
models trained on label-encoded classes), one probability column per class summing to 1, and
the same predictions when its categorical columns arrive as text from a CSV or Parquet file.
"""

from __future__ import annotations

import json
import logging
import uuid

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
import pytest
import skops.io
import xgboost as xgb
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import LabelEncoder, OneHotEncoder

from components.core import metrics
from components.io import datasets, flavors, registries

pytestmark = pytest.mark.integration

SPECIES = ["Adelie", "Chinstrap", "Gentoo"]
NUMERICAL = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
CATEGORICAL = ["island", "sex"]
FEATURES = [*NUMERICAL, *CATEGORICAL]
SMALL = {"n_estimators": 20, "max_depth": 3, "n_jobs": 1}


def penguins(rows: int = 300, seed: int = 0) -> pd.DataFrame:
    """Penguin-like rows: species told apart by the bill, the flippers and the island."""
    rng = np.random.default_rng(seed)
    species = rng.choice(SPECIES, size=rows)
    code = pd.Series(species).map({name: i for i, name in enumerate(SPECIES)}).to_numpy()
    islands = np.where(
        code == 0,
        rng.choice(["Torgersen", "Biscoe", "Dream"], size=rows),
        np.where(code == 1, "Dream", "Biscoe"),
    )
    frame = pd.DataFrame(
        {
            "bill_length_mm": 38 + 8 * code + rng.normal(0, 2, rows),
            "bill_depth_mm": 18 - 2 * (code == 2) + rng.normal(0, 1, rows),
            "flipper_length_mm": 190 + 10 * code + rng.normal(0, 5, rows),
            "body_mass_g": 3700 + 600 * (code == 2) + rng.normal(0, 300, rows),
            "island": islands,
            "sex": rng.choice(["male", "female"], size=rows),
            "species": species,
        }
    )
    return frame


def categorical(frame: pd.DataFrame) -> pd.DataFrame:
    """The features with the text columns as pandas categoricals, as a notebook trains on."""
    return frame[FEATURES].astype({name: "category" for name in CATEGORICAL})


def untrusted(model) -> list[str]:
    """The types of a model that skops does not trust by default."""
    return skops.io.get_untrusted_types(data=skops.io.dumps(model))


def text_pipeline(estimator) -> Pipeline:
    """A notebook's Pipeline: one-hot text columns, numbers as they are, then the estimator."""
    encode = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL)], remainder="passthrough"
    )
    return Pipeline([("preprocess", encode), ("model", estimator)])


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return penguins()


@pytest.fixture(scope="module")
def registered(mlflow_server, data):
    """Every model a team might bring, logged and registered as a notebook does it.

    Returns:
        name -> (models:/ URI, the fitted model itself, the frame it was trained on).
    """
    mlflow.set_tracking_uri(mlflow_server)
    mlflow.set_registry_uri(mlflow_server)
    prefix = f"flavors-{uuid.uuid4().hex[:8]}"
    mlflow.set_experiment(prefix)
    client = MlflowClient(mlflow_server)
    encoder = LabelEncoder().fit(data["species"])  # XGBoost trains on class indices 0..n-1
    codes = encoder.transform(data["species"])
    mass = data["body_mass_g"]
    numbers, cats = data[NUMERICAL], categorical(data)
    built = {}

    def register(name, flavor, model, frame, tags=None, output=None):
        with mlflow.start_run():
            output = model.predict(frame) if output is None else output
            signature = infer_signature(frame, output)
            # mlflow.sklearn saves in skops format, which refuses types it was not told to trust
            # (the XGBoost and LightGBM estimators): a notebook names them, as here.
            trusted = {"skops_trusted_types": untrusted(model)} if flavor == "sklearn" else {}
            info = getattr(mlflow, flavor).log_model(
                model, name="model", signature=signature, registered_model_name=f"{prefix}-{name}",
                **trusted,
            )  # fmt: skip
        version = client.get_model_version(f"{prefix}-{name}", "1")
        for key, value in (tags or {}).items():
            client.set_model_version_tag(version.name, "1", key, value)
        assert str(info.registered_model_version) == "1"
        built[name] = (f"models:/{prefix}-{name}/1", model, frame)

    mapping = json.dumps(list(encoder.classes_))
    register(
        "xgb-text-labels", "xgboost",
        xgb.XGBClassifier(**SMALL).fit(numbers, codes), numbers,
        tags={flavors.LABEL_MAPPING_TAG: mapping},
    )  # fmt: skip
    register(
        "xgb-categoricals", "xgboost",
        xgb.XGBClassifier(**SMALL, enable_categorical=True).fit(cats, codes), cats,
    )  # fmt: skip
    register("xgb-regressor", "xgboost", xgb.XGBRegressor(**SMALL).fit(numbers, mass), numbers)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 3, "nthread": 1},
        xgb.DMatrix(cats, label=(codes == 2).astype(int), enable_categorical=True),
        num_boost_round=10,
    )
    output = booster.predict(xgb.DMatrix(cats, enable_categorical=True))
    register("xgb-booster", "xgboost", booster, cats, output=output)
    lightgbm = {"n_estimators": 20, "num_leaves": 7, "n_jobs": 1, "verbose": -1}
    register("lgbm-regressor", "lightgbm", lgb.LGBMRegressor(**lightgbm).fit(cats, mass), cats)
    register(
        "lgbm-int-labels", "lightgbm",
        lgb.LGBMClassifier(**lightgbm).fit(numbers, 10 * (codes + 1)), numbers,
    )  # fmt: skip
    register(
        "sklearn-xgb", "sklearn",
        text_pipeline(xgb.XGBClassifier(**SMALL)).fit(data[FEATURES], codes), data[FEATURES],
        tags={flavors.LABEL_MAPPING_TAG: mapping},
    )  # fmt: skip
    register(
        "sklearn-bare-xgb", "sklearn",
        xgb.XGBClassifier(**SMALL, enable_categorical=True).fit(cats, codes), cats,
    )  # fmt: skip
    register(
        "sklearn-lgbm", "sklearn",
        text_pipeline(lgb.LGBMRegressor(**lightgbm)).fit(data[FEATURES], mass), data[FEATURES],
    )  # fmt: skip
    return built


def probabilities(predictions: pd.DataFrame) -> pd.DataFrame:
    return predictions.filter(like="probability_")


@pytest.mark.parametrize(
    ("name", "loader"),
    [
        ("xgb-text-labels", registries.XGBoostPredictor),
        ("xgb-categoricals", registries.XGBoostPredictor),
        ("xgb-regressor", registries.XGBoostPredictor),
        ("xgb-booster", registries.XGBoostPredictor),
        ("lgbm-regressor", registries.LightGBMPredictor),
        ("lgbm-int-labels", registries.LightGBMPredictor),
        ("sklearn-xgb", registries.SklearnPredictor),
        ("sklearn-bare-xgb", registries.SklearnPredictor),
        ("sklearn-lgbm", registries.SklearnPredictor),
    ],
)
def test_the_flavour_loader_chooses_the_native_predictor(tracking, registered, name, loader):
    uri = registered[name][0]
    assert type(registries.FlavorLoader().load(uri)) is loader


def test_an_xgboost_classifier_on_label_encoded_classes_predicts_its_text_labels(
    tracking, registered, data
):
    uri, model, frame = registered["xgb-text-labels"]
    predictor = registries.FlavorLoader().load(uri)  # the label mapping comes from the tag
    assert predictor.task == "classification"
    predictions = predictor.predict(data)  # extra columns (the target, text) are left out
    assert list(predictions.columns) == ["prediction", *(f"probability_{s}" for s in SPECIES)]
    expected = np.asarray(SPECIES, dtype=object)[model.predict(frame)]
    assert predictions["prediction"].tolist() == expected.tolist()
    assert all(isinstance(label, str) for label in predictions["prediction"])
    np.testing.assert_allclose(probabilities(predictions), model.predict_proba(frame), rtol=1e-6)
    np.testing.assert_allclose(probabilities(predictions).sum(axis=1), 1.0, rtol=1e-6)
    # An empty mapping ignores the tag: the class indices it was trained on, as integers.
    bare = registries.FlavorLoader(label_mapping={}).load(uri)
    assert bare.predict(frame)["prediction"].tolist() == model.predict(frame).tolist()


def test_a_label_mapping_setting_wins_over_the_tag_and_must_cover_every_class(tracking, registered):
    uri, model, frame = registered["xgb-text-labels"]
    renamed = {"0": "a", "1": "b", "2": "c"}
    predictions = registries.XGBoostLoader(label_mapping=renamed).load(uri).predict(frame)
    assert list(predictions.columns) == [
        "prediction",
        "probability_a",
        "probability_b",
        "probability_c",
    ]
    assert predictions["prediction"].tolist() == [renamed[str(c)] for c in model.predict(frame)]
    with pytest.raises(flavors.LabelMappingError, match="no label for the model's class"):
        registries.FlavorLoader(label_mapping=["a", "b"]).load(uri)


def test_categoricals_read_from_csv_and_parquet_predict_as_the_frame_trained_on(
    tracking, registered, data, tmp_path
):
    """The category columns arrive as text from files; unknown categories count as missing."""
    rows = data[FEATURES].copy()
    rows.loc[0, "island"] = "Atlantis"  # never seen in training
    rows.to_csv(tmp_path / "rows.csv", index=False)
    rows.to_parquet(tmp_path / "rows.parquet", index=False)
    from_csv = datasets.CSVReader(path=str(tmp_path / "rows.csv")).read()
    from_parquet = datasets.ParquetReader(path=str(tmp_path / "rows.parquet")).read()
    assert not isinstance(from_csv["island"].dtype, pd.CategoricalDtype)
    in_memory = categorical(rows)
    assert pd.isna(in_memory.loc[0, "island"]) is False
    in_memory["island"] = pd.Categorical(
        rows["island"], categories=categorical(data)["island"].cat.categories
    )
    assert pd.isna(in_memory.loc[0, "island"])
    for name in ("xgb-categoricals", "xgb-booster", "lgbm-regressor", "sklearn-bare-xgb"):
        uri, model, _ = registered[name]
        predictor = registries.FlavorLoader().load(uri)
        expected = model.predict(
            in_memory if name != "xgb-booster" else xgb.DMatrix(in_memory, enable_categorical=True)
        )
        for frame in (from_csv, from_parquet):
            predictions = predictor.predict(frame)
            assert len(predictions) == len(rows)
            if predictor.task == "regression":
                np.testing.assert_allclose(predictions["prediction"], expected, rtol=1e-6)
            elif name == "xgb-booster":  # binary:logistic: the positive class's probability
                np.testing.assert_allclose(predictions["probability_1"], expected, rtol=1e-6)
                assert predictions["prediction"].tolist() == (expected > 0.5).astype(int).tolist()
            else:
                np.testing.assert_allclose(
                    probabilities(predictions), model.predict_proba(in_memory), rtol=1e-6
                )
                assert predictions["prediction"].tolist() == model.predict(in_memory).tolist()


def test_a_raw_booster_classifies_with_class_indices_and_probabilities(tracking, registered):
    uri, booster, frame = registered["xgb-booster"]
    predictor = registries.FlavorLoader().load(uri)
    assert predictor.task == "classification"
    predictions = predictor.predict(frame)
    assert list(predictions.columns) == ["prediction", "probability_0", "probability_1"]
    assert predictions["prediction"].dtype.kind == "i"
    np.testing.assert_allclose(probabilities(predictions).sum(axis=1), 1.0, rtol=1e-6)


def test_regressors_predict_what_the_model_predicts(tracking, registered, data):
    for name in ("xgb-regressor", "lgbm-regressor", "sklearn-lgbm"):
        uri, model, frame = registered[name]
        predictor = registries.FlavorLoader().load(uri)
        assert predictor.task == "regression"
        predictions = predictor.predict(data)
        assert list(predictions.columns) == ["prediction"]
        np.testing.assert_allclose(predictions["prediction"], model.predict(frame), rtol=1e-6)


def test_a_lightgbm_classifier_keeps_its_integer_labels(tracking, registered):
    uri, model, frame = registered["lgbm-int-labels"]
    predictions = registries.FlavorLoader().load(uri).predict(frame)
    assert list(predictions.columns) == [
        "prediction",
        "probability_10",
        "probability_20",
        "probability_30",
    ]
    assert predictions["prediction"].tolist() == model.predict(frame).tolist()
    assert predictions["prediction"].dtype.kind == "i"
    np.testing.assert_allclose(probabilities(predictions), model.predict_proba(frame), rtol=1e-6)
    np.testing.assert_allclose(probabilities(predictions).sum(axis=1), 1.0, rtol=1e-6)


def test_a_sklearn_pipeline_around_xgboost_predicts_text_labels_by_its_tag(
    tracking, registered, data
):
    uri, model, frame = registered["sklearn-xgb"]
    predictions = registries.FlavorLoader().load(uri).predict(data)
    expected = np.asarray(SPECIES, dtype=object)[model.predict(frame)]
    assert predictions["prediction"].tolist() == expected.tolist()
    assert list(probabilities(predictions).columns) == [f"probability_{s}" for s in SPECIES]
    np.testing.assert_allclose(probabilities(predictions), model.predict_proba(frame), rtol=1e-6)


def test_xgboost_says_which_device_predicts(tracking, registered, caplog, monkeypatch):
    monkeypatch.setenv("LIFECYCLE_DEVICE", "cpu")
    with caplog.at_level(logging.INFO, logger=registries.logger.name):
        predictor = registries.FlavorLoader().load(registered["xgb-regressor"][0])
    assert predictor.device == "cpu"
    assert "XGBoost predicts on cpu (LIFECYCLE_DEVICE=cpu)" in caplog.messages


def test_the_registry_chooses_the_richest_flavour():
    assert registries.LOADERS.choose({"python_function", "sklearn", "xgboost"}) is (
        registries.SklearnLoader
    )
    assert registries.LOADERS.choose({"python_function", "xgboost"}) is registries.XGBoostLoader
    assert registries.LOADERS.choose({"python_function", "lightgbm"}) is registries.LightGBMLoader
    assert registries.LOADERS.choose({"python_function"}) is registries.PyfuncLoader
    natives = [k.FLAVOR for k in registries.LOADERS.kinds.values() if k.FLAVOR is not None]
    assert tuple(natives) == flavors.NATIVE_FLAVORS


def test_label_mappings_are_read_from_lists_objects_and_json():
    assert flavors.label_mapping('["a", "b"]') == {"0": "a", "1": "b"}
    assert flavors.label_mapping({0: "a", "1": "b"}) == {"0": "a", "1": "b"}
    assert flavors.label_mapping(None) is None and flavors.label_mapping(" ") is None
    with pytest.raises(flavors.LabelMappingError, match="not JSON"):
        flavors.label_mapping("Adelie, Gentoo")
    with pytest.raises(flavors.LabelMappingError, match="list of labels"):
        flavors.label_mapping("3")
    frame = pd.DataFrame({"prediction": [0, 1], "probability_0": [0.9, 0.2]})
    relabelled = flavors.relabel(frame, {"0": "a", "1": "b"})
    assert relabelled.columns.tolist() == ["prediction", "probability_a"]
    assert relabelled["prediction"].tolist() == ["a", "b"]
    with pytest.raises(flavors.LabelMappingError, match="predicted class"):
        flavors.relabel(frame, {"0": "a"})


class ClassIndices(mlflow.pyfunc.PythonModel):
    """A custom model that predicts class indices: 2 for long bills, else 0."""

    def predict(self, context, model_input):
        return (model_input["bill_length_mm"] > 50).astype(int) * 2


def test_a_pyfunc_model_is_labelled_by_its_tag_and_classifies(tracking, tmp_path, data):
    """Models from code (a file, not a pickle): what MLflow recommends for custom models."""
    code = tmp_path / "class_indices.py"
    code.write_text(
        "import mlflow\n"
        "from tests.io.test_flavors import ClassIndices\n"
        "mlflow.models.set_model(ClassIndices())\n"
    )
    name = f"flavors-pyfunc-{uuid.uuid4().hex[:8]}"
    frame = data[NUMERICAL]
    with mlflow.start_run():
        mlflow.pyfunc.log_model(
            name="model", python_model=str(code), registered_model_name=name,
            signature=infer_signature(frame, ClassIndices().predict(None, frame)),
        )  # fmt: skip
    MlflowClient().set_model_version_tag(name, "1", flavors.LABEL_MAPPING_TAG, '["a", "b", "c"]')
    predictor = registries.FlavorLoader().load(f"models:/{name}/1")
    assert type(predictor) is registries.PyfuncPredictor
    assert predictor.task == "classification"
    predictions = predictor.predict(data)
    expected = np.where(data["bill_length_mm"] > 50, "c", "a")
    assert predictions["prediction"].tolist() == expected.tolist()


class ClassesAndProbabilities(mlflow.pyfunc.PythonModel):
    """A custom classifier of integer classes that gives their probabilities beside them."""

    def predict(self, context, model_input):
        long = 1 / (1 + np.exp(-(model_input["bill_length_mm"].to_numpy() - 45)))
        return pd.DataFrame(
            {
                "prediction": (long > 0.5).astype(int),
                "probability_0": 1 - long,
                "probability_1": long,
            }
        )


def test_a_pyfunc_model_with_probability_columns_classifies_its_integer_classes(
    tracking, tmp_path, data
):
    # Integer classes were taken for a regression: evaluated by rmse, profiled as numbers.
    code = tmp_path / "probabilities.py"
    code.write_text(
        "import mlflow\n"
        "from tests.io.test_flavors import ClassesAndProbabilities\n"
        "mlflow.models.set_model(ClassesAndProbabilities())\n"
    )
    frame = data[NUMERICAL]
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="model", python_model=str(code),
            signature=infer_signature(frame, ClassesAndProbabilities().predict(None, frame)),
        )  # fmt: skip
    predictor = registries.FlavorLoader().load(info.model_uri)
    assert type(predictor) is registries.PyfuncPredictor
    assert predictor.task == "classification"
    targets = (data["bill_length_mm"] > 45).astype(int)
    scores = metrics.score(predictor.task, targets, predictor.predict(data))
    assert scores["accuracy"] == 1.0 and scores["roc_auc"] == 1.0
