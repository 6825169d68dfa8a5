"""Tests for labels: joining predictions with late ground truth, and scoring them by period.

A real gradient-boosted model, trained on the first 60% of the bike sharing hours, predicts two
weeks of autumn 2012; the ground truth arrives for an overlapping window. No mocks.
"""

from __future__ import annotations

import math
import pathlib

import numpy as np
import pandas as pd
import pytest
from sklearn import datasets, ensemble
from sklearn import metrics as skm

from components.core import labels, metrics, models
from tests.jobs.helpers import BIKE_CATEGORICAL, BIKE_NUMERICAL, BIKE_TARGET

HOURS = pathlib.Path("/work/shared/data/bike-sharing/hour.csv")
KEYS = ["instant"]
TARGET = BIKE_TARGET


@pytest.fixture(scope="module")
def hours() -> pd.DataFrame:
    """The bike sharing hours, without the two counts that add up to the target."""
    return pd.read_csv(HOURS).drop(columns=["casual", "registered"])


@pytest.fixture(scope="module")
def model(hours):
    """A HistGradientBoostingRegressor pipeline fitted on the first 60% of the hours."""
    train = hours.iloc[: int(len(hours) * 0.6)]
    pipeline = models.HistGradientBoostingRegressorModel(
        numerical=BIKE_NUMERICAL, categorical=BIKE_CATEGORICAL
    ).build()
    return pipeline.fit(train, train[TARGET])


def days(hours: pd.DataFrame, first: str, last: str) -> pd.DataFrame:
    return hours[hours["dteday"].between(first, last)].reset_index(drop=True)


@pytest.fixture(scope="module")
def predictions(hours, model) -> pd.DataFrame:
    """The prediction job's output for 2012-10-22 .. 2012-11-04: keys, then `prediction`."""
    batch = days(hours, "2012-10-22", "2012-11-04")
    return pd.concat([batch[["instant", "dteday"]], models.predict_frame(model, batch)], axis=1)


@pytest.fixture(scope="module")
def truth(hours) -> pd.DataFrame:
    """The counts known by 2012-11-12: 2012-10-25 .. 2012-11-11."""
    return days(hours, "2012-10-25", "2012-11-11")[["instant", "dteday", TARGET]]


@pytest.fixture(scope="module")
def joined(predictions, truth) -> pd.DataFrame:
    return labels.join(predictions, truth, KEYS, TARGET)[0]


def by_hand(rows: pd.DataFrame) -> dict[str, float]:
    """The regression metrics, straight from sklearn."""
    return {
        "rmse": skm.root_mean_squared_error(rows[TARGET], rows["prediction"]),
        "mae": skm.mean_absolute_error(rows[TARGET], rows["prediction"]),
        "r2": skm.r2_score(rows[TARGET], rows["prediction"]),
    }


# %% JOIN


def test_join_counts_both_sides(predictions, truth):
    joined, summary = labels.join(predictions, truth, KEYS, TARGET)
    # 14 days less the short 2012-10-29 (1 hour) and 2012-10-30 (11 hours) = 300 predictions;
    # 2012-10-22 .. 24 (72 hours) have no truth yet, 2012-11-05 .. 11 (167 hours) no prediction.
    assert summary.prediction_rows == len(predictions) == 300
    assert summary.truth_rows == len(truth) == 395
    assert summary.matched == summary.labelled == len(joined) == 228
    assert summary.predictions_without_truth == 72
    assert summary.truth_without_predictions == 167
    assert summary.missing_target == 0 and summary.notes == []
    assert summary.describe() == (
        "228 of 300 predictions labelled; 72 without truth yet; 167 truth rows without a prediction"
    )
    assert list(joined.columns) == ["instant", "dteday", "prediction", TARGET]
    assert joined["dteday"].min() == "2012-10-25" and joined["dteday"].max() == "2012-11-04"
    expected = truth.set_index("instant")[TARGET].reindex(joined["instant"]).to_numpy()
    np.testing.assert_array_equal(joined[TARGET].to_numpy(), expected)


def test_join_on_two_keys_and_a_single_key_name(predictions, truth):
    two, _ = labels.join(predictions, truth, ["instant", "dteday"], TARGET)
    one, _ = labels.join(predictions, truth, "instant", TARGET)
    pd.testing.assert_frame_equal(two, one)


