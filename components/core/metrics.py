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
# The metrics `score` computes for each task (roc_auc and log_loss need 2+ classes in targets).
TASK_METRICS: dict[models.Task, tuple[str, ...]] = {
    "regression": ("rmse", "mae", "r2"),
    "classification": ("accuracy", "f1_macro", "roc_auc", "log_loss"),
}
# Thresholds a model must meet unless told otherwise: a regressor no worse than predicting the
# mean (r2 >= 0).
DEFAULT_THRESHOLDS: dict[models.Task, dict[str, float]] = {
    "regression": {"r2": 0.0},
    "classification": {},
}


# Training and evaluation log each metric on their runs as `test_<metric>`.
HOLDOUT_PREFIX = "test_"


def holdout_metric(task: models.Task, metric: str) -> str:
    """A task's holdout metric as the runs log it: `rmse` or `test_rmse` -> `test_rmse`.

    An empty name is the task's primary metric.

    Raises:
        ValueError: the task does not compute the metric; the message lists those it does.
    """
    name = metric.removeprefix(HOLDOUT_PREFIX) or PRIMARY.get(task, "")
    if name not in TASK_METRICS.get(task, ()):
        allowed = ", ".join(HOLDOUT_PREFIX + known for known in TASK_METRICS.get(task, ()))
        raise ValueError(f"{metric!r} is not a metric of a {task} model; allowed: {allowed}")
    return HOLDOUT_PREFIX + name


def task_of(scores: T.Mapping[str, float], prefix: str = "") -> models.Task:
    """The task whose metrics a run logged (`test_rmse` and the rest: regression).

    Raises:
        ValueError: the scores hold the primary metric of no task (or of both).
    """
    tasks = [task for task, primary in PRIMARY.items() if prefix + primary in scores]
    if len(tasks) != 1:
        raise ValueError(
            f"cannot tell the task from the metrics {', '.join(sorted(scores)) or 'none'}: "
            f"a regressor logs {prefix}rmse, a classifier {prefix}f1_macro"
        )
    return tasks[0]


def direction(metric: str) -> T.Literal["min", "max"]:
    """Whether lower ("min") or higher ("max") is better, for a metric or its `test_` name.

    Raises:
        ValueError: an unknown metric; the message lists the known ones.
    """
    name = metric.removeprefix(HOLDOUT_PREFIX)
    if name not in DIRECTIONS:
        raise ValueError(f"unknown metric '{metric}'; known: {', '.join(sorted(DIRECTIONS))}")
    return DIRECTIONS[name]


def check_thresholds(task: models.Task, thresholds: T.Mapping[str, float]) -> None:
    """Refuse thresholds on metrics that the task does not compute.

    Raises:
        ValueError: a threshold names a metric of the other task, or an unknown metric.
    """
    if task not in TASK_METRICS:
        raise ValueError(f"unknown task '{task}'; known: {', '.join(TASK_METRICS)}")
    computed = TASK_METRICS[task]
    wrong = [name for name in thresholds if name not in computed]
    if wrong:
        names = ", ".join(f"'{name}'" for name in wrong)
        raise ValueError(
            f"threshold{'s' if len(wrong) > 1 else ''} on {names} "
            f"{'do' if len(wrong) > 1 else 'does'} not apply to a {task} model; "
            f"its metrics: {', '.join(computed)}"
        )


def score(task: models.Task, targets: pd.Series, predictions: pd.DataFrame) -> dict[str, float]:
    """Compute the task's metrics from `models.predict_frame` outputs.

    Class labels are compared as text, spelled as in the probability column names, so that
    integer, boolean and text labels all get every metric (1 and 1.0 both read "1" when the
    model's labels are integers). roc_auc and log_loss need probability columns and at least
    2 classes among the targets, all of them known to the model.
    """
    if task == "regression":
        predicted = predictions[models.PREDICTION].to_numpy(dtype=float)
        return {
            "rmse": float(skm.root_mean_squared_error(targets, predicted)),
            "mae": float(skm.mean_absolute_error(targets, predicted)),
            "r2": float(skm.r2_score(targets, predicted)),
        }
    labels = probability_labels(predictions)
    truth = as_labels(targets, labels)
    predicted = as_labels(predictions[models.PREDICTION], labels)
    results = {
        "accuracy": float(skm.accuracy_score(truth, predicted)),
        "f1_macro": float(skm.f1_score(truth, predicted, average="macro", zero_division=0)),
    }
    present = set(truth)
    if len(labels) < 2 or not present <= set(labels) or len(present) < 2:
        return results
    columns = [models.probability_column(label) for label in labels]
    probabilities = predictions[columns].to_numpy(dtype=float)
    if len(labels) == 2:
        results["roc_auc"] = float(skm.roc_auc_score(truth == labels[1], probabilities[:, 1]))
    elif len(present) == len(labels):
        # sklearn wants the labels sorted and the probability columns in their order.
        order = np.argsort(np.asarray(labels, dtype=object).astype(str), kind="stable")
        results["roc_auc"] = float(
            skm.roc_auc_score(
                truth,
                probabilities[:, order],
                labels=[labels[i] for i in order],
                multi_class="ovr",
            )
        )
    else:
        # A class absent from the targets has no one-vs-rest curve: average over the others.
        results["roc_auc"] = float(
            np.mean(
                [
                    skm.roc_auc_score(truth == label, probabilities[:, i])
                    for i, label in enumerate(labels)
                    if label in present
                ]
            )
        )
    order = np.argsort(np.asarray(labels, dtype=object).astype(str), kind="stable")
    # XGBoost's probabilities are float32: they sum to one within float32 rounding, which
    # sklearn's float64 check calls not summing to one (a warning per call). Rescaled rows
    # sum to one in float64; the loss moves by less than that rounding.
    totals = probabilities.sum(axis=1, keepdims=True)
    scaled = np.divide(probabilities, totals, out=probabilities.copy(), where=totals > 0)
    results["log_loss"] = float(
        skm.log_loss(truth, scaled[:, order], labels=[labels[i] for i in order])
    )
    return results


