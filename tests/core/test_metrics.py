"""Tests for the metrics: scores, directions and the comparisons that gate a promotion."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from components.core import metrics, models


def test_directions_say_which_way_is_better():
    assert {name for name, way in metrics.DIRECTIONS.items() if way == "min"} == {
        "rmse",
        "mae",
        "log_loss",
    }
    assert {name for name, way in metrics.DIRECTIONS.items() if way == "max"} == {
        "r2",
        "accuracy",
        "f1_macro",
        "roc_auc",
    }
    assert metrics.PRIMARY == {"regression": "rmse", "classification": "f1_macro"}


@pytest.mark.parametrize(
    ("metric", "value", "threshold", "expected"),
    [
        ("rmse", 50.0, 80.0, True),
        ("rmse", 80.0, 80.0, True),
        ("rmse", 80.1, 80.0, False),
        ("log_loss", 0.7, 0.5, False),
        ("r2", 0.9, 0.8, True),
        ("r2", 0.8, 0.8, True),
        ("r2", 0.79, 0.8, False),
        ("f1_macro", 0.5, 0.6, False),
    ],
)
def test_meets_a_threshold_in_the_metric_direction(metric, value, threshold, expected):
    assert metrics.meets(metric, value, threshold) is expected


def test_meets_refuses_an_unknown_metric():
    with pytest.raises(ValueError, match="unknown metric 'mape'; known: accuracy, f1_macro"):
        metrics.meets("mape", 1.0, 2.0)


@pytest.mark.parametrize(
    ("metric", "candidate", "incumbent", "tolerance", "expected"),
    [
        ("rmse", 100.0, 100.0, 0.0, True),
        ("rmse", 99.0, 100.0, 0.0, True),
        ("rmse", 101.0, 100.0, 0.0, False),
        ("rmse", 101.0, 100.0, 0.02, True),
        ("rmse", 103.0, 100.0, 0.02, False),
        ("f1_macro", 0.8, 0.8, 0.0, True),
        ("f1_macro", 0.85, 0.8, 0.0, True),
        ("f1_macro", 0.79, 0.8, 0.0, False),
        ("f1_macro", 0.79, 0.8, 0.02, True),
        ("f1_macro", 0.77, 0.8, 0.02, False),
        ("r2", -0.5, -0.4, 0.1, False),  # the slack is relative to the incumbent's magnitude
        ("r2", -0.43, -0.4, 0.1, True),
    ],
)
def test_at_least_as_good(metric, candidate, incumbent, tolerance, expected):
    assert metrics.at_least_as_good(metric, candidate, incumbent, tolerance) is expected


def test_regression_scores():
    targets = pd.Series([1.0, 2.0, 3.0, 4.0])
    exact = pd.DataFrame({models.PREDICTION: targets.to_numpy()})
    assert metrics.score("regression", targets, exact) == {"rmse": 0.0, "mae": 0.0, "r2": 1.0}
    off = pd.DataFrame({models.PREDICTION: targets.to_numpy() + 2.0})
    scores = metrics.score("regression", targets, off)
    assert scores["rmse"] == pytest.approx(2.0)
    assert scores["mae"] == pytest.approx(2.0)
    assert scores["r2"] == pytest.approx(1 - 16 / 5)


def test_classification_scores_use_labels_and_probabilities():
    targets = pd.Series(["low", "high", "medium", "low"])
    predictions = pd.DataFrame(
        {
            models.PREDICTION: ["low", "high", "low", "low"],
            "probability_high": [0.1, 0.8, 0.1, 0.2],
            "probability_low": [0.8, 0.1, 0.5, 0.7],
            "probability_medium": [0.1, 0.1, 0.4, 0.1],
        }
    )
    scores = metrics.score("classification", targets, predictions)
    assert set(scores) == {"accuracy", "f1_macro", "roc_auc", "log_loss"}
    assert scores["accuracy"] == pytest.approx(0.75)
    assert scores["f1_macro"] == pytest.approx((1 + 0.8 + 0) / 3)
    assert scores["log_loss"] == pytest.approx(-np.mean(np.log([0.8, 0.8, 0.4, 0.7])))
    assert metrics.probability_labels(predictions) == ["high", "low", "medium"]


def test_float32_probabilities_score_without_a_warning():
    """XGBoost's float32 rows sum to one within float32 rounding; sklearn's check is float64."""
    rng = np.random.default_rng(0)
    raw = rng.random((500, 3)).astype(np.float32)
    probabilities = (raw / raw.sum(axis=1, keepdims=True)).astype(np.float32)
    labels = np.array(["a", "b", "c"])
    targets = pd.Series(labels[rng.integers(0, 3, 500)])
    predictions = pd.DataFrame(
        {
            models.PREDICTION: labels[probabilities.argmax(axis=1)],
            **{f"probability_{c}": probabilities[:, i] for i, c in enumerate(labels)},
        }
    )
    assert not np.allclose(probabilities.astype(float).sum(axis=1), 1.0, rtol=0, atol=1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = metrics.score("classification", targets, predictions)
    picked = probabilities[np.arange(500), np.searchsorted(labels, targets)].astype(float)
    assert scores["log_loss"] == pytest.approx(-np.mean(np.log(picked)), rel=1e-6)


def test_binary_classification_roc_auc_scores_the_second_label():
    targets = pd.Series(["no", "yes", "yes", "no"])
    predictions = pd.DataFrame(
        {
            models.PREDICTION: ["no", "yes", "no", "no"],
            "probability_no": [0.9, 0.2, 0.6, 0.7],
            "probability_yes": [0.1, 0.8, 0.4, 0.3],
        }
    )
    scores = metrics.score("classification", targets, predictions)
    assert scores["roc_auc"] == pytest.approx(1.0)
    assert scores["accuracy"] == pytest.approx(0.75)


def test_confusion_and_roc():
    targets = pd.Series(["a", "b", "b", "a"])
    predicted = pd.Series(["a", "b", "a", "a"])
    assert metrics.confusion(targets, predicted, ["a", "b"]) == [[2, 0], [1, 1]]
    curve = metrics.roc(targets, np.array([0.1, 0.9, 0.8, 0.3]), "b")
    assert curve["fpr"][0] == 0.0 and curve["fpr"][-1] == 1.0
    assert curve["tpr"][-1] == 1.0
    assert all(np.isfinite(curve["thresholds"]))


# %% LABELS OF ANY TYPE


def frame_of(predicted: list, probabilities: dict) -> pd.DataFrame:
    """A `predict_frame` output: the prediction, then one probability column per label."""
    columns = {models.probability_column(label): p for label, p in probabilities.items()}
    return pd.DataFrame({models.PREDICTION: predicted, **columns})


BINARY = {0: [0.9, 0.2, 0.6, 0.7], 1: [0.1, 0.8, 0.4, 0.3]}


@pytest.mark.parametrize(
    "targets",
    [
        pd.Series([0, 1, 1, 0]),
        pd.Series([0.0, 1.0, 1.0, 0.0]),  # an Int64 target widened by missing values
        pd.Series([0, 1, 1, 0], dtype="Int64"),
    ],
    ids=["int64", "float64", "Int64"],
)
def test_binary_integer_labels_get_every_metric(targets):
    predictions = frame_of(np.array([0, 1, 0, 0]), BINARY)
    scores = metrics.score("classification", targets, predictions)
    assert set(scores) == set(metrics.TASK_METRICS["classification"])
    assert scores["accuracy"] == pytest.approx(0.75)
    assert scores["roc_auc"] == pytest.approx(1.0)
    assert scores["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.8, 0.4, 0.7])))


def test_boolean_labels_get_every_metric():
    predictions = frame_of(
        np.array([False, True, False, False]),
        dict(zip([False, True], BINARY.values(), strict=True)),
    )
    scores = metrics.score("classification", pd.Series([False, True, True, False]), predictions)
    assert scores["roc_auc"] == pytest.approx(1.0)
    assert scores["accuracy"] == pytest.approx(0.75)
    assert "log_loss" in scores


def test_multiclass_integer_labels_in_numeric_not_text_order():
    # Labels 1, 2, 10: the model orders them as numbers, text would order them 1, 10, 2.
    targets = pd.Series([1, 10, 2, 1])
    predictions = frame_of(
        np.array([1, 10, 1, 1]),
        {1: [0.8, 0.1, 0.5, 0.7], 2: [0.1, 0.1, 0.4, 0.1], 10: [0.1, 0.8, 0.1, 0.2]},
    )
    scores = metrics.score("classification", targets, predictions)
    assert scores["accuracy"] == pytest.approx(0.75)
    assert scores["f1_macro"] == pytest.approx((0.8 + 0 + 1) / 3)
    assert scores["log_loss"] == pytest.approx(-np.mean(np.log([0.8, 0.8, 0.4, 0.7])))
    text = metrics.score(
        "classification",
        targets.map({1: "a", 2: "b", 10: "c"}),
        predictions.rename(
            columns={
                "probability_1": "probability_a",
                "probability_2": "probability_b",
                "probability_10": "probability_c",
            }
        ).assign(prediction=["a", "c", "a", "a"]),
    )
    assert scores == pytest.approx(text)


def test_multiclass_roc_auc_averages_the_classes_present():
    targets = pd.Series([0, 1, 1, 0])  # class 2 is absent from this holdout
    predictions = frame_of(
        np.array([0, 1, 0, 0]),
        {0: [0.7, 0.1, 0.5, 0.6], 1: [0.2, 0.8, 0.4, 0.3], 2: [0.1, 0.1, 0.1, 0.1]},
    )
    scores = metrics.score("classification", targets, predictions)
    assert scores["roc_auc"] == pytest.approx(1.0)
    assert scores["log_loss"] == pytest.approx(-np.mean(np.log([0.7, 0.8, 0.4, 0.6])))


def test_labels_unknown_to_the_model_skip_probability_metrics():
    predictions = frame_of(np.array([0, 1]), {0: [0.9, 0.2], 1: [0.1, 0.8]})
    scores = metrics.score("classification", pd.Series([0, 5]), predictions)
    assert set(scores) == {"accuracy", "f1_macro"}


def test_confusion_and_roc_with_integer_labels():
    targets = pd.Series([0.0, 1.0, 1.0, 0.0])
    predicted = pd.Series([0, 1, 0, 0])
    labels = metrics.probability_labels(frame_of(predicted, BINARY))
    assert labels == ["0", "1"]
    assert metrics.confusion(targets, predicted, labels) == [[2, 0], [1, 1]]
    assert metrics.confusion(pd.Series([0, 1, 1, 0]), predicted, [0, 1]) == [[2, 0], [1, 1]]
    curve = metrics.roc(pd.Series([0, 1, 1, 0]), np.array([0.1, 0.9, 0.8, 0.3]), 1)
    assert curve["tpr"][-1] == 1.0 and curve["fpr"][0] == 0.0
    assert curve == metrics.roc(targets, np.array([0.1, 0.9, 0.8, 0.3]), "1")


# %% THRESHOLDS


def test_task_metrics_and_default_thresholds():
    assert metrics.TASK_METRICS == {
        "regression": ("rmse", "mae", "r2"),
        "classification": ("accuracy", "f1_macro", "roc_auc", "log_loss"),
    }
    assert metrics.DEFAULT_THRESHOLDS == {"regression": {"r2": 0.0}, "classification": {}}
    for task, thresholds in metrics.DEFAULT_THRESHOLDS.items():
        metrics.check_thresholds(task, thresholds)


def test_check_thresholds_refuses_metrics_of_the_other_task():
    metrics.check_thresholds("classification", {"f1_macro": 0.6, "roc_auc": 0.7})
    metrics.check_thresholds("regression", {"rmse": 80.0})
    with pytest.raises(
        ValueError,
        match="threshold on 'r2' does not apply to a classification model; its metrics: "
        "accuracy, f1_macro, roc_auc, log_loss",
    ):
        metrics.check_thresholds("classification", {"r2": 0.0})
    with pytest.raises(
        ValueError, match="thresholds on 'accuracy', 'mape' do not apply to a regression model"
    ):
        metrics.check_thresholds("regression", {"accuracy": 0.5, "mape": 0.1})


def test_the_task_is_read_from_the_metrics_a_run_logged():
    assert metrics.task_of({"test_rmse": 3.0, "test_r2": 0.5}, prefix="test_") == "regression"
    assert metrics.task_of({"f1_macro": 0.8, "accuracy": 0.9}) == "classification"
    with pytest.raises(ValueError, match="cannot tell the task from the metrics none: a regr"):
        metrics.task_of({}, prefix="test_")
    assert metrics.holdout_metric("classification", "") == "test_f1_macro"