def test_join_keeps_the_predictions_own_prediction_column(predictions, truth):
    stale = truth.assign(prediction=-1.0, season=3)
    joined, _ = labels.join(predictions, stale, KEYS, TARGET)
    expected = predictions.set_index("instant")["prediction"].reindex(joined["instant"])
    np.testing.assert_array_equal(joined["prediction"].to_numpy(), expected.to_numpy())
    assert "season" not in joined.columns


def test_join_takes_the_target_from_the_truth(predictions, truth):
    joined, summary = labels.join(predictions.assign(cnt=0), truth, KEYS, TARGET)
    assert (joined[TARGET] > 0).all()
    assert summary.notes == ["the predictions' own 'cnt' column was dropped for the truth's"]


def test_join_drops_and_counts_rows_without_a_target(predictions, truth):
    late = truth.assign(cnt=truth[TARGET].where(truth["dteday"] != "2012-11-04"))
    joined, summary = labels.join(predictions, late, KEYS, TARGET)
    assert summary.matched == 228 and summary.missing_target == 24
    assert summary.labelled == len(joined) == 204
    assert "24 matched rows without cnt dropped" in summary.describe()


def test_join_casts_keys_where_nothing_is_lost(predictions, truth):
    as_text = truth.assign(instant=truth["instant"].astype(str))
    joined, summary = labels.join(predictions, as_text, KEYS, TARGET)
    assert summary.labelled == 228 and joined["instant"].dtype == "int64"
    assert summary.notes == ["the truth's key 'instant': text read as integer"]
    as_floats = truth.assign(instant=truth["instant"].astype(float))
    assert labels.join(predictions, as_floats, KEYS, TARGET)[1].labelled == 228
    # A text timestamp meets a datetime one.
    stamped = predictions.assign(dteday=pd.to_datetime(predictions["dteday"]))
    joined, summary = labels.join(stamped, truth, ["instant", "dteday"], TARGET)
    assert summary.labelled == 228
    assert summary.notes == ["the truth's key 'dteday': text read as datetime"]


# %% JOIN REFUSALS


def test_join_refuses_no_keys(predictions, truth):
    with pytest.raises(labels.LabelsError, match="no key columns given: name the column"):
        labels.join(predictions, truth, [], TARGET)


def test_join_refuses_a_key_missing_on_either_side(predictions, truth):
    with pytest.raises(labels.LabelsError) as error:
        labels.join(predictions, truth, ["instance"], TARGET)
    message = str(error.value)
    assert "key 'instance' is not in the predictions (did you mean: instant?)" in message
    assert "key 'instance' is not in the truth (did you mean: instant?)" in message
    assert "The predictions' columns: instant, dteday, prediction" in message
    assert "the truth's: instant, dteday, cnt" in message
    with pytest.raises(labels.LabelsError, match="key 'hr' is not in the predictions. The"):
        labels.join(predictions, truth.assign(hr=1), ["instant", "hr"], TARGET)
    with pytest.raises(labels.LabelsError, match="key 'hr' is not in the truth. The"):
        labels.join(predictions.assign(hr=1), truth, ["instant", "hr"], TARGET)


def test_join_refuses_a_target_missing_from_the_truth(predictions, truth):
    with pytest.raises(
        labels.LabelsError,
        match=r"target 'count' is not in the truth \(did you mean: cnt\?\); "
        "its columns: instant, dteday, cnt",
    ):
        labels.join(predictions, truth, KEYS, "count")
    with pytest.raises(labels.LabelsError, match="target 'instant' is also a key"):
        labels.join(predictions, truth, KEYS, "instant")
    with pytest.raises(labels.LabelsError, match="rename it in the truth"):
        labels.join(predictions, truth.rename(columns={TARGET: "prediction"}), KEYS, "prediction")
    with pytest.raises(labels.LabelsError, match="the predictions have no 'prediction' column"):
        labels.join(predictions.drop(columns="prediction"), truth, KEYS, TARGET)


def test_join_refuses_a_prediction_made_twice(predictions, truth):
    twice = pd.concat([predictions, predictions.iloc[100:106]], ignore_index=True)
    first = predictions["instant"].iloc[100]
    with pytest.raises(labels.LabelsError) as error:
        labels.join(twice, truth, KEYS, TARGET)
    message = str(error.value)
    assert message.startswith("12 rows of the predictions share 6 keys on instant (e.g. ")
    assert f"instant={first}; instant={first + 1};" in message and "; ...)" in message
    assert "a prediction made twice for the same key is ambiguous" in message


