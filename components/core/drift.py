"""Drift: a reference profile of the training data, batch tallies against it, and their scores.

At training, `profile` summarises each feature of the training rows (fine quantile bins for a
numeric feature, the values seen for a categorical one) and the model's predictions on those
rows. At inference, a `Tally` counts each batch into the reference's own bins: its memory is
fixed by the bins, never by the rows, and tallies of several batches or shards add up
(`merge`). `score` then judges each column with a statistic chosen for the rows it has:

- up to `Thresholds.test_rows` rows (small batches, where any distance is mostly noise), a
  two-sample test with a p-value: Kolmogorov-Smirnov on the binned distributions of a numeric
  column, chi-square of homogeneity on a categorical one's counts (rare values pooled so that
  every cell expects 5 rows). The level is Bonferroni-corrected over the features, so that a
  clean batch has at most a `p_value` chance (5%) of any feature being flagged;
- above it, distances, which do not flag a negligible difference just because the batch is
  large: Wasserstein-1 divided by the training standard deviation (numeric), Jensen-Shannon
  distance (categorical), and the population stability index (PSI) over deciles, kept as the
  classic measure;
- under `min_rows` present values, no distribution is judged: "too few rows to judge".

Data-quality rules apply at any size, each needing both its size (a rise of the missing rate,
a share of values outside the training range, of categories never seen in training) and
significance against what clean rows would show (a binomial test at the corrected level). The
batch's verdict is dataset drift when the share of judged features that drifted reaches
`drift_share` (default: any one feature).
"""

from __future__ import annotations

import math
import typing as T

import numpy as np
import pandas as pd
import pydantic as pdt

# Quantile bins of a numeric feature: 50 bins of about equal training rows (2% each: the
# Kolmogorov-Smirnov distance is read at their edges, the PSI on deciles made of them).
NUMERIC_BINS = 50
# Distinct values of a batch above which a column of few values is counted by histogram again.
MAX_DISTINCT_COUNTED = 4096
# The PSI compares deciles: fine bins are grouped into about this many of equal training rows.
PSI_BINS = 10
# Categorical values counted one by one; past this, the rarest share one "other" count and
# values never seen in training can no longer be told apart from rare ones.
MAX_CATEGORIES = 1000
# The most common categories that get a bin of their own in the PSI; the rest share "other".
PSI_CATEGORIES = 20
# A bin empty on one side would make the PSI infinite: shares are floored at this.
PSI_FLOOR = 1e-4
# Unseen values kept as examples, per feature.
EXAMPLES = 5
# Version 2: 50 numeric bins, predictions of the training rows (1: deciles, the holdout's).
PROFILE_VERSION = 2
# A chi-square cell expects at least this many of the batch's rows (rarer values are pooled).
CHI2_MIN_EXPECTED = 5


class DriftError(ValueError):
    """The batch drifted beyond the thresholds under `drift_policy=fail`, or cannot be checked."""


# %% REFERENCE PROFILE


