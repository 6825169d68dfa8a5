"""Tests for the input checks: model signatures, pandera schemas, batch totals and conforming."""

from __future__ import annotations

import decimal

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow
import pytest
from mlflow.models import infer_signature
from mlflow.models.signature import ModelSignature
from mlflow.models.utils import _enforce_schema
from mlflow.types import ColSpec, DataType, Schema

from components.core import schemas
from tests.conftest import BIKE_SCHEMA
from tests.jobs.helpers import BIKE_CATEGORICAL, BIKE_NUMERICAL

FEATURES = [*BIKE_NUMERICAL, *BIKE_CATEGORICAL]

# A module-level schema, loadable as `tests.core.test_schemas:HOUR_SCHEMA`.
HOUR_SCHEMA = pa.DataFrameSchema({"hr": pa.Column(int, pa.Check.in_range(0, 23))})
NOT_A_SCHEMA = {"hr": "int"}


@pytest.fixture(scope="module")
def rows(bike) -> pd.DataFrame:
    return bike.head(200).reset_index(drop=True)


@pytest.fixture(scope="module")
def signature(rows) -> ModelSignature:
    """The signature MLflow infers from the demo features: longs and doubles."""
    return infer_signature(rows[FEATURES], rows["cnt"].to_numpy(dtype=float))


@pytest.fixture(scope="module")
def schema() -> pa.DataFrameSchema:
    return schemas.load_schema(str(BIKE_SCHEMA))


# %% SIGNATURE


def test_signature_accepts_the_data_it_was_inferred_from(rows, signature):
    assert schemas.check_signature(rows, signature) == []
    assert schemas.check_signature(rows, None) == []


def test_signature_reports_a_missing_column_over_every_row(rows, signature):
    violations = schemas.check_signature(rows.drop(columns=["hr"]), signature)
    assert violations == [
        schemas.Violation("hr", "missing, required by the model signature", len(rows))
    ]


def test_signature_reports_a_wrong_dtype_with_the_rows_that_hold_a_value(rows, signature):
    frame = rows.copy()
    frame["hr"] = frame["hr"].astype(object).astype(str).astype(object)
    frame.loc[:2, "hr"] = None  # missing values break no type rule
    [violation] = schemas.check_signature(frame, signature)
    assert violation.column == "hr"
    assert violation.rule.startswith("type long expected, got ")
    assert violation.rows == len(rows) - 3
    assert str(violation) == f"column 'hr': {violation.rule} ({len(rows) - 3} rows)"


def test_signature_accepts_integers_where_doubles_are_expected(rows, signature):
    frame = rows.assign(temp=np.arange(len(rows)) % 2)
    assert frame["temp"].dtype == "int64"
    assert schemas.check_signature(frame, signature) == []


def test_signature_names_missing_values_in_a_whole_number_column_signed_long(rows, signature):
    """pandas reads whole numbers with gaps as floats: the rule says so and counts the gaps."""
    frame = rows.assign(hr=rows["hr"].astype("float64"))
    frame.loc[[4, 9, 17], "hr"] = np.nan
    [violation] = schemas.check_signature(frame, signature)
    assert violation == schemas.Violation(
        "hr", schemas.MISSING_IN_INTEGERS.format(ColSpec(DataType.long, "hr")), 3
    )
    assert "register it signed with the column as double" in str(violation)
    # Fractions are another fault: the type rule, over the rows that hold a value.
    frame.loc[0, "hr"] = 0.5
    [violation] = schemas.check_signature(frame, signature)
    assert violation.rule == "type long expected, got float64"
    assert violation.rows == len(rows) - 3


def test_signature_ignores_a_missing_optional_column():
    signature = ModelSignature(
        inputs=Schema([ColSpec(DataType.long, "a"), ColSpec(DataType.double, "b", required=False)])
    )
    assert schemas.check_signature(pd.DataFrame({"a": [1, 2]}), signature) == []
    assert schemas.check_signature(pd.DataFrame({"b": [1.0, 2.0]}), signature) == [
        schemas.Violation("a", "missing, required by the model signature", 2)
    ]


