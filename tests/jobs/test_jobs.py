"""Integration: the life of a model through the jobs, against the session's real MLflow server.

train -> register -> evaluate -> promote -> predict (by alias and by version) -> explain, for a
regressor and a multiclass classifier; a deliberately worse candidate fails its evaluation and
is refused promotion. A binary classifier, a linear model (Linear SHAP) and forced permutation
SHAP take the shorter path.
"""

from __future__ import annotations

import dataclasses
import pathlib
import typing as T

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from components.core import explainers, models, results
from components.io import datasets, registries
from components.jobs import evaluation, explanations, inference, promotion, training
from components.utils import splitters
from tests.conftest import BIKE_SCHEMA
from tests.jobs.helpers import (
    BIKE_CATEGORICAL,
    BIKE_NUMERICAL,
    COLUMNS,
    DEMAND_LABELS,
    assert_additive,
    features,
    listing,
    native_model,
    raw_outputs,
    run,
    settings,
    signature_of,
    unique,
    with_demand,
)

pytestmark = pytest.mark.integration

BATCH_ROWS = 1000


@dataclasses.dataclass
class Lifecycle:
    """What the lifecycle fixture did, step by step, for the tests to check."""

    task: str
    name: str
    target: str
    common: dict[str, T.Any]
    client: MlflowClient
    trained: results.TrainingResult | None = None
    evaluated: results.EvaluationResult | None = None
    promoted: results.PromotionResult | None = None
    worse: results.TrainingResult | None = None
    worse_evaluated: results.EvaluationResult | None = None
    refusal: Exception | None = None
    aliases_after_refusal: dict[str, str] = dataclasses.field(default_factory=dict)
    holdout: pathlib.Path | None = None


@pytest.fixture(scope="module")
def files(bike, tmp_path_factory) -> dict[str, pathlib.Path]:
    """The training data (with classification targets) and a batch of rows to predict."""
    root = tmp_path_factory.mktemp("inputs")
    data = with_demand(bike)
    paths = {"training": root / "training.parquet", "batch": root / "batch.parquet"}
    data.to_parquet(paths["training"], index=False)
    data.iloc[2000 : 2000 + BATCH_ROWS].to_parquet(paths["batch"], index=False)
    return paths


@pytest.fixture(scope="module")
def batch(files) -> pd.DataFrame:
    return pd.read_parquet(files["batch"])


MODELS = {
    "regressor": (models.HistGradientBoostingRegressorModel, "cnt", {"r2": 0.5}),
    "classifier": (models.HistGradientBoostingClassifierModel, "demand", {"accuracy": 0.5}),
}


@pytest.fixture(scope="module", params=list(MODELS))
def lifecycle(request, mlflow_server, files, tmp_path_factory) -> Lifecycle:
    """Train v1, evaluate it, promote it; train a worse v2, evaluate it, try to promote it."""
    kind, target, thresholds = MODELS[request.param]
    name = unique(f"jobs-{request.param}")
    common = settings(mlflow_server, unique("jobs"))
    holdout = tmp_path_factory.mktemp(request.param) / "holdout.parquet"
    state = Lifecycle(request.param, name, target, common, common["mlflow_service"].client())
    state.holdout = holdout

    def train(params: dict[str, T.Any]) -> results.TrainingResult:
        return run(
            training.TrainingJob(
                inputs=datasets.ParquetReader(path=str(files["training"])),
                target=target,
                model=kind(params=params),
                model_name=name,
                holdout=datasets.ParquetWriter(path=str(holdout)),
                **features(target),
                **common,
            )
        )

    def evaluate() -> results.EvaluationResult:
        job = evaluation.EvaluationJob(
            inputs=datasets.ParquetReader(path=str(holdout)),
            target=target,
            model_name=name,
            thresholds=thresholds,
            **common,
        )
        return run(job)

    state.trained = train({"max_iter": 30})
    state.evaluated = evaluate()
    state.promoted = run(promotion.PromotionJob(model_name=name, **common))
    state.worse = train({"max_iter": 1})
    state.worse_evaluated = evaluate()
    try:
        run(promotion.PromotionJob(model_name=name, **common))
    except promotion.PromotionError as error:
        state.refusal = error
    state.aliases_after_refusal = state.client.get_registered_model(name).aliases
    return state


# %% TRAIN, EVALUATE, PROMOTE


