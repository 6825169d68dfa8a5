"""Tests for feature inference and target checks: any tabular data set, given its target."""

from __future__ import annotations

import datetime
import decimal
import logging

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from components.core import features, schemas


@pytest.fixture
def frame() -> pd.DataFrame:
    """Every dtype a tabular data set may bring, with awkward names and missing values."""
    return pd.DataFrame(
        {
            "id": [f"row-{i}" for i in range(6)],
            "temp ratio": [0.1, np.nan, 0.3, 0.4, 0.5, 0.6],
            "wind.speed": [1, 2, 3, 4, 5, 6],
            "température": np.float32([1, 2, 3, 4, 5, 6]),
            "visits": pd.array([1, None, 3, 4, 5, 6], dtype="Int64"),
            "holiday": [True, False, True, False, True, False],
            "member": pd.array([True, None, False, True, False, True], dtype="boolean"),
            "score": pd.Series([1, 2, None, 4, 5, 6], dtype=pd.ArrowDtype(pa.int64())),
            "city": pd.Series(["Paris", None, "Lyon", "Nice", "Paris", "Lyon"], dtype=object),
            "weather": pd.Categorical(["sun", "rain", None, "sun", "snow", "rain"]),
            "plan": pd.array(["a", "b", None, "a", "b", "a"], dtype="string[pyarrow]"),
            "zone": pd.Series(["n", "s", None, "n", "s", "e"], dtype=pd.ArrowDtype(pa.string())),
            "mixed": pd.Series(["a", 1, 2.5, None, "b", "a"], dtype=object),
            "code": [3, 1, 2, 3, 1, 2],
            "cnt": [10.0, 20.0, 30.0, 40.0, 50.0, 60.0],
        }
    )


NUMERICAL = ["temp ratio", "wind.speed", "température", "visits", "holiday", "member", "score"]
CATEGORICAL = ["city", "weather", "plan", "zone", "mixed"]


def test_infer_sorts_every_dtype_into_numerical_and_categorical(frame):
    found = features.infer(frame, "cnt", exclude=["id", "code"])
    assert found == features.Features(numerical=NUMERICAL, categorical=CATEGORICAL)
    assert found.columns == [*NUMERICAL, *CATEGORICAL]
    # The same columns come out once the data is normalized for training.
    assert features.infer(schemas.normalize(frame), "cnt", exclude=["id", "code"]) == found


def test_infer_without_exclude_keeps_text_identifiers_as_categories(frame):
    found = features.infer(frame, "cnt")
    assert found.categorical == ["id", *CATEGORICAL]
    assert "code" in found.numerical and "cnt" not in found.columns


def test_infer_with_a_features_list_and_forced_categories(frame):
    found = features.infer(
        frame, "cnt", features=["code", "city", "wind.speed"], categorical=["code"]
    )
    assert found == features.Features(numerical=["wind.speed"], categorical=["city", "code"])


def test_infer_never_uses_the_target_or_the_time_column():
    frame = pd.DataFrame(
        {
            "when": pd.date_range("2024-01-01", periods=4, freq="h"),
            "x": [1.0, 2.0, 3.0, 4.0],
            "y": [0, 1, 0, 1],
        }
    )
    assert features.infer(frame, "y", time_column="when") == features.Features(["x"], [])
    with pytest.raises(features.FeatureError, match="features cannot include 'y' is the target"):
        features.infer(frame, "y", features=["x", "y"])


def test_infer_objects_holding_numbers_or_booleans_are_numerical():
    frame = pd.DataFrame(
        {
            "amount": pd.Series([decimal.Decimal("1.5"), None, decimal.Decimal("2")]),
            "flag": pd.Series([True, None, False], dtype=object),
            "y": [1.0, 2.0, 3.0],
        }
    )
    assert features.infer(frame, "y") == features.Features(["amount", "flag"], [])


