"""Reference profiles, batch tallies and drift scores, on synthetic columns with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from components.core import drift, shadow

RNG = np.random.default_rng(11)


def training_frame(rows: int = 20_000) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "x": RNG.normal(10, 2, rows),
            "flag": RNG.integers(0, 2, rows).astype(bool),
            "hour": RNG.integers(0, 24, rows),
            "city": RNG.choice(["paris", "lyon", "nice"], rows, p=[0.6, 0.3, 0.1]),
        }
    )


@pytest.fixture(scope="module")
def reference() -> drift.Profile:
    frame = training_frame()
    predictions = pd.Series(RNG.normal(100, 15, 4000))
    return drift.profile(frame, ["x", "flag", "hour"], ["city"], "regression", predictions)


def split(frame: pd.DataFrame, parts: int) -> list[pd.DataFrame]:
    return [frame.iloc[index] for index in np.array_split(np.arange(len(frame)), parts)]


def counted(reference: drift.Profile, *frames: pd.DataFrame) -> drift.Tally:
    counter = drift.Counter(reference)
    for frame in frames:
        counter.add(frame)
    return counter.tally()


def test_numeric_profile_has_fifty_quantile_bins_and_counts_every_row(reference):
    x = reference.features["x"]
    assert isinstance(x, drift.NumericProfile)
    assert len(x.edges) == drift.NUMERIC_BINS - 1 and x.edges == sorted(x.edges)
    assert sum(x.counts) == 20_000 and x.missing == 0
    assert all(380 <= count <= 420 for count in x.counts)  # about 2% each
    assert x.mean == pytest.approx(10, abs=0.1) and x.std == pytest.approx(2, abs=0.1)


def test_a_column_of_few_values_gets_a_bin_per_value(reference):
    flag = reference.features["flag"]
    assert flag.edges == [1.0] and flag.counts[0] + flag.counts[1] == 20_000
    hour = reference.features["hour"]
    assert len(hour.edges) == 23 and hour.min == 0 and hour.max == 23  # a bin per hour


def test_categorical_profile_lists_values_most_common_first(reference):
    city = reference.features["city"]
    assert isinstance(city, drift.CategoricalProfile)
    assert city.values == ["paris", "lyon", "nice"] and city.complete
    assert sum(city.counts) == 20_000


def test_a_profile_survives_json(reference):
    assert drift.Profile.model_validate_json(reference.model_dump_json()) == reference


def test_the_same_distribution_does_not_drift(reference):
    report = drift.score(reference, counted(reference, training_frame(5000)))
    assert report.drifted == [] and report.changed == []
    assert report.headline() == "no drift in 4 features over 5,000 rows"
    assert all(column.psi < 0.02 for column in report.columns)


def test_a_shift_missing_values_and_a_new_category_are_each_flagged(reference):
    batch = training_frame(5000)
    batch["x"] = batch["x"] + 3  # one and a half standard deviations
    batch.loc[batch.index[:1000], "hour"] = np.nan  # 20% missing
    batch.loc[batch.index[-500:], "city"] = "brest"  # 10% never seen
    report = drift.score(reference, counted(reference, batch))
    flagged = {column.column: column for column in report.drifted}
    assert set(flagged) == {"x", "hour", "city"}
    assert flagged["x"].psi > 0.25 and flagged["x"].out_of_range > 0
    assert flagged["hour"].missing == pytest.approx(0.2) and flagged["hour"].missing_reference == 0
    assert flagged["city"].unseen == pytest.approx(0.1) and flagged["city"].examples == ["brest"]
    assert report.columns[-1].column == "flag" and report.columns[-1].status == "ok"
    assert flagged["x"].statistic == "wasserstein" and flagged["x"].value == pytest.approx(
        1.5, abs=0.1
    )  # the mean moved by 1.5 standard deviations: Wasserstein-1 over the std reads it
    assert report.dataset_drift
    assert report.headline().startswith("3 of 4 features drifted over 5,000 rows: x (Wasser")
    error = report.refusal()
    assert isinstance(error, drift.DriftError)
    assert str(error).startswith("3 feature(s) drifted beyond the thresholds: x (Wasserstein")
    assert "city (" in str(error) and "unseen categories (brest)" in str(error)


def test_tallies_of_batches_or_shards_add_up_to_the_tally_of_all_rows(reference):
    batch = training_frame(9000)
    batch.loc[batch.index[::7], "x"] = np.nan
    batch.loc[batch.index[::5], "city"] = "brest"
    whole = counted(reference, batch)
    parts = [counted(reference, part) for part in split(batch, 4)]
    merged = parts[0]
    for part in parts[1:]:
        merged = merged.merge(part)
    assert merged == whole
    batched = counted(reference, *split(batch, 9))
    assert batched == whole


def test_numeric_values_fall_in_the_bins_numpy_puts_them_in(reference):
    # Values on the edges, under the minimum, over the maximum, infinite: [low, high) bins with
    # one bin below the training range and one above, as np.histogram counts them.
    profile = reference.features["x"]
    edges = np.concatenate([[-np.inf], [profile.min], profile.edges, [np.inf]])
    values = np.concatenate(
        [profile.edges, [profile.min, profile.max, -np.inf, np.inf, profile.min - 1, 1e300]],
    )
    values = np.concatenate([values, np.random.default_rng(3).normal(size=2000) * 5])
    batch = training_frame(len(values))
    batch["x"] = values
    counts = counted(reference, batch).features["x"].counts
    inner = np.nextafter(profile.max, np.inf)
    expected = np.histogram(values, np.concatenate([edges[:-1], [inner, np.inf]]))[0]
    assert counts == expected.tolist()


@pytest.mark.parametrize("dtype", ["int64", "float64", "Int64"])
def test_a_column_of_few_values_is_counted_in_the_same_bins_by_its_distinct_values(
    reference, dtype
):
    # A column of few values is counted value by value (a hash), not sorted: same tally.
    values = np.concatenate([np.arange(-3, 30), RNG.integers(0, 24, 3000)])
    batch = training_frame(len(values))
    batch["hour"] = pd.Series(values).astype(dtype)
    if dtype != "int64":
        batch.loc[batch.index[:7], "hour"] = np.nan
    if dtype == "float64":
        batch.loc[batch.index[7:9], "hour"] = [np.inf, -np.inf]
    tally = counted(reference, batch).features["hour"]
    profile = reference.features["hour"]
    edges = [-np.inf, profile.min, *profile.edges, np.nextafter(profile.max, np.inf), np.inf]
    present = batch["hour"].to_numpy(dtype="float64", na_value=np.nan)
    present = present[~np.isnan(present)]
    assert tally.counts == np.histogram(present, edges)[0].tolist()
    assert tally.missing == (0 if dtype == "int64" else 7)
    assert (tally.low, tally.high) == (float(present.min()), float(present.max()))
    # A batch that holds many distinct values is counted by histogram from then on: same sums.
    spread = training_frame(9000)
    spread["hour"] = RNG.normal(12, 30, 9000)
    counter = drift.Counter(reference)
    counter.add(spread)
    assert not counter.features["hour"].few_values
    assert counter.tally().features["hour"].counts == (
        np.histogram(spread["hour"].to_numpy(), edges)[0].tolist()
    )


def test_a_tally_keeps_its_size_whatever_the_rows(reference):
    small_tally = counted(reference, training_frame(1000))
    small = small_tally.model_dump_json()
    large = counted(reference, *(training_frame(20_000) for _ in range(5))).model_dump_json()
    counts = sum(len(column.counts) for column in small_tally.features.values())
    # 100 times the rows: each count has at most 2 digits more, nothing grows per row.
    assert abs(len(large) - len(small)) <= 2 * counts + 50


def test_psi_of_known_shares():
    assert drift.psi([0.5, 0.5], [0.5, 0.5]) == 0
    expected = (0.8 - 0.5) * math.log(0.8 / 0.5) + (0.2 - 0.5) * math.log(0.2 / 0.5)
    assert drift.psi([0.5, 0.5], [0.8, 0.2]) == pytest.approx(expected)
    assert math.isfinite(drift.psi([1.0, 0.0], [0.0, 1.0]))  # floored, not infinite


def test_thresholds_are_checked():
    with pytest.raises(ValueError, match="psi_warn"):
        drift.Thresholds(psi_warn=0.5, psi=0.2)
    reference = drift.profile(training_frame(5000), ["x"], [], "regression")
    report = drift.score(
        reference,
        counted(reference, training_frame(5000)),
        drift.Thresholds(psi_warn=0.0, psi=0.0),
    )
    assert report.drifted  # a large batch's column drifts with a PSI threshold of 0
    with pytest.raises(ValueError, match="p_value"):
        drift.Thresholds(p_value=0)


def test_a_column_all_missing_in_training_is_profiled_and_scored():
    frame = pd.DataFrame({"empty": [np.nan] * 100, "x": np.arange(100.0)})
    reference = drift.profile(frame, ["empty", "x"], [], "regression")
    assert reference.features["empty"].min is None
    report = drift.score(reference, counted(reference, frame))
    empty = next(column for column in report.columns if column.column == "empty")
    assert empty.psi is None and empty.status == "few"  # no value to judge, in either


def test_the_metrics_and_table_list_every_column(reference):
    report = drift.score(reference, counted(reference, training_frame(2000)))
    assert list(report.table()["column"]) == [c.column for c in report.columns] + ["(prediction)"]
    metrics = report.metrics()
    assert metrics["drifted_features"] == 0 and set(metrics) >= {"psi.x", "psi.city", "max_psi"}


# %% SHADOW


def test_a_regression_comparison_adds_up_and_scores_like_numpy():
    x = RNG.normal(50, 10, 3000)
    y = x + RNG.normal(0, 2, 3000)
    whole = shadow.Comparison(task="regression", tolerance=2.0)
    whole.add(pd.Series(x), pd.Series(y))
    parts = []
    for a, b in zip(np.array_split(x, 3), np.array_split(y, 3), strict=True):
        part = shadow.Comparison(task="regression", tolerance=2.0)
        part.add(pd.Series(a), pd.Series(b))
        parts.append(part)
    merged = parts[0].merge(parts[1]).merge(parts[2])
    for comparison in (whole, merged):
        scores = comparison.summary("m v2", "m v1").scores
        assert scores["mean_absolute_difference"] == pytest.approx(np.abs(y - x).mean())
        assert scores["correlation"] == pytest.approx(np.corrcoef(x, y)[0, 1])
        assert scores["share_beyond_tolerance"] == pytest.approx((np.abs(y - x) > 2).mean())


def test_a_classification_comparison_counts_agreement_and_confusion():
    champion = pd.Series(["a", "b", "b", "c", "a", "a"])
    challenger = pd.Series(["a", "b", "c", "c", "b", "a"])
    comparison = shadow.Comparison(task="classification")
    comparison.add(champion, challenger)
    summary = comparison.summary("m v2", "m v1")
    assert summary.scores["agreement"] == pytest.approx(4 / 6)
    table = summary.confusion_table()
    assert table.loc["a", "a"] == 2 and table.loc["a", "b"] == 1 and table.loc["b", "c"] == 1
    assert int(table.to_numpy().sum()) == 6
    assert summary.headline == "challenger m v2 agrees with m v1 on 66.7% of 6 rows"


def test_a_comparison_refuses_mismatched_rows():
    with pytest.raises(shadow.ShadowError, match="3 predictions for 2 rows"):
        shadow.Comparison(task="regression").add(pd.Series([1.0, 2.0]), pd.Series([1.0] * 3))
