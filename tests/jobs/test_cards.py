"""Integration: a version's model card in MLflow, written by training and completed by
evaluation and explanation, against the session's real MLflow server.

One small regressor is trained, evaluated against thresholds and explained; a second version,
logged and registered without a card (as a model trained before cards, or by another tool),
goes through evaluation and explanation and nothing fails.
"""

from __future__ import annotations

import dataclasses
import pathlib
import typing as T

import mlflow
import pytest
from kfp import dsl
from mlflow.tracking import MlflowClient

from components.core import cards, results
from components.core.model_refs import ModelRef
from components.io import cards as card_store
from components.io import datasets, registries
from components.jobs import evaluation, explanations, training
from tests.conftest import BIKE_SCHEMA
from tests.jobs.helpers import features, run, settings, unique, with_demand

pytestmark = pytest.mark.integration

TRAIN_ROWS = 3000


@dataclasses.dataclass
class Carded:
    """What the fixture did: a carded version, its steps' results, and a version without card."""

    name: str
    experiment: str
    common: dict[str, T.Any]
    client: MlflowClient
    holdout: pathlib.Path
    samples: pathlib.Path
    trained: results.TrainingResult
    evaluated: results.EvaluationResult
    explained: results.ExplanationsResult
    bare_ref: ModelRef


@pytest.fixture(scope="module")
def carded(mlflow_server, bike, tmp_path_factory) -> Carded:
    """Train v1 and evaluate and explain it; then log and register v2 without a card."""
    name, experiment = unique("cards"), unique("cards")
    common = settings(mlflow_server, experiment)
    client = common["mlflow_service"].client()
    folder = tmp_path_factory.mktemp("cards")
    with_demand(bike.head(TRAIN_ROWS)).to_parquet(folder / "train.parquet", index=False)
    holdout, samples = folder / "holdout.parquet", folder / "samples.parquet"
    bike.iloc[5000:5200].to_parquet(samples, index=False)
    trained = run(
        training.TrainingJob(
            inputs=datasets.ParquetReader(path=str(folder / "train.parquet")),
            target="cnt",
            model={"KIND": "HistGradientBoostingRegressor", "params": {"max_iter": 20}},
            model_name=name,
            holdout=datasets.ParquetWriter(path=str(holdout)),
            **features("cnt"),
            **common,
        )
    )
    evaluated = run(
        evaluation.EvaluationJob(
            inputs=datasets.ParquetReader(path=str(holdout)),
            target="cnt",
            model_name=name,
            alias_or_version=trained.model_ref.version,
            thresholds={"r2": 0.99},  # fails: the card shows a failed verdict and its reason
            **common,
        )
    )
    explained = run(explain_job(name, trained.model_ref.version, samples, folder, common))
    # v2: the same pipeline, logged and registered by a run that writes no card.
    info = mlflow.models.get_model_info(trained.model_ref.uri)
    pipeline = mlflow.sklearn.load_model(trained.model_ref.uri)
    example = bike.head(5)[info.signature.inputs.input_names()]
    service = common["mlflow_service"]
    service.start()
    service.start_run("no-card", {})
    try:
        bare_ref = registries.SklearnSaver().save(pipeline, name, info.signature, example)
    finally:
        service.end_run("FINISHED")
    return Carded(
        name, experiment, common, client, holdout, samples, trained, evaluated, explained, bare_ref
    )


def explain_job(
    name: str, version: int | str, samples: pathlib.Path, folder: pathlib.Path, common: dict
) -> explanations.ExplanationsJob:
    return explanations.ExplanationsJob(
        inputs_samples=datasets.ParquetReader(path=str(samples)),
        models_explanations=datasets.ParquetWriter(path=str(folder / f"models-{version}.parquet")),
        samples_explanations=datasets.ParquetWriter(path=str(folder / f"samples-{version}.pq")),
        finder=registries.RegistryFinder(name=name, alias_or_version=version),
        max_samples=40,
        **common,
    )


def stored_markdown(client: MlflowClient, run_id: str, tmp_path: pathlib.Path) -> str:
    path = client.download_artifacts(run_id, card_store.MARKDOWN_PATH, str(tmp_path))
    return pathlib.Path(path).read_text(encoding="utf-8")


def test_training_cards_the_version_with_its_logged_metrics_and_data_digest(carded):
    ref = carded.trained.model_ref
    card = card_store.load(carded.client, ref)
    assert card is not None
    assert (card.name, card.version, card.run_id) == (carded.name, ref.version, ref.run_id)
    logged = carded.client.get_run(ref.run_id)
    metrics = {
        k[len("test_") :]: v for k, v in logged.data.metrics.items() if k.startswith("test_")
    }
    assert metrics and card.training.scores == pytest.approx(metrics)
    [dataset] = logged.inputs.dataset_inputs
    assert card.training.data.digest == dataset.dataset.digest
    assert card.training.data.source == logged.data.tags["training.data"]
    assert card.training.data.rows == TRAIN_ROWS
    assert card.training.params["max_iter"] == 20 and card.training.params_set == ["max_iter"]
    assert card.training.numerical == carded.trained.numerical
    assert card.training.profile and card.training.profile[-1].feature == "(prediction)"