@pytest.mark.parametrize(
    "column",
    [
        pd.Series(pd.date_range("2024-01-01", periods=3)),
        pd.Series(pd.date_range("2024-01-01", periods=3, tz="Europe/Paris")),
        pd.Series([datetime.date(2024, 1, d) for d in (1, 2, 3)]),
        pd.Series(pd.array([1, 2, 3], dtype=pd.ArrowDtype(pa.timestamp("us", tz="UTC")))),
        pd.Series(pd.array([1, 2, 3], dtype=pd.ArrowDtype(pa.date32()))),
    ],
    ids=["datetime64", "tz-aware", "date-objects", "arrow-timestamp", "arrow-date"],
)
def test_infer_refuses_datetimes_and_says_what_to_do(column):
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [1.0, 2.0, 3.0]}).assign(
        **{"ride day": column}
    )
    with pytest.raises(features.FeatureError) as error:
        features.infer(frame, "y")
    message = str(error.value)
    assert message.startswith("column(s) 'ride day' hold dates or times")
    assert "add it to exclude, or name it as time_column to split by time" in message
    assert "derive numeric parts such as hour or weekday in your data" in message
    assert features.infer(frame, "y", exclude=["ride day"]).numerical == ["x"]
    assert features.infer(frame, "y", time_column="ride day").numerical == ["x"]


def test_infer_refuses_python_objects_naming_them():
    frame = pd.DataFrame(
        {
            "payload": [{"a": 1}, {"b": 2}, None],
            "blob": [b"x", b"y", b"z"],
            "x": [1.0, 2.0, 3.0],
            "y": [1.0, 2.0, 3.0],
        }
    )
    with pytest.raises(
        features.FeatureError,
        match=r"column\(s\) 'payload' \(dict\), 'blob' \(bytes\) hold Python objects, not "
        "numbers or text: add them to exclude",
    ):
        features.infer(frame, "y")
    assert features.infer(frame, "y", exclude=["payload", "blob"]).columns == ["x"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"target": "cnnt"}, r"target: no column named 'cnnt' \(did you mean 'cnt'\?\)"),
        (
            {"target": "cnt", "features": ["wind speed", "nope"]},
            r"features: no column named 'wind speed' \(did you mean 'wind.speed'\?\), 'nope' "
            r"in the data; columns: 'id', 'temp ratio', 'wind.speed'",
        ),
        ({"target": "cnt", "categorical": ["cod"]}, r"categorical: no column named 'cod'"),
        ({"target": "cnt", "exclude": ["ids"]}, r"exclude: no column named 'ids' \(did you"),
        ({"target": "cnt", "time_column": "when"}, r"time_column: no column named 'when'"),
    ],
)
def test_infer_names_unknown_columns_with_close_matches(frame, arguments, message):
    with pytest.raises(features.FeatureError, match=message):
        features.infer(frame, **arguments)


def test_infer_forced_categories_must_be_features(frame):
    with pytest.raises(features.FeatureError, match=r"categorical column\(s\) 'code' are not"):
        features.infer(frame, "cnt", exclude=["code"], categorical=["code"])


def test_infer_needs_a_feature_left(frame):
    with pytest.raises(features.FeatureError, match="no feature column left to predict 'cnt'"):
        features.infer(frame[["id", "cnt"]], "cnt", exclude=["id"])
    with pytest.raises(features.FeatureError, match="no feature column left"):
        features.infer(frame, "cnt", features=[])


def test_infer_leaves_out_empty_columns_with_a_warning(frame, caplog):
    with caplog.at_level(logging.WARNING):
        found = features.infer(frame.assign(nothing=None), "cnt", exclude=["id"])
    assert "nothing" not in found.columns
    assert "leaving out column(s) 'nothing': they hold no value at all" in caplog.text


def test_infer_leaves_out_columns_without_a_name_with_a_warning(frame, caplog):
    # A CSV that pandas' to_csv wrote with its index: the first header is empty, and pandas
    # reads such a column back as "Unnamed: 0". MLflow signatures turn "" into 0.
    indexed = frame.assign(**{"": range(6), "Unnamed: 7": range(6)})
    with caplog.at_level(logging.WARNING):
        found = features.infer(indexed, "cnt", exclude=["id"])
    assert "" not in found.columns and "Unnamed: 7" not in found.columns
    assert found.numerical == [*NUMERICAL, "code"]
    assert "leaving out '' (column 16), 'Unnamed: 7' (column 17): a column without a name" in (
        caplog.text
    )
    # A pandas-named one that features lists is the user's choice.
    chosen = features.infer(indexed, "cnt", features=["Unnamed: 7", "code"])
    assert chosen.numerical == ["code", "Unnamed: 7"]