class NumericProfile(pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """A numeric column of the training data.

    Args:
        edges: the inner bin edges (training quantiles, increasing): bin i holds the values in
            [edges[i - 1], edges[i]), the first and last bins are open-ended.
        counts: the training rows in each bin (len(edges) + 1).
        missing: training rows without a value.
        rows: training rows.
        min: the smallest training value (None when every value was missing).
        max: the largest.
        mean: the training mean.
        std: the training standard deviation.
    """

    kind: T.Literal["numeric"] = "numeric"
    edges: list[float]
    counts: list[int]
    missing: int = pdt.Field(ge=0)
    rows: int = pdt.Field(ge=0)
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = None


Category = str | int | float | bool


class CategoricalProfile(pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """A categorical column of the training data.

    Args:
        values: the values seen, most common first (at most MAX_CATEGORIES).
        counts: the training rows of each value.
        other: training rows with a value past the MAX_CATEGORIES most common.
        missing: training rows without a value.
        rows: training rows.
    """

    kind: T.Literal["categorical"] = "categorical"
    values: list[Category]
    counts: list[int]
    other: int = pdt.Field(ge=0)
    missing: int = pdt.Field(ge=0)
    rows: int = pdt.Field(ge=0)

    @property
    def complete(self) -> bool:
        """Whether every value seen in training is listed (then an unlisted one is unseen)."""
        return self.other == 0


ColumnProfile = T.Annotated[NumericProfile | CategoricalProfile, pdt.Field(discriminator="kind")]


class Profile(pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """The reference a batch is compared with: the training data and the holdout predictions.

    Args:
        version: the profile format.
        task: regression or classification.
        rows: training rows profiled.
        features: each feature's profile, in the model's feature order.
        prediction: the model's predictions (numeric for a regressor, the predicted labels
            for a classifier), on the training rows and the holdout: enough rows that the
            prediction's reference is not the holdout's noise.
    """

    version: int = PROFILE_VERSION
    task: str
    rows: int
    features: dict[str, ColumnProfile]
    prediction: ColumnProfile | None = None

    def summary(self) -> pd.DataFrame:
        """One row per feature (and the prediction): kind, missing rate, range or top values."""
        rows = [
            _summary_row(name, column)
            for name, column in [*self.features.items(), ("(prediction)", self.prediction)]
            if column is not None
        ]
        return pd.DataFrame(rows, columns=["feature", "kind", "missing", "summary"])


def _summary_row(name: str, column: NumericProfile | CategoricalProfile) -> list[T.Any]:
    missing = column.missing / column.rows if column.rows else 0.0
    if isinstance(column, NumericProfile):
        if column.min is None:
            text = "no values"
        else:
            text = f"{column.min:.4g} to {column.max:.4g}, mean {column.mean:.4g}"
            text += f", std {column.std:.4g}"
    else:
        seen = sum(column.counts) or 1
        shown = zip(column.values[:3], column.counts[:3], strict=True)
        top = ", ".join(f"{value} ({count / seen:.0%})" for value, count in shown)
        text = f"{len(column.values)}{'+' if not column.complete else ''} values; top: {top}"
    return [name, column.kind, round(missing, 4), text]


def profile_numeric(series: pd.Series, bins: int = NUMERIC_BINS) -> NumericProfile:
    """Profile a numeric (or boolean) column: quantile bin edges and the rows in each bin.

    Args:
        series: the training values.
        bins: how many quantile bins (fewer when the column has fewer distinct values).
    """
    values = _floats(series)
    present = values[~np.isnan(values)]
    missing = int(len(values) - len(present))
    if not len(present):
        return NumericProfile(edges=[], counts=[0], missing=missing, rows=len(values))
    # Unique quantiles: a column of few distinct values gets a bin per value.
    quantiles = np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1])
    edges = np.unique(quantiles)
    edges = edges[edges > present.min()]  # a first edge at the minimum leaves bin 0 empty
    counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1)
    return NumericProfile(
        edges=[float(edge) for edge in edges],
        counts=[int(count) for count in counts],
        missing=missing,
        rows=len(values),
        min=float(present.min()),
        max=float(present.max()),
        mean=float(present.mean()),
        std=float(present.std()),
    )


def profile_categorical(series: pd.Series) -> CategoricalProfile:
    """Profile a categorical column: each value's rows, the most common first."""
    counts = series.value_counts(dropna=True)
    kept = counts.head(MAX_CATEGORIES)
    return CategoricalProfile(
        values=[_category(value) for value in kept.index],
        counts=[int(count) for count in kept.to_numpy()],
        other=int(counts.iloc[MAX_CATEGORIES:].sum()),
        missing=int(series.isna().sum()),
        rows=len(series),
    )


def profile(
    frame: pd.DataFrame,
    numerical: T.Sequence[str],
    categorical: T.Sequence[str],
    task: str,
    predictions: pd.Series | None = None,
) -> Profile:
    """Profile the training rows of a model and its predictions.

    Args:
        frame: the training rows.
        numerical: the numeric features.
        categorical: the categorical features.
        task: regression or classification.
        predictions: the model's predictions, if any (on the training rows and the holdout).
    """
    features: dict[str, NumericProfile | CategoricalProfile] = {}
    for name in frame.columns:
        if name in numerical:
            features[str(name)] = profile_numeric(frame[name])
        elif name in categorical:
            features[str(name)] = profile_categorical(frame[name])
    prediction = None
    if predictions is not None:
        prediction = (
            profile_categorical(predictions)
            if task == "classification"
            else profile_numeric(predictions)
        )
    return Profile(task=task, rows=len(frame), features=features, prediction=prediction)


def _floats(series: pd.Series) -> np.ndarray:
    """A column as float64, missing values as NaN (booleans as 0/1; text that is no number NaN)."""
    numeric = pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)
    if numeric and isinstance(series.dtype, np.dtype):  # numpy's own: NaN is already NaN
        return series.to_numpy(dtype="float64")
    if numeric:  # pandas' nullable types: NA becomes NaN
        return series.to_numpy(dtype="float64", na_value=np.nan)
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def _never_missing(series: pd.Series) -> bool:
    """Whether the column's type cannot hold a missing value (numpy integers and booleans)."""
    return isinstance(series.dtype, np.dtype) and series.dtype.kind in "biu"


