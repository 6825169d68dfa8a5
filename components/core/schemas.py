"""Schemas: check input data against a model signature and a pandera schema, batch by batch."""

from __future__ import annotations

import collections
import dataclasses
import importlib
import os
import typing as T

import numpy as np
import pandas as pd
import pandera.pandas as pa
from mlflow.models.signature import ModelSignature
from mlflow.types import DataType
from mlflow.types.schema import ColSpec

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
    """Widen nullable integer columns that hold missing values to float64.

    MLflow infers `long` for such columns and then rejects their own missing values; as float64
    the missing values become NaN, which the model and the signature both accept.
    """
    widen = {
        name: "float64"
        for name, series in frame.items()
        if is_nullable_integer(series) and series.isna().any()
    }
    return frame.astype(widen) if widen else frame


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
            bad = int(series.notna().sum())
            if bad:
                violations.append(
                    Violation(spec.name, f"type {spec.type.name} expected, got {series.dtype}", bad)
                )
    return violations


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
    return normalize(frame.astype(casts) if casts else frame)


def load_schema(source: str) -> pa.DataFrameSchema:
    """Load a pandera schema from a YAML file or from a Python object path `module:NAME`."""
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
        violations = check_signature(frame, self.signature) + check_schema(frame, self.schema)
        violations += [
            Violation(name, "missing, named as a pass-through column", len(frame))
            for name in self.passthrough
            if name not in frame.columns
        ]
        for violation in violations:
            self.counts[(violation.column, violation.rule)] += violation.rows
        self.rows += len(frame)
        return not violations

    def raise_for_violations(self) -> None:
        """Raise one ValidationError with every broken rule seen so far, or an empty-input error."""
        if self.counts:
            violations = [Violation(col, rule, rows) for (col, rule), rows in self.counts.items()]
            raise ValidationError(violations, self.rows)
        if self.rows == 0:
            raise ValidationError([Violation("*", "input has no rows", 0)], 0)
