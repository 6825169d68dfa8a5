"""Estimation: a model's performance on inference rows before their labels arrive.

At training, `fit` learns from the holdout (its targets and the model's `predict_frame` output)
how the model's outputs relate to its errors, and keeps the holdout's realised metrics:

- a classifier (CBPE, confidence-based performance estimation): a per-class calibration of the
  predicted probabilities, isotonic and one-vs-rest (each block's rate shrunk by one pseudo-row
  at the class's base rate, see `_fit_class`), stored as its thresholds (plain JSON lists) and
  applied with `numpy.interp`; the calibrated class probabilities are renormalised to sum to 1.
  A calibrated probability is the chance that a row is of that class, so a batch's expected
  confusion matrix is the sum of its rows' calibrated probabilities, by predicted class: expected
  accuracy and F1 (macro) follow from it. Expected ROC AUC comes from a histogram of each class's
  score (the model's own probability, whose ranking the realised AUC uses) in 100 bins at the
  holdout's quantiles, with the expected positives in each bin; rows of one bin count as ties.
- a regressor (DLE-style, direct loss estimation): the holdout's mean absolute and squared error
  in 20 quantile bins of the prediction. A batch's expected MAE and MSE are the bins' means
  weighted by the batch's rows in each bin. It sees the errors' dependence on the prediction
  (larger counts, larger errors) and nothing else: a batch whose error grows with a feature at
  the same predicted value (heteroscedasticity driven by other features) is estimated as the
  holdout was, and predictions beyond the holdout's range take the outer bins' errors. On the
  bike data, a batch of the most humid hours has a realised MAE about 25% above the estimate:
  humidity makes the counts harder to predict at any predicted level.

At inference, `EstimateCounter` tallies the batches' predictions (no labels) into fixed-size,
additive sums (`EstimateTally`): memory is fixed by the classes and bins, never by the rows, and
tallies of batches or shards add up (`merge`). The sums of probabilities are kept in fixed point
(integers), so that the tally of the whole and the merged tallies of its parts are equal to the
last digit, whatever the sharding. `estimate` then turns a tally into each metric's estimate, a
95% band and the holdout's value.

The band is estimate +- 1.96 standard errors, two sources of error added in quadrature: the
batch's own sampling (its realised metric varies around the expectation even when the fitted
relation holds) and the fit's (it was learnt from the holdout's rows only). Both shrink with the
rows: the first with the batch's, the second with the holdout's. What neither covers is a change
of the relation itself (concept drift, or a covariate shift that the calibration or the
prediction bins cannot see): there the estimate is biased, as every label-free estimate is.
"""

from __future__ import annotations

import math
import typing as T

import numpy as np
import pandas as pd  # type: ignore[import-untyped]
import pydantic as pdt
from sklearn import isotonic
from sklearn import metrics as skm

from components.core import metrics, models

ESTIMATOR_VERSION = 1
# Quantile bins of each class's score, for the expected ROC AUC: rows in one bin count as ties.
SCORE_BINS = 100
# Quantile bins of a regressor's prediction, and the fewest holdout rows a bin is fitted on
# (fewer bins on a small holdout: a bin's mean error from a handful of rows is noise).
ERROR_BINS = 20
MIN_BIN_ROWS = 25
# Fixed point of the probability sums: integers add up exactly, in any order (2**30 leaves
# room for billions of rows per batch in int64, and resolves 1e-9 per row).
FIXED_POINT = 2**30
# Pseudo-rows at the class's base rate added to each isotonic block of a calibration.
PRIOR_ROWS = 1.0
# Bootstrap resamples of the holdout that measure the spread of F1 and ROC AUC.
BOOTSTRAPS = 100
# The normal quantile of a two-sided 95% band.
Z95 = 1.959963984540054
# The metrics estimated for each task, in the order they are reported.
ESTIMATED: dict[models.Task, tuple[str, ...]] = {
    "classification": ("accuracy", "f1_macro", "roc_auc"),
    "regression": ("mae", "rmse"),
}
# Metrics bounded above by 1 (the others only by 0 below).
FRACTIONS = {"accuracy", "f1_macro", "roc_auc"}


# %% FITTED RELATIONS


class PerformanceError(ValueError):
    """The estimated performance is worse than the holdout's beyond the tolerance, under `fail`."""