def test_training_registers_increasing_versions(tracking, lifecycle, files, bike):
    trained = lifecycle.trained
    assert trained.model_ref.version == 1
    assert lifecycle.worse.model_ref.version == 2
    assert registries.latest_version(lifecycle.client, lifecycle.name) == 2
    assert trained.model_ref.uri == f"models:/{lifecycle.name}/1"
    assert trained.model_ref.name == lifecycle.name
    assert trained.task == ("regression" if lifecycle.task == "regressor" else "classification")
    # The features inferred from the data, less the excluded columns, are the demo's features.
    assert trained.numerical == BIKE_NUMERICAL
    assert trained.categorical == BIKE_CATEGORICAL
    assert trained.rows == len(bike)
    assert trained.test_rows == round(len(bike) * 0.2)
    assert trained.train_rows == len(bike) - trained.test_rows
    assert signature_of(lifecycle.name, 1).inputs.input_names() == COLUMNS
    # The holdout is a seeded random draw over the whole file (stratified on a classifier's
    # target), not its last rows: the same rows as the splitter draws, each row once.
    data = pd.read_parquet(files["training"])
    holdout = pd.read_parquet(lifecycle.holdout)
    assert len(holdout) == trained.test_rows
    assert holdout["instant"].is_unique
    assert set(holdout["instant"]) <= set(data["instant"])
    assert set(holdout["instant"]) != set(data["instant"].tail(len(holdout)))
    stratify = lifecycle.target if lifecycle.task == "classifier" else None
    _, expected = splitters.TrainTestSplitter(stratify=stratify).split(data)
    assert holdout["instant"].tolist() == expected["instant"].tolist()
    if stratify:
        # Each class keeps its share of the rows in the holdout, to within a row.
        share = data[stratify].value_counts() * 0.2
        held = holdout[stratify].value_counts().reindex(share.index, fill_value=0)
        assert ((held - share).abs() <= 1).all(), (held, share)


def test_evaluation_tags_the_verdict_on_the_version(lifecycle):
    client, name = lifecycle.client, lifecycle.name
    good = client.get_model_version(name, "1").tags
    bad = client.get_model_version(name, "2").tags
    assert good[registries.PASSED_TAG] == "true"
    assert bad[registries.PASSED_TAG] == "false"
    primary = "rmse" if lifecycle.task == "regressor" else "f1_macro"
    assert float(good[registries.METRIC_TAG.format(primary)]) == pytest.approx(
        lifecycle.evaluated.scores[primary], rel=1e-5
    )
    # The first version had no Champion to beat; the second lost to it.
    assert lifecycle.evaluated.candidate_ref.version == 1
    assert lifecycle.evaluated.champion_ref is None
    assert lifecycle.evaluated.champion_scores == {}
    assert lifecycle.evaluated.passed is True and lifecycle.evaluated.reasons == []
    assert lifecycle.evaluated.rows == len(pd.read_parquet(lifecycle.holdout))
    assert lifecycle.worse_evaluated.candidate_ref.version == 2
    assert lifecycle.worse_evaluated.champion_ref.version == 1
    assert lifecycle.worse_evaluated.passed is False
    reasons = "; ".join(lifecycle.worse_evaluated.reasons)
    assert f"is worse than the Champion {name} v1" in reasons
    assert reasons.startswith(primary) or f"; {primary}=" in reasons
    if lifecycle.task == "classifier":
        # The details behind the verdict: the confusion matrix and a ROC curve.
        curves = lifecycle.evaluated.curves
        assert curves.labels == DEMAND_LABELS
        matrix = np.asarray(curves.confusion_matrix)
        assert matrix.shape == (3, 3)
        assert matrix.sum() == len(pd.read_parquet(lifecycle.holdout))
        assert curves.roc["tpr"][-1] == 1.0
    else:
        assert lifecycle.evaluated.curves is None


def test_promotion_moves_the_alias_and_refuses_a_failed_version(lifecycle):
    assert lifecycle.promoted.model_ref.version == 1
    assert lifecycle.promoted.alias == "Champion"
    assert lifecycle.promoted.previous is None
    assert isinstance(lifecycle.refusal, promotion.PromotionError)
    message = str(lifecycle.refusal)
    assert f"refusing to set 'Champion' to {lifecycle.name} v2: it failed its evaluation" in message
    assert "'evaluation.passed': 'false'" in message
    assert lifecycle.aliases_after_refusal == {"Champion": "1"}


# %% PREDICT