def test_join_refuses_a_key_labelled_twice(predictions, truth):
    twice = pd.concat([truth, truth.iloc[[0]]], ignore_index=True)
    key = truth["instant"].iloc[0]
    with pytest.raises(
        labels.LabelsError,
        match=rf"2 rows of the truth share 1 keys on instant \(e.g. instant={key}\): a key "
        "labelled twice is ambiguous",
    ):
        labels.join(predictions, twice, KEYS, TARGET)


def test_join_refuses_no_overlap(hours, predictions):
    december = days(hours, "2012-12-01", "2012-12-02")
    with pytest.raises(labels.LabelsError) as error:
        labels.join(predictions, december, KEYS, TARGET)
    first, last = december["instant"].min(), december["instant"].max()
    assert str(error.value) == (
        "no prediction matches a truth row on instant: 'instant' runs "
        f"{predictions['instant'].min()} .. {predictions['instant'].max()} in the predictions "
        f"(300 rows), {first} .. {last} in the truth (48 rows). Check that the truth covers "
        "the predicted rows, and that both sides spell the keys alike"
    )


@pytest.mark.parametrize(
    ("instant", "message"),
    [
        (
            lambda keys: "id-" + keys.astype(str),
            r"key 'instant' is text in the truth but integer on the other side \(e.g. \d+\), "
            r"and 395 of its values do not read as integer without loss: 'id-\d+'",
        ),
        (
            lambda keys: "0" + keys.astype(str),
            r"and 395 of its values do not read as integer without loss: '0\d+'",
        ),
        (
            lambda keys: pd.to_datetime(keys, unit="D"),
            "key 'instant' holds integer values in the predictions but datetime values in the "
            "truth",
        ),
        (
            lambda keys: keys + 0.5,
            r"holds integers on one side but fractional numbers in the truth \(e.g. \d+\.5",
        ),
        (
            lambda keys: keys.astype(object).where(keys % 2 == 0, keys.astype(str)),
            r"key 'instant' in the truth holds values of several types \(mixed-integer\)",
        ),
    ],
    ids=["text", "leading-zeros", "datetime", "fractional", "mixed"],
)
def test_join_refuses_keys_that_cannot_meet(predictions, truth, instant, message):
    with pytest.raises(labels.LabelsError, match=message):
        labels.join(predictions, truth.assign(instant=instant(truth["instant"])), KEYS, TARGET)


def test_join_refuses_time_zones_on_one_side_only(predictions, truth):
    local = pd.to_datetime(predictions["dteday"]).dt.tz_localize("US/Eastern")
    with pytest.raises(
        labels.LabelsError,
        match="key 'dteday' has time zones in the predictions but none in the truth",
    ):
        labels.join(predictions.assign(dteday=local), truth, ["instant", "dteday"], TARGET)


def test_join_refuses_missing_keys(predictions, truth):
    holes = truth.assign(instant=truth["instant"].astype(float).mask(truth.index.isin([3, 7])))
    with pytest.raises(
        labels.LabelsError,
        match=r"key 'instant' is missing in 2 of 395 rows of the truth \(rows 3, 7\): a row "
        "without its full key cannot be matched",
    ):
        labels.join(predictions, holes, KEYS, TARGET)


def test_join_refuses_when_no_matched_row_has_a_target(predictions, truth):
    with pytest.raises(labels.LabelsError, match="all 228 matched rows have no 'cnt' in the truth"):
        labels.join(predictions, truth.assign(cnt=np.nan), KEYS, TARGET)


# %% METRICS BY PERIOD


def test_metrics_by_day_match_sklearn(joined):
    table = labels.metrics_by_period(joined, "regression", TARGET, "dteday", "D", min_rows=20)
    assert list(table.columns) == ["period", "rows", "rmse", "mae", "r2", "status"]
    assert table["period"].tolist()[:3] == ["2012-10-25", "2012-10-26", "2012-10-27"]
    assert table["period"].iloc[-1] == "all" and len(table) == 12
    assert table["rows"].iloc[:-1].sum() == table["rows"].iloc[-1] == 228
    day = table.set_index("period").loc["2012-11-01"]
    assert day["rows"] == 24 and day["status"] == "scored"
    expected = by_hand(joined[joined["dteday"] == "2012-11-01"])
    assert day[["rmse", "mae", "r2"]].to_dict() == pytest.approx(expected)
    overall = table.set_index("period").loc["all"]
    assert overall[["rmse", "mae", "r2"]].to_dict() == pytest.approx(by_hand(joined))
    assert table.attrs["unit"] == "day" and table.attrs["period"] == "D"