def _category(value: T.Any) -> Category:
    """A category as a JSON value (numpy scalars to Python ones, anything else as text)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


# %% TALLIES OF A BATCH


class ColumnTally(pdt.BaseModel, strict=True, extra="forbid"):
    """What the inference rows of one column looked like, in the reference's bins.

    Args:
        counts: rows in each bin (numeric: the first and last bins hold the values under the
            training minimum and over the maximum), or of each reference value plus a last
            count for the values not in the reference (categorical).
        missing: rows without a value.
        rows: rows counted.
        examples: a few values not in the reference (categorical).
        low: the smallest value counted (numeric; None before any).
        high: the largest.
    """

    counts: list[int]
    missing: int = 0
    rows: int = 0
    examples: list[Category] = pdt.Field(default_factory=list)
    low: float | None = None
    high: float | None = None

    def merge(self, other: ColumnTally) -> ColumnTally:
        """The tally of both sets of rows."""
        if len(other.counts) != len(self.counts):
            raise DriftError("tallies of different bins cannot be added up")
        examples = list(dict.fromkeys([*self.examples, *other.examples]))[:EXAMPLES]
        lows = [v for v in (self.low, other.low) if v is not None]
        highs = [v for v in (self.high, other.high) if v is not None]
        return ColumnTally(
            counts=[a + b for a, b in zip(self.counts, other.counts, strict=True)],
            missing=self.missing + other.missing,
            rows=self.rows + other.rows,
            examples=examples,
            low=min(lows) if lows else None,
            high=max(highs) if highs else None,
        )


class Tally(pdt.BaseModel, strict=True, extra="forbid"):
    """The tallies of every profiled column: small, JSON, and added up across shards.

    Args:
        features: each feature's tally.
        prediction: the predictions' tally.
    """

    features: dict[str, ColumnTally]
    prediction: ColumnTally | None = None

    def merge(self, other: Tally) -> Tally:
        """The tally of both sets of rows (e.g. two shards)."""
        if set(other.features) != set(self.features):
            raise DriftError("tallies of different features cannot be added up")
        prediction = self.prediction
        if prediction is not None and other.prediction is not None:
            prediction = prediction.merge(other.prediction)
        return Tally(
            features={
                name: tally.merge(other.features[name]) for name, tally in self.features.items()
            },
            prediction=prediction or other.prediction,
        )


class _NumericCounter:
    """Counts numeric values into the reference's bins, batch after batch.

    Two bins more than the reference's: values under the training minimum and over the
    maximum. They count as changes in the PSI too (a share the training data never had), and
    give the share of values out of range without another pass.
    """

    def __init__(self, reference: NumericProfile):
        inner = reference.edges
        if reference.min is not None and reference.max is not None:
            # [min, edges[0]) ... [edges[-1], max]: the maximum itself is in range.
            inner = [reference.min, *inner, float(np.nextafter(reference.max, np.inf))]
        # Outer edges at infinity: np.histogram bins sorted blocks, several times faster than
        # a search per value; its bins are [low, high), as the reference's.
        self.edges = np.concatenate([[-np.inf], inner, [np.inf]])
        self.counts = np.zeros(len(self.edges) - 1, dtype=np.int64)
        self.missing = self.rows = 0
        self.low: float | None = None
        self.high: float | None = None
        # Quantiles that collided: a column of few distinct values (hours, codes, counts).
        self.few_values = len(reference.edges) < NUMERIC_BINS - 1

    def add(self, series: pd.Series) -> None:
        if self.few_values and pd.api.types.is_numeric_dtype(series.dtype):
            self._add_distinct(series)
            return
        values = _floats(series)
        missing = 0
        present = values
        if not _never_missing(series):
            absent = np.isnan(values)
            missing = int(np.count_nonzero(absent))
            present = values[~absent] if missing else values
        self.counts += np.histogram(present, self.edges)[0]
        self.missing += missing
        self.rows += len(values)
        self._extend_range(present)

    def _add_distinct(self, series: pd.Series) -> None:
        """Count a column of few distinct values: each value's rows (a hash), then their bins.

        One pass over the rows, where np.histogram sorts them: about twice as fast for such
        a column. A batch that turns out to hold many distinct values (the column changed)
        sends the next ones back to the histogram.
        """
        counted = series.value_counts(dropna=False, sort=False)
        values = counted.index.to_numpy(dtype="float64", na_value=np.nan)
        counts = counted.to_numpy()
        absent = np.isnan(values)
        present, counts_present = values[~absent], counts[~absent]
        bins = np.searchsorted(self.edges, present, side="right") - 1
        np.minimum(bins, len(self.counts) - 1, out=bins)  # +inf: the last bin, as histogram's
        np.add.at(self.counts, bins, counts_present)
        self.missing += int(counts[absent].sum())
        self.rows += len(series)
        self._extend_range(present)
        if len(counted) > MAX_DISTINCT_COUNTED:  # a hash of so many values is slower
            self.few_values = False

    def _extend_range(self, present: np.ndarray) -> None:
        """How far outside the training range the values go, for the Wasserstein distance."""
        if len(present):
            low, high = float(present.min()), float(present.max())
            self.low = low if self.low is None else min(self.low, low)
            self.high = high if self.high is None else max(self.high, high)

    def tally(self) -> ColumnTally:
        return ColumnTally(
            counts=self.counts.tolist(),
            missing=self.missing,
            rows=self.rows,
            low=self.low,
            high=self.high,
        )


class _CategoricalCounter:
    """Counts categorical values against the reference's values, batch after batch."""

    def __init__(self, reference: CategoricalProfile):
        self.index = pd.Index(reference.values)
        self.counts = np.zeros(len(self.index) + 1, dtype=np.int64)
        self.missing = self.rows = 0
        self.examples: list[Category] = []

    def add(self, series: pd.Series) -> None:
        # Count the distinct values first: the matching is then per value, not per row.
        counted = series.value_counts(dropna=False, sort=False)
        values, counts = counted.index, counted.to_numpy()
        absent = values.isna()
        positions = self.index.get_indexer(values)  # -1: missing, or not a reference value
        known = positions >= 0
        np.add.at(self.counts, positions[known], counts[known])
        new = ~known & ~absent
        self.counts[-1] += int(counts[new].sum())
        self.missing += int(counts[absent].sum())
        self.rows += len(series)
        for value in values[new][: EXAMPLES - len(self.examples)]:
            if _category(value) not in self.examples:
                self.examples.append(_category(value))

    def tally(self) -> ColumnTally:
        return ColumnTally(
            counts=self.counts.tolist(),
            missing=self.missing,
            rows=self.rows,
            examples=self.examples,
        )