class ClassCalibration(pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """The isotonic calibration of one class's probability, one-vs-rest.

    Args:
        label: the class label, as text (as in its probability column's name).
        x: the thresholds of the model's probability (increasing).
        y: the calibrated probability at each threshold (non-decreasing, in [0, 1]).
    """

    label: str
    x: list[float] = pdt.Field(min_length=1)
    y: list[float] = pdt.Field(min_length=1)

    @pdt.model_validator(mode="after")
    def _as_many_values_as_thresholds(self) -> T.Self:
        if len(self.x) != len(self.y):
            raise ValueError(
                f"class '{self.label}': {len(self.x)} thresholds, {len(self.y)} values"
            )
        if any(b < a for a, b in zip(self.x, self.x[1:], strict=False)):
            raise ValueError(f"class '{self.label}': the thresholds must be increasing")
        return self

    def apply(self, probabilities: np.ndarray) -> np.ndarray:
        """The calibrated probabilities (clipped to the thresholds' range, as fitted)."""
        calibrated: np.ndarray = np.interp(probabilities, self.x, self.y)
        return calibrated


class Calibration(pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """What CBPE fits on a classifier's holdout.

    Args:
        labels: the model's classes, as text, in its probability columns' order.
        classes: each class's calibration, in the labels' order.
        score_edges: the inner edges of the score bins (holdout quantiles of the model's
            probability), for each class whose ROC curve is scored: the second class of a binary
            model, every class of a multiclass one that the holdout has (one-vs-rest, averaged
            as `metrics.score` does).
        spread: per metric, the per-row standard deviation of the realised metric on the
            holdout (bootstrap): its standard error over n rows is spread / sqrt(n).
        absent: the classes of a multiclass model that the holdout has no row of (a class of a
            single row trains and is never held out): calibrated as never true, no ROC curve.
    """

    kind: T.Literal["cbpe"] = "cbpe"
    labels: list[str] = pdt.Field(min_length=2)
    classes: list[ClassCalibration]
    score_edges: list[list[float]]
    spread: dict[str, float]
    absent: list[str] = pdt.Field(default_factory=list)

    @property
    def scored(self) -> list[int]:
        """The classes whose ROC AUC is estimated, by position."""
        if len(self.labels) == 2:
            return [1]
        return [i for i, label in enumerate(self.labels) if label not in self.absent]

    def calibrate(self, probabilities: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities (rows sum to 1) from the model's (rows x classes).

        A row that every class calibrates to 0 (possible only for scores far outside the
        holdout's) keeps the model's own probabilities.
        """
        conditioned = self.conditioned(probabilities)
        columns = [
            calibration.apply(conditioned[:, i]) for i, calibration in enumerate(self.classes)
        ]
        calibrated = np.column_stack(columns)
        total = calibrated.sum(axis=1, keepdims=True)
        safe = np.where(total > 0, total, 1.0)
        return np.where(total > 0, calibrated / safe, probabilities)

    def conditioned(self, probabilities: np.ndarray) -> np.ndarray:
        """The model's probabilities given that no row is of an absent class: what is calibrated.

        An absent class's probability is set to 0 and each row's others rescaled to sum to 1.
        Calibrated one-vs-rest on the raw probabilities instead, the mass the model puts on an
        absent class lowers every other class's calibrated share when the row is renormalised:
        the expected accuracy came out 2 to 3 points below the realised one. A row with all
        its mass on absent classes keeps its probabilities.
        """
        if not self.absent:
            return probabilities
        kept = probabilities.copy()
        kept[:, [self.labels.index(label) for label in self.absent]] = 0.0
        total = kept.sum(axis=1, keepdims=True)
        return np.where(total > 0, kept / np.where(total > 0, total, 1.0), probabilities)


class ErrorLookup(pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """What DLE fits on a regressor's holdout: the errors in quantile bins of the prediction.

    Args:
        edges: the inner bin edges (holdout quantiles of the prediction, increasing): bin i
            holds the predictions in [edges[i - 1], edges[i]), the outer bins are open-ended.
        rows: the holdout rows in each bin (len(edges) + 1, none empty).
        absolute: the mean absolute error in each bin.
        squared: the mean squared error in each bin.
        absolute_variance: the variance of the absolute error in each bin.
        squared_variance: the variance of the squared error in each bin.
    """

    kind: T.Literal["dle"] = "dle"
    edges: list[float]
    rows: list[int]
    absolute: list[float]
    squared: list[float]
    absolute_variance: list[float]
    squared_variance: list[float]

    @pdt.model_validator(mode="after")
    def _one_value_per_bin(self) -> T.Self:
        bins = len(self.edges) + 1
        lists: list[T.Sized] = [self.rows, self.absolute, self.squared]
        lists += [self.absolute_variance, self.squared_variance]
        if any(len(values) != bins for values in lists):
            raise ValueError(f"an error lookup of {bins} bins needs {bins} values per statistic")
        return self

    def bins(self, predictions: np.ndarray) -> np.ndarray:
        """The bin of each prediction."""
        return np.searchsorted(np.asarray(self.edges), predictions, side="right")


Fitted = T.Annotated[Calibration | ErrorLookup, pdt.Field(discriminator="kind")]
KINDS: dict[models.Task, str] = {"classification": "cbpe", "regression": "dle"}


class Estimator(pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """How to estimate a model's performance without labels, as fitted on its holdout.

    Args:
        version: the estimator format.
        task: regression or classification.
        rows: holdout rows fitted on.
        holdout: the holdout's realised metrics (those estimated; roc_auc when computable).
        fitted: the calibration (classifier) or the error lookup (regressor).
    """

    version: int = ESTIMATOR_VERSION
    task: models.Task
    rows: int = pdt.Field(gt=0)
    holdout: dict[str, float]
    fitted: Fitted

    @pdt.model_validator(mode="after")
    def _fitted_for_the_task(self) -> T.Self:
        if self.fitted.kind != KINDS[self.task]:
            raise ValueError(f"a {self.task} estimator cannot hold a '{self.fitted.kind}' fit")
        return self


# %% FITTING ON THE HOLDOUT


def fit(task: models.Task, targets: pd.Series, predictions: pd.DataFrame) -> Estimator:
    """Fit the estimator of a model on its holdout.

    Args:
        task: regression or classification.
        targets: the holdout's targets.
        predictions: the model's `models.predict_frame` output on the holdout rows, in order.

    Raises:
        ValueError: the holdout is empty, targets and predictions disagree in length, a column
            is missing or holds missing values, or a classifier's holdout holds a single class.
    """
    if task not in KINDS:
        raise ValueError(f"unknown task '{task}'; known: {', '.join(KINDS)}")
    if len(targets) == 0:
        raise ValueError("the holdout has no rows: an estimator is fitted on the holdout")
    if len(targets) != len(predictions):
        raise ValueError(
            f"the holdout has {len(targets):,} targets but {len(predictions):,} predictions"
        )
    targets = targets.reset_index(drop=True)
    predictions = predictions.reset_index(drop=True)
    absent = int(targets.isna().sum())
    if absent:
        raise ValueError(
            f"the holdout's targets have {absent:,} missing values of {len(targets):,}"
        )
    # Fitted first: it checks the columns, before the holdout's metrics are computed from them.
    if task == "classification":
        fitted: Calibration | ErrorLookup = _fit_calibration(targets, predictions)
    else:
        fitted = _fit_errors(targets, predictions)
    realised = metrics.score(task, targets, predictions)
    holdout = {name: realised[name] for name in ESTIMATED[task] if name in realised}
    return Estimator(task=task, rows=len(targets), holdout=holdout, fitted=fitted)


def _fit_calibration(targets: pd.Series, predictions: pd.DataFrame) -> Calibration:
    labels, probabilities, predicted = _read_classes(predictions)
    truth = _codes(metrics.as_labels(targets, labels), labels, "the holdout's targets")
    present = np.bincount(truth, minlength=len(labels))
    if np.count_nonzero(present) < 2:
        raise ValueError(
            f"the holdout's targets hold a single class ('{labels[int(np.argmax(present))]}'): "
            "calibration needs at least two"
        )
    # A class the holdout lacks (a multiclass model's rare one) calibrates to 0: never true.
    missing = [label for label, count in zip(labels, present, strict=True) if count == 0]
    fitted = Calibration(labels=labels, classes=[], score_edges=[], spread={}, absent=missing)
    conditioned = fitted.conditioned(probabilities)
    classes = [_fit_class(label, conditioned[:, i], truth == i) for i, label in enumerate(labels)]
    edges = [_quantile_edges(probabilities[:, i], SCORE_BINS) for i in fitted.scored]
    spread = _bootstrap_spread(truth, predicted, probabilities, fitted.scored, len(labels))
    return fitted.model_copy(update={"classes": classes, "score_edges": edges, "spread": spread})


def _fit_class(label: str, probabilities: np.ndarray, positive: np.ndarray) -> ClassCalibration:
    """Isotonic calibration of one class, each block's rate shrunk by PRIOR_ROWS.

    Isotonic regression pools the holdout rows into blocks of increasing rate; the outer
    blocks are the runs of rows that happened to be all of the class (or none of it), at a rate
    of exactly 1 (or 0): on fresh rows, where a few of the other class do come up, that is
    overconfident, and the expected ROC AUC and accuracy come out high. A pseudo-row at the
    class's base rate in every block (a Beta prior's posterior mean) takes that edge off and
    barely moves the large blocks.
    """
    regression = isotonic.IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    targets = positive.astype("float64")
    regression.fit(probabilities, targets)
    order = np.argsort(probabilities, kind="stable")
    scores, truth = probabilities[order], targets[order]
    fitted = regression.predict(scores)
    starts = np.flatnonzero(np.r_[True, np.diff(fitted) != 0])
    stops = np.r_[starts[1:], len(fitted)]
    base_rate = float(truth.mean())
    x: list[float] = []
    y: list[float] = []
    for start, stop in zip(starts, stops, strict=True):
        rate = (float(truth[start:stop].sum()) + PRIOR_ROWS * base_rate) / (
            stop - start + PRIOR_ROWS
        )
        # A block spans its lowest to its highest score; np.interp joins the blocks linearly.
        ends = {float(scores[start]), float(scores[stop - 1])}
        x += sorted(ends)
        y += [rate] * len(ends)
    return ClassCalibration(label=label, x=x, y=y)


def _bootstrap_spread(
    truth: np.ndarray,
    predicted: np.ndarray,
    probabilities: np.ndarray,
    scored: list[int],
    classes: int,
) -> dict[str, float]:
    """Per-row spread of each metric's realised value, from resamples of the holdout.

    Accuracy's is exact (a mean of 0/1); F1 and ROC AUC have no simple formula, so their
    standard error over the holdout is measured by bootstrap and scaled back to one row.
    """
    rows = len(truth)
    accuracy = float(np.mean(truth == predicted))
    if accuracy in (0.0, 1.0):
        # A holdout without a miss (or a hit) has no spread of its own, though 36 rows say
        # little: counted with one hit and one miss more (Laplace), its band stays open.
        accuracy = (accuracy * rows + 1) / (rows + 2)
    spread = {"accuracy": math.sqrt(accuracy * (1 - accuracy))}
    generator = np.random.default_rng(0)  # seeded: the same holdout fits the same estimator
    f1s: list[float] = []
    aucs: list[float] = []
    for _ in range(BOOTSTRAPS):
        sample = generator.integers(0, rows, rows)
        true, guess = truth[sample], predicted[sample]
        f1s.append(_f1_macro(true, guess, classes))
        curves = [
            float(skm.roc_auc_score(true == k, probabilities[sample, k]))
            for k in scored
            if 0 < np.count_nonzero(true == k) < rows
        ]
        if len(curves) == len(scored):
            aucs.append(float(np.mean(curves)))
    # Resamples of a perfect holdout are all perfect: their spread is the accuracy's then.
    spread["f1_macro"] = float(np.std(f1s)) * math.sqrt(rows) or spread["accuracy"]
    if len(aucs) > 1:
        spread["roc_auc"] = float(np.std(aucs)) * math.sqrt(rows) or spread["accuracy"]
    return spread


def _f1_macro(truth: np.ndarray, predicted: np.ndarray, classes: int) -> float:
    """F1 (macro) of class codes, over the classes among either, as sklearn averages it."""
    hits = np.bincount(truth[truth == predicted], minlength=classes)
    truly = np.bincount(truth, minlength=classes)
    guessed = np.bincount(predicted, minlength=classes)
    seen = (truly + guessed) > 0
    f1s = 2 * hits[seen] / (truly[seen] + guessed[seen])
    return float(f1s.mean())


def _fit_errors(targets: pd.Series, predictions: pd.DataFrame) -> ErrorLookup:
    predicted = _read_regression(predictions)
    truth = _numbers(targets, "the holdout's targets")
    bins = max(1, min(ERROR_BINS, len(predicted) // MIN_BIN_ROWS))
    edges = _quantile_edges(predicted, bins)
    lookup = ErrorLookup(
        edges=edges,
        rows=[0] * (len(edges) + 1),
        absolute=[0.0] * (len(edges) + 1),
        squared=[0.0] * (len(edges) + 1),
        absolute_variance=[0.0] * (len(edges) + 1),
        squared_variance=[0.0] * (len(edges) + 1),
    )
    errors = predicted - truth
    where = lookup.bins(predicted)
    statistics: dict[str, list[T.Any]] = {name: [] for name in ErrorLookup.model_fields}
    for index in range(len(edges) + 1):
        absolute = np.abs(errors[where == index])
        squared = absolute**2
        statistics["rows"].append(len(absolute))
        statistics["absolute"].append(float(absolute.mean()))
        statistics["squared"].append(float(squared.mean()))
        statistics["absolute_variance"].append(_variance(absolute))
        statistics["squared_variance"].append(_variance(squared))
    fields = ("rows", "absolute", "squared", "absolute_variance", "squared_variance")
    return lookup.model_copy(update={name: statistics[name] for name in fields})


def _variance(values: np.ndarray) -> float:
    return float(values.var(ddof=1)) if len(values) > 1 else 0.0


def _quantile_edges(values: np.ndarray, bins: int) -> list[float]:
    """Inner edges of about equally filled bins, none of them empty.

    The quantiles are values of the data ("inverted_cdf"), so each bin [edge, next edge) holds
    at least its lower edge; an edge at the minimum would leave the first bin empty.
    """
    quantiles = np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1], method="inverted_cdf")
    edges = np.unique(quantiles)
    return [float(edge) for edge in edges[edges > values.min()]]


# %% READING A BATCH OF PREDICTIONS


def _read_classes(
    predictions: pd.DataFrame, labels: list[str] | None = None
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """A classifier's labels, probabilities (rows x classes) and predicted class codes.

    Args:
        predictions: `models.predict_frame` output.
        labels: the classes expected (at inference, those fitted); None: those found.
    """
    found = metrics.probability_labels(predictions)
    if labels is None:
        if not found:
            raise ValueError(
                "a classifier's predictions need probability columns "
                f"('{models.probability_column('<label>')}'); found: {_listed(predictions)}"
            )
        if len(found) < 2:
            raise ValueError(
                f"a classifier's predictions need a probability column per class; only "
                f"'{models.probability_column(found[0])}' was found: calibration needs two"
            )
        labels = found
    absent = [models.probability_column(label) for label in labels if label not in found]
    if absent:
        raise ValueError(
            f"the predictions lack the probability column(s) {', '.join(absent)} of the "
            f"model's classes; found: {_listed(predictions)}"
        )
    if models.PREDICTION not in predictions.columns:
        raise ValueError(f"the predictions have no '{models.PREDICTION}' column")
    columns = [models.probability_column(label) for label in labels]
    probabilities = np.column_stack(
        [_numbers(predictions[column], f"column '{column}'") for column in columns]
    )
    predicted = _codes(_label_text(predictions[models.PREDICTION], labels), labels, "predictions")
    return labels, probabilities, predicted


def _label_text(values: pd.Series, labels: list[str]) -> pd.Series:
    """Labels as text spelled as the classes, converting each distinct value once."""
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    spelled = metrics.as_labels(pd.Series(uniques, dtype=values.dtype), labels)
    return pd.Series(spelled.to_numpy(dtype=object)[codes])


def _codes(labels_as_text: pd.Series, labels: list[str], what: str) -> np.ndarray:
    """Each label's position among the classes; a label that is none of them is refused."""
    codes = pd.Index(labels).get_indexer(labels_as_text)
    unknown = codes < 0
    if unknown.any():
        examples = sorted(set(labels_as_text[unknown]))[:5]
        raise ValueError(
            f"{np.count_nonzero(unknown):,} of {len(codes):,} {what} are not among the model's "
            f"classes ({', '.join(labels)}): {', '.join(map(repr, examples))}"
        )
    return np.asarray(codes, dtype=np.int64)


def _read_regression(predictions: pd.DataFrame) -> np.ndarray:
    if models.PREDICTION not in predictions.columns:
        raise ValueError(
            f"the predictions have no '{models.PREDICTION}' column; found: {_listed(predictions)}"
        )
    return _numbers(predictions[models.PREDICTION], f"column '{models.PREDICTION}'")


def _numbers(series: pd.Series, what: str) -> np.ndarray:
    """A column as finite float64; missing, non-numeric and infinite values are refused."""
    values: np.ndarray = pd.to_numeric(series, errors="coerce").to_numpy(
        dtype="float64", na_value=np.nan
    )
    bad = ~np.isfinite(values)
    if bad.any():
        raise ValueError(
            f"{what} has {np.count_nonzero(bad):,} missing, non-numeric or infinite values "
            f"of {len(values):,} rows"
        )
    return values


def _listed(frame: pd.DataFrame) -> str:
    return ", ".join(map(str, frame.columns)) or "no column"


# %% TALLIES OF A BATCH


class ScoreHistogram(pdt.BaseModel, strict=True, extra="forbid"):
    """One class's scores in the estimator's score bins.

    Args:
        rows: rows in each bin.
        positives: the expected rows of the class in each bin (sums of its calibrated
            probability, in units of 1 / FIXED_POINT).
    """

    rows: list[int]
    positives: list[int]

    def merge(self, other: ScoreHistogram) -> ScoreHistogram:
        """The histogram of both sets of rows."""
        if len(other.rows) != len(self.rows):
            raise ValueError("score histograms of different bins cannot be added up")
        return ScoreHistogram(
            rows=[a + b for a, b in zip(self.rows, other.rows, strict=True)],
            positives=[a + b for a, b in zip(self.positives, other.positives, strict=True)],
        )


class ClassTally(pdt.BaseModel, strict=True, extra="forbid"):
    """What a classifier's batches expect, in fixed point (units of 1 / FIXED_POINT).

    Args:
        confusion: the expected confusion matrix, rows = true class, columns = predicted class
            (sums of the calibrated probabilities of the rows predicted as each class).
        correct_variance: the sum over rows of p * (1 - p), p the calibrated probability of the
            predicted class: the variance of the count of correct rows.
        scores: each scored class's histogram.
    """

    kind: T.Literal["cbpe"] = "cbpe"
    confusion: list[list[int]]
    correct_variance: int = 0
    scores: list[ScoreHistogram]

    def merge(self, other: ClassTally) -> ClassTally:
        """The tally of both sets of rows."""
        if len(other.confusion) != len(self.confusion) or len(other.scores) != len(self.scores):
            raise ValueError("tallies of different classes cannot be added up")
        return ClassTally(
            confusion=[
                [a + b for a, b in zip(mine, theirs, strict=True)]
                for mine, theirs in zip(self.confusion, other.confusion, strict=True)
            ],
            correct_variance=self.correct_variance + other.correct_variance,
            scores=[a.merge(b) for a, b in zip(self.scores, other.scores, strict=True)],
        )


class ErrorTally(pdt.BaseModel, strict=True, extra="forbid"):
    """A regressor's batches in the estimator's prediction bins.

    Args:
        rows: rows in each bin.
    """

    kind: T.Literal["dle"] = "dle"
    rows: list[int]

    def merge(self, other: ErrorTally) -> ErrorTally:
        """The tally of both sets of rows."""
        if len(other.rows) != len(self.rows):
            raise ValueError("tallies of different prediction bins cannot be added up")
        return ErrorTally(rows=[a + b for a, b in zip(self.rows, other.rows, strict=True)])


Counted = T.Annotated[ClassTally | ErrorTally, pdt.Field(discriminator="kind")]


class EstimateTally(pdt.BaseModel, strict=True, extra="forbid"):
    """The sums an estimate needs: small, JSON, and added up across batches and shards.

    Args:
        rows: rows counted.
        counted: the classifier's or the regressor's sums.
    """

    rows: int = 0
    counted: Counted

    def merge(self, other: EstimateTally) -> EstimateTally:
        """The tally of both sets of rows (e.g. two shards)."""
        if isinstance(self.counted, ClassTally) and isinstance(other.counted, ClassTally):
            counted: ClassTally | ErrorTally = self.counted.merge(other.counted)
        elif isinstance(self.counted, ErrorTally) and isinstance(other.counted, ErrorTally):
            counted = self.counted.merge(other.counted)
        else:
            raise ValueError("a classifier's tally and a regressor's cannot be added up")
        return EstimateTally(rows=self.rows + other.rows, counted=counted)


def _fixed(values: np.ndarray) -> np.ndarray:
    """Probabilities in fixed point: int64 that add up exactly."""
    fixed: np.ndarray = np.rint(values * FIXED_POINT).astype(np.int64)
    return fixed


class _ClassCounter:
    """Sums a classifier's calibrated probabilities, batch after batch."""

    def __init__(self, calibration: Calibration):
        self.calibration = calibration
        classes = len(calibration.labels)
        self.confusion = np.zeros((classes, classes), dtype=np.int64)
        self.correct_variance = 0
        self.edges = [np.asarray(edges) for edges in calibration.score_edges]
        self.rows = [np.zeros(len(edges) + 1, dtype=np.int64) for edges in self.edges]
        self.positives = [np.zeros(len(edges) + 1, dtype=np.int64) for edges in self.edges]

    def add(self, predictions: pd.DataFrame) -> None:
        _, probabilities, predicted = _read_classes(predictions, self.calibration.labels)
        calibrated = self.calibration.calibrate(probabilities)
        fixed = _fixed(calibrated)
        for k in range(len(self.calibration.labels)):
            self.confusion[:, k] += fixed[predicted == k].sum(axis=0)
        chosen = calibrated[np.arange(len(predicted)), predicted]
        self.correct_variance += int(_fixed(chosen * (1 - chosen)).sum())
        for edges, rows, positives, k in zip(
            self.edges, self.rows, self.positives, self.calibration.scored, strict=True
        ):
            where = np.searchsorted(edges, probabilities[:, k], side="right")
            rows += np.bincount(where, minlength=len(rows))
            np.add.at(positives, where, fixed[:, k])

    def tally(self) -> ClassTally:
        return ClassTally(
            confusion=self.confusion.tolist(),
            correct_variance=self.correct_variance,
            scores=[
                ScoreHistogram(rows=rows.tolist(), positives=positives.tolist())
                for rows, positives in zip(self.rows, self.positives, strict=True)
            ],
        )


class _ErrorCounter:
    """Counts a regressor's predictions into the lookup's bins, batch after batch."""

    def __init__(self, lookup: ErrorLookup):
        self.lookup = lookup
        self.rows = np.zeros(len(lookup.rows), dtype=np.int64)

    def add(self, predictions: pd.DataFrame) -> None:
        where = self.lookup.bins(_read_regression(predictions))
        self.rows += np.bincount(where, minlength=len(self.rows))

    def tally(self) -> ErrorTally:
        return ErrorTally(rows=self.rows.tolist())


class EstimateCounter:
    """Tallies the predictions of an inference's batches for an estimate (no labels needed).

    Args:
        estimator: the model's estimator, as fitted on its holdout.
    """

    def __init__(self, estimator: Estimator):
        self.estimator = estimator
        self.rows = 0
        fitted = estimator.fitted
        self.counter: _ClassCounter | _ErrorCounter = (
            _ClassCounter(fitted) if isinstance(fitted, Calibration) else _ErrorCounter(fitted)
        )

    def add(self, predictions: pd.DataFrame) -> None:
        """Count a batch of predictions (`models.predict_frame` output).

        Raises:
            ValueError: a column is missing or holds missing values, or a predicted label is
                none of the model's classes; nothing of the batch is counted then.
        """
        self.counter.add(predictions)
        self.rows += len(predictions)

    def tally(self) -> EstimateTally:
        """What was counted so far."""
        return EstimateTally(rows=self.rows, counted=self.counter.tally())


# %% ESTIMATES


class MetricEstimate(pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """One metric's estimate on the batch.

    Args:
        metric: the metric's name, as `metrics.score` names it.
        value: the estimated value.
        lower: the lower end of the 95% band.
        upper: the upper end.
        holdout: the holdout's realised value (None when it could not be computed).
    """

    metric: str
    value: float
    lower: float
    upper: float
    holdout: float | None = None


class Estimate(pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """A model's estimated performance on the rows tallied.

    Args:
        task: regression or classification.
        rows: rows the estimate is over.
        holdout_rows: rows the estimator was fitted on.
        estimates: each metric's estimate, in `ESTIMATED` order (roc_auc left out when the batch
            expects no row of a class, or every row of one).
    """

    task: models.Task
    rows: int
    holdout_rows: int
    estimates: list[MetricEstimate]

    def get(self, metric: str) -> MetricEstimate:
        """One metric's estimate.

        Raises:
            KeyError: the metric was not estimated.
        """
        for estimate in self.estimates:
            if estimate.metric == metric:
                return estimate
        raise KeyError(f"'{metric}' was not estimated; estimated: {self._names()}")

    def _names(self) -> str:
        return ", ".join(estimate.metric for estimate in self.estimates)

    def headline(self, metric: str | None = None) -> str:
        """One line for an alert, e.g. `estimated rmse 71.2 (65.0 to 77.4; holdout 64.2) over ...`.

        Args:
            metric: the metric to give (default: the task's primary one, `metrics.PRIMARY`).
        """
        estimate = self.get(metric or metrics.PRIMARY[self.task])
        holdout = "" if estimate.holdout is None else f"; holdout {_number(estimate.holdout)}"
        return (
            f"estimated {estimate.metric} {_number(estimate.value)} ({_number(estimate.lower)} "
            f"to {_number(estimate.upper)}{holdout}) over {self.rows:,} rows"
        )

    def degraded(self, tolerance: float) -> list[MetricEstimate]:
        """The metrics confidently worse than the holdout's: their whole band is past it.

        Args:
            tolerance: how much worse than the holdout a metric may be, relative (0.1: 10%).
        """
        worse = []
        for estimate in self.estimates:
            if estimate.holdout is None:
                continue
            margin = abs(estimate.holdout) * tolerance
            if metrics.DIRECTIONS[estimate.metric] == "min":
                if estimate.lower > estimate.holdout + margin:
                    worse.append(estimate)
            elif estimate.upper < estimate.holdout - margin:
                worse.append(estimate)
        return worse

    def metrics(self) -> dict[str, float]:
        """Flat scores: `estimated_<metric>`, `_lower` and `_upper` each, and `estimated_rows`."""
        scores: dict[str, float] = {}
        for estimate in self.estimates:
            name = f"estimated_{estimate.metric}"
            scores[name] = estimate.value
            scores[f"{name}_lower"] = estimate.lower
            scores[f"{name}_upper"] = estimate.upper
        scores["estimated_rows"] = float(self.rows)
        return scores


def _number(value: float) -> str:
    """Three significant digits, without an exponent: 71.2, 65.0, 0.912, 1234."""
    if value == 0 or not math.isfinite(value):
        return f"{value:.3g}"
    decimals = max(0, 2 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"


def estimate(estimator: Estimator, tally: EstimateTally) -> Estimate:
    """Estimate the model's metrics on the rows tallied, each with a 95% band.

    Args:
        estimator: the model's estimator, as fitted on its holdout.
        tally: the inference rows' tally (`EstimateCounter.tally`, merged across shards).

    Raises:
        ValueError: no row was tallied, or the tally was counted for another estimator.
    """
    if tally.rows == 0:
        raise ValueError("no row was tallied: an estimate needs at least one row of predictions")
    fitted, counted = estimator.fitted, tally.counted
    if isinstance(fitted, Calibration) and isinstance(counted, ClassTally):
        values = _estimate_classification(fitted, counted, tally.rows, estimator.rows)
    elif isinstance(fitted, ErrorLookup) and isinstance(counted, ErrorTally):
        values = _estimate_regression(fitted, counted)
    else:
        raise ValueError(f"a {estimator.task} estimator cannot read a '{counted.kind}' tally")
    estimates = [
        _banded(name, value, error, estimator.holdout.get(name))
        for name, (value, error) in values.items()
    ]
    return Estimate(
        task=estimator.task, rows=tally.rows, holdout_rows=estimator.rows, estimates=estimates
    )


def _banded(metric: str, value: float, error: float, holdout: float | None) -> MetricEstimate:
    """The estimate with its 95% band, kept within the metric's range."""
    lower, upper = value - Z95 * error, value + Z95 * error
    if metric == "rmse":
        # The band of the MSE, mapped through the square root: error is the MSE's standard
        # error here (the RMSE's band is not symmetric).
        lower, upper = (
            math.sqrt(max(value**2 - Z95 * error, 0.0)),
            math.sqrt(value**2 + Z95 * error),
        )
    lower = max(lower, 0.0)
    if metric in FRACTIONS:
        upper = min(upper, 1.0)
    return MetricEstimate(metric=metric, value=value, lower=lower, upper=upper, holdout=holdout)


def _estimate_classification(
    calibration: Calibration, tally: ClassTally, rows: int, holdout_rows: int
) -> dict[str, tuple[float, float]]:
    """Each metric's (estimate, standard error), from the expected confusion and histograms."""
    classes = len(calibration.labels)
    if len(tally.confusion) != classes or len(tally.scores) != len(calibration.score_edges):
        raise ValueError(
            f"the tally counts {len(tally.confusion)} classes, the estimator has {classes}"
        )
    confusion = np.asarray(tally.confusion, dtype="float64") / FIXED_POINT
    truly, predicted = confusion.sum(axis=1), confusion.sum(axis=0)
    hits = np.diag(confusion)
    # Sampling: the batch's correct rows are a sum of Bernoulli(p) draws; fit: the calibration
    # was learnt from the holdout's rows, with about the holdout's standard error.
    sampling = tally.correct_variance / FIXED_POINT / rows**2
    fitting = calibration.spread["accuracy"] ** 2 / holdout_rows
    values = {"accuracy": (float(hits.sum() / rows), math.sqrt(sampling + fitting))}
    wrong = (truly - hits) + (predicted - hits)
    denominators = 2 * hits + wrong
    # Averaged over the classes expected among the targets or the predictions, as sklearn's
    # F1 (macro) averages over the labels in either.
    seen = denominators > 0
    f1s = np.divide(2 * hits, denominators, out=np.zeros(classes), where=seen)
    values["f1_macro"] = (
        float(f1s[seen].mean()) if seen.any() else 0.0,
        _spread_error(calibration, "f1_macro", rows, holdout_rows),
    )
    curves = [_expected_auc(histogram) for histogram in tally.scores]
    if "roc_auc" in calibration.spread and all(curve is not None for curve in curves):
        auc = float(np.mean(T.cast(list[float], curves)))
        values["roc_auc"] = (auc, _spread_error(calibration, "roc_auc", rows, holdout_rows))
    return values


def _spread_error(calibration: Calibration, metric: str, rows: int, holdout_rows: int) -> float:
    """Standard error over the batch's rows plus the holdout's own (the fit's)."""
    return calibration.spread[metric] * math.sqrt(1 / rows + 1 / holdout_rows)


def _expected_auc(histogram: ScoreHistogram) -> float | None:
    """ROC AUC of expected positives and negatives per score bin; rows of one bin tie.

    None when the rows expect no positive or no negative (the curve is undefined).
    """
    rows = np.asarray(histogram.rows, dtype="float64")
    positives = np.asarray(histogram.positives, dtype="float64") / FIXED_POINT
    negatives = np.maximum(rows - positives, 0.0)
    total_positives, total_negatives = positives.sum(), negatives.sum()
    if total_positives <= 0 or total_negatives <= 0:
        return None
    # Positives scored above each bin's negatives, plus half of the ties within the bin.
    above = positives.sum() - np.cumsum(positives)
    pairs = np.sum(negatives * above) + 0.5 * np.sum(negatives * positives)
    return float(pairs / (total_positives * total_negatives))


def _estimate_regression(lookup: ErrorLookup, tally: ErrorTally) -> dict[str, tuple[float, float]]:
    """MAE and RMSE (estimate, standard error); the RMSE's error is its square's (the MSE's)."""
    if len(tally.rows) != len(lookup.rows):
        raise ValueError(
            f"the tally counts {len(tally.rows)} prediction bins, the estimator has "
            f"{len(lookup.rows)}"
        )
    counts = np.asarray(tally.rows, dtype="float64")
    fitted_rows = np.asarray(lookup.rows, dtype="float64")
    rows = counts.sum()
    weights = counts / rows
    values: dict[str, tuple[float, float]] = {}
    for metric, means, variances in (
        ("mae", lookup.absolute, lookup.absolute_variance),
        ("rmse", lookup.squared, lookup.squared_variance),
    ):
        mean, variance = np.asarray(means), np.asarray(variances)
        value = float(weights @ mean)
        # Sampling: each batch row's error varies as its bin's did; fit: each bin's mean was
        # learnt from its holdout rows.
        sampling = float(counts @ variance) / rows**2
        fitting = float(weights**2 @ (variance / fitted_rows))
        estimated = math.sqrt(value) if metric == "rmse" else value
        values[metric] = (estimated, math.sqrt(sampling + fitting))
    return values
