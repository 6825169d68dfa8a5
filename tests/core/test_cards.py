"""Tests for model cards: filled part by part from the jobs' results, rendered, stored as JSON."""

from __future__ import annotations

import pandas as pd
import pytest

from components.core import cards, drift, models, results
from components.core.model_refs import ModelRef
from tests.jobs.helpers import BIKE_CATEGORICAL, BIKE_NUMERICAL

REF = ModelRef(uri="models:/bike-sharing/3", name="bike-sharing", version=3, run_id="r3")
CHAMPION = ModelRef(uri="models:/bike-sharing/2", name="bike-sharing", version=2)


@pytest.fixture(scope="module")
def trained(bike) -> results.TrainingResult:
    """A training result of real values: the bike rows' counts and profile, measured scores."""
    rows = bike.head(400)
    train, test = rows.iloc[:300], rows.iloc[300:]
    predictions = pd.Series(test["cnt"].to_numpy() * 0.9, name="prediction")
    profile = drift.profile(train, BIKE_NUMERICAL, BIKE_CATEGORICAL, "regression", predictions)
    error = test["cnt"].to_numpy() - predictions.to_numpy()
    return results.TrainingResult(
        model_ref=REF,
        model_kind="HistGradientBoostingRegressor",
        task="regression",
        numerical=list(BIKE_NUMERICAL),
        categorical=list(BIKE_CATEGORICAL),
        rows=len(rows),
        train_rows=len(train),
        test_rows=len(test),
        scores={"rmse": float((error**2).mean() ** 0.5), "mae": float(abs(error).mean())},
        seconds=0.5,
        profile=profile,
    )


@pytest.fixture(scope="module")
def card(trained) -> cards.ModelCard:
    return cards.from_training(
        trained,
        target="cnt",
        source="s3://bucket/bike/hour.parquet",
        digest="5f3a9c21",
        params=models.HistGradientBoostingRegressorModel(params={"max_iter": 30})
        .estimator()
        .get_params(),
        params_set=["max_iter"],
    )


def evaluated(passed: bool, champion: bool = True) -> results.EvaluationResult:
    return results.EvaluationResult(
        candidate_ref=REF,
        champion_ref=CHAMPION if champion else None,
        task="regression",
        passed=passed,
        reasons=[] if passed else ["rmse=61.25 does not meet the threshold 50"],
        thresholds={"rmse": 50.0, "r2": 0.5},
        scores={"rmse": 61.25, "r2": 0.8731},
        champion_scores={"rmse": 58.5, "r2": 0.8812} if champion else {},
        rows=100,
        curves=None,
        targets=pd.Series(dtype=float),
        predicted=pd.Series(dtype=float),
    )


def explained(features: int = 12) -> results.ExplanationsResult:
    names = [f"feature_{i}" for i in range(features)]
    importances = pd.DataFrame(
        {"feature": names, "importance": [100.0 / (i + 1) for i in range(features)]}
    ).assign(rank=range(1, features + 1))
    return results.ExplanationsResult(
        model_ref=REF,
        explainer="TreeExplainer",
        samples=200,
        importances=importances,
        preview=pd.DataFrame(),
        seconds=1.0,
    )


def test_training_part_shows_the_data_features_model_metrics_and_profile(card, trained):
    text = cards.render(card)
    assert text.startswith("# Model card: bike-sharing v3\n")
    assert "- Rows: 400 (300 to train, 100 held out)" in text
    assert "`s3://bucket/bike/hour.parquet`" in text and "`5f3a9c21`" in text
    assert "- Target: `cnt`" in text
    listed = ", ".join(f"`{name}`" for name in BIKE_NUMERICAL)
    assert f"- Numerical ({len(BIKE_NUMERICAL)}): {listed}\n" in text
    assert "- Categorical (2): `season`, `weathersit`" in text
    assert "Kind: **HistGradientBoostingRegressor**; task: regression." in text
    parameter_rows = [line for line in text.splitlines() if "max_iter" in line]
    assert "30" in parameter_rows[0] and "given" in parameter_rows[0]
    assert "random_state" in text  # the estimator's defaults are shown too
    for name, value in trained.scores.items():
        assert any(name in line and f"{value:.4g}" in line for line in text.splitlines())
    summary = trained.profile.summary()
    for row in summary.itertuples(index=False):
        assert row.summary in text, row.feature
    assert "(prediction)" in text