def test_evaluation_and_explanation_complete_the_card(carded, tmp_path):
    ref = carded.trained.model_ref
    card = card_store.load(carded.client, ref)
    assert card.evaluation is not None and card.evaluation.passed is False
    assert card.evaluation.scores == pytest.approx(carded.evaluated.scores)
    assert card.evaluation.reasons == carded.evaluated.reasons
    assert card.evaluation.thresholds == {"r2": 0.99}
    assert card.evaluation.champion is None  # no Champion yet
    importances = carded.explained.importances.sort_values("rank")
    assert [item.feature for item in card.explanation.top] == list(importances["feature"].head(10))
    assert card.explanation.samples == carded.explained.samples == 40
    # Each step's result carries the card as it left it; the last one is the stored Markdown.
    text = stored_markdown(carded.client, ref.run_id, tmp_path)
    assert carded.explained.card == text
    assert "Verdict: **failed**" in text and "does not meet the threshold 0.99" in text
    assert importances["feature"].iloc[0] in text
    assert cards.NOT_EVALUATED in carded.trained.card and cards.NOT_EXPLAINED in carded.trained.card
    assert "Verdict: **failed**" in carded.evaluated.card
    assert cards.NOT_EXPLAINED in carded.evaluated.card


def test_the_version_description_is_the_card(carded, tmp_path):
    ref = carded.trained.model_ref
    text = stored_markdown(carded.client, ref.run_id, tmp_path)
    described = carded.client.get_model_version(carded.name, str(ref.version)).description
    assert described == text
    assert len(described) <= card_store.DESCRIPTION_LIMIT


def test_a_card_too_long_for_a_description_is_shortened_then_cut(carded):
    card = card_store.load(carded.client, carded.trained.model_ref)
    markdown = cards.render(card)
    brief = card_store.description(card, markdown, limit=len(markdown) - 1)
    assert len(brief) < len(markdown)
    assert "max_iter" in brief and "learning_rate" not in brief  # given parameters only
    assert cards.BRIEF_PROFILE in brief and "(prediction)" not in brief
    assert brief.rstrip().endswith(f"`{card_store.MARKDOWN_PATH}` of run `{card.run_id}`.*")
    cut = card_store.description(card, markdown, limit=700)
    assert len(cut) <= 700 and cut.startswith(f"# Model card: {card.describe()}\n")
    assert "Cut to fit" in cut and card.run_id in cut


def test_a_version_without_card_is_evaluated_and_explained_and_stays_without(
    carded, tmp_path, caplog
):
    bare = carded.bare_ref
    assert bare.version == carded.trained.model_ref.version + 1
    assert card_store.load(carded.client, bare) is None
    with caplog.at_level("INFO", logger="components.io.cards"):
        evaluated = run(
            evaluation.EvaluationJob(
                inputs=datasets.ParquetReader(path=str(carded.holdout)),
                target="cnt",
                model_name=carded.name,
                alias_or_version=bare.version,
                **carded.common,
            )
        )
        explained = run(
            explain_job(carded.name, bare.version, carded.samples, tmp_path, carded.common)
        )
    assert evaluated.passed and evaluated.card is None and explained.card is None
    assert f"no model card of {bare.describe()} to complete" in caplog.text
    assert not [item.path for item in carded.client.list_artifacts(bare.run_id, "card")]
    assert not carded.client.get_model_version(carded.name, str(bare.version)).description
    # A model given by its URI is no registered version: nothing to complete either.
    by_uri = run(
        explain_job(carded.name, bare.version, carded.samples, tmp_path, carded.common).model_copy(
            update={"finder": registries.UriFinder(uri=f"runs:/{bare.run_id}/model")}
        )
    )
    assert by_uri.card is None


def test_the_components_write_the_card_or_why_there_is_none(carded, tracking, tmp_path):
    """The KFP outputs: the card's Markdown, or a short text saying why there is none."""
    from components.evaluation import evaluate
    from components.explanations import explain

    ref = carded.trained.model_ref
    card = dsl.Markdown(uri=str(tmp_path / "card"))
    version = explain.python_func(
        data=str(carded.samples),
        models_explanations=dsl.Dataset(uri=str(tmp_path / "models")),
        samples_explanations=dsl.Dataset(uri=str(tmp_path / "samples")),
        report=dsl.HTML(uri=str(tmp_path / "report")),
        summary=dsl.Markdown(uri=str(tmp_path / "summary")),
        card=card,
        model_name=carded.name,
        alias_or_version=str(ref.version),
        max_samples=20,
        input_schema=str(BIKE_SCHEMA),
        experiment=carded.experiment,
    )
    assert version == ref.version
    written = pathlib.Path(card.path).read_text(encoding="utf-8")
    assert written == stored_markdown(carded.client, ref.run_id, tmp_path / "stored")
    assert "over 20 samples" in written

    model = dsl.Model(uri=str(tmp_path / "model"))
    model.metadata.update({"name": carded.name, "version": carded.bare_ref.version})
    none = dsl.Markdown(uri=str(tmp_path / "no-card"))
    evaluate.python_func(
        target="cnt",
        holdout=dsl.Dataset(uri=str(carded.holdout)),
        model=model,
        metrics=dsl.Metrics(uri=str(tmp_path / "metrics")),
        classification_metrics=dsl.ClassificationMetrics(uri=str(tmp_path / "classification")),
        report=dsl.HTML(uri=str(tmp_path / "evaluation")),
        summary=dsl.Markdown(uri=str(tmp_path / "evaluation-summary")),
        card=none,
        champion=str(tmp_path / "champion"),
        experiment=carded.experiment,
    )
    text = pathlib.Path(none.path).read_text(encoding="utf-8")
    assert text.startswith("# No model card") and carded.bare_ref.describe() in text
