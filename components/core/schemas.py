"""Schemas: check input data against a model signature and a pandera schema, batch by batch."""

from __future__ import annotations

import collections
import dataclasses
import importlib
import numbers
import os
import typing as T

import numpy as np
import pandas as pd
import pyarrow
from mlflow.models.signature import ModelSignature
from mlflow.types import DataType
from mlflow.types.schema import ColSpec

from components import demo
from components.core import features

# pandera is imported where a schema is loaded or checked: most runs have none, and it costs
# half a second at a step's start-up.
if T.TYPE_CHECKING:
    import pandera.pandas as pa

# Which pandas dtype kinds satisfy each MLflow column type. Integers are accepted where the
# model expects doubles because `conform` widens them losslessly before predicting.
ACCEPTED_KINDS: dict[DataType, str] = {
    DataType.boolean: "b",
    DataType.integer: "iu",
    DataType.long: "iu",
    DataType.float: "fiu",
    DataType.double: "fiu",
    DataType.string: "OUT",
    DataType.binary: "OS",
    DataType.datetime: "M",
}


# The rule an input without rows breaks.
NO_ROWS = "input has no rows"


@dataclasses.dataclass(frozen=True)
class Violation:
    """One broken rule: which column, which rule, how many rows break it."""

    column: str
    rule: str
    rows: int

    def __str__(self) -> str:
        return f"column '{self.column}': {self.rule} ({self.rows} rows)"


class ValidationError(ValueError):
    """Input data breaks the model's signature or the user's schema; nothing was written."""

    def __init__(self, violations: T.Sequence[Violation], rows_checked: int):
        self.violations = list(violations)
        if all(violation.rule == NO_ROWS for violation in self.violations):
            # No column to name: the file or folder holds a header at most.
            super().__init__(
                f"input validation failed: the {NO_ROWS} (an empty file or folder, or a header "
                "and no data); nothing was written"
            )
            return
        lines = "\n".join(f"  - {violation}" for violation in self.violations)
        columns = len({violation.column for violation in self.violations})
        super().__init__(
            f"input validation failed: {len(self.violations)} rule(s) broken in {columns} "
            f"column(s) over {rows_checked} rows checked; nothing was written\n{lines}"
        )


def kind_of(series: pd.Series) -> str:
    """The numpy kind letter of a column, seeing through pandas extension dtypes."""
    if isinstance(series.dtype, pd.StringDtype):
        return "T"
    return getattr(series.dtype, "kind", "O")


def is_nullable_integer(series: pd.Series) -> bool:
    """True for pandas' nullable integer dtypes (Int64, UInt8, ...)."""
    return isinstance(series.dtype, pd.core.arrays.integer.IntegerDtype)


def normalize(frame: pd.DataFrame) -> pd.DataFrame:
    """Give each column a dtype that the model and its MLflow signature both accept.

    Applied alike to training data and to inference batches, so that a model meets at
    inference the types it was trained and signed with:

    - nullable integers with missing values become float64 (NaN): MLflow infers `long` for
      them and then rejects their own missing values;
    - nullable floats become float64, nullable booleans become bool, or float64 (1.0, 0.0,
      NaN) when they hold missing values; pyarrow-backed numbers and booleans likewise;
    - categories and string extension dtypes (`str`, `string`, pyarrow strings) become object
      columns of strings;
    - object columns: numbers only become numeric, booleans only become booleans as above,
      strings mixed with numbers become strings; other objects (dicts, bytes, dates) are left
      for the checks to report.

    Missing values in text columns become NaN, whatever marked them (None, NaN, pd.NA). A frame
    that needs no change is returned as is.
    """
    changed = {}
    for position, (_, series) in enumerate(frame.items()):
        normalized = _normalize_column(series)
        if normalized is not series:
            changed[position] = normalized
    if not changed:
        return frame
    frame = frame.copy(deep=False)
    for position, normalized in changed.items():
        frame.isetitem(position, normalized)
    return frame