# %% PANDERA SCHEMA


def test_schema_accepts_the_demo_data(bike, schema):
    assert schemas.check_schema(bike, schema) == []
    assert schemas.check_schema(bike, None) == []


def test_schema_counts_out_of_range_rows_per_column_and_rule(rows, schema):
    frame = rows.copy()
    frame.loc[[3, 5, 8, 13, 21, 34, 55], "temp"] = 5.0
    frame.loc[[1, 2, 3], "hr"] = 30
    frame.loc[[10, 11], "season"] = 9
    frame.loc[[0, 1, 2, 3], "hum"] = np.nan  # nullable in the schema: no violation
    violations = {v.column: v for v in schemas.check_schema(frame, schema)}
    assert set(violations) == {"temp", "hr", "season"}
    assert violations["temp"].rows == 7
    assert "in_range(0, 1)" in violations["temp"].rule
    assert violations["hr"].rows == 3
    assert "in_range(0, 23)" in violations["hr"].rule
    assert violations["season"].rows == 2
    assert violations["season"].rule == "must satisfy isin([1, 2, 3, 4])"


def test_schema_reports_a_missing_column_and_a_wrong_dtype(rows, schema):
    frame = rows.drop(columns=["windspeed", "atemp"]).assign(hr=rows["hr"].astype(float))
    violations = {v.column: v for v in schemas.check_schema(frame, schema)}
    assert set(violations) == {"windspeed", "atemp", "hr"}  # each missing column by name
    for name in ("windspeed", "atemp"):
        assert violations[name] == schemas.Violation(
            name, "missing, required by the schema", len(rows)
        )
    assert violations["hr"].rule == "type 'int64' expected"
    assert violations["hr"].rows == len(rows)


def test_load_schema_from_yaml_and_from_a_python_object():
    assert schemas.load_schema(str(BIKE_SCHEMA)).name == "bike_sharing_inputs"
    assert schemas.load_schema("tests.core.test_schemas:HOUR_SCHEMA") is HOUR_SCHEMA
    with pytest.raises(ValueError, match="not found: missing.yaml"):
        schemas.load_schema("missing.yaml")
    with pytest.raises(ValueError, match="'module:NAME'"):
        schemas.load_schema("tests.core.test_schemas")
    with pytest.raises(ValueError, match="is a dict, not a pandera DataFrameSchema"):
        schemas.load_schema("tests.core.test_schemas:NOT_A_SCHEMA")


# %% VALIDATOR


def test_validator_totals_counts_across_batches(rows, signature, schema):
    validator = schemas.Validator(signature, schema, passthrough=["instant"])
    first, second, third = rows.iloc[:50].copy(), rows.iloc[50:120].copy(), rows.iloc[120:]
    first.loc[first.index[:3], "temp"] = 5.0
    second.loc[second.index[:4], "temp"] = -1.0
    assert validator.check(first) is False
    assert validator.check(second) is False
    assert validator.check(third) is True
    with pytest.raises(schemas.ValidationError) as caught:
        validator.raise_for_violations()
    message = str(caught.value)
    assert "1 rule(s) broken in 1 column(s) over 200 rows checked; nothing was written" in message
    assert "column 'temp': must satisfy in_range(0, 1) (7 rows)" in message
    assert caught.value.violations == [schemas.Violation("temp", "must satisfy in_range(0, 1)", 7)]


def test_validator_reports_every_rule_and_a_missing_passthrough(rows, signature):
    validator = schemas.Validator(signature, None, passthrough=["instant"])
    validator.check(rows.drop(columns=["instant", "hr"]).iloc[:80])
    validator.check(rows.drop(columns=["instant", "hr"]).iloc[80:])
    with pytest.raises(schemas.ValidationError) as caught:
        validator.raise_for_violations()
    message = str(caught.value)
    assert "2 rule(s) broken in 2 column(s) over 200 rows checked" in message
    assert "column 'hr': missing, required by the model signature (200 rows)" in message
    assert "column 'instant': missing, named as a pass-through column (200 rows)" in message