def _counter(reference: NumericProfile | CategoricalProfile):
    if isinstance(reference, NumericProfile):
        return _NumericCounter(reference)
    return _CategoricalCounter(reference)


class Counter:
    """Tallies the batches of an inference against a reference profile.

    Args:
        reference: the model's reference profile.
        prediction_column: the predictions' column in the batches of predictions.
    """

    def __init__(self, reference: Profile, prediction_column: str = "prediction"):
        self.reference = reference
        self.prediction_column = prediction_column
        self.features = {name: _counter(column) for name, column in reference.features.items()}
        self.prediction = _counter(reference.prediction) if reference.prediction else None

    def missing_features(self, columns: T.Iterable[str]) -> list[str]:
        """The profiled features that are not among these columns."""
        present = set(columns)
        return [name for name in self.features if name not in present]

    def add(self, frame: pd.DataFrame, predictions: pd.DataFrame | None = None) -> None:
        """Count a batch of inputs and, when given, its predictions."""
        for name, counter in self.features.items():
            counter.add(frame[name])
        if self.prediction is not None and predictions is not None:
            self.prediction.add(predictions[self.prediction_column])

    def tally(self) -> Tally:
        """What was counted so far."""
        return Tally(
            features={name: counter.tally() for name, counter in self.features.items()},
            prediction=self.prediction.tally() if self.prediction else None,
        )


# %% SCORES


