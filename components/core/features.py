"""Features: find a model's numerical and categorical columns in any tabular data set."""

from __future__ import annotations

import dataclasses
import difflib
import logging
import numbers
import re
import typing as T
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow

logger = logging.getLogger(__name__)

# A classifier's target with more distinct whole numbers than this is a count or a measure.
MAX_CLASSES = 50
# Object-column kinds (pandas.api.types.infer_dtype) that hold numbers or booleans only.
_NUMBER_KINDS = ("integer", "floating", "mixed-integer-float", "decimal", "boolean")
_TEXT_KINDS = ("string", "empty")
_DATE_KINDS = ("datetime", "datetime64", "date", "time", "period")
_DATETIME_ADVICE = (
    "add it to exclude, or name it as time_column to split by time, or derive numeric parts "
    "such as hour or weekday in your data"
)
# How pandas names a column whose header is empty (its index, written by `to_csv`).
_UNNAMED = re.compile(r"Unnamed: \d+")
_REGRESSOR = "choose a regressor kind such as HistGradientBoostingRegressor"
_CLASSIFIER = "choose a classifier kind such as HistGradientBoostingClassifier"


class FeatureError(ValueError):
    """The data, the target or the named columns cannot make a model's features."""


@dataclasses.dataclass(frozen=True)
class Features:
    """A model's input columns, by how they are preprocessed.

    Attributes:
        numerical: numeric and boolean columns, passed to the model as numbers.
        categorical: text and category columns, one-hot encoded.
    """

    numerical: list[str]
    categorical: list[str]

    @property
    def columns(self) -> list[str]:
        """All feature columns: numerical first, then categorical."""
        return [*self.numerical, *self.categorical]