def test_validator_passes_clean_batches(rows, signature, schema):
    validator = schemas.Validator(signature, schema)
    assert validator.check(rows.iloc[:100]) and validator.check(rows.iloc[100:])
    validator.raise_for_violations()
    assert validator.rows == len(rows)


def test_validator_refuses_empty_input(rows, signature):
    validator = schemas.Validator(signature)
    with pytest.raises(schemas.ValidationError, match="input has no rows"):
        validator.raise_for_violations()
    validator.check(rows.iloc[:0])
    with pytest.raises(schemas.ValidationError, match=r"the input has no rows \(an empty file"):
        validator.raise_for_violations()


# %% CONFORM


def test_conform_casts_integers_to_doubles_and_orders_columns(rows, signature):
    shuffled = rows.assign(temp=np.ones(len(rows), dtype="int64"))[
        ["cnt", "instant", *reversed(FEATURES)]
    ]
    conformed = schemas.conform(shuffled, signature)
    assert list(conformed.columns) == signature.inputs.input_names() == FEATURES
    assert conformed["temp"].dtype == "float64"
    assert conformed["hr"].dtype == "int64"
    assert (conformed["temp"] == 1.0).all()


def test_conform_turns_nullable_integers_into_numpy_types(signature, rows):
    frame = rows[FEATURES].astype({"hr": "Int64", "mnth": "Int64"})
    frame["mnth"] = frame["mnth"].astype("Int64")
    frame.loc[0, "mnth"] = pd.NA
    conformed = schemas.conform(frame, signature)
    assert conformed["hr"].dtype == "int64"  # no missing value: back to a plain integer
    assert conformed["mnth"].dtype == "float64"  # missing values: NaN in a double column
    assert np.isnan(conformed.loc[0, "mnth"])


def test_normalize_widens_only_nullable_integers_with_missing_values():
    frame = pd.DataFrame(
        {
            "full": pd.array([1, 2], dtype="Int64"),
            "holes": pd.array([1, None], dtype="Int64"),
            "plain": [1, 2],
        }
    )
    normalized = schemas.normalize(frame)
    assert normalized.dtypes.astype(str).to_dict() == {
        "full": "Int64",
        "holes": "float64",
        "plain": "int64",
    }
    assert schemas.conform(frame, None)["holes"].dtype == "float64"


def awkward_frame() -> pd.DataFrame:
    """Nullable, categorical, pyarrow and object columns with holes, under awkward names."""
    return pd.DataFrame(
        {
            "visits count": pd.array([1, None, 3, 4], dtype="Int64"),
            "member.flag": pd.array([True, None, False, True], dtype="boolean"),
            "always": pd.array([True, False, False, True], dtype="boolean"),
            "météo": pd.Categorical(["sun", None, "rain", "sun"]),
            "code": pd.Categorical([3, 1, None, 3]),
            "plan": pd.array(["a", None, "b", "a"], dtype="string[pyarrow]"),
            "zone": pd.Series(["n", None, "s", "n"], dtype=pd.ArrowDtype(pyarrow.string())),
            "score": pd.Series([1, None, 2, 3], dtype=pd.ArrowDtype(pyarrow.int64())),
            "ratio": pd.array([0.5, None, 1.5, 2.0], dtype="Float64"),
            "city": pd.Series(["Paris", None, pd.NA, np.nan], dtype=object),
            "mixed": pd.Series(["a", 1, 2.5, None], dtype=object),
            "amount": pd.Series([decimal.Decimal("1.5"), None, 2, 3], dtype=object),
            "opt-in": pd.Series([True, None, False, True], dtype=object),
            "wind.speed": [1, 2, 3, 4],
        }
    )