class Thresholds(pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """When a column counts as drifted, per statistic (see the module's docstring).

    Args:
        p_value: the level of the tests (KS, chi-square, and the data-quality rules' binomial
            tests) for the whole batch: each feature is tested at p_value / features
            (Bonferroni), so a clean batch has at most this chance of any false alarm.
        test_rows: up to this many present values (in the batch, or the reference when it has
            fewer), tests with p-values decide; above, distances.
        min_rows: under this many present values a column's distribution is not judged.
        wasserstein: Wasserstein-1 distance over the training standard deviation from which a
            numeric column has drifted (large batches).
        jensen_shannon: Jensen-Shannon distance (base 2, 0 to 1) from which a categorical
            column has drifted (large batches).
        psi_warn: PSI (over deciles, or the 20 most common categories) from which a column of
            a large batch is reported as changed (a warning). The usual levels: under 0.1 no
            significant change, 0.1 to 0.25 a moderate one, above 0.25 a significant shift.
        psi: PSI from which a column of a large batch has drifted.
        missing: rise of the missing rate (absolute, 0.1 = 10 points) from which it has drifted.
        out_of_range: share of values outside the training [min, max] from which it has drifted.
        unseen: share of categories never seen in training from which it has drifted.
        drift_share: share of the judged features that must drift for the batch to have
            drifted (0: any one feature).
    """

    p_value: float = pdt.Field(default=0.05, gt=0, lt=1)
    test_rows: int = pdt.Field(default=1000, ge=1)
    min_rows: int = pdt.Field(default=30, ge=1)
    wasserstein: float = pdt.Field(default=0.1, gt=0)
    jensen_shannon: float = pdt.Field(default=0.1, gt=0, le=1)
    psi_warn: float = pdt.Field(default=0.1, ge=0)
    psi: float = pdt.Field(default=0.25, ge=0)
    missing: float = pdt.Field(default=0.1, ge=0, le=1)
    out_of_range: float = pdt.Field(default=0.05, ge=0, le=1)
    unseen: float = pdt.Field(default=0.05, ge=0, le=1)
    drift_share: float = pdt.Field(default=0.0, ge=0, le=1)

    @pdt.model_validator(mode="after")
    def _warn_before_drift(self) -> T.Self:
        if self.psi_warn > self.psi:
            raise ValueError(f"psi_warn ({self.psi_warn}) must not exceed psi ({self.psi})")
        return self


Status = T.Literal["drift", "warn", "few", "ok"]
SEVERITY: dict[str, int] = {"drift": 0, "warn": 1, "few": 2, "ok": 3}
# The statistic that judged a column's distribution.
Statistic = T.Literal["ks", "chi2", "wasserstein", "jensen_shannon"]
STATISTIC_NAMES: dict[str, str] = {
    "ks": "KS",
    "chi2": "chi-square",
    "wasserstein": "Wasserstein",
    "jensen_shannon": "Jensen-Shannon",
}


class ColumnDrift(pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """How one column of the batch differs from training.

    Args:
        column: the feature (or "(prediction)").
        kind: numeric or categorical.
        status: drift, warn, few (too few rows to judge) or ok.
        statistic: what judged the distribution (None: too few rows, or no value).
        value: its p-value (tests) or distance.
        limit: the p-value under which, or the distance from which, the column drifted.
        psi: population stability index of the non-missing values (None: no value to compare).
        missing_reference: the training missing rate.
        missing: the batch's missing rate.
        out_of_range: share of the batch's values outside the training range (numeric).
        unseen: share of the batch's values never seen in training (categorical).
        examples: a few of those unseen values.
        broken: a data-quality rule was crossed (missing, out of range, unseen).
        reasons: why the status, one phrase per threshold crossed.
        bins: the bins' labels, and the reference's and the batch's shares in them (for charts).
    """

    column: str
    kind: str
    status: Status
    statistic: Statistic | None = None
    value: float | None = None
    limit: float | None = None
    psi: float | None
    missing_reference: float
    missing: float
    out_of_range: float = 0.0
    unseen: float = 0.0
    examples: list[Category] = pdt.Field(default_factory=list)
    broken: bool = False
    reasons: list[str] = pdt.Field(default_factory=list)
    bins: list[str] = pdt.Field(default_factory=list)
    reference_shares: list[float] = pdt.Field(default_factory=list)
    shares: list[float] = pdt.Field(default_factory=list)

    def describe(self) -> str:
        """e.g. `temp (KS p=0.0001; 31% outside the training range)`."""
        return f"{self.column} ({'; '.join(self.reasons) or 'no change'})"

    def measure(self) -> str:
        """The statistic and its value, e.g. `KS p=0.31` or `Wasserstein 0.04`."""
        return _measure(self.statistic, self.value)


def _measure(statistic: Statistic | None, value: float | None) -> str:
    if statistic is None or value is None:
        return ""
    name = STATISTIC_NAMES[statistic]
    if statistic in TESTS:
        return f"{name} p={_p(value)}"
    return f"{name} {value:.3f}"


class DriftReport(pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """The batch against the reference, column by column, most drifted first.

    Args:
        rows: rows compared.
        reference_rows: training rows of the reference.
        thresholds: the thresholds applied.
        columns: each feature's drift, most drifted first.
        prediction: the predictions' drift (None without a prediction profile).
    """

    rows: int
    reference_rows: int
    thresholds: Thresholds
    columns: list[ColumnDrift]
    prediction: ColumnDrift | None = None

    @property
    def drifted(self) -> list[ColumnDrift]:
        """The features that crossed a drift threshold."""
        return [column for column in self.columns if column.status == "drift"]

    @property
    def changed(self) -> list[ColumnDrift]:
        """The features that crossed a warning or drift threshold."""
        return [column for column in self.columns if column.status in ("drift", "warn")]

    @property
    def judged(self) -> list[ColumnDrift]:
        """The features with enough rows to be judged (or a data-quality rule crossed)."""
        return [column for column in self.columns if column.status != "few"]

    @property
    def share(self) -> float:
        """The share of the judged features that drifted."""
        judged = self.judged
        return len(self.drifted) / len(judged) if judged else 0.0

    @property
    def dataset_drift(self) -> bool:
        """Whether the batch drifted: enough features drifted, or one broke a quality rule."""
        drifted = self.drifted
        if not drifted:
            return False
        return any(c.broken for c in drifted) or self.share >= self.thresholds.drift_share

    def headline(self, top: int = 5) -> str:
        """One line for an alert: the verdict, then the most drifted features."""
        changed = self.changed
        features = len(self.columns)
        if not self.judged and features:
            return (
                f"too few rows to judge drift: {self.rows:,} rows (each feature needs "
                f"{self.thresholds.min_rows} values)"
            )
        if not changed:
            return f"no drift in {features} features over {self.rows:,} rows"
        listed = "; ".join(
            f"{column.describe()}{'' if column.status == 'drift' else ' [warn]'}"
            for column in changed[:top]
        )
        more = f"; and {len(changed) - top} more" if len(changed) > top else ""
        verdict = (
            f"{len(self.drifted)} of {features} features drifted"
            if self.dataset_drift
            else f"no dataset drift ({len(self.drifted)} of {features} features drifted, under "
            f"the share {self.thresholds.drift_share:.0%})"
            if self.drifted
            else f"no drift ({len(changed)} of {features} features changed)"
        )
        return f"{verdict} over {self.rows:,} rows: {listed}{more}"

    def refusal(self, scope: str = "") -> DriftError:
        """The error that refuses the batch under `drift_policy=fail`, naming each feature.

        Args:
            scope: where the rows were counted, e.g. " over the 3 shards".
        """
        drifted = self.drifted
        return DriftError(
            f"{len(drifted)} feature(s) drifted beyond the thresholds{scope}: "
            + "; ".join(column.describe() for column in drifted)
            + "; with drift_policy=fail nothing was published"
        )

    def table(self) -> pd.DataFrame:
        """One row per column (the prediction last), as the report's Dataset."""
        columns = [*self.columns, *([self.prediction] if self.prediction else [])]
        return pd.DataFrame(
            {
                "column": [c.column for c in columns],
                "kind": [c.kind for c in columns],
                "status": [c.status for c in columns],
                "statistic": [STATISTIC_NAMES.get(c.statistic or "", "") for c in columns],
                "value": [math.nan if c.value is None else c.value for c in columns],
                "limit": [math.nan if c.limit is None else c.limit for c in columns],
                "psi": [math.nan if c.psi is None else c.psi for c in columns],
                "missing_reference": [c.missing_reference for c in columns],
                "missing": [c.missing for c in columns],
                "out_of_range": [c.out_of_range for c in columns],
                "unseen": [c.unseen for c in columns],
                "unseen_examples": [", ".join(map(str, c.examples)) for c in columns],
                "reasons": ["; ".join(c.reasons) for c in columns],
            }
        )

    def metrics(self) -> dict[str, float]:
        """Scalar scores: totals, then each column's PSI (`psi.<column>`) and statistic."""
        psis = [c.psi for c in self.columns if c.psi is not None]
        scores = {
            "drifted_features": float(len(self.drifted)),
            "changed_features": float(len(self.changed)),
            "judged_features": float(len(self.judged)),
            "drift_share": self.share,
            "dataset_drift": float(self.dataset_drift),
            "max_psi": max(psis) if psis else 0.0,
            "rows": float(self.rows),
        }
        if self.prediction is not None and self.prediction.psi is not None:
            scores["prediction_psi"] = self.prediction.psi
        for column in self.columns:
            if column.psi is not None:
                scores[f"psi.{column.column}"] = column.psi
            if column.statistic is not None and column.value is not None:
                kind = "p_value" if column.statistic in TESTS else "distance"
                scores[f"{kind}.{column.column}"] = column.value
        return scores


TESTS = ("ks", "chi2")


def _p(value: float) -> str:
    """A p-value as text: 0.031, 2e-05."""
    return f"{value:.2g}" if value >= 1e-3 else f"{value:.0e}"


def psi(reference: T.Sequence[float], current: T.Sequence[float]) -> float:
    """Population stability index of two distributions over the same bins.

    sum((current - reference) * ln(current / reference)) over the bins' shares, each share
    floored at PSI_FLOOR so that a bin empty on one side counts as a large change, not infinity.
    """
    expected = np.maximum(np.asarray(reference, dtype="float64"), PSI_FLOOR)
    actual = np.maximum(np.asarray(current, dtype="float64"), PSI_FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def jensen_shannon(
    reference: T.Sequence[float] | np.ndarray, current: T.Sequence[float] | np.ndarray
) -> float:
    """Jensen-Shannon distance (base 2: 0 for the same shares, 1 for disjoint ones)."""
    p = np.asarray(reference, dtype="float64")
    q = np.asarray(current, dtype="float64")
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        kept = a > 0
        return float(np.sum(a[kept] * np.log2(a[kept] / m[kept])))

    return math.sqrt(max(0.0, (kl(p) + kl(q)) / 2))


def ks_p_value(distance: float, reference_rows: int, rows: int) -> float:
    """The two-sample Kolmogorov-Smirnov p-value of a distance between two samples' CDFs.

    The asymptotic distribution at the samples' effective size, as scipy's `ks_2samp` uses;
    read at bin edges, the distance is at most the exact one, so the test errs on the side of
    no alarm.
    """
    from scipy import stats

    effective = reference_rows * rows / (reference_rows + rows)
    return float(stats.kstwo.sf(distance, max(1, round(effective))))


def chi2_p_value(reference_counts: np.ndarray, counts: np.ndarray) -> float | None:
    """The chi-square test of homogeneity of two samples' counts over the same values.

    Values are pooled, rarest first, until every cell expects CHI2_MIN_EXPECTED of the batch's
    rows (a value never seen in training joins the rare ones: its share is the unseen rule's to
    judge); None when fewer than two cells are left (nothing to compare).
    """
    from scipy import stats

    rows = counts.sum()
    order = np.argsort(-reference_counts, kind="stable")
    reference_counts, counts = reference_counts[order], counts[order]
    expected = rows * reference_counts / max(1, reference_counts.sum())
    kept = int(np.sum(expected >= CHI2_MIN_EXPECTED))
    if kept == 0:
        return None
    cells_reference = reference_counts[:kept].copy()
    cells = counts[:kept].copy()
    rest_expected = rows * reference_counts[kept:].sum() / max(1, reference_counts.sum())
    if rest_expected >= CHI2_MIN_EXPECTED:  # the rarer values together make a cell
        cells_reference = np.append(cells_reference, reference_counts[kept:].sum())
        cells = np.append(cells, counts[kept:].sum())
    else:  # too rare even together (a value or two, new ones): they join the last cell
        cells_reference[-1] += reference_counts[kept:].sum()
        cells[-1] += counts[kept:].sum()
    if len(cells) < 2:
        return None
    table = np.vstack([cells_reference, cells])
    return float(stats.chi2_contingency(table, correction=False).pvalue)


def binomial_p_value(hits: int, rows: int, rate: float) -> float:
    """How likely at least `hits` of `rows` are, each with chance `rate` (one-sided)."""
    from scipy import stats

    if hits <= 0:
        return 1.0
    return float(stats.binomtest(hits, rows, min(max(rate, 0.0), 1.0), "greater").pvalue)


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else np.zeros(len(counts))


def _numeric_bins(reference: NumericProfile) -> tuple[list[str], np.ndarray]:
    """The labels of a numeric column's bins as counted, and the training rows in each."""
    counts = np.asarray(reference.counts, dtype=np.int64)
    if reference.min is None or reference.max is None:
        return ["all"], counts
    low, high = reference.min, reference.max
    bounds = [low, *reference.edges, high]
    labels = [f"{a:.4g} to {b:.4g}" for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    # Outside the training range: bins the training data left empty.
    return [f"< {low:.4g}", *labels, f"> {high:.4g}"], np.concatenate([[0], counts, [0]])


def _groups(reference_counts: np.ndarray, groups: int) -> np.ndarray:
    """Each bin's group: consecutive bins of about equal training rows (deciles of 50 bins)."""
    inner = reference_counts[1:-1] if len(reference_counts) > 2 else reference_counts
    cumulative = np.cumsum(inner) / max(1, inner.sum())
    labels = np.minimum((cumulative * groups - 1e-9).astype(int), groups - 1)
    labels = np.maximum.accumulate(np.clip(labels, 0, None))
    if len(reference_counts) > 2:  # the outer bins (outside the range) are groups of their own
        labels = np.concatenate([[-1], labels, [groups]])
    return np.unique(labels, return_inverse=True)[1]


def _grouped(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    return np.bincount(groups, weights=values, minlength=groups.max() + 1)


def _wasserstein(reference: NumericProfile, tally: ColumnTally, cdf_gap: np.ndarray) -> float:
    """Wasserstein-1 distance over the training standard deviation, from the binned CDFs.

    The CDFs' gap after each bin is known; within a bin the values are taken as spread
    evenly, so the gap changes linearly across it. The outer bins reach the batch's own
    minimum and maximum.
    """
    assert reference.min is not None and reference.max is not None
    low = min(reference.min, tally.low if tally.low is not None else reference.min)
    high = max(reference.max, tally.high if tally.high is not None else reference.max)
    bounds = np.array([low, reference.min, *reference.edges, reference.max, high])
    widths = np.diff(bounds)
    before = np.concatenate([[0.0], cdf_gap[:-1]])
    area = float(np.sum((np.abs(before) + np.abs(cdf_gap)) / 2 * widths))
    scale = reference.std or (reference.max - reference.min) or 1.0
    return area / scale


def _score_column(
    name: str,
    reference: NumericProfile | CategoricalProfile,
    tally: ColumnTally,
    thresholds: Thresholds,
    features: int,
) -> ColumnDrift:
    counts = np.asarray(tally.counts, dtype=np.int64)
    level = thresholds.p_value / max(1, features)  # Bonferroni over the batch's features
    present = tally.rows - tally.missing
    reference_present = reference.rows - reference.missing
    out_of_range = unseen = 0.0
    out_rate = unseen_rate = 0.0
    statistic: Statistic | None = None
    value = limit = None
    small = min(present, reference_present) <= thresholds.test_rows
    judged = present >= thresholds.min_rows and reference_present >= thresholds.min_rows
    if isinstance(reference, NumericProfile):
        labels, reference_counts = _numeric_bins(reference)
        groups = _groups(reference_counts, PSI_BINS)
        expected = _shares(_grouped(reference_counts, groups))
        actual = _shares(_grouped(counts, groups))
        labels = _group_labels(labels, groups)
        if reference.min is not None and present:  # the outer bins: outside the range
            out_of_range = int(counts[0] + counts[-1]) / present
            # A clean value falls outside the range of n training values with chance 2/(n+1).
            out_rate = 2 / (reference_present + 1)
        if judged and reference.min is not None:
            gap = np.cumsum(_shares(reference_counts)) - np.cumsum(_shares(counts))
            if small:
                statistic, limit = "ks", level
                value = ks_p_value(float(np.max(np.abs(gap))), reference_present, present)
            else:
                statistic, limit = "wasserstein", thresholds.wasserstein
                value = _wasserstein(reference, tally, gap)
    else:
        reference_counts = np.asarray(reference.counts, dtype=np.int64)
        # The most common reference values get a bin each; the rest (and new values) share one.
        top = min(PSI_CATEGORIES, len(reference_counts))
        expected_counts = np.append(
            reference_counts[:top], reference_counts[top:].sum() + reference.other
        )
        actual_counts = np.append(counts[:top], counts[top:].sum())
        labels = [*map(str, reference.values[:top]), "other"]
        expected, actual = _shares(expected_counts), _shares(actual_counts)
        if reference.complete and present:
            unseen = int(counts[-1]) / present
            # Good-Turing: the chance of a value never seen is about the share of values seen
            # once in training.
            singletons = int(np.sum(reference_counts == 1))
            unseen_rate = max(1, singletons) / (reference_present + 1)
        if judged:
            if small:
                full_reference = np.append(reference_counts, reference.other)
                value = chi2_p_value(full_reference, counts)
                statistic, limit = ("chi2", level) if value is not None else (None, None)
            else:
                statistic, limit = "jensen_shannon", thresholds.jensen_shannon
                value = jensen_shannon(expected, actual)
    score = psi(expected, actual) if present and reference_counts.sum() else None
    missing_reference = reference.missing / reference.rows if reference.rows else 0.0
    missing = tally.missing / tally.rows if tally.rows else 0.0
    reasons: list[str] = []
    status = "ok" if judged else "few"
    measure = _measure(statistic, value)
    if statistic in TESTS and value is not None and value < level:
        reasons.append(measure)
        status = "drift"
    elif statistic is not None and statistic not in TESTS and value is not None:
        if value >= T.cast(float, limit) or (score is not None and score >= thresholds.psi):
            reasons.append(f"{measure}, PSI {score:.2f}" if score is not None else measure)
            status = "drift"
        elif score is not None and score >= thresholds.psi_warn:
            reasons.append(f"PSI {score:.2f}")
            status = "warn"
    broken = False
    rise = missing - missing_reference
    if (
        rise >= thresholds.missing
        and missing > 0
        and binomial_p_value(tally.missing, tally.rows, missing_reference) < level
    ):
        reasons.append(f"missing {missing:.0%} (training {missing_reference:.0%})")
        broken = True
    outside = int(round(out_of_range * present))
    if (
        out_of_range >= thresholds.out_of_range
        and out_of_range > 0
        and binomial_p_value(outside, present, out_rate) < level
    ):
        low, high = T.cast(NumericProfile, reference).min, T.cast(NumericProfile, reference).max
        reasons.append(f"{out_of_range:.0%} outside the training range [{low:.4g}, {high:.4g}]")
        broken = True
    new = int(round(unseen * present))
    if (
        unseen >= thresholds.unseen
        and unseen > 0
        and binomial_p_value(new, present, unseen_rate) < level
    ):
        shown = ", ".join(map(str, tally.examples))
        reasons.append(f"{unseen:.0%} unseen categories ({shown})")
        broken = True
    if broken:
        status = "drift"
    return ColumnDrift(
        column=name,
        kind=reference.kind,
        status=T.cast(Status, status),
        statistic=statistic,
        value=value,
        limit=limit,
        psi=score,
        missing_reference=missing_reference,
        missing=missing,
        out_of_range=out_of_range,
        unseen=unseen,
        examples=tally.examples,
        broken=broken,
        reasons=reasons,
        bins=labels,
        reference_shares=[float(share) for share in expected],
        shares=[float(share) for share in actual],
    )


def _group_labels(labels: list[str], groups: np.ndarray) -> list[str]:
    """The label of each group of bins: `first to last` of its bins' ranges."""
    named = []
    for group in range(groups.max() + 1):
        members = [label for label, g in zip(labels, groups, strict=True) if g == group]
        if len(members) == 1 or " to " not in members[0] or " to " not in members[-1]:
            named.append(members[0] if len(members) == 1 else f"{members[0]} .. {members[-1]}")
        else:
            named.append(f"{members[0].split(' to ')[0]} to {members[-1].split(' to ')[1]}")
    return named


def score(reference: Profile, tally: Tally, thresholds: Thresholds | None = None) -> DriftReport:
    """Compare what inference counted with the reference, column by column.

    Args:
        reference: the model's reference profile.
        tally: the inference rows' tallies, in the reference's bins.
        thresholds: when a column counts as drifted (defaults: `Thresholds()`).
    """
    thresholds = thresholds or Thresholds()
    features = [name for name in reference.features if name in tally.features]
    columns = [
        _score_column(
            name, reference.features[name], tally.features[name], thresholds, len(features)
        )
        for name in features
    ]
    columns.sort(key=lambda c: (SEVERITY[c.status], -(c.psi or 0.0)))
    prediction = None
    if reference.prediction is not None and tally.prediction is not None:
        prediction = _score_column(
            "(prediction)", reference.prediction, tally.prediction, thresholds, 1
        )
    rows = max((t.rows for t in tally.features.values()), default=0)
    return DriftReport(
        rows=rows,
        reference_rows=reference.rows,
        thresholds=thresholds,
        columns=columns,
        prediction=prediction,
    )