def infer(
    frame: pd.DataFrame,
    target: str,
    features: Sequence[str] | None = None,
    categorical: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    time_column: str | None = None,
) -> Features:
    """Infer the numerical and categorical feature columns from the frame's dtypes.

    Numbers and booleans (nullable ones included) are numerical; text (object, `string`,
    pyarrow strings) and pandas categories are categorical. The target and the time column
    are never features. Columns without a single value are left out with a warning, and so
    are columns without a name (an empty header, or pandas' `Unnamed: N` unless `features`
    names it): nearly always a row index written with the data, and a name that MLflow
    signatures cannot hold.

    Args:
        frame: the training data, target included.
        target: the column to predict.
        features: the candidate columns; all columns when None.
        categorical: columns to encode as categories whatever their dtype (an integer code
            column, say); each must be a feature.
        exclude: columns to leave out (identifiers, timestamps).
        time_column: the column that orders the rows in time (used to split, never a feature).

    Returns:
        The feature columns, in the frame's order within each group.

    Raises:
        FeatureError: a named column does not exist, a candidate holds dates or Python
            objects, or no feature is left.
    """
    columns = list(frame.columns)
    _check_names(columns)
    _check_known(columns, [target], "target")
    if time_column is not None:
        _check_known(columns, [time_column], "time_column")
    _check_known(columns, list(features or []), "features")
    _check_known(columns, list(categorical or []), "categorical")
    _check_known(columns, list(exclude), "exclude")
    if features is not None:
        roles = {target: "the target", time_column: "the time_column"}
        clashes = [f"'{name}' is {roles[name]}" for name in features if name in roles]
        if clashes:
            raise FeatureError(f"features cannot include {', '.join(clashes)}")
    never = {target, time_column, *exclude}
    chosen = set(features) if features is not None else set(columns)
    candidates = [name for name in columns if name in chosen and name not in never]
    forced = list(dict.fromkeys(categorical or []))
    outside = [name for name in forced if name not in candidates]
    if outside:
        raise FeatureError(
            f"categorical column(s) {_quote(outside)} are not features (excluded, the target, "
            "the time_column, or left out of features): name only feature columns"
        )
    unnamed = [
        name
        for name in candidates
        if not name.strip() or (features is None and _UNNAMED.fullmatch(name))
    ]
    if unnamed:
        where = ", ".join(
            f"{_quote([name])} (column {columns.index(name) + 1})" for name in unnamed
        )
        logger.warning(
            "leaving out %s: a column without a name is most often the row index that pandas' "
            "to_csv writes; give it a name in the data (or list a pandas 'Unnamed: N' column in "
            "features) to use it",
            where,
        )
        candidates = [name for name in candidates if name not in unnamed]
    empty = [name for name in candidates if len(frame) and frame[name].isna().all()]
    if empty:
        logger.warning("leaving out column(s) %s: they hold no value at all", _quote(empty))
        candidates = [name for name in candidates if name not in empty]
    kinds = {name: _kind(frame[name]) for name in candidates}
    dates = [name for name, kind in kinds.items() if kind == "datetime"]
    if dates:
        raise FeatureError(
            f"column(s) {_quote(dates)} hold dates or times, which a model cannot use as "
            f"features: {_DATETIME_ADVICE}"
        )
    durations = [name for name, kind in kinds.items() if kind == "duration"]
    if durations:
        raise FeatureError(
            f"column(s) {_quote(durations)} hold durations: add them to exclude, or convert "
            "them to numbers (e.g. seconds) in your data"
        )
    objects = {name: kind for name, kind in kinds.items() if kind.startswith("object:")}
    if objects:
        described = ", ".join(f"'{name}' ({kind[7:]})" for name, kind in objects.items())
        raise FeatureError(
            f"column(s) {described} hold Python objects, not numbers or text: add them to "
            "exclude, or turn them into numbers or strings in your data"
        )
    if not candidates:
        left_out = sorted(str(name) for name in never if name is not None)
        raise FeatureError(
            f"no feature column left to predict '{target}': the data has columns "
            f"{_quote(columns)}, less {_quote(left_out)} (target, time_column, exclude)"
            + (f" and {_quote(empty)} (no value at all)" if empty else "")
        )
    commas = {
        n: comma_numbers(frame[n])
        for n in candidates
        if kinds[n] != "numerical" and n not in forced
    }
    commas = {name: kind for name, kind in commas.items() if kind}
    if commas:
        first = next(iter(commas))
        example = frame[first].dropna().iloc[0]
        raise FeatureError(
            f"column(s) {_quote(commas)} hold numbers written with commas (such as {example!r}), "
            "read as text: they would be categories, not numbers; "
            f"{comma_advice(commas[first])}; or list them in categorical if they are codes"
        )
    numerical = [n for n in candidates if kinds[n] == "numerical" and n not in forced]
    categories = [n for n in candidates if n not in numerical]
    _warn_identifiers(frame, categories)
    return Features(numerical=numerical, categorical=categories)