def test_short_periods_are_counted_not_scored(joined):
    table = labels.metrics_by_period(joined, "regression", TARGET, "dteday", "D", min_rows=20)
    short = table[table["status"] == labels.TOO_FEW_ROWS]
    # The storm of 2012-10-29/30 (Sandy) left 1 and 11 hours in the data.
    assert short["period"].tolist() == ["2012-10-29", "2012-10-30"]
    assert short["rows"].tolist() == [1, 11]
    assert short[["rmse", "mae", "r2"]].isna().all().all()
    # At the default 30 rows, every day of hourly data is too short; the whole window is not.
    default = labels.metrics_by_period(joined, "regression", TARGET, "dteday")
    assert (default["status"].iloc[:-1] == "too few rows").all()
    assert default["status"].iloc[-1] == "scored"


def test_metrics_by_week_and_month(joined):
    weeks = labels.metrics_by_period(joined, "regression", TARGET, "dteday", "W")
    assert weeks["period"].tolist() == ["2012-10-22/2012-10-28", "2012-10-29/2012-11-04", "all"]
    assert weeks["rows"].tolist() == [96, 132, 228]
    second = joined[joined["dteday"] >= "2012-10-29"]
    assert weeks.iloc[1][["rmse", "mae", "r2"]].to_dict() == pytest.approx(by_hand(second))
    assert weeks.attrs["unit"] == "week"
    months = labels.metrics_by_period(joined, "regression", TARGET, "dteday", "ME")
    assert months["period"].tolist() == ["2012-10", "2012-11", "all"]
    assert months["rows"].tolist() == [132, 96, 228]
    assert months.equals(labels.metrics_by_period(joined, "regression", TARGET, "dteday", "M"))
    only = labels.metrics_by_period(joined, "regression", TARGET)
    assert only["period"].tolist() == ["all"] and only.attrs["unit"] == ""


def test_timestamps_with_time_zones_and_mixed_formats(joined):
    stamps = pd.to_datetime(joined["dteday"]) + pd.to_timedelta(23, unit="h")
    local = joined.assign(dteday=stamps.dt.tz_localize("Europe/Paris"))
    table = labels.metrics_by_period(local, "regression", TARGET, "dteday", min_rows=20)
    # 23:00 in Paris is still that day, though it is the next day in no zone: days as written.
    assert table["period"].iloc[0] == "2012-10-25"
    mixed = joined.assign(dteday=joined["dteday"].where(joined.index % 2 == 0, stamps.astype(str)))
    again = labels.metrics_by_period(mixed, "regression", TARGET, "dteday", min_rows=20)
    pd.testing.assert_frame_equal(again, table)


# %% COMPARE


def test_compare_flags_the_periods_made_worse(joined):
    clean = labels.metrics_by_period(joined, "regression", TARGET, "dteday", min_rows=20)
    reference = clean.set_index("period").loc["all", ["rmse", "mae", "r2"]].to_dict()
    assert labels.compare(clean, reference, tolerance=1.0).degraded == []
    broken_days = ["2012-10-26", "2012-11-01", "2012-11-03"]
    broken = joined["dteday"].isin(broken_days)
    worse = joined.assign(
        prediction=joined["prediction"].where(~broken, joined["prediction"] - 250)
    )
    table = labels.metrics_by_period(worse, "regression", TARGET, "dteday", min_rows=20)
    report = labels.compare(table, reference, tolerance=1.0)
    assert [period.period for period in report.degraded] == broken_days
    assert [period.period for period in report.too_few_rows] == ["2012-10-29", "2012-10-30"]
    assert report.primary == "rmse" and report.overall.verdict == "ok"  # within 100% overall
    realized = table["rmse"].iloc[-1]
    change = realized / reference["rmse"] - 1
    assert report.overall.get("rmse").change == pytest.approx(change)
    assert report.headline() == (
        f"rmse {realized:.3g} over 228 labelled rows, {change:.0%} worse than the holdout's "
        f"{reference['rmse']:.3g}; degraded beyond 100% in 3 of 11 days (2 with too few rows "
        "to score)"
    )
    flat = report.metrics()
    assert flat["realized_rmse"] == pytest.approx(realized)
    assert flat["realized_rows"] == 228.0 and flat["degraded_periods"] == 3.0
    assert flat["periods"] == 11.0 and flat["too_few_rows_periods"] == 2.0
    assert flat["change_r2"] > 0  # a lower r2 is worse: the change is positive
    assert all(isinstance(value, float) and math.isfinite(value) for value in flat.values())
    rows = report.table()
    assert len(rows) == 12 * 3
    assert set(rows["verdict"]) == {"ok", "degraded", "too few rows"}