def test_normalize_gives_every_column_a_type_the_model_and_mlflow_accept():
    normalized = schemas.normalize(awkward_frame())
    assert normalized.dtypes.astype(str).to_dict() == {
        "visits count": "float64",
        "member.flag": "float64",
        "always": "bool",
        "météo": "object",
        "code": "object",
        "plan": "object",
        "zone": "object",
        "score": "float64",
        "ratio": "float64",
        "city": "object",
        "mixed": "object",
        "amount": "float64",
        "opt-in": "float64",
        "wind.speed": "int64",
    }
    assert normalized["member.flag"].tolist()[::2] == [1.0, 0.0]
    assert np.isnan(normalized.loc[1, "member.flag"])
    # Text columns hold strings, and NaN for every kind of missing value.
    assert normalized["code"].tolist()[:2] == ["3", "1"]
    assert normalized["mixed"].tolist()[:3] == ["a", "1", "2.5"]
    for name in ["météo", "code", "plan", "zone", "city", "mixed"]:
        missing = [value for value in normalized[name] if not isinstance(value, str)]
        assert missing and all(isinstance(v, float) and np.isnan(v) for v in missing), name


def test_normalize_returns_a_clean_frame_as_is(rows):
    assert schemas.normalize(rows) is rows
    text = pd.DataFrame({"city": pd.Series(["Paris", "Lyon"], dtype=object)})
    assert schemas.normalize(text) is text


def test_normalize_leaves_objects_it_cannot_type_for_the_checks():
    frame = pd.DataFrame({"payload": [{"a": 1}, None], "blob": [b"x", b"y"]})
    assert schemas.normalize(frame) is frame


def test_a_signature_of_normalized_data_accepts_normalized_batches():
    frame = awkward_frame()
    signature = infer_signature(schemas.normalize(frame))
    assert signature.inputs.has_input_names()
    types = {spec.name: spec.type for spec in signature.inputs.inputs}
    assert types == {
        "visits count": DataType.double,
        "member.flag": DataType.double,
        "always": DataType.boolean,
        "météo": DataType.string,
        "code": DataType.string,
        "plan": DataType.string,
        "zone": DataType.string,
        "score": DataType.double,
        "ratio": DataType.double,
        "city": DataType.string,
        "mixed": DataType.string,
        "amount": DataType.double,
        "opt-in": DataType.double,
        "wind.speed": DataType.long,
    }
    # A later batch, with missing values elsewhere, passes both our checks and MLflow's.
    batch = frame.iloc[[3, 1, 0]].reset_index(drop=True)
    conformed = schemas.conform(batch, signature)
    assert schemas.check_signature(conformed, signature) == []
    enforced = _enforce_schema(conformed, signature.inputs)
    assert list(enforced.columns) == list(frame.columns)


def test_infinities_are_counted_per_column_in_every_float_dtype():
    frame = pd.DataFrame(
        {
            "numpy": [1.0, float("inf"), float("nan"), 2.0],
            "nullable": pd.array([float("-inf"), None, 1.0, float("inf")], dtype="Float64"),
            "arrow": pd.array([1.0, float("inf"), None, 3.0], dtype="double[pyarrow]"),
            "ints": [1, 2, 3, 4],
            "text": ["a", "inf", "b", None],
        }
    )
    found = {v.column: v.rows for v in schemas.check_finite(frame)}
    assert found == {"numpy": 1, "nullable": 2, "arrow": 1}
    assert schemas.check_finite(frame, ["ints", "text", "absent"]) == []
    with pytest.raises(schemas.ValidationError, match=r"column 'nullable': holds \+inf"):
        schemas.refuse_infinite(frame, ["nullable"])


@pytest.mark.parametrize(
    ("values", "advice"),
    [
        (["1,5", "-0,25", "1.234,75"], "set the reader's decimal_point, e.g. reader: {KIND: CSV"),
        (["1,053", "2,100"], "if the comma is the decimal point, set the reader's decimal_point"),
    ],
)
def test_numbers_read_as_text_for_their_commas_are_named_with_the_reader_to_set(values, advice):
    signature = ModelSignature(inputs=Schema([ColSpec(DataType.double, "price")]))
    [violation] = schemas.check_signature(pd.DataFrame({"price": values}), signature)
    assert violation.rule.startswith(
        f"type double expected, got str (numbers written with commas, such as {values[0]!r}: "
    )
    assert advice in violation.rule
    # Text that is not numbers gets the plain rule.
    [plain] = schemas.check_signature(pd.DataFrame({"price": ["cheap", "1,5"]}), signature)
    assert plain.rule == "type double expected, got str"