def test_infer_refuses_numbers_read_as_text_for_their_commas():
    # A spreadsheet's CSV (`;` between values, `1,5`) read with the default reader: each
    # number would have been a category of its own.
    frame = pd.DataFrame(
        {"price": ["1,5", "2,25", None], "shop": ["a", "b", "a"], "y": [1.0, 2, 3]}
    )
    with pytest.raises(features.FeatureError) as error:
        features.infer(frame, "y")
    assert str(error.value) == (
        "column(s) 'price' hold numbers written with commas (such as '1,5'), read as text: they "
        "would be categories, not numbers; set the reader's decimal_point, e.g. reader: {KIND: "
        "CSVReader, delimiter: ';', decimal_point: ','}; or list them in categorical if they "
        "are codes"
    )
    thousands = frame.assign(price=["1,053", "12,400", None])
    with pytest.raises(features.FeatureError, match="if it separates thousands, remove the"):
        features.infer(thousands, "y")
    # Codes that look so are the user's call.
    found = features.infer(frame, "y", categorical=["price"])
    assert found.categorical == ["price", "shop"]


def test_infer_warns_about_identifier_like_categories(caplog):
    frame = pd.DataFrame({"user": [f"u{i}" for i in range(100)], "y": np.arange(100.0)})
    with caplog.at_level(logging.WARNING):
        features.infer(frame, "y")
    assert "'user' has 100 distinct values in 100 rows" in caplog.text


def test_infer_refuses_column_names_that_are_not_text():
    with pytest.raises(features.FeatureError, match="column names must be text; got 0"):
        features.infer(pd.DataFrame({0: [1, 2], "y": [1, 2]}), "y")


# %% TARGETS


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (pd.Series(["a", "b", "a"]), r"target 'y' holds text \(e.g. 'a', 'b'\): choose a classi"),
        (pd.Series([True, False, True]), r"target 'y' holds booleans \(e.g. True, False\)"),
        (pd.Series(pd.Categorical(["lo", "hi"])), r"target 'y' holds categories \(e.g. 'lo'"),
    ],
    ids=["text", "bool", "category"],
)
def test_regressor_refuses_a_target_that_is_not_numeric(target, message):
    with pytest.raises(features.FeatureError, match=message) as error:
        features.check_target("regression", target, "y")
    assert "choose a classifier kind such as HistGradientBoostingClassifier" in str(error.value)


def test_regressor_gets_floats_and_a_warning_for_two_values(caplog):
    prepared = features.check_target("regression", pd.Series([1, 2, 3], dtype="Int64"), "y")
    assert prepared.dtype == "float64" and prepared.tolist() == [1.0, 2.0, 3.0]
    with caplog.at_level(logging.WARNING):
        features.check_target("regression", pd.Series([0, 1, 0, 1]), "y")
    assert "target 'y' holds only 2 distinct values (0.0, 1.0)" in caplog.text


def test_classifier_refuses_continuous_numbers():
    with pytest.raises(
        features.FeatureError,
        match=r"target 'y' holds continuous numbers \(4 distinct values, e.g. 0.5, 1.25, 3.0\), "
        "not classes: choose a regressor kind such as HistGradientBoostingRegressor",
    ):
        features.check_target("classification", pd.Series([0.5, 1.25, 3.0, 4.0]), "y")


def test_classifier_refuses_many_whole_numbers():
    with pytest.raises(
        features.FeatureError,
        match=r"target 'y' holds 200 distinct whole numbers \(e.g. 0, 1, 2\): more than 50 "
        "classes looks like a count",
    ):
        features.check_target("classification", pd.Series(np.arange(200)), "y")


@pytest.mark.parametrize(
    "target", [pd.Series(["a", "a"]), pd.Series([1, 1, None])], ids=["text", "numbers"]
)
def test_classifier_needs_two_classes(target):
    with pytest.raises(features.FeatureError, match="a classifier needs at least 2 classes"):
        features.check_target("classification", target, "y")


def test_classifier_labels_stay_integers_or_text():
    widened = pd.Series(pd.array([0, 2, 1, None], dtype="Int64")).dropna().astype("float64")
    prepared = features.check_target("classification", widened, "y")
    assert prepared.dtype == "int64" and prepared.tolist() == [0, 2, 1]
    labels = pd.Series(pd.Categorical(["lo", "hi", None]))
    assert features.check_target("classification", labels, "y").tolist()[:2] == ["lo", "hi"]
    mixed = features.check_target("classification", pd.Series(["a", 1, "a", 1]), "y")
    assert mixed.tolist() == ["a", "1", "a", "1"]
    flags = features.check_target("classification", pd.Series([True, False]), "y")
    assert flags.dtype == bool


def test_target_refuses_dates():
    with pytest.raises(features.FeatureError, match="target 'y' holds dates or times"):
        features.check_target("regression", pd.Series(pd.date_range("2024", periods=2)), "y")