def test_compare_with_an_estimate(joined):
    table = labels.metrics_by_period(joined, "regression", TARGET, "dteday", "W")
    realized = table["rmse"].iloc[-1]
    report = labels.compare(
        table, {"rmse": realized / 1.25}, estimated={"rmse": realized * 2}, tolerance=0.1
    )
    assert report.headline() == (
        f"rmse {realized:.3g} over 228 labelled rows, 25% worse than the holdout's "
        f"{realized / 1.25:.3g} and 50% better than the estimated {realized * 2:.3g}; "
        f"degraded beyond 10% in {len(report.degraded)} of 2 weeks"
    )
    assert report.below_estimate == []
    assert report.metrics()["below_estimate_periods"] == 0.0
    assert report.overall.get("rmse").versus_estimate == "ok"
    better = labels.compare(table, {"rmse": realized * 10}, primary="rmse")
    assert "90% better than the holdout's" in better.headline()
    assert better.headline().endswith("; not degraded in any of 2 weeks")


# %% CLASSIFICATION


def test_binary_classification_by_day_with_roc_auc():
    features, target = datasets.make_classification(
        n_samples=3000, n_features=8, n_informative=4, random_state=0
    )
    frame = pd.DataFrame(features, columns=[f"x{i}" for i in range(8)])
    train, later = slice(0, 2000), slice(2000, 3000)
    model = ensemble.HistGradientBoostingClassifier(max_iter=30, random_state=0)
    model.fit(frame.iloc[train], target[train])
    stamps = pd.date_range("2024-03-01", periods=1000, freq="10min").astype(str)
    predictions = pd.concat(
        [
            pd.DataFrame({"id": np.arange(2000, 3000), "at": stamps}),
            models.predict_frame(model, frame.iloc[later]),
        ],
        axis=1,
    )
    truth = pd.DataFrame({"id": np.arange(2000, 3000).astype(str), "label": target[later]})
    joined, summary = labels.join(predictions, truth, ["id"], "label")
    assert summary.labelled == 1000
    table = labels.metrics_by_period(joined, "classification", "label", "at")
    assert list(table.columns) == [
        "period", "rows", "accuracy", "f1_macro", "roc_auc", "log_loss", "status",
    ]  # fmt: skip
    # 144 ten-minute rows a day: 6 full days, then 136 rows of the seventh.
    assert table["rows"].tolist() == [144] * 6 + [136, 1000]
    day = joined[joined["at"].str.startswith("2024-03-02")]
    second = table.iloc[1]
    assert second["period"] == "2024-03-02"
    assert second["roc_auc"] == pytest.approx(skm.roc_auc_score(day["label"], day["probability_1"]))
    assert second["accuracy"] == pytest.approx(skm.accuracy_score(day["label"], day["prediction"]))
    assert second["log_loss"] == pytest.approx(
        skm.log_loss(day["label"], day[["probability_0", "probability_1"]])
    )
    holdout = metrics.score(
        "classification",
        pd.Series(target[1500:2000]),
        models.predict_frame(model, frame.iloc[1500:2000]),
    )
    report = labels.compare(table, holdout, tolerance=0.05)
    assert report.primary == "f1_macro"
    assert report.headline().startswith(f"f1_macro {table['f1_macro'].iloc[-1]:.3g} over 1,000")


def test_multiclass_wine_over_all_rows():
    wine = datasets.load_wine(as_frame=True)
    frame, target = wine.data, wine.target
    rng = np.random.default_rng(0)
    held = rng.permutation(len(frame))[:60]
    train = np.setdiff1d(np.arange(len(frame)), held)
    model = ensemble.HistGradientBoostingClassifier(max_iter=30, random_state=0)
    model.fit(frame.iloc[train], target.iloc[train])
    predictions = models.predict_frame(model, frame.iloc[held]).assign(row=held)
    truth = pd.DataFrame({"row": held[::-1], "cultivar": target.iloc[held[::-1]].to_numpy()})
    joined, _ = labels.join(predictions, truth, ["row"], "cultivar")
    table = labels.metrics_by_period(joined, "classification", "cultivar")
    overall = table.iloc[-1]
    probabilities = joined[[f"probability_{c}" for c in model.classes_]]
    assert overall["rows"] == 60 and overall["status"] == "scored"
    assert overall["roc_auc"] == pytest.approx(
        skm.roc_auc_score(joined["cultivar"], probabilities, multi_class="ovr")
    )
    assert overall["f1_macro"] == pytest.approx(
        skm.f1_score(joined["cultivar"], joined["prediction"], average="macro")
    )