def test_unfilled_parts_say_so(card):
    text = cards.render(card)
    assert cards.NOT_EVALUATED in text
    assert cards.NOT_EXPLAINED in text
    bare = card.model_copy(update={"training": card.training.model_copy(update={"profile": None})})
    assert cards.NO_PROFILE in cards.render(bare)


def test_evaluation_part_shows_the_verdict_and_the_champion(card):
    text = cards.render(cards.with_evaluation(card, evaluated(passed=False)))
    assert "Verdict: **failed** (100 holdout rows)." in text
    assert "- rmse=61.25 does not meet the threshold 50" in text
    assert "Thresholds: rmse <= 50, r2 >= 0.5." in text
    assert "Champion compared with: **bike-sharing v2** (`models:/bike-sharing/2`)." in text
    evaluation = text[text.index("## Evaluation") : text.index("## Top features")]
    [rmse] = [line for line in evaluation.splitlines() if line.strip("| ").startswith("rmse ")]
    assert "61.25" in rmse and "58.5" in rmse
    assert cards.NOT_EVALUATED not in text

    alone = cards.render(cards.with_evaluation(card, evaluated(passed=True, champion=False)))
    assert "Verdict: **passed**: it may be promoted" in alone
    assert "Champion: none to compare with." in alone


def test_explanation_part_keeps_the_top_features_in_rank_order(card):
    completed = cards.with_explanations(card, explained(features=12))
    assert [item.feature for item in completed.explanation.top] == [
        f"feature_{i}" for i in range(cards.TOP_FEATURES)
    ]
    text = cards.render(completed)
    assert "over 200 samples (TreeExplainer); 10 of 12 features." in text
    assert "feature_0" in text and "100" in text and "feature_9" in text
    assert "feature_10" not in text
    assert cards.NOT_EXPLAINED not in text


def test_the_card_round_trips_through_json(card):
    full = cards.with_explanations(cards.with_evaluation(card, evaluated(False)), explained())
    again = cards.ModelCard.parse(full.model_dump_json())
    assert again == full
    assert cards.render(again) == cards.render(full)


def test_a_nan_metric_round_trips():
    nan_card = cards.ModelCard.model_validate(
        {
            "name": "m",
            "version": 1,
            "uri": "models:/m/1",
            "run_id": "r",
            "training": {
                "data": {"source": "x", "rows": 2, "train_rows": 1, "test_rows": 1},
                "target": "y",
                "task": "classification",
                "numerical": ["a"],
                "categorical": [],
                "model_kind": "LogisticRegression",
                "scores": {"roc_auc": float("nan"), "accuracy": 1.0},
            },
        }
    )
    again = cards.ModelCard.parse(nan_card.model_dump_json())
    assert again.model_dump_json() == nan_card.model_dump_json()


def test_text_that_is_no_card_is_refused_clearly():
    with pytest.raises(cards.CardError, match="not a model card .*name"):
        cards.ModelCard.parse('{"version": 3}')


def test_a_pipe_in_a_value_does_not_break_a_table(card):
    profile = [cards.ProfileRow(feature="a|b", kind="categorical", missing=0.0, summary="x|y")]
    piped = card.model_copy(
        update={"training": card.training.model_copy(update={"profile": profile})}
    )
    [row] = [line for line in cards.render(piped).splitlines() if "a\\|b" in line]
    assert row.count("|") - row.count("\\|") == 5  # four columns


def test_no_card_text_says_why():
    assert "registered before model cards" in cards.missing(REF)
    unregistered = cards.missing(ModelRef(uri="runs:/abc/model"))
    assert "runs:/abc/model" in unregistered and "not a registered version" in unregistered


def test_the_brief_card_leaves_out_default_parameters_and_the_profile(card):
    brief = cards.render(card, brief=True)
    assert "max_iter" in brief and "random_state" not in brief
    assert f"{len(card.training.params) - 1} more at their defaults." in brief
    assert cards.BRIEF_PROFILE in brief and "(prediction)" not in brief
    assert "- Rows: 400 (300 to train, 100 held out)" in brief
    assert len(brief) < len(cards.render(card))