def labelled(frame: pd.DataFrame, target: str) -> tuple[pd.DataFrame, int]:
    """The rows that have a value in `target`, normalized, and how many rows had none.

    The rows are chosen before the frame is normalized: a nullable target with missing values
    would be widened first (booleans and integers to floats), and a classifier would learn the
    labels 1.0 and 0.0 where the data says True and False, or 1 and 2.

    Args:
        frame: the rows as read; a frame without the target column is only normalized.
        target: the target column's name.
    """
    if target not in frame.columns:
        return normalize(frame), 0
    known = frame[target].notna().to_numpy()
    unlabelled = int((~known).sum())
    if unlabelled:
        frame = frame[known].reset_index(drop=True)
    return normalize(frame), unlabelled


def _normalize_column(series: pd.Series) -> pd.Series:
    """One column normalized (see `normalize`), or the very same series when already fine."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return _as_text(series)
    if isinstance(dtype, pd.StringDtype) or (
        isinstance(dtype, pd.ArrowDtype) and _is_arrow_text(dtype.pyarrow_dtype)
    ):
        return series.astype(object).where(series.notna(), np.nan)
    if is_nullable_integer(series):
        return series.astype("float64") if series.isna().any() else series
    if isinstance(dtype, pd.BooleanDtype) or _is_arrow(dtype, "is_boolean"):
        return series.astype("float64") if series.isna().any() else series.astype(bool)
    if isinstance(dtype, pd.Float32Dtype | pd.Float64Dtype) or _is_arrow(dtype, "is_floating"):
        return series.astype("float64")
    if _is_arrow(dtype, "is_integer"):
        return series.astype("float64" if series.isna().any() else "int64")
    if pd.api.types.is_object_dtype(dtype):
        return _normalize_objects(series)
    return series


def _normalize_objects(series: pd.Series) -> pd.Series:
    kind = pd.api.types.infer_dtype(series, skipna=True)
    if kind == "string":
        missing = series.isna()
        return series.where(~missing, np.nan) if missing.any() else series
    if kind in ("integer", "floating", "mixed-integer-float", "decimal"):
        return _normalize_column(pd.to_numeric(series))
    if kind == "boolean":
        return _normalize_column(series.astype("boolean"))
    if kind in ("mixed", "mixed-integer"):
        values = series.dropna()
        if all(_is_number(value) for value in values):
            return _normalize_column(pd.to_numeric(series))  # Decimal beside int, say
        if all(isinstance(value, str | bool | np.bool_ | numbers.Number) for value in values):
            return _as_text(series)
    return series


def _is_number(value: T.Any) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, bool | np.bool_)


def _as_text(series: pd.Series) -> pd.Series:
    """Non-missing values as strings, missing ones as NaN, in an object column."""
    values = series.astype(object)
    return values.map(str).where(values.notna(), np.nan).astype(object)


def _is_arrow_text(dtype: pyarrow.DataType) -> bool:
    return (
        pyarrow.types.is_string(dtype)
        or pyarrow.types.is_large_string(dtype)
        or (hasattr(pyarrow.types, "is_string_view") and pyarrow.types.is_string_view(dtype))
    )


def _is_arrow(dtype: T.Any, test: str) -> bool:
    """Whether a pyarrow-backed dtype passes one of `pyarrow.types`' tests (is_integer...)."""
    return isinstance(dtype, pd.ArrowDtype) and getattr(pyarrow.types, test)(dtype.pyarrow_dtype)


def check_signature(frame: pd.DataFrame, signature: ModelSignature | None) -> list[Violation]:
    """Check required columns and their types against the model's input signature."""
    if signature is None or signature.inputs is None:
        return []
    violations = []
    for spec in signature.inputs.inputs:
        if not isinstance(spec, ColSpec) or spec.name is None:
            continue
        if spec.name not in frame.columns:
            if spec.required:
                violations.append(
                    Violation(spec.name, "missing, required by the model signature", len(frame))
                )
            continue
        series = frame[spec.name]
        accepted = ACCEPTED_KINDS.get(spec.type, "")
        if accepted and kind_of(series) not in accepted:
            missing = _missing_in_integers(series, spec)
            if missing:
                violations.append(Violation(spec.name, MISSING_IN_INTEGERS.format(spec), missing))
                continue
            bad = int(series.notna().sum())
            if bad:
                rule = f"type {spec.type.name} expected, got {_dtype(series)}"
                commas = features.comma_numbers(series) if spec.type in NUMBER_TYPES else ""
                if commas:
                    example = series.dropna().iloc[0]
                    rule += (
                        f" (numbers written with commas, such as {example!r}: "
                        f"{features.comma_advice(commas)})"
                    )
                violations.append(Violation(spec.name, rule, bad))
    return violations