@pytest.mark.parametrize(
    ("alias_or_version", "version", "loader"),
    [
        ("Champion", 1, registries.SklearnLoader()),
        (2, 2, registries.PyfuncLoader()),
        ("1", 1, registries.PyfuncLoader()),
    ],
    ids=["alias-sklearn", "version-pyfunc", "digits-pyfunc"],
)
def test_inference_by_alias_and_by_version(
    tracking, lifecycle, files, batch, tmp_path, alias_or_version, version, loader
):
    output = tmp_path / "predictions.parquet"
    job = inference.InferenceJob(
        inputs=datasets.ParquetReader(path=str(files["batch"]), batch_size=300),
        outputs=datasets.ParquetWriter(path=str(output)),
        finder=registries.RegistryFinder(name=lifecycle.name, alias_or_version=alias_or_version),
        loader=loader,
        input_schema=str(BIKE_SCHEMA),
        passthrough=["instant", "dteday"],
        **lifecycle.common,
    )
    done = run(job)
    # The alias is resolved to a concrete version, recorded by the job.
    assert done.model_ref.version == version
    assert done.model_ref.uri == f"models:/{lifecycle.name}/{version}"
    assert done.rows == BATCH_ROWS
    assert done.warnings == []
    assert listing(tmp_path) == ["predictions.parquet"]
    predictions = pd.read_parquet(output)
    assert len(predictions) == BATCH_ROWS
    assert predictions["instant"].tolist() == batch["instant"].tolist()
    assert predictions["dteday"].tolist() == batch["dteday"].tolist()
    model = native_model(lifecycle.name, version)
    expected = model.predict(batch[COLUMNS])
    probabilities = [f"probability_{label}" for label in DEMAND_LABELS]
    if lifecycle.task == "regressor":
        assert list(predictions.columns) == ["instant", "dteday", "prediction"]
        np.testing.assert_allclose(predictions["prediction"], expected, rtol=1e-9)
        return
    assert predictions["prediction"].tolist() == expected.tolist()
    assert set(predictions["prediction"]) <= set(DEMAND_LABELS)
    if isinstance(loader, registries.SklearnLoader):
        assert list(predictions.columns) == ["instant", "dteday", "prediction", *probabilities]
        totals = predictions[probabilities].sum(axis=1)
        np.testing.assert_allclose(totals, 1.0, rtol=1e-9)
        np.testing.assert_allclose(
            predictions[probabilities].to_numpy(), model.predict_proba(batch[COLUMNS])
        )
    else:
        assert list(predictions.columns) == ["instant", "dteday", "prediction"]


def test_inference_writes_csv_and_reads_csv(tracking, lifecycle, batch, tmp_path):
    source = tmp_path / "inputs" / "batch.csv"
    source.parent.mkdir()
    batch.head(250).to_csv(source, index=False)
    output = tmp_path / "outputs" / "predictions.csv"
    done = run(
        inference.InferenceJob(
            inputs=datasets.CSVReader(path=str(source), batch_size=100),
            outputs=datasets.CSVWriter(path=str(output)),
            finder=registries.RegistryFinder(name=lifecycle.name),
            passthrough=["instant"],
            **lifecycle.common,
        )
    )
    assert done.rows == 250
    # CSV carries no metadata: the lineage is in a sidecar that folder readers skip.
    assert listing(output.parent) == ["_predictions.csv.metadata.json", "predictions.csv"]
    predictions = datasets.CSVReader(path=str(output)).read()
    # The default loader is the native sklearn flavour: a classifier's probabilities come too.
    probabilities = [f"probability_{label}" for label in DEMAND_LABELS]
    if lifecycle.task == "regressor":
        assert predictions.columns.tolist() == ["instant", "prediction"]
    else:
        assert predictions.columns.tolist() == ["instant", "prediction", *probabilities]
        np.testing.assert_allclose(predictions[probabilities].sum(axis=1), 1.0, rtol=1e-9)
    assert done.columns == predictions.shape[1]
    assert predictions["instant"].tolist() == batch["instant"].head(250).tolist()


def test_a_batch_with_gaps_in_a_whole_number_column_is_predicted(
    tracking, lifecycle, batch, tmp_path
):
    """The training data's `hr` has no gap, a later batch's has: the model takes missing
    numbers, so its signature must too (numerical integers are signed double, codes long)."""
    types = {spec.name: spec.type.name for spec in signature_of(lifecycle.name, 1).inputs.inputs}
    assert {name: types[name] for name in ["hr", "yr", "temp"]} == dict.fromkeys(
        ["hr", "yr", "temp"], "double"
    )
    assert {name: types[name] for name in BIKE_CATEGORICAL} == dict.fromkeys(
        BIKE_CATEGORICAL, "long"
    )
    rows = batch.head(200).assign(hr=batch["hr"].head(200).astype("float64"))
    rows.loc[[3, 50, 120], "hr"] = np.nan
    source = tmp_path / "gaps.parquet"
    rows.to_parquet(source)
    output = tmp_path / "predictions.parquet"
    done = run(
        inference.InferenceJob(
            inputs=datasets.ParquetReader(path=str(source)),
            outputs=datasets.ParquetWriter(path=str(output)),
            finder=registries.RegistryFinder(name=lifecycle.name, alias_or_version="1"),
            **lifecycle.common,
        )
    )
    assert done.rows == 200
    predictions = pd.read_parquet(output)
    expected = native_model(lifecycle.name, 1).predict(rows[COLUMNS])
    if lifecycle.task == "regressor":
        np.testing.assert_allclose(predictions["prediction"], expected, rtol=1e-9)
    else:
        assert predictions["prediction"].tolist() == expected.tolist()


