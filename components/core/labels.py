"""Labels: a model's realized performance once the ground truth arrives, days after it predicted.

Three steps, each usable alone:

- `join` matches the predictions (pass-through key columns, `prediction`, and a classifier's
  `probability_<label>` columns; possibly several runs' outputs concatenated) with the ground
  truth (the key columns and the target) on the keys. It refuses what would make the match
  silently wrong (duplicate keys, keys of different kinds, missing keys, no overlap) and says
  how many rows matched, and how many on each side did not.
- `metrics_by_period` scores the matched rows with `metrics.score`, so the names and the
  definitions are the ones training and evaluation report, once per period of a time column
  and once over all rows. A period with too few rows is counted, not scored: a metric over a
  handful of rows would raise alerts on noise.
- `compare` sets each period's metrics against the holdout's (and against an estimate of the
  performance, when one was made before the labels came) in the metric's own direction with a
  relative tolerance, and returns a `PerformanceReport` whose headline and flat metrics feed an
  alert and an MLflow run.

Everything here is pandas in memory: the labelled rows of one monitoring window, not the whole
prediction history.
"""

from __future__ import annotations

import difflib
import math
import numbers
import typing as T
import warnings

import numpy as np
import pandas as pd  # type: ignore[import-untyped]
import pydantic as pdt

from components.core import metrics, models
from components.utils import times as times_

# A period with fewer labelled rows than this is counted but not scored.
MIN_ROWS = 30
# The label of the row that scores every labelled row at once.
ALL = "all"
# What `metrics_by_period` says of a period's row: scored, or too small to score.
SCORED = "scored"
TOO_FEW_ROWS = "too few rows"
# How many example keys or values an error message shows.
EXAMPLES = 5

Verdict = T.Literal["ok", "degraded", "too few rows", "not computable"]
# Offset aliases that pandas accepts for date ranges but not for periods, and their period twin.
PERIOD_ALIASES = {"ME": "M", "QE": "Q", "YE": "Y", "H": "h", "T": "min", "S": "s"}
# How a headline names a period, by the pandas offset class of its frequency.
PERIOD_UNITS = {
    "Day": "day",
    "Week": "week",
    "MonthEnd": "month",
    "QuarterEnd": "quarter",
    "YearEnd": "year",
    "Hour": "hour",
    "Minute": "minute",
    "Second": "second",
    "BusinessDay": "business day",
}


class LabelsError(ValueError):
    """The predictions and the ground truth cannot be matched or scored; the message says why."""


# %% JOIN