# What a whole-number column with missing values breaks in a signature typed integer: pandas
# reads it as floats, and the signature cannot hold a missing integer (MLflow's own rule).
MISSING_IN_INTEGERS = (
    "missing values, which the model signature's {0.type.name} column cannot hold (the model "
    "was signed on data without any): register it signed with the column as double to take them"
)


def _missing_in_integers(series: pd.Series, spec: ColSpec) -> int:
    """How many values are missing in floats that are otherwise whole, for an integer spec."""
    if spec.type not in (DataType.long, DataType.integer) or kind_of(series) != "f":
        return 0
    present = series.dropna()
    if len(present) == len(series) or not bool(np.all(np.mod(present, 1) == 0)):
        return 0
    return len(series) - len(present)


# The rule a feature holding +inf or -inf breaks: no model scores an infinity meaningfully
# (trees send it down one branch, linear models give inf or NaN), so it is never predicted
# silently. Missing values are another matter: every model kind handles those.
INFINITE = "holds +inf or -inf; replace them with a number, or leave the cells empty (missing)"


def check_finite(frame: pd.DataFrame, columns: T.Iterable[str] | None = None) -> list[Violation]:
    """Count the infinities in each floating-point column (all columns, or those named).

    Args:
        frame: a batch, normalised or not (numpy, nullable and pyarrow floats are all read).
        columns: the columns a model reads; None checks every column.
    """
    names = frame.columns if columns is None else [c for c in columns if c in frame.columns]
    violations = []
    for name in names:
        series = frame[name]
        if kind_of(series) != "f":
            continue
        values = series.to_numpy(dtype="float64", na_value=np.nan)
        infinite = int(np.isinf(values).sum())
        if infinite:
            violations.append(Violation(str(name), INFINITE, infinite))
    return violations


def refuse_infinite(frame: pd.DataFrame, columns: T.Iterable[str]) -> None:
    """Raise when a column the model reads holds an infinity, naming each column and row count.

    Raises:
        ValidationError: one violation per column with infinities.
    """
    violations = check_finite(frame, columns)
    if violations:
        raise ValidationError(violations, len(frame))


def _dtype(series: pd.Series) -> str:
    """A column's type as a person reads it: `str` for text held in object columns."""
    if series.dtype == object and pd.api.types.infer_dtype(series, skipna=True) == "string":
        return "str"
    return str(series.dtype)


# The signature types of numbers and booleans: what a column of missing values is read as NaN for.
NUMBER_TYPES = (DataType.double, DataType.float, DataType.long, DataType.integer, DataType.boolean)


def conform(frame: pd.DataFrame, signature: ModelSignature | None) -> pd.DataFrame:
    """Keep the signature's columns, in its order, cast to the types that MLflow enforces."""
    if signature is None or signature.inputs is None or not signature.inputs.has_input_names():
        return normalize(frame)
    names = [name for name in signature.inputs.input_names() if name in frame.columns]
    frame = frame[names]
    casts = {}
    for spec in signature.inputs.inputs:
        if spec.name not in frame.columns:
            continue
        series = frame[spec.name]
        if spec.type in (DataType.double, DataType.float) and kind_of(series) in "iu":
            casts[spec.name] = spec.type.to_numpy()
        elif is_nullable_integer(series) and not series.isna().any():
            casts[spec.name] = np.int64
        elif spec.type in NUMBER_TYPES and kind_of(series) == "O" and series.isna().all():
            # A column without a single value (a CSV's empty column, Parquet's null type) reads
            # as objects, which no booster takes for a number: its missing values as NaN.
            casts[spec.name] = np.float32 if spec.type == DataType.float else np.float64
    return normalize(frame.astype(casts) if casts else frame)


def needed_columns(
    available: T.Sequence[str], signature: ModelSignature | None, extra: T.Iterable[str]
) -> list[str] | None:
    """The input columns a job must read: the signature's, plus extra ones, in file order.

    Reading only these keeps memory and time down on wide inputs. Columns absent from the file
    are left for the validator to report. None (read everything) without a named signature.

    Args:
        available: the input's columns.
        signature: the model's signature.
        extra: other columns the job needs (pass-through, schema).
    """
    if signature is None or signature.inputs is None or not signature.inputs.has_input_names():
        return None
    wanted = {*signature.inputs.input_names(), *extra}
    return [name for name in available if name in wanted]


