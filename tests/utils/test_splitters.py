"""Tests for the train/test splitters."""

from __future__ import annotations

import logging

import pandas as pd
import pydantic as pdt
import pytest

from components.utils import splitters


@pytest.fixture(scope="module")
def frame(bike) -> pd.DataFrame:
    return bike.head(1000)


def test_default_split_is_a_seeded_random_draw(frame):
    train, test = splitters.TrainTestSplitter().split(frame)
    assert (len(train), len(test)) == (800, 200)
    assert set(train["instant"]).isdisjoint(test["instant"])
    assert test["instant"].tolist() != frame["instant"].iloc[800:].tolist()
    assert list(train.index) == list(range(800)) and list(test.index) == list(range(200))
    pd.testing.assert_frame_equal(test, splitters.TrainTestSplitter().split(frame)[1])


def test_unshuffled_split_holds_out_the_last_rows_in_file_order(frame):
    train, test = splitters.TrainTestSplitter(shuffle=False).split(frame)
    assert train["instant"].tolist() == frame["instant"].iloc[:800].tolist()
    assert test["instant"].tolist() == frame["instant"].iloc[800:].tolist()


def test_time_split_holds_out_the_latest_rows_whatever_the_file_order(frame):
    when = pd.Timestamp("2024-01-01", tz="Europe/Paris") + pd.to_timedelta(frame["instant"], "h")
    scrambled = frame.assign(**{"ride time": when}).sample(frac=1.0, random_state=3)
    splitter = splitters.TrainTestSplitter(time_column="ride time", stratify="season")
    train, test = splitter.split(scrambled)
    assert train["instant"].tolist() == frame["instant"].iloc[:800].tolist()
    assert test["instant"].tolist() == frame["instant"].iloc[800:].tolist()


def test_time_split_is_stable_for_equal_times():
    frame = pd.DataFrame({"day": [2, 1, 2, 1, 2], "row": [0, 1, 2, 3, 4]})
    train, test = splitters.TrainTestSplitter(test_size=0.4, time_column="day").split(frame)
    assert train["row"].tolist() == [1, 3, 0] and test["row"].tolist() == [2, 4]


def test_time_split_refuses_missing_times():
    frame = pd.DataFrame({"day": [1.0, None, 3.0, 4.0, 5.0]})
    with pytest.raises(ValueError, match="time_column 'day': 1 rows have no value"):
        splitters.TrainTestSplitter(time_column="day").split(frame)


def test_time_split_reads_text_as_dates_not_as_text():
    """A CSV gives its dates as text: "12/31/2023" sorts after "01/02/2024" as text."""
    days = ["01/02/2024", "12/30/2023", "01/03/2024 08:00", "12/31/2023", "01/01/2024"]
    frame = pd.DataFrame({"day": days, "y": range(5)})
    train, test = splitters.TrainTestSplitter(test_size=0.4, time_column="day").split(frame)
    assert list(test["day"]) == ["01/02/2024", "01/03/2024 08:00"]
    assert sorted(train["day"]) == ["01/01/2024", "12/30/2023", "12/31/2023"]


def test_time_split_reads_a_day_first_file_day_first():
    """Europe writes 13 January as "13/01/2025": value by value, "02/01/2025" read as
    February 1st put January's rows among the latest, and the holdout was no longer later."""
    days = pd.date_range("2025-01-01", periods=40, freq="D")
    # Newest first, as exports often are: the first value ("09/02/2025") reads month first.
    frame = pd.DataFrame({"day": days.strftime("%d/%m/%Y"), "y": range(40)}).iloc[::-1]
    train, test = splitters.TrainTestSplitter(test_size=0.25, time_column="day").split(frame)
    assert sorted(test["y"]) == list(range(30, 40))
    assert sorted(train["y"]) == list(range(30))


def test_time_split_refuses_text_that_is_no_time():
    frame = pd.DataFrame({"day": ["2024-01-01", "soon", "2024-01-03", "later"], "y": range(4)})
    with pytest.raises(ValueError) as refused:
        splitters.TrainTestSplitter(test_size=0.5, time_column="day").split(frame)
    assert str(refused.value) == (
        "cannot order rows by time_column 'day': 2 of 4 values do not read as dates or times "
        "('soon', 'later'); write them as ISO dates (2024-03-31 or 2024-03-31T13:00:00), or as "
        "numbers that grow with time"
    )


def test_stratified_split_keeps_the_class_proportions():
    frame = pd.DataFrame({"label": ["a"] * 90 + ["b"] * 10, "row": range(100)})
    splitter = splitters.TrainTestSplitter(stratify="label")
    train, test = splitter.split(frame)
    assert test["label"].value_counts().to_dict() == {"a": 18, "b": 2}
    assert set(train["row"]) | set(test["row"]) == set(range(100))
    pd.testing.assert_frame_equal(test, splitter.split(frame)[1])