# %% METRICS AND COMPARE REFUSALS


def test_metrics_by_period_refuses_bad_time_columns(joined):
    def by_day(frame: pd.DataFrame, column: str = "dteday", **options):
        return labels.metrics_by_period(frame, "regression", TARGET, column, **options)

    with pytest.raises(labels.LabelsError, match=r"time column 'day' is not in .*did you mean"):
        by_day(joined, "day")
    garbled = joined.assign(dteday=joined["dteday"].where(joined.index > 1, "yesterday"))
    with pytest.raises(
        labels.LabelsError,
        match="time column 'dteday' has 2 of 228 values that do not read as timestamps: "
        "'yesterday'; write them as ISO dates",
    ):
        by_day(garbled)
    with pytest.raises(labels.LabelsError, match=r"holds numbers \(e.g. \d+\), not timestamps"):
        by_day(joined, "instant")
    with pytest.raises(labels.LabelsError, match="'dteday' is missing in 1 of 228 labelled"):
        by_day(joined.assign(dteday=joined["dteday"].where(joined.index > 0)))
    with pytest.raises(labels.LabelsError, match="period 'fortnight' is not a pandas period"):
        by_day(joined, period="fortnight")
    with pytest.raises(labels.LabelsError, match="min_rows must be at least 1, got 0"):
        by_day(joined, min_rows=0)


def test_metrics_by_period_refuses_a_wrong_task_or_target(joined):
    with pytest.raises(labels.LabelsError, match="unknown task 'ranking'; known: regression"):
        labels.metrics_by_period(joined, "ranking", TARGET)
    with pytest.raises(labels.LabelsError, match=r"target 'count' is not in the labelled rows"):
        labels.metrics_by_period(joined, "regression", "count")
    with pytest.raises(labels.LabelsError, match="column 'cnt' holds str values .* not numbers"):
        labels.metrics_by_period(joined.assign(cnt="many"), "regression", TARGET)


def test_compare_refuses_metrics_it_cannot_compare(joined):
    table = labels.metrics_by_period(joined, "regression", TARGET, "dteday", "W")
    with pytest.raises(labels.LabelsError, match="unknown metric in the reference: mape; known"):
        labels.compare(table, {"mape": 0.1})
    with pytest.raises(
        labels.LabelsError,
        match="the reference names accuracy, which the periods were not scored on; they were "
        "scored on: rmse, mae, r2",
    ):
        labels.compare(table, {"accuracy": 0.9})
    with pytest.raises(labels.LabelsError, match="the estimate names f1_macro"):
        labels.compare(table, {"rmse": 60.0}, estimated={"f1_macro": 0.5})
    with pytest.raises(labels.LabelsError, match="the reference's rmse must be a finite number"):
        labels.compare(table, {"rmse": math.nan})
    with pytest.raises(labels.LabelsError, match="the reference's rmse must be a number"):
        labels.compare(table, {"rmse": "64"})
    with pytest.raises(labels.LabelsError, match="no reference metrics to compare with"):
        labels.compare(table, {})
    with pytest.raises(labels.LabelsError, match="tolerance must be 0 or more"):
        labels.compare(table, {"rmse": 60.0}, tolerance=-0.1)
    with pytest.raises(labels.LabelsError, match="primary metric 'r2' is not among"):
        labels.compare(table, {"rmse": 60.0}, primary="r2")
    with pytest.raises(labels.LabelsError, match="by_period must be the table metrics_by_period"):
        labels.compare(table[table["period"] != "all"], {"rmse": 60.0})


def test_join_keeps_the_predictions_own_key_values(predictions, truth):
    eastern = pd.to_datetime(predictions["dteday"]).dt.tz_localize("US/Eastern")
    utc = pd.to_datetime(truth["dteday"]).dt.tz_localize("US/Eastern").dt.tz_convert("UTC")
    joined, summary = labels.join(
        predictions.assign(dteday=eastern), truth.assign(dteday=utc), ["instant", "dteday"], TARGET
    )
    # The same instants meet across zones; the rows keep the zone they were predicted in.
    assert summary.labelled == 228 and summary.notes == []
    assert str(joined["dteday"].dt.tz) == "US/Eastern"
    assert joined["dteday"].dt.hour.eq(0).all()