def check_target(
    task: T.Literal["regression", "classification"], target: pd.Series, name: str
) -> pd.Series:
    """Check that a target suits the task before any fitting, and prepare it for fitting.

    A regressor needs numbers; a classifier needs at least 2 classes, and refuses continuous
    numbers or more than `MAX_CLASSES` distinct whole numbers (a count, not classes). For a
    classifier, whole numbers held as floats (integers widened by missing values) come back as
    int64, so that the labels stay integers; categories and text come back as strings.
    Missing values are ignored by the checks: drop those rows before fitting.

    Args:
        task: "regression" or "classification".
        target: the target column.
        name: the target column's name, for the messages.

    Returns:
        The target, ready for `fit`.

    Raises:
        FeatureError: the target does not suit the task.
    """
    if task not in ("regression", "classification"):
        raise FeatureError(f"unknown task '{task}': regression or classification")
    kind = _kind(target)
    values = target.dropna()
    if kind == "datetime":
        raise FeatureError(f"target '{name}' holds dates or times: predict a number or a class")
    if kind == "duration" or kind.startswith("object:"):
        raise FeatureError(
            f"target '{name}' holds {kind[7:] if kind != 'duration' else 'durations'}: "
            "predict a number or a class"
        )
    if values.empty:
        raise FeatureError(f"target '{name}' holds no value at all")
    is_bool = pd.api.types.is_bool_dtype(target.dtype) or (
        pd.api.types.is_object_dtype(target.dtype) and pd.api.types.infer_dtype(values) == "boolean"
    )
    is_number = kind == "numerical" and not is_bool
    if task == "regression":
        if not is_number:
            what = (
                "booleans"
                if is_bool
                else "categories"
                if kind == "categorical" and (isinstance(target.dtype, pd.CategoricalDtype))
                else "text"
            )
            raise FeatureError(
                f"target '{name}' holds {what} (e.g. {_examples(values)}): {_CLASSIFIER}"
            )
        numbers_ = pd.to_numeric(target).astype("float64")
        if numbers_.nunique() <= 2:
            logger.warning(
                "target '%s' holds only %d distinct values (%s): if these are classes, %s",
                name,
                numbers_.nunique(),
                _examples(numbers_.dropna()),
                _CLASSIFIER,
            )
        return numbers_
    distinct = values.nunique()
    if distinct < 2:
        raise FeatureError(
            f"target '{name}' has a single class ({_examples(values)}): a classifier needs at "
            "least 2 classes"
        )
    if is_number:
        numbers_ = pd.to_numeric(values).astype("float64")
        if not np.all(np.isfinite(numbers_)) or not (numbers_ == np.round(numbers_)).all():
            raise FeatureError(
                f"target '{name}' holds continuous numbers ({distinct} distinct values, e.g. "
                f"{_examples(values)}), not classes: {_REGRESSOR}"
            )
        if distinct > MAX_CLASSES:
            raise FeatureError(
                f"target '{name}' holds {distinct} distinct whole numbers (e.g. "
                f"{_examples(values)}): more than {MAX_CLASSES} classes looks like a count or a "
                f"measure, not classes; {_REGRESSOR}, or store class codes as text"
            )
        if target.isna().any():
            return target
        return pd.to_numeric(target).astype("int64")
    if is_bool:
        return target if target.isna().any() else target.astype(bool)
    if pd.api.types.is_object_dtype(target.dtype) and pd.api.types.infer_dtype(values) == "string":
        return target
    text = target.astype(object)
    return text.map(str).where(text.notna(), np.nan).astype(object)


def _kind(series: pd.Series) -> str:
    """How a column can serve: numerical, categorical, datetime, duration or object:<what>."""
    dtype = series.dtype
    if isinstance(dtype, pd.ArrowDtype):
        arrow = dtype.pyarrow_dtype
        if pyarrow.types.is_temporal(arrow) and not pyarrow.types.is_duration(arrow):
            return "datetime"
        if pyarrow.types.is_duration(arrow):
            return "duration"
        if pyarrow.types.is_dictionary(arrow):
            return "categorical"
    if isinstance(dtype, pd.CategoricalDtype):
        return "categorical"
    if pd.api.types.is_datetime64_any_dtype(dtype) or isinstance(dtype, pd.PeriodDtype):
        return "datetime"
    if pd.api.types.is_timedelta64_dtype(dtype):
        return "duration"
    if pd.api.types.is_bool_dtype(dtype):
        return "numerical"
    if pd.api.types.is_complex_dtype(dtype):
        return "object:complex numbers"
    if pd.api.types.is_numeric_dtype(dtype):
        return "numerical"
    if isinstance(dtype, pd.StringDtype) or (
        isinstance(dtype, pd.ArrowDtype) and pd.api.types.is_string_dtype(dtype)
    ):
        return "categorical"
    if not pd.api.types.is_object_dtype(dtype):
        return f"object:{dtype}"
    inferred = pd.api.types.infer_dtype(series, skipna=True)
    if inferred in _TEXT_KINDS:
        return "categorical"
    if inferred in _NUMBER_KINDS:
        return "numerical"
    if inferred in _DATE_KINDS:
        return "datetime"
    if inferred == "timedelta":
        return "duration"
    values = series.dropna()
    if all(_is_number(value) for value in values):
        return "numerical"  # Decimal beside int, say: `schemas.normalize` makes them numbers
    scalars = str | bool | np.bool_ | numbers.Number
    odd = sorted({type(v).__name__ for v in values if not isinstance(v, scalars)})
    if not odd:
        return "categorical"  # text mixed with numbers: `schemas.normalize` makes it text
    return "object:" + ", ".join(odd)