def test_a_class_of_one_row_trains_and_the_others_stay_stratified(caplog):
    frame = pd.DataFrame({"label": [0] * 50 + [1] * 30 + [2] * 20 + [7], "row": range(101)})
    with caplog.at_level(logging.WARNING):
        train, test = splitters.TrainTestSplitter(stratify="label").split(frame)
    assert test["label"].value_counts().to_dict() == {0: 10, 1: 6, 2: 4}
    assert 7 in set(train["label"])
    assert set(train["row"]) | set(test["row"]) == set(range(101)) and len(train) == 81
    assert (
        "class(es) '7' of 'label' have a single row: it trains, and the holdout is stratified "
        "on the other classes" in caplog.text
    )
    assert "the holdout has no row of class(es) 7 of 'label'" in caplog.text
    assert "plain random" not in caplog.text


def test_stratified_split_falls_back_with_a_warning(caplog):
    frame = pd.DataFrame({"label": list("abcdefgh") + ["z", "z"]})
    with caplog.at_level(logging.WARNING):
        train, test = splitters.TrainTestSplitter(stratify="label").split(frame)
    assert (len(train), len(test)) == (8, 2)
    assert "cannot stratify the holdout on 'label' (only 2 rows are of classes" in caplog.text
    assert "holding out a plain random 2 rows" in caplog.text


def test_stratified_split_falls_back_when_classes_outnumber_the_holdout(caplog):
    frame = pd.DataFrame({"label": list("abcdef") * 2})
    with caplog.at_level(logging.WARNING):
        splitters.TrainTestSplitter(stratify="label").split(frame)
    assert "'label' has 6 classes, more than the 2 held-out and 10 training rows" in caplog.text
    assert "the holdout has no row of class(es)" in caplog.text


def test_a_holdout_missing_classes_is_reported(caplog):
    frame = pd.DataFrame({"label": [1] * 8 + [2, 3]})
    with caplog.at_level(logging.WARNING):
        splitters.TrainTestSplitter(shuffle=False, stratify="label").split(frame)
    assert "the holdout has no row of class(es) 1 of 'label' (present in training)" in caplog.text


@pytest.mark.parametrize("role", ["stratify", "time_column"])
def test_split_names_a_missing_column(frame, role):
    with pytest.raises(ValueError, match=f"cannot split on {role} 'nope': no such column"):
        splitters.TrainTestSplitter(**{role: "nope"}).split(frame)


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


# %% THE REGISTRY OF SPLITTERS


def test_an_unknown_splitter_is_refused_in_one_line_listing_the_kinds():
    with pytest.raises(ValueError) as caught:
        splitters.SPLITTERS.build({"type": "KFoldSplitter", "config": {"folds": 5}})
    message = str(caught.value)
    assert "\n" not in message
    assert message == (
        "unknown splitter type 'KFoldSplitter'; allowed: 'TrainTestSplitter', or the import "
        "path package.module:Class of a subclass of components.utils.splitters:Splitter"
    )


def test_a_class_that_is_not_a_splitter_is_refused():
    with pytest.raises(ValueError, match="is not a subclass of components.utils.splitters:Split"):
        splitters.SPLITTERS.build({"KIND": "tests.user_models:NotAKind"})


def test_a_splitters_options_are_checked_where_it_is_built():
    with pytest.raises(ValueError, match=r"^invalid TrainTestSplitter: test_size: Input should"):
        splitters.SPLITTERS.build({"type": "TrainTestSplitter", "config": {"test_size": 2.0}})


def test_a_users_splitter_is_built_by_its_import_path_and_keeps_itself_when_refined(frame):
    from tests import user_models

    path = "tests.user_models:FirstRowsSplitter"
    splitter = splitters.SPLITTERS.build({"KIND": path, "rows": 30})
    assert type(splitter) is user_models.FirstRowsSplitter and path == splitter.KIND
    assert splitter.refined(time_column="dteday", stratify="season") is splitter
    train, test = splitter.split(frame)
    assert test["instant"].tolist() == frame["instant"].head(30).tolist()
    assert len(train) == len(frame) - 30


def test_the_train_test_splitter_is_refined_with_the_time_column_and_the_classes():
    refined = splitters.TrainTestSplitter(test_size=0.3).refined("dteday", "season")
    assert refined == splitters.TrainTestSplitter(
        test_size=0.3, time_column="dteday", stratify="season"
    )