def load_schema(source: str) -> pa.DataFrameSchema:
    """Load a pandera schema from a YAML file (path or `demo://`) or a Python object `module:NAME`.

    Args:
        source: where the schema is.
    """
    import pandera.pandas as pa

    source = demo.resolve(source)
    if os.path.exists(source) or source.endswith((".yaml", ".yml")):
        # pandera parses a path that does not exist as YAML text: check the file first.
        if not os.path.isfile(source):
            raise ValueError(f"pandera schema file not found: {source}")
        return pa.DataFrameSchema.from_yaml(source)
    module, _, name = source.partition(":")
    if not name:
        raise ValueError(f"schema must be a YAML file or 'module:NAME', got {source!r}")
    schema = getattr(importlib.import_module(module), name)
    if not isinstance(schema, pa.DataFrameSchema):
        raise ValueError(f"{source} is a {type(schema).__name__}, not a pandera DataFrameSchema")
    return schema


def check_schema(frame: pd.DataFrame, schema: pa.DataFrameSchema | None) -> list[Violation]:
    """Check a pandera schema's domain rules (ranges, allowed values, nulls) lazily."""
    if schema is None:
        return []
    import pandera.pandas as pa

    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases
        violations = []
        for (column, check), group in cases.groupby(["column", "check"], dropna=False, sort=True):
            if check == "column_in_dataframe":
                # pandera files missing columns under the schema's name, each column as a case.
                rule = _describe(check)
                names = group["failure_case"].astype(str).unique()
                violations += [Violation(name, rule, len(frame)) for name in names]
                continue
            # A failure without a row index (dtype, missing column) concerns every row.
            rows = len(frame) if group["index"].isna().all() else group["index"].nunique()
            name = column if isinstance(column, str) else str(group["failure_case"].iloc[0])
            violations.append(Violation(name, _describe(str(check)), int(rows)))
        return violations
    return []


def _describe(check: str) -> str:
    if check == "column_in_dataframe":
        return "missing, required by the schema"
    if check == "not_nullable":
        return "missing values not allowed"
    if check.startswith("dtype("):
        return f"type {check[6:-1]} expected"
    return f"must satisfy {check}"


class Validator:
    """Check batch after batch and total the rows that break each rule.

    Args:
        signature: the registered model's signature (types, required columns).
        schema: an optional pandera schema with domain rules.
        passthrough: columns copied beside the predictions, which must exist.
    """

    def __init__(
        self,
        signature: ModelSignature | None,
        schema: pa.DataFrameSchema | None = None,
        passthrough: T.Sequence[str] = (),
    ):
        self.signature, self.schema, self.passthrough = signature, schema, list(passthrough)
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()
        self.rows = 0

    def check(self, frame: pd.DataFrame) -> bool:
        """Check one batch; return True when it breaks no rule."""
        # Checked as the model will see it: nullable types and pyarrow strings normalised.
        frame = normalize(frame)
        violations = check_signature(frame, self.signature) + check_schema(frame, self.schema)
        violations += check_finite(frame, self._features(frame))
        violations += [
            Violation(name, "missing, named as a pass-through column", len(frame))
            for name in self.passthrough
            if name not in frame.columns
        ]
        for violation in violations:
            self.counts[(violation.column, violation.rule)] += violation.rows
        self.rows += len(frame)
        return not violations

    def _features(self, frame: pd.DataFrame) -> list[str]:
        """The columns the model reads: its signature's, else all but the pass-through ones."""
        inputs = self.signature.inputs if self.signature is not None else None
        if inputs is not None and inputs.has_input_names():
            return list(inputs.input_names())
        return [name for name in frame.columns if name not in self.passthrough]

    def raise_for_violations(self) -> None:
        """Raise one ValidationError with every broken rule seen so far, or an empty-input error."""
        if self.counts:
            violations = [Violation(col, rule, rows) for (col, rule), rows in self.counts.items()]
            raise ValidationError(violations, self.rows)
        if self.rows == 0:
            raise ValidationError([Violation("*", NO_ROWS, 0)], 0)
