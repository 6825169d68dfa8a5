"""Metrics: score predictions and compare models on the metrics each task cares about."""

from __future__ import annotations

import typing as T

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from components.core import models

# Whether lower ("min") or higher ("max") is better, for every metric the project computes.
DIRECTIONS: dict[str, T.Literal["min", "max"]] = {
    "rmse": "min",
    "mae": "min",
    "r2": "max",
    "accuracy": "max",
    "f1_macro": "max",
    "roc_auc": "max",
    "log_loss": "min",
}
# The metric that decides whether a candidate beats the Champion.
PRIMARY: dict[models.Task, str] = {"regression": "rmse", "classification": "f1_macro"}


def score(task: models.Task, targets: pd.Series, predictions: pd.DataFrame) -> dict[str, float]:
    """Compute the task's metrics from `models.predict_frame` outputs."""
    if task == "regression":
        predicted = predictions[models.PREDICTION].to_numpy(dtype=float)
        return {
            "rmse": float(skm.root_mean_squared_error(targets, predicted)),
            "mae": float(skm.mean_absolute_error(targets, predicted)),
            "r2": float(skm.r2_score(targets, predicted)),
        }
    labels = probability_labels(predictions)
    probabilities = predictions[[models.probability_column(x) for x in labels]].to_numpy(float)
    results = {
        "accuracy": float(skm.accuracy_score(targets, predictions[models.PREDICTION])),
        "f1_macro": float(
            skm.f1_score(targets, predictions[models.PREDICTION], average="macro", zero_division=0)
        ),
    }
    if set(pd.unique(targets)) <= set(labels) and len(pd.unique(targets)) > 1:
        scores = probabilities[:, 1] if len(labels) == 2 else probabilities
        results["roc_auc"] = float(
            skm.roc_auc_score(targets, scores, labels=labels, multi_class="ovr")
            if len(labels) > 2
            else skm.roc_auc_score(targets == labels[1], scores)
        )
        results["log_loss"] = float(skm.log_loss(targets, probabilities, labels=labels))
    return results


def probability_labels(predictions: pd.DataFrame) -> list[T.Any]:
    """The class labels of the probability columns, in column order."""
    prefix = models.PROBABILITY_PREFIX
    return [c.removeprefix(prefix) for c in predictions.columns if c.startswith(prefix)]


def confusion(targets: pd.Series, predicted: pd.Series, labels: list[T.Any]) -> list[list[int]]:
    """The confusion matrix, rows = true label, columns = predicted label, in label order."""
    matrix = skm.confusion_matrix(targets.astype(str), predicted.astype(str), labels=labels)
    return matrix.astype(int).tolist()


def roc(targets: pd.Series, scores: np.ndarray, positive: T.Any) -> dict[str, list[float]]:
    """The ROC curve of one class against the rest, thinned to at most 200 points."""
    fpr, tpr, thresholds = skm.roc_curve(targets.astype(str) == str(positive), scores)
    keep = np.unique(np.linspace(0, len(fpr) - 1, num=min(200, len(fpr))).astype(int))
    thresholds = np.where(np.isfinite(thresholds), thresholds, 1.0)
    return {
        "fpr": fpr[keep].tolist(),
        "tpr": tpr[keep].tolist(),
        "thresholds": thresholds[keep].tolist(),
    }


def meets(metric: str, value: float, threshold: float) -> bool:
    """Whether a metric value satisfies a threshold in the metric's own direction."""
    if metric not in DIRECTIONS:
        raise ValueError(f"unknown metric '{metric}'; known: {', '.join(sorted(DIRECTIONS))}")
    return value <= threshold if DIRECTIONS[metric] == "min" else value >= threshold


def at_least_as_good(metric: str, candidate: float, incumbent: float, tolerance: float) -> bool:
    """Whether the candidate is no worse than the incumbent, allowing a relative tolerance."""
    slack = abs(incumbent) * tolerance
    if DIRECTIONS[metric] == "min":
        return candidate <= incumbent + slack
    return candidate >= incumbent - slack