def _is_number(value: T.Any) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, bool | np.bool_)


def _check_names(columns: list[T.Any]) -> None:
    """Refuse column names that MLflow signatures and the model's lists cannot hold."""
    odd = [repr(name) for name in columns if not isinstance(name, str)]
    if odd:
        raise FeatureError(
            f"column names must be text; got {', '.join(odd[:10])}: give the columns names"
        )
    twice = sorted({name for name in columns if columns.count(name) > 1})
    if twice:
        raise FeatureError(f"column name(s) {_quote(twice)} appear more than once: rename them")


def _check_known(columns: list[str], names: list[str], what: str) -> None:
    """Refuse names that are not columns, with close matches and the available columns."""
    unknown = [name for name in names if name not in columns]
    if not unknown:
        return
    described = []
    for name in unknown:
        close = difflib.get_close_matches(str(name), columns, n=3, cutoff=0.6)
        hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        described.append(f"'{name}'{hint}")
    shown = _quote(columns[:30]) + (f" and {len(columns) - 30} more" if len(columns) > 30 else "")
    raise FeatureError(
        f"{what}: no column named {', '.join(described)} in the data; columns: {shown}"
    )


# What to do about numbers that a CSV reader read as text for their decimal comma.
DECIMAL_COMMA_ADVICE = (
    "set the reader's decimal_point, e.g. reader: {KIND: CSVReader, delimiter: ';', "
    "decimal_point: ','}"
)
# A number as a decimal comma writes it: `1,5`, `-0,25`, `1.234,5` or `1 234,5`, or whole (`3`).
_DECIMAL_COMMA = re.compile(r"[-+]?(\d{1,3}([. \u00a0]\d{3})+|\d+)(,\d+)?")
# One that commas between thousands write as well: `1,053`, `12,345,678.5`.
_THOUSANDS = re.compile(r"[-+]?\d{1,3}(,\d{3})+(\.\d+)?|[-+]?\d+(\.\d+)?")


def comma_numbers(series: pd.Series) -> str:
    """How the text values, as far as a sample shows, are numbers written with commas.

    Returns:
        "decimal" (a decimal comma: `1,5`), "either" (every comma may also separate
        thousands: `1,053`), or "" (not numbers with commas).
    """
    sample = series.dropna().head(100)
    if sample.empty or not all(isinstance(value, str) for value in sample):
        return ""
    texts = [value.strip() for value in sample]
    if not any("," in text for text in texts):
        return ""
    if all(_THOUSANDS.fullmatch(text) for text in texts):
        return "either"
    return "decimal" if all(_DECIMAL_COMMA.fullmatch(text) for text in texts) else ""


def comma_advice(kind: str) -> str:
    """What to do about numbers read as text for their commas (`comma_numbers`' kind)."""
    if kind == "decimal":
        return DECIMAL_COMMA_ADVICE
    return (
        f"if the comma is the decimal point, {DECIMAL_COMMA_ADVICE}; if it separates "
        "thousands, remove the commas from the numbers in your data"
    )


def _warn_identifiers(frame: pd.DataFrame, categorical: list[str]) -> None:
    """Warn about categorical columns that look like identifiers (nearly one value a row)."""
    rows = len(frame)
    for name in categorical:
        distinct = frame[name].nunique()
        if distinct > 50 and distinct > 0.5 * rows:
            logger.warning(
                "categorical column '%s' has %d distinct values in %d rows: if it is an "
                "identifier, add it to exclude",
                name,
                distinct,
                rows,
            )


def _examples(values: pd.Series, count: int = 3) -> str:
    return ", ".join(repr(_plain(v)) for v in pd.unique(values)[:count])


def _plain(value: T.Any) -> T.Any:
    """A numpy scalar as its Python value, so that messages read 3 rather than np.int64(3)."""
    return value.item() if isinstance(value, np.generic) else value


def _quote(names: T.Iterable[T.Any]) -> str:
    return ", ".join(f"'{name}'" for name in names)