# %% EXPLAIN


def test_explanations_add_up_to_the_raw_output(tracking, lifecycle, files, batch, tmp_path):
    samples_path, models_path = tmp_path / "samples.parquet", tmp_path / "models.parquet"
    job = explanations.ExplanationsJob(
        inputs_samples=datasets.ParquetReader(path=str(files["batch"]), batch_size=25),
        models_explanations=datasets.ParquetWriter(path=str(models_path)),
        samples_explanations=datasets.ParquetWriter(path=str(samples_path)),
        finder=registries.RegistryFinder(name=lifecycle.name, alias_or_version="Champion"),
        input_schema=str(BIKE_SCHEMA),
        passthrough=["instant"],
        max_samples=60,
        background_samples=40,
        **lifecycle.common,
    )
    done = run(job)
    assert done.explainer == "TreeExplainer"
    assert done.model_ref.version == 1
    assert done.samples == 60
    assert listing(tmp_path) == ["models.parquet", "samples.parquet"]
    model = native_model(lifecycle.name, 1)
    # One value per input column: the one-hot features of a categorical are summed into it.
    names = COLUMNS
    outputs = ["prediction"] if lifecycle.task == "regressor" else DEMAND_LABELS
    samples = pd.read_parquet(samples_path)
    assert samples.columns.tolist() == [
        "instant",
        "output",
        "base_value",
        *[f"shap_{name}" for name in names],
    ]
    assert len(samples) == 60 * len(outputs)
    assert samples["output"].tolist() == outputs * 60
    assert samples["instant"].unique().tolist() == batch["instant"].head(60).tolist()
    signature = signature_of(lifecycle.name, 1)
    assert_additive(samples, batch, raw_outputs(model, batch, signature))
    # Model explanations: one row per input column, ranked by mean |SHAP|.
    importances = pd.read_parquet(models_path)
    assert importances.columns.tolist() == ["feature", "importance", "rank"]
    assert sorted(importances["feature"]) == sorted(names)
    assert importances["rank"].tolist() == list(range(1, len(names) + 1))
    assert importances["importance"].is_monotonic_decreasing
    mean_abs = samples[[f"shap_{name}" for name in names]].abs().mean()
    mean_abs.index = names
    np.testing.assert_allclose(
        importances["importance"], mean_abs[importances["feature"]].to_numpy(), rtol=1e-9
    )
    pd.testing.assert_frame_equal(done.importances, importances)


def test_permutation_explanations_add_up_to_the_model_output(
    tracking, lifecycle, files, batch, tmp_path
):
    samples_path = tmp_path / "samples.parquet"
    done = run(
        explanations.ExplanationsJob(
            inputs_samples=datasets.ParquetReader(path=str(files["batch"])),
            models_explanations=datasets.ParquetWriter(path=str(tmp_path / "models.parquet")),
            samples_explanations=datasets.ParquetWriter(path=str(samples_path)),
            finder=registries.RegistryFinder(name=lifecycle.name, alias_or_version=1),
            explainer=explainers.PermutationExplainer(max_evals=2 * len(COLUMNS) + 1),
            passthrough=["instant"],
            max_samples=3,
            background_samples=3,
            **lifecycle.common,
        )
    )
    assert done.explainer == "PermutationExplainer"
    samples = pd.read_parquet(samples_path)
    # Permutation SHAP explains the raw input columns, against predict / predict_proba.
    assert [c for c in samples.columns if c.startswith("shap_")] == [f"shap_{c}" for c in COLUMNS]
    model = native_model(lifecycle.name, 1)
    inputs = batch.head(3)
    if lifecycle.task == "regressor":
        expected = model.predict(inputs[COLUMNS]).reshape(-1, 1)
    else:
        expected = model.predict_proba(inputs[COLUMNS])
    assert_additive(samples, inputs, expected)
    importances = pd.read_parquet(tmp_path / "models.parquet")
    assert sorted(importances["feature"]) == sorted(COLUMNS)


