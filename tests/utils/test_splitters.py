"""Tests for the train/test splitters."""

from __future__ import annotations

import pandas as pd
import pydantic as pdt
import pytest

from components.utils import splitters


@pytest.fixture(scope="module")
def frame(bike) -> pd.DataFrame:
    return bike.head(1000)


def test_default_split_holds_out_the_last_rows_in_order(frame):
    train, test = splitters.TrainTestSplitter().split(frame)
    assert (len(train), len(test)) == (800, 200)
    # Time-ordered data: the holdout is the most recent rows, never a random draw.
    assert train["instant"].tolist() == frame["instant"].iloc[:800].tolist()
    assert test["instant"].tolist() == frame["instant"].iloc[800:].tolist()
    assert list(train.index) == list(range(800)) and list(test.index) == list(range(200))


def test_shuffled_split_is_disjoint_complete_and_seeded(frame):
    splitter = splitters.TrainTestSplitter(test_size=0.25, shuffle=True, random_state=7)
    train, test = splitter.split(frame)
    assert (len(train), len(test)) == (750, 250)
    assert set(train["instant"]).isdisjoint(test["instant"])
    assert set(train["instant"]) | set(test["instant"]) == set(frame["instant"])
    assert test["instant"].tolist() != frame["instant"].iloc[750:].tolist()
    again_train, again_test = splitter.split(frame)
    pd.testing.assert_frame_equal(test, again_test)
    other = splitters.TrainTestSplitter(test_size=0.25, shuffle=True, random_state=8)
    assert other.split(frame)[1]["instant"].tolist() != test["instant"].tolist()


@pytest.mark.parametrize("rows", [1, 2])
def test_split_needs_a_row_on_each_side(frame, rows):
    with pytest.raises(ValueError, match=f"of {rows} rows: need at least one row on each side"):
        splitters.TrainTestSplitter(test_size=0.2).split(frame.head(rows))


@pytest.mark.parametrize("test_size", [0.0, 1.0, -0.1, 1.5])
def test_test_size_must_be_a_fraction(test_size):
    with pytest.raises(pdt.ValidationError, match="test_size"):
        splitters.TrainTestSplitter(test_size=test_size)
