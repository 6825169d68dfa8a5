"""Drift judged for the batch it has: false alarms on clean batches of every size, and detection.

On the bundled bike sharing data: the rows are split at random into the training rows (the
reference, as `TrainingJob` profiles them) and a pool of unseen rows from the same
distribution. Clean batches of 40, 200, 2,000 and 20,000 rows are drawn from the pool (with
replacement past its size), shifted ones from the same draws with one change each. A batch
raises a false alarm when any feature is reported drifted. The measured rates are printed
(`pytest -s`) and asserted against the target: at most 5% per batch at every size.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor

from components.core import drift

NUMERICAL = ["yr", "mnth", "hr", "holiday", "weekday", "workingday", "temp", "atemp", "hum"]
NUMERICAL += ["windspeed"]
CATEGORICAL = ["season", "weathersit"]
SIZES = (40, 200, 2000, 20_000)
# Batches drawn per size: enough to tell 5% from 10%, few enough to stay fast.
BATCHES = {40: 300, 200: 300, 2000: 150, 20_000: 60}
TARGET_FALSE_ALARMS = 0.05


class Setup:
    def __init__(self, bike: pd.DataFrame):
        rng = np.random.default_rng(2026)
        frame = bike[[*NUMERICAL, *CATEGORICAL, "cnt"]].reset_index(drop=True)
        order = rng.permutation(len(frame))
        half = len(frame) // 2
        self.train = frame.iloc[order[:half]].reset_index(drop=True)
        self.pool = frame.iloc[order[half:]].reset_index(drop=True)
        features = [*NUMERICAL, *CATEGORICAL]
        self.model = HistGradientBoostingRegressor(max_iter=50, random_state=0).fit(
            self.train[features], self.train["cnt"]
        )
        predictions = pd.Series(self.model.predict(self.train[features]))
        self.reference = drift.profile(
            self.train[features], NUMERICAL, CATEGORICAL, "regression", predictions
        )
        self.features = features
        self.rng = rng

    def batch(self, rows: int) -> pd.DataFrame:
        picked = self.rng.choice(len(self.pool), rows, replace=rows > len(self.pool))
        return self.pool.iloc[picked].reset_index(drop=True)

    def report(self, batch: pd.DataFrame) -> drift.DriftReport:
        counter = drift.Counter(self.reference)
        predictions = pd.DataFrame({"prediction": self.model.predict(batch[self.features])})
        counter.add(batch, predictions)
        return drift.score(self.reference, counter.tally())


@pytest.fixture(scope="module")
def setup(bike) -> Setup:
    return Setup(bike)


@pytest.fixture(scope="module")
def clean(setup) -> dict[int, list[drift.DriftReport]]:
    return {rows: [setup.report(setup.batch(rows)) for _ in range(BATCHES[rows])] for rows in SIZES}


def test_clean_batches_of_every_size_raise_at_most_five_percent_false_alarms(clean):
    table = []
    for rows, reports in clean.items():
        alarms = sum(bool(report.drifted) for report in reports) / len(reports)
        dataset = sum(report.dataset_drift for report in reports) / len(reports)
        per_column = np.mean([len(report.drifted) / len(report.columns) for report in reports])
        statistics = {c.statistic for report in reports for c in report.columns}
        table.append((rows, len(reports), alarms, dataset, per_column, statistics))
    print("\nrows    batches  any feature drifted  dataset drift  per feature  statistics")
    for rows, count, alarms, dataset, per_column, statistics in table:
        used = ", ".join(sorted(s for s in statistics if s))
        print(f"{rows:>6,} {count:>9} {alarms:>20.1%} {dataset:>14.1%} {per_column:>12.2%}  {used}")
    for rows, _, alarms, dataset, _, _ in table:
        assert alarms <= TARGET_FALSE_ALARMS, f"{rows} rows: {alarms:.1%} of clean batches flagged"
        assert dataset <= alarms


def test_small_batches_are_tested_and_large_ones_measured_by_distance(clean):
    small, large = clean[200][0], clean[20_000][0]
    assert {c.statistic for c in small.columns} == {"ks", "chi2"}
    assert all(c.value is not None and 0 <= c.value <= 1 for c in small.columns)  # p-values
    assert {c.statistic for c in large.columns} == {"wasserstein", "jensen_shannon"}
    assert all(c.psi is not None for c in large.columns)  # the PSI is still reported
    assert "p_value.temp" in small.metrics() and "distance.temp" in large.metrics()


def test_the_prediction_of_clean_rows_does_not_drift(clean):
    """Its reference is the training rows' predictions, not a small holdout's."""
    for rows in (200, 2000, 20_000):
        drifted = sum(report.prediction.status == "drift" for report in clean[rows])
        assert drifted / len(clean[rows]) <= TARGET_FALSE_ALARMS, rows


def test_too_few_rows_are_not_judged(setup):
    report = setup.report(setup.batch(10))
    assert {c.status for c in report.columns} == {"few"}
    assert not report.dataset_drift
    assert report.headline().startswith("too few rows to judge drift: 10 rows")


def shifted(setup: Setup, rows: int, change: str) -> pd.DataFrame:
    batch = setup.batch(rows)
    if change == "moved mean":  # half a training standard deviation
        batch["temp"] = batch["temp"] + 0.5 * setup.train["temp"].std()
    elif change == "widened spread":
        mean = setup.train["hum"].mean()
        batch["hum"] = (mean + (batch["hum"] - mean) * 1.6).clip(0, 1)
    elif change == "unseen category":
        batch.loc[batch.index[: rows // 10], "weathersit"] = 9
    elif change == "missing values":
        batch.loc[batch.index[: rows // 5], "windspeed"] = np.nan
    return batch


CHANGED_COLUMN = {
    "moved mean": "temp",
    "widened spread": "hum",
    "unseen category": "weathersit",
    "missing values": "windspeed",
}


@pytest.mark.parametrize("change", list(CHANGED_COLUMN))
def test_a_moderate_shift_is_detected_in_the_column_it_touched(setup, change):
    column = CHANGED_COLUMN[change]
    rates = {}
    for rows in (200, 2000, 20_000):
        reports = [setup.report(shifted(setup, rows, change)) for _ in range(30)]
        rates[rows] = sum(
            any(c.column == column for c in report.drifted) for report in reports
        ) / len(reports)
        wrongly = [c.column for report in reports for c in report.drifted if c.column != column]
        # Other columns still drift no more often than on clean batches (temp and atemp move
        # together: a shift of one shows in the other).
        assert len([c for c in wrongly if {c, column} != {"temp", "atemp"}]) <= 2, wrongly
    print(f"\n{change} ({column}): detected in " + ", ".join(
        f"{rate:.0%} of {rows:,}-row batches" for rows, rate in rates.items()
    ))  # fmt: skip
    assert all(rate >= 0.9 for rate in rates.values()), rates


def test_a_broken_column_is_dataset_drift_whatever_the_share(setup):
    report = setup.report(shifted(setup, 2000, "missing values"))
    windspeed = next(c for c in report.columns if c.column == "windspeed")
    assert windspeed.status == "drift" and windspeed.broken
    assert report.share < 0.5 and report.dataset_drift
    assert report.headline().startswith("1 of 12 features drifted over 2,000 rows: windspeed")


def test_a_share_threshold_makes_a_single_shifted_column_no_dataset_drift(setup):
    counter = drift.Counter(setup.reference)
    counter.add(shifted(setup, 2000, "moved mean"))
    report = drift.score(setup.reference, counter.tally(), drift.Thresholds(drift_share=0.5))
    assert report.drifted and not report.dataset_drift
    assert report.headline().startswith("no dataset drift (")