def probability_labels(predictions: pd.DataFrame) -> list[str]:
    """The class labels of the probability columns, in column order, as text."""
    prefix = models.PROBABILITY_PREFIX
    return [c.removeprefix(prefix) for c in predictions.columns if c.startswith(prefix)]


def as_labels(values: T.Any, labels: T.Sequence[str] = ()) -> pd.Series:
    """Class labels as text, spelled like the given labels where a spelling matches better.

    Integers, booleans and text read as `str` does (1, True, "a"); numbers read as whole
    numbers ("1") or as floats ("1.0"), whichever matches more of `labels`: a target widened
    to float by missing values still meets the model's integer labels.

    Args:
        values: the labels (targets or predictions).
        labels: the spellings to match, e.g. `probability_labels(predictions)`.

    Returns:
        A series of strings (missing values read "nan"), with a fresh 0..n-1 index.
    """
    series = pd.Series(values).reset_index(drop=True)
    best = series.astype(object).map(str)
    known = set(labels)
    if not known or pd.api.types.is_bool_dtype(series.dtype):
        return best
    if not pd.api.types.is_numeric_dtype(series.dtype):
        return best
    numbers = series.astype("float64")
    spellings = [numbers.map(str)]
    finite = numbers.dropna()
    if np.isfinite(finite).all() and (finite == np.round(finite)).all():
        spellings.append(numbers.map(lambda x: str(int(x)) if np.isfinite(x) else str(x)))
    for spelling in spellings:
        if spelling.isin(known).sum() > best.isin(known).sum():
            best = spelling
    return best


def confusion(targets: pd.Series, predicted: pd.Series, labels: list[T.Any]) -> list[list[int]]:
    """The confusion matrix, rows = true label, columns = predicted label, in label order."""
    labels = [str(label) for label in labels]
    matrix = skm.confusion_matrix(
        as_labels(targets, labels), as_labels(predicted, labels), labels=labels
    )
    return matrix.astype(int).tolist()


def roc_class(targets: pd.Series, labels: list[str]) -> str | None:
    """The class whose ROC curve against the rest is drawn, or None when no class has one.

    The last label (the positive class of a binary model: 1, True, "yes"), unless the targets
    lack it or hold nothing else: a curve needs rows of the class and rows of the rest. Then
    the last label that has both; None when the targets hold fewer than two of the labels.
    """
    present = set(as_labels(targets, labels))
    if len(present & set(labels)) < 2:
        return None
    return next(label for label in reversed(labels) if label in present)


def roc(targets: pd.Series, scores: np.ndarray, positive: T.Any) -> dict[str, list[float]]:
    """The ROC curve of one class against the rest, thinned to at most 200 points."""
    positive = str(positive)
    fpr, tpr, thresholds = skm.roc_curve(as_labels(targets, [positive]) == positive, scores)
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


def worse_than_champion(
    task: models.Task,
    scores: dict[str, float],
    champion_scores: dict[str, float],
    champion: str,
    tolerance: float,
) -> str | None:
    """Why a candidate loses to the Champion on the task's primary metric, or None if it does not.

    Args:
        task: regression or classification.
        scores: the candidate's metrics.
        champion_scores: the Champion's metrics on the same rows.
        champion: how to name the Champion in the reason (e.g. "bike-sharing v3").
        tolerance: how much worse the candidate may be, relative (0.02 = 2%).
    """
    primary = PRIMARY[task]
    if at_least_as_good(primary, scores[primary], champion_scores[primary], tolerance):
        return None
    return (
        f"{primary}={scores[primary]:.4g} is worse than the Champion {champion} "
        f"({champion_scores[primary]:.4g})"
    )