# %% SHORTER PATHS


def test_binary_classifier_lifecycle(tracking, files, batch, tmp_path):
    name = unique("jobs-binary")
    common = settings(tracking, unique("jobs"))
    holdout = tmp_path / "holdout.parquet"
    trained = run(
        training.TrainingJob(
            inputs=datasets.ParquetReader(path=str(files["training"])),
            target="busy",
            model=models.HistGradientBoostingClassifierModel(params={"max_iter": 30}),
            model_name=name,
            holdout=datasets.ParquetWriter(path=str(holdout)),
            **features("busy"),
            **common,
        )
    )
    assert trained.model_ref.version == 1
    assert trained.task == "classification"
    assert set(trained.scores) == {"accuracy", "f1_macro", "roc_auc", "log_loss"}
    evaluated = run(
        evaluation.EvaluationJob(
            inputs=datasets.ParquetReader(path=str(holdout)),
            target="busy",
            model_name=name,
            thresholds={"roc_auc": 0.8},
            **common,
        )
    )
    assert evaluated.passed is True
    assert set(evaluated.scores) == {"accuracy", "f1_macro", "roc_auc", "log_loss"}
    run(promotion.PromotionJob(model_name=name, **common))
    predicted = tmp_path / "predictions.parquet"
    run(
        inference.InferenceJob(
            inputs=datasets.ParquetReader(path=str(files["batch"])),
            outputs=datasets.ParquetWriter(path=str(predicted)),
            finder=registries.RegistryFinder(name=name),
            loader=registries.SklearnLoader(),
            passthrough=["instant"],
            **common,
        )
    )
    predictions = pd.read_parquet(predicted)
    assert predictions.columns.tolist() == [
        "instant",
        "prediction",
        "probability_no",
        "probability_yes",
    ]
    assert len(predictions) == BATCH_ROWS
    np.testing.assert_allclose(predictions[["probability_no", "probability_yes"]].sum(axis=1), 1)
    samples_path = tmp_path / "samples.parquet"
    done = run(
        explanations.ExplanationsJob(
            inputs_samples=datasets.ParquetReader(path=str(files["batch"])),
            models_explanations=datasets.ParquetWriter(path=str(tmp_path / "models.parquet")),
            samples_explanations=datasets.ParquetWriter(path=str(samples_path)),
            finder=registries.RegistryFinder(name=name),
            passthrough=["instant"],
            max_samples=50,
            **common,
        )
    )
    samples = pd.read_parquet(samples_path)
    # One margin per sample: the log-odds of the positive class.
    assert samples["output"].unique().tolist() == ["yes"]
    assert len(samples) == 50
    model = native_model(name, 1)
    assert done.model_ref.version == 1
    assert_additive(samples, batch, raw_outputs(model, batch, signature_of(name, 1)))


def test_linear_model_is_explained_with_linear_shap(tracking, files, batch, tmp_path):
    name = unique("jobs-ridge")
    common = settings(tracking, unique("jobs"))
    trained = run(
        training.TrainingJob(
            inputs=datasets.ParquetReader(path=str(files["training"])),
            target="cnt",
            model=models.RidgeModel(),
            model_name=name,
            **features("cnt"),
            **common,
        )
    )
    assert trained.model_ref.version == 1
    assert trained.numerical == BIKE_NUMERICAL
    assert trained.categorical == BIKE_CATEGORICAL
    samples_path = tmp_path / "samples.parquet"
    done = run(
        explanations.ExplanationsJob(
            inputs_samples=datasets.ParquetReader(path=str(files["batch"]), batch_size=40),
            models_explanations=datasets.ParquetWriter(path=str(tmp_path / "models.parquet")),
            samples_explanations=datasets.ParquetWriter(path=str(samples_path)),
            finder=registries.RegistryFinder(name=name, alias_or_version=1),
            passthrough=["instant"],
            max_samples=100,
            background_samples=30,
            **common,
        )
    )
    assert done.explainer == "LinearExplainer"
    samples = pd.read_parquet(samples_path)
    assert len(samples) == 100
    model = native_model(name, 1)
    assert_additive(samples, batch, raw_outputs(model, batch, signature_of(name, 1)))
    explained = pd.read_parquet(tmp_path / "models.parquet")["feature"]
    assert sorted(explained) == sorted(COLUMNS)  # "season", not "cat__season_1", ...