class JoinSummary(pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """How the predictions met the ground truth.

    Args:
        keys: the key columns matched on.
        target: the ground truth's target column.
        prediction_rows: rows of the predictions.
        truth_rows: rows of the ground truth.
        matched: predictions whose key the ground truth has.
        labelled: matched rows with a target value (the rows of the joined frame).
        predictions_without_truth: predictions whose key the ground truth lacks (yet).
        truth_without_predictions: ground truth rows whose key no prediction has.
        missing_target: matched rows dropped because their target is missing.
        notes: what was done to make the sides meet (key casts, a column dropped).
    """

    keys: list[str]
    target: str
    prediction_rows: int
    truth_rows: int
    matched: int
    labelled: int
    predictions_without_truth: int
    truth_without_predictions: int
    missing_target: int = 0
    notes: list[str] = pdt.Field(default_factory=list)

    def describe(self) -> str:
        """e.g. `300 of 372 predictions labelled; 72 without truth yet`."""
        parts = [f"{self.labelled:,} of {self.prediction_rows:,} predictions labelled"]
        if self.predictions_without_truth:
            parts.append(f"{self.predictions_without_truth:,} without truth yet")
        if self.truth_without_predictions:
            parts.append(f"{self.truth_without_predictions:,} truth rows without a prediction")
        if self.missing_target:
            parts.append(f"{self.missing_target:,} matched rows without {self.target} dropped")
        return "; ".join(parts)


def join(
    predictions: pd.DataFrame,
    truth: pd.DataFrame,
    keys: str | T.Sequence[str],
    target: str,
) -> tuple[pd.DataFrame, JoinSummary]:
    """Match predictions with their ground truth on the key columns (an inner join).

    Only the keys and the target are taken from the truth, so the predictions' own columns
    (`prediction`, the probabilities, pass-through columns such as a timestamp) are kept as
    they are, even where the truth has a column of the same name. Keys of different kinds meet
    where a cast loses nothing: text "17" meets the integer 17, text "2012-10-22" a timestamp.

    Args:
        predictions: the prediction job's output: keys, `prediction`, probability columns.
        truth: the ground truth: keys and the target.
        keys: the column(s) that identify a row on both sides, e.g. ["instant"].
        target: the truth's column with the true value.

    Returns:
        The labelled rows (the predictions' columns, then the target, in the predictions'
        order, with a fresh index), and how the sides met.

    Raises:
        LabelsError: no keys; a key or the target is missing; keys of kinds that cannot meet;
            missing or duplicate keys; no key in common; no target value in the matched rows.
    """
    names = _key_names(keys)
    _check_columns(predictions, truth, names, target)
    notes: list[str] = []
    if target in predictions.columns:
        # A pass-through copy of the target (or a stale one) would shadow the truth's.
        predictions = predictions.drop(columns=[target])
        notes.append(f"the predictions' own '{target}' column was dropped for the truth's")
    for name in names:
        _check_no_missing(predictions, name, "predictions")
        _check_no_missing(truth, name, "truth")
    left, right = predictions.loc[:, names].copy(), truth.loc[:, [*names, target]].copy()
    for name in names:
        left[name], right[name], note = _align(left[name], right[name], name)
        if note:
            notes.append(note)
    _check_unique(left, names, "predictions")
    _check_unique(right, names, "truth")
    joined = _merge(predictions, left, right, names)
    if joined.empty:
        raise LabelsError(_no_overlap(left, right, names))
    missing = joined[target].isna()
    if missing.all():
        raise LabelsError(
            f"all {len(joined):,} matched rows have no '{target}' in the truth: their ground "
            "truth has not arrived yet; run again once it has"
        )
    labelled = joined.loc[~missing].reset_index(drop=True)
    summary = JoinSummary(
        keys=names,
        target=target,
        prediction_rows=len(predictions),
        truth_rows=len(truth),
        matched=len(joined),
        labelled=len(labelled),
        predictions_without_truth=len(predictions) - len(joined),
        truth_without_predictions=len(truth) - len(joined),
        missing_target=int(missing.sum()),
        notes=notes,
    )
    return labelled, summary


def _merge(
    predictions: pd.DataFrame, left: pd.DataFrame, right: pd.DataFrame, keys: list[str]
) -> pd.DataFrame:
    """Inner-join the aligned sides, then give the keys back the predictions' own values.

    The cast keys only serve the match: a timestamp stays in its own time zone (its day is the
    day as written, for `metrics_by_period`), a text id stays text.
    """
    position = "__labels_position__"
    keyed = left.loc[:, keys].assign(**{position: np.arange(len(left))})
    matched = keyed.merge(right, on=keys, how="inner", validate="one_to_one", sort=False)
    rows = matched[position].to_numpy()
    joined = predictions.iloc[rows].reset_index(drop=True)
    for column in right.columns.difference(keys):
        joined[column] = matched[column].to_numpy()
    return joined


def _key_names(keys: str | T.Sequence[str]) -> list[str]:
    names = [keys] if isinstance(keys, str) else list(keys)
    if not names:
        raise LabelsError(
            "no key columns given: name the column(s) that identify a row in both the "
            "predictions and the truth, e.g. keys=['id'] or keys=['id', 'timestamp']"
        )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise LabelsError(f"key columns given more than once: {', '.join(repeated)}")
    return names


def _check_columns(
    predictions: pd.DataFrame, truth: pd.DataFrame, keys: list[str], target: str
) -> None:
    """Refuse a missing key, target or prediction column, naming what each side has."""
    problems = [
        f"key '{name}' is not in the {side}{_close(name, frame)}"
        for side, frame in (("predictions", predictions), ("truth", truth))
        for name in keys
        if name not in frame.columns
    ]
    if problems:
        raise LabelsError(
            f"{'; '.join(problems)}. The predictions' columns: {_listed(predictions)}; "
            f"the truth's: {_listed(truth)}. Name keys that both sides have"
        )
    if target not in truth.columns:
        raise LabelsError(
            f"target '{target}' is not in the truth{_close(target, truth)}; "
            f"its columns: {_listed(truth)}"
        )
    if target in keys:
        raise LabelsError(f"target '{target}' is also a key: the target cannot identify rows")
    if target == models.PREDICTION or target.startswith(models.PROBABILITY_PREFIX):
        raise LabelsError(
            f"the truth's target is named '{target}', like a column of the predictions: "
            "rename it in the truth (e.g. to 'label') and pass that name as the target"
        )
    if models.PREDICTION not in predictions.columns:
        raise LabelsError(
            f"the predictions have no '{models.PREDICTION}' column"
            f"{_close(models.PREDICTION, predictions)}; their columns: {_listed(predictions)}"
        )


def _close(name: str, frame: pd.DataFrame) -> str:
    close = difflib.get_close_matches(name, [str(c) for c in frame.columns], n=3)
    return f" (did you mean: {', '.join(close)}?)" if close else ""


def _listed(frame: pd.DataFrame, most: int = 20) -> str:
    columns = [str(c) for c in frame.columns]
    more = f", and {len(columns) - most} more" if len(columns) > most else ""
    return (", ".join(columns[:most]) + more) or "(none)"


def _check_no_missing(frame: pd.DataFrame, name: str, side: str) -> None:
    missing = frame[name].isna().to_numpy()
    if missing.any():
        rows = ", ".join(str(label) for label in frame.index[missing][:EXAMPLES])
        raise LabelsError(
            f"key '{name}' is missing in {int(missing.sum()):,} of {len(frame):,} rows of the "
            f"{side} (rows {rows}{', ...' if missing.sum() > EXAMPLES else ''}): a row without "
            "its full key cannot be matched; drop or fill those rows first"
        )


def _kind(values: pd.Series) -> str:
    """What a key column holds: integer, float, text, boolean, datetime, date or empty."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype(values.cat.categories.dtype)
    inferred = pd.api.types.infer_dtype(values, skipna=True)
    kinds = {
        "string": "text",
        "integer": "integer",
        "floating": "float",
        "mixed-integer-float": "float",
        "boolean": "boolean",
        "datetime64": "datetime",
        "datetime": "datetime",
        "date": "date",
        "empty": "empty",
    }
    return kinds.get(inferred, f"mixed ({inferred})")


def _align(left: pd.Series, right: pd.Series, name: str) -> tuple[pd.Series, pd.Series, str]:
    """Give both sides' key column one dtype, casting only where no value changes meaning.

    Returns:
        Both columns, and a note saying what was cast ("" when nothing was).
    """
    kinds = {"predictions": _kind(left), "truth": _kind(right)}
    for side, kind in kinds.items():
        if kind.startswith("mixed"):
            raise LabelsError(
                f"key '{name}' in the {side} holds values of several types "
                f"{kind.removeprefix('mixed ')}: give it one type (e.g. all text or all "
                "integers) before matching"
            )
    if "empty" in kinds.values():
        # Nothing to match on one side: the no-overlap check says so with both sides' keys.
        if len(left) == 0:
            return left.astype(right.dtype), right, ""
        return left, right.astype(left.dtype), ""
    left, right = _canonical(left, kinds["predictions"]), _canonical(right, kinds["truth"])
    kind_left, kind_right = ("datetime" if kind == "date" else kind for kind in kinds.values())
    if kind_left == kind_right:
        if kind_left == "datetime":
            _check_same_zones(left, right, name)
        return left, right, ""
    numeric = {"integer", "float"}
    if {kind_left, kind_right} == numeric:
        if kind_left == "float":
            cast = _floats_as_integers(left, name, "predictions")
            return cast, right, f"the predictions' {_cast(name, 'floats')}"
        cast = _floats_as_integers(right, name, "truth")
        return left, cast, f"the truth's {_cast(name, 'floats')}"
    if kind_left == "text" and kind_right in numeric | {"datetime"}:
        cast = _text_as(left, kind_right, name, "predictions", right)
        return cast, right, f"the predictions' {_cast(name, 'text', kind_right)}"
    if kind_right == "text" and kind_left in numeric | {"datetime"}:
        cast = _text_as(right, kind_left, name, "truth", left)
        return left, cast, f"the truth's {_cast(name, 'text', kind_left)}"
    raise LabelsError(
        f"key '{name}' holds {kind_left} values in the predictions but {kind_right} values in "
        f"the truth (e.g. {_example(left)} and {_example(right)}): they cannot be matched "
        "without guessing; cast one side to the other's type first"
    )


def _canonical(values: pd.Series, kind: str) -> pd.Series:
    """One dtype per kind, so that int32 meets int64 and nanosecond timestamps microsecond ones."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype(values.cat.categories.dtype)
    if kind == "integer":
        return values.astype("int64")
    if kind == "float":
        return values.astype("float64")
    if kind == "text":
        return values.astype("str")
    if kind == "boolean":
        return values.astype("bool")
    if kind in ("datetime", "date"):
        times = pd.to_datetime(values)
        return times.astype(_datetime_dtype(times))
    return values


def _datetime_dtype(times: pd.Series) -> str:
    zone = getattr(times.dtype, "tz", None)
    return "datetime64[ns]" if zone is None else "datetime64[ns, UTC]"


def _check_same_zones(left: pd.Series, right: pd.Series, name: str) -> None:
    zones = [getattr(side.dtype, "tz", None) is not None for side in (left, right)]
    if zones[0] != zones[1]:
        aware = "predictions" if zones[0] else "truth"
        naive = "truth" if zones[0] else "predictions"
        raise LabelsError(
            f"key '{name}' has time zones in the {aware} but none in the {naive}: the same "
            "instant would not match; localize the naive side (Series.dt.tz_localize) first"
        )


def _cast(name: str, source: str, kind: str = "integer") -> str:
    return f"key '{name}': {source} read as {kind}"


def _floats_as_integers(values: pd.Series, name: str, side: str) -> pd.Series:
    floats = values.to_numpy(dtype="float64")
    fractional = ~np.isfinite(floats) | (floats != np.round(floats))
    if fractional.any():
        raise LabelsError(
            f"key '{name}' holds integers on one side but fractional numbers in the {side} "
            f"(e.g. {', '.join(map(str, floats[fractional][:EXAMPLES]))}): they cannot match; "
            "check that both sides name the same column"
        )
    return values.astype("int64")


def _text_as(text: pd.Series, kind: str, name: str, side: str, other: pd.Series) -> pd.Series:
    """Read a text key as the other side's numbers or timestamps, refusing any lossy value."""
    if kind == "datetime":
        try:
            parsed = times_.parse_times(text)
        except (ValueError, TypeError) as error:
            raise LabelsError(
                f"key '{name}' is text in the {side} but timestamps on the other side, and "
                f"its text does not read as timestamps: {error}"
            ) from error
        lost = parsed.isna().to_numpy()
        if not lost.any():
            pair = (parsed, other) if side == "predictions" else (other, parsed)
            _check_same_zones(*pair, name)
            parsed = parsed.astype(_datetime_dtype(parsed))
    elif kind == "integer":
        parsed = pd.to_numeric(text, errors="coerce")
        # "017" and "17.0" would read 17: two spellings meeting one key is a guess, not a cast.
        spelled = parsed.map(lambda x: str(int(x)) if np.isfinite(x) and x == int(x) else "")
        lost = (spelled != text).to_numpy()
        parsed = parsed.astype("float64") if lost.any() else parsed.astype("int64")
    else:
        parsed = pd.to_numeric(text, errors="coerce").astype("float64")
        lost = parsed.isna().to_numpy()
    if lost.any():
        examples = ", ".join(repr(value) for value in text[lost].unique()[:EXAMPLES])
        raise LabelsError(
            f"key '{name}' is text in the {side} but {kind} on the other side (e.g. "
            f"{_example(other)}), and {int(lost.sum()):,} of its values do not read as "
            f"{kind} without loss: {examples}; cast one side to the other's type first"
        )
    return parsed


def _example(values: pd.Series) -> str:
    if not len(values):
        return "no value"
    value = values.iloc[0]
    # numpy scalars would read np.int64(17): show the value as a user wrote it.
    value = value.item() if isinstance(value, np.generic) else value
    return repr(value) if isinstance(value, str) else str(value)


def _check_unique(frame: pd.DataFrame, keys: list[str], side: str) -> None:
    duplicated = frame.duplicated(keys, keep=False).to_numpy()
    if not duplicated.any():
        return
    twice = frame.loc[duplicated, keys].drop_duplicates()
    examples = "; ".join(
        ", ".join(f"{key}={value}" for key, value in zip(keys, row, strict=True))
        for row in twice.head(EXAMPLES).itertuples(index=False)
    )
    why = (
        "a prediction made twice for the same key is ambiguous (several runs' outputs "
        "concatenated?); keep one prediction per key, e.g. the latest run's, or add the run "
        "to the keys"
        if side == "predictions"
        else "a key labelled twice is ambiguous; keep one truth row per key"
    )
    raise LabelsError(
        f"{int(duplicated.sum()):,} rows of the {side} share {len(twice):,} keys on "
        f"{', '.join(keys)} (e.g. {examples}{'; ...' if len(twice) > EXAMPLES else ''}): {why}"
    )


def _no_overlap(left: pd.DataFrame, right: pd.DataFrame, keys: list[str]) -> str:
    def spread(frame: pd.DataFrame, key: str) -> str:
        values = frame[key]
        if values.empty:
            return "no rows"
        try:
            return f"{values.min()} .. {values.max()}"
        except TypeError:
            return "e.g. " + ", ".join(map(str, values.unique()[:EXAMPLES]))

    ranges = "; ".join(
        f"'{key}' runs {spread(left, key)} in the predictions ({len(left):,} rows), "
        f"{spread(right, key)} in the truth ({len(right):,} rows)"
        for key in keys
    )
    return (
        f"no prediction matches a truth row on {', '.join(keys)}: {ranges}. Check that the "
        "truth covers the predicted rows, and that both sides spell the keys alike"
    )


# %% METRICS BY PERIOD


def metrics_by_period(
    joined: pd.DataFrame,
    task: models.Task,
    target: str,
    time_column: str | None = None,
    period: str = "D",
    min_rows: int = MIN_ROWS,
) -> pd.DataFrame:
    """Score the labelled rows per period of a time column, and over all of them.

    Args:
        joined: the labelled rows, as `join` returns them.
        task: regression or classification (which metrics, `metrics.TASK_METRICS`).
        target: the column with the true values.
        time_column: the timestamps that place a row in a period (datetime values or text
            that reads as dates); None scores all rows at once only.
        period: a pandas period alias: "h", "D", "W" (Monday to Sunday), "M" (or "ME").
        min_rows: a period with fewer rows is counted but not scored (its metrics are NaN).

    Returns:
        One row per period in time order, then the "all" row: `period` (its label as text,
        e.g. "2012-10-22", "2012-10-22/2012-10-28", "2012-10"), `rows`, one column per
        metric of the task (NaN where not computable, e.g. roc_auc with one class present),
        and `status` ("scored" or "too few rows"). `attrs` holds the period alias and its
        unit ("day"), which `compare` uses to word its headline.

    Raises:
        LabelsError: an unknown task or period alias; a missing column; a time column with
            missing or unreadable timestamps; a regression target that is not numeric.
    """
    if task not in metrics.TASK_METRICS:
        raise LabelsError(f"unknown task '{task}'; known: {', '.join(metrics.TASK_METRICS)}")
    if min_rows < 1:
        raise LabelsError(f"min_rows must be at least 1, got {min_rows}")
    for name, what in ((target, "target"), (models.PREDICTION, "prediction column")):
        if name not in joined.columns:
            raise LabelsError(
                f"{what} '{name}' is not in the labelled rows{_close(name, joined)}; "
                f"their columns: {_listed(joined)}"
            )
    if task == "regression":
        _check_numeric(joined, target)
        _check_numeric(joined, models.PREDICTION)
    names = metrics.TASK_METRICS[task]
    probabilities = [models.probability_column(c) for c in metrics.probability_labels(joined)]
    scored = [models.PREDICTION, *probabilities]
    rows: list[dict[str, T.Any]] = []
    unit = freq = ""
    if time_column is not None:
        periods = _periods(_timestamps(joined, time_column), period)
        freq, unit = periods.dt.freq.freqstr, _unit(periods.dt.freq)
        # By position, not by index label: the rows' index need not be unique.
        for label, group in joined.groupby(pd.PeriodIndex(periods), sort=True):
            rows.append(_score(str(label), group, task, target, scored, names, min_rows))
    rows.append(_score(ALL, joined, task, target, scored, names, min_rows))
    table = pd.DataFrame(rows, columns=["period", "rows", *names, "status"])
    table.attrs.update({"period": freq, "unit": unit, "min_rows": min_rows})
    return table


def _check_numeric(frame: pd.DataFrame, name: str) -> None:
    values = frame[name]
    if not pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
        raise LabelsError(
            f"column '{name}' holds {values.dtype} values (e.g. {_example(values)}), not "
            "numbers: a regression is scored on numbers; is the task classification?"
        )


def _timestamps(frame: pd.DataFrame, column: str) -> pd.Series:
    """The time column as naive timestamps, refusing missing and unreadable values."""
    if column not in frame.columns:
        raise LabelsError(
            f"time column '{column}' is not in the labelled rows{_close(column, frame)}; "
            f"their columns: {_listed(frame)}"
        )
    values = frame[column]
    missing = int(values.isna().sum())
    if missing:
        raise LabelsError(
            f"time column '{column}' is missing in {missing:,} of {len(values):,} labelled "
            "rows: a row without a time has no period; drop or fill those rows first"
        )
    if pd.api.types.is_numeric_dtype(values.dtype):
        raise LabelsError(
            f"time column '{column}' holds numbers (e.g. {_example(values)}), not timestamps: "
            "convert them first, e.g. pd.to_datetime(seconds, unit='s')"
        )
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        times = values
    else:
        try:
            times = times_.parse_times(values)
        except (ValueError, TypeError) as error:
            raise LabelsError(
                f"time column '{column}' does not read as timestamps: {error}"
            ) from error
        unread = times.isna().to_numpy()
        if unread.any():
            examples = ", ".join(repr(value) for value in values[unread].unique()[:EXAMPLES])
            raise LabelsError(
                f"time column '{column}' has {int(unread.sum()):,} of {len(values):,} values "
                f"that do not read as timestamps: {examples}; write them as ISO dates "
                "(2012-10-22 or 2012-10-22T13:00:00)"
            )
    if getattr(times.dtype, "tz", None) is not None:
        # A period is the day (hour, week) as written where the row happened, not in UTC.
        times = times.dt.tz_localize(None)
    return times


def _periods(times: pd.Series, period: str) -> pd.Series:
    freq = PERIOD_ALIASES.get(period, period)
    try:
        with warnings.catch_warnings():
            # A zone already dropped; pandas would warn that periods drop it.
            warnings.simplefilter("ignore", UserWarning)
            return times.dt.to_period(freq)
    except (ValueError, TypeError, AttributeError) as error:
        raise LabelsError(
            f"period '{period}' is not a pandas period alias ({error}); use e.g. 'h' (hours), "
            "'D' (days), 'W' (weeks, Monday to Sunday) or 'M' (months)"
        ) from error


def _unit(freq: T.Any) -> str:
    unit = PERIOD_UNITS.get(type(freq).__name__, "period")
    return unit if getattr(freq, "n", 1) == 1 else f"{freq.n}-{unit}"


def _score(
    label: str,
    rows: pd.DataFrame,
    task: models.Task,
    target: str,
    scored: list[str],
    names: tuple[str, ...],
    min_rows: int,
) -> dict[str, T.Any]:
    row: dict[str, T.Any] = {"period": label, "rows": len(rows)}
    if len(rows) < min_rows:
        return {**row, **dict.fromkeys(names, math.nan), "status": TOO_FEW_ROWS}
    scores = metrics.score(task, rows[target], rows.loc[:, scored])
    return {**row, **{n: scores.get(n, math.nan) for n in names}, "status": SCORED}


# %% COMPARE


class MetricVerdict(pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """One metric of one period against the holdout (and the estimate).

    Args:
        metric: the metric's name (rmse, f1_macro, ...).
        realized: its value on the labelled rows (NaN: not scored).
        reference: the holdout's value.
        change: how much worse than the holdout, relative (0.27 = 27% worse, negative =
            better; NaN when not scored or the holdout's value is 0).
        verdict: ok, degraded (worse than the holdout beyond the tolerance), too few rows, or
            not computable (e.g. roc_auc in a period with one class).
        estimated: the value estimated before the labels came (None: no estimate).
        versus_estimate: the same verdict against the estimate (None: no estimate).
    """

    metric: str
    realized: float
    reference: float
    change: float
    verdict: Verdict
    estimated: float | None = None
    versus_estimate: Verdict | None = None


class PeriodPerformance(pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """One period's metrics and their verdicts.

    Args:
        period: the period's label ("2012-10-22", or "all").
        rows: its labelled rows.
        verdict: the verdict of the report's primary metric.
        metrics: every compared metric's verdict.
    """

    period: str
    rows: int
    verdict: Verdict
    metrics: list[MetricVerdict]

    def get(self, metric: str) -> MetricVerdict:
        """The verdict on one metric."""
        for verdict in self.metrics:
            if verdict.metric == metric:
                return verdict
        raise KeyError(metric)


class PerformanceReport(pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """The realized performance against the holdout's, period by period.

    Args:
        primary: the metric that decides a period's verdict and leads the headline.
        tolerance: how much worse than the holdout a metric may be, relative (0.1 = 10%).
        unit: what a period is ("day", "week"; "" when scored over all rows only).
        reference: the holdout's metrics.
        estimated: the estimated metrics (None: none given).
        overall: all labelled rows at once.
        periods: each period, in time order.
    """

    primary: str
    tolerance: float
    unit: str
    reference: dict[str, float]
    estimated: dict[str, float] | None = None
    overall: PeriodPerformance
    periods: list[PeriodPerformance]

    @property
    def degraded(self) -> list[PeriodPerformance]:
        """The periods whose primary metric is worse than the holdout's beyond the tolerance."""
        return [period for period in self.periods if period.verdict == "degraded"]

    @property
    def too_few_rows(self) -> list[PeriodPerformance]:
        """The periods with too few labelled rows to be scored."""
        return [period for period in self.periods if period.verdict == "too few rows"]

    @property
    def below_estimate(self) -> list[PeriodPerformance]:
        """The periods whose primary metric is worse than estimated beyond the tolerance."""
        return [
            period
            for period in self.periods
            if period.get(self.primary).versus_estimate == "degraded"
        ]

    def headline(self) -> str:
        """One line for an alert.

        e.g. `rmse 81.3 over 2,412 labelled rows, 27% worse than the holdout's 64.2;
        degraded in 3 of 7 days`.
        """
        overall = self.overall.get(self.primary)
        rows = f"{self.overall.rows:,} labelled row{'s' if self.overall.rows != 1 else ''}"
        if overall.verdict == "too few rows":
            text = f"only {rows}: too few to score {self.primary}"
        elif overall.verdict == "not computable":
            text = f"{self.primary} not computable over {rows}"
        else:
            text = (
                f"{self.primary} {_number(overall.realized)} over {rows}, "
                f"{_against(overall.change, overall.verdict)} the holdout's "
                f"{_number(overall.reference)}"
            )
            if overall.estimated is not None and overall.versus_estimate is not None:
                change = _worse_by(self.primary, overall.realized, overall.estimated)
                text += (
                    f" and {_against(change, overall.versus_estimate)} the estimated "
                    f"{_number(overall.estimated)}"
                )
        if self.periods:
            units = f"{self.unit or 'period'}s"
            beyond = f" beyond {self.tolerance * 100:g}%" if self.tolerance else ""
            text += (
                f"; degraded{beyond} in {len(self.degraded)} of {len(self.periods)} {units}"
                if self.degraded
                else f"; not degraded{beyond} in any of {len(self.periods)} {units}"
            )
            if self.too_few_rows:
                text += f" ({len(self.too_few_rows)} with too few rows to score)"
        return text

    def metrics(self) -> dict[str, float]:
        """Flat metrics for a tracking run: realized_<metric>, change_<metric>, counts.

        Values that were not computed (NaN) are left out, so that every value logs.
        """
        flat: dict[str, float] = {"realized_rows": float(self.overall.rows)}
        for verdict in self.overall.metrics:
            for name, value in (("realized", verdict.realized), ("change", verdict.change)):
                if math.isfinite(value):
                    flat[f"{name}_{verdict.metric}"] = value
        flat["periods"] = float(len(self.periods))
        flat["degraded_periods"] = float(len(self.degraded))
        flat["too_few_rows_periods"] = float(len(self.too_few_rows))
        if self.estimated is not None:
            flat["below_estimate_periods"] = float(len(self.below_estimate))
        return flat

    def table(self) -> pd.DataFrame:
        """One row per period and metric (the periods, then "all"), for a report."""
        return pd.DataFrame(
            [
                {"period": period.period, "rows": period.rows, **verdict.model_dump()}
                for period in [*self.periods, self.overall]
                for verdict in period.metrics
            ]
        )


def compare(
    by_period: pd.DataFrame,
    reference: T.Mapping[str, float],
    estimated: T.Mapping[str, float] | None = None,
    tolerance: float = 0.0,
    primary: str | None = None,
) -> PerformanceReport:
    """Set each period's metrics against the holdout's, and against an estimate if given.

    Args:
        by_period: the table `metrics_by_period` returns.
        reference: the holdout's metrics, e.g. {"rmse": 64.1, "mae": 41.0, "r2": 0.87}; only
            these metrics are compared.
        estimated: metrics estimated before the labels came, by name (None: none).
        tolerance: how much worse than the holdout (or the estimate) a metric may be, relative
            to it (0.1 = 10%), before its verdict is "degraded".
        primary: the metric that decides a period's verdict (default: the task's primary
            metric, `metrics.PRIMARY`, if compared, else the first one). Other metrics get
            verdicts too, but a per-period r2 or roc_auc also moves with how much the period's
            own targets vary, so they do not decide.

    Returns:
        The verdicts per period and over all rows.

    Raises:
        LabelsError: the table is not `metrics_by_period`'s; a metric is unknown, not in the
            table, or given a value that is not a finite number; a negative tolerance.
    """
    missing = [c for c in ("period", "rows", "status") if c not in by_period.columns]
    if missing or not (by_period["period"] == ALL).any():
        raise LabelsError(
            "by_period must be the table metrics_by_period returns (columns period, rows, "
            f"the metrics, status, and an '{ALL}' row); got columns: {_listed(by_period)}"
        )
    if tolerance < 0:
        raise LabelsError(f"tolerance must be 0 or more (0.1 = 10% worse), got {tolerance}")
    holdout = _checked_metrics(reference, by_period, "reference")
    if not holdout:
        raise LabelsError(
            "no reference metrics to compare with: give the holdout's, e.g. {'rmse': 64.1}"
        )
    estimate = None if estimated is None else _checked_metrics(estimated, by_period, "estimate")
    primary = primary or next(
        (name for name in holdout if name in metrics.PRIMARY.values()), next(iter(holdout))
    )
    if primary not in holdout:
        raise LabelsError(
            f"primary metric '{primary}' is not among the reference metrics: {', '.join(holdout)}"
        )
    performances = [
        _period(row, holdout, estimate, tolerance, primary) for row in by_period.to_dict("records")
    ]
    return PerformanceReport(
        primary=primary,
        tolerance=float(tolerance),
        unit=str(by_period.attrs.get("unit", "")),
        reference=holdout,
        estimated=estimate,
        overall=next(p for p in performances if p.period == ALL),
        periods=[p for p in performances if p.period != ALL],
    )


def _checked_metrics(
    values: T.Mapping[str, float], by_period: pd.DataFrame, what: str
) -> dict[str, float]:
    unknown = [name for name in values if name not in metrics.DIRECTIONS]
    if unknown:
        raise LabelsError(
            f"unknown metric{'s' if len(unknown) > 1 else ''} in the {what}: "
            f"{', '.join(unknown)}; known: {', '.join(metrics.DIRECTIONS)}"
        )
    absent = [name for name in values if name not in by_period.columns]
    if absent:
        scored = [c for c in by_period.columns if c in metrics.DIRECTIONS]
        raise LabelsError(
            f"the {what} names {', '.join(absent)}, which the periods were not scored on; "
            f"they were scored on: {', '.join(scored)} (another task's metrics?)"
        )
    checked: dict[str, float] = {}
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise LabelsError(f"the {what}'s {name} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise LabelsError(f"the {what}'s {name} must be a finite number, got {value}")
        checked[name] = float(value)
    return checked


def _period(
    row: dict[T.Hashable, T.Any],
    reference: dict[str, float],
    estimated: dict[str, float] | None,
    tolerance: float,
    primary: str,
) -> PeriodPerformance:
    short = row["status"] == TOO_FEW_ROWS
    verdicts = []
    for name, holdout in reference.items():
        realized = float(row[name])
        guess = None if estimated is None else estimated.get(name)
        verdicts.append(
            MetricVerdict(
                metric=name,
                realized=realized,
                reference=holdout,
                change=_worse_by(name, realized, holdout),
                verdict=_verdict(name, realized, holdout, tolerance, short),
                estimated=guess,
                versus_estimate=None
                if guess is None
                else _verdict(name, realized, guess, tolerance, short),
            )
        )
    verdict = next(v.verdict for v in verdicts if v.metric == primary)
    return PeriodPerformance(
        period=str(row["period"]), rows=int(row["rows"]), verdict=verdict, metrics=verdicts
    )


def _verdict(
    metric: str, realized: float, reference: float, tolerance: float, short: bool
) -> Verdict:
    if short:
        return "too few rows"
    if not math.isfinite(realized):
        return "not computable"
    return "ok" if metrics.at_least_as_good(metric, realized, reference, tolerance) else "degraded"


def _worse_by(metric: str, realized: float, reference: float) -> float:
    """How much worse than the reference, relative to it (negative: better)."""
    if not math.isfinite(realized) or reference == 0:
        return math.nan
    change = (realized - reference) / abs(reference)
    return change if metrics.DIRECTIONS[metric] == "min" else -change


def _against(change: float, verdict: Verdict) -> str:
    if not math.isfinite(change):
        return "worse than" if verdict == "degraded" else "no worse than"
    if round(change, 2) == 0:
        return "as good as"
    return f"{abs(change):.0%} {'worse' if change > 0 else 'better'} than"


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
