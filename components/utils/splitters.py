"""Splitters: hold rows out of training to evaluate the model on data it has not seen."""

from __future__ import annotations

import abc
import logging
import typing as T

import numpy as np
import pandas as pd
import pydantic as pdt
from sklearn import model_selection

from components.utils import factories
from components.utils.times import parse_times

logger = logging.getLogger(__name__)


class Splitter(abc.ABC, pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """Split a frame into a training part and a test (holdout) part."""

    KIND: str

    def refined(self, time_column: str | None, stratify: str | None) -> Splitter:
        """This splitter told what the training knows of the data; by default it keeps itself.

        Args:
            time_column: the column that orders the rows in time, if any.
            stratify: the column whose classes should keep their shares (a classifier's
                target), if any.
        """
        return self

    @abc.abstractmethod
    def split(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Return (train, test)."""


class TrainTestSplitter(Splitter, frozen=True):
    """Hold out a fraction of the rows.

    With `time_column`, the rows are ordered by it (a stable sort) and the latest ones held
    out, as time-ordered data needs. Otherwise the holdout is drawn at random, stratified on
    the `stratify` column when given (the target, for a classifier) and when the classes allow
    it; `shuffle=False` keeps the last rows in file order instead.

    Args:
        test_size: the fraction of rows held out, in (0, 1).
        shuffle: draw the holdout at random; False holds out the last rows in file order.
        stratify: a column whose classes keep their proportions in both parts (random draws
            only); the holdout is also checked for classes it misses.
        time_column: a column that orders the rows in time: the latest rows are held out.
        random_state: seed for the shuffle.
    """

    KIND: T.Literal["TrainTestSplitter"] = "TrainTestSplitter"
    test_size: float = pdt.Field(default=0.2, gt=0.0, lt=1.0)
    shuffle: bool = True
    stratify: str | None = None
    time_column: str | None = None
    random_state: int = 42

    def refined(self, time_column: str | None, stratify: str | None) -> Splitter:
        """Hold out the latest rows by the time column, or a draw stratified on the classes."""
        return self.model_copy(update={"time_column": time_column, "stratify": stratify})

    def split(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Return (train, test), each with a fresh 0..n-1 index.

        Raises:
            ValueError: a named column is missing, the time column has missing values, or
                the frame is too small to keep a row on each side.
        """
        for role, name in (("time_column", self.time_column), ("stratify", self.stratify)):
            if name is not None and name not in frame.columns:
                raise ValueError(
                    f"cannot split on {role} '{name}': no such column; "
                    f"columns: {', '.join(map(str, frame.columns))}"
                )
        n_test = int(round(len(frame) * self.test_size))
        if n_test < 1 or n_test >= len(frame):
            raise ValueError(
                f"cannot hold out {self.test_size:.0%} of {len(frame)} rows: "
                "need at least one row on each side"
            )
        if self.time_column is not None:
            train, test = self._by_time(frame, n_test)
        elif not self.shuffle:
            order = np.arange(len(frame))
            train, test = order[:-n_test], order[-n_test:]
        elif self.stratify is not None:
            train, test = self._stratified(frame, n_test)
        else:
            order = np.random.default_rng(self.random_state).permutation(len(frame))
            train, test = order[:-n_test], order[-n_test:]
        train_rows = frame.iloc[train].reset_index(drop=True)
        test_rows = frame.iloc[test].reset_index(drop=True)
        if self.stratify is not None:
            self._warn_missing_classes(train_rows[self.stratify], test_rows[self.stratify])
        return train_rows, test_rows

    def _by_time(self, frame: pd.DataFrame, n_test: int) -> tuple[np.ndarray, np.ndarray]:
        times = frame[self.time_column]
        missing = int(times.isna().sum())
        if missing:
            raise ValueError(
                f"cannot order rows by time_column '{self.time_column}': {missing} rows have "
                "no value; fill or drop them first"
            )
        if not (
            pd.api.types.is_numeric_dtype(times.dtype)
            or pd.api.types.is_datetime64_any_dtype(times.dtype)
        ):
            times = self._read_as_times(times)
        order = times.reset_index(drop=True).sort_values(kind="stable").index.to_numpy()
        return order[:-n_test], order[-n_test:]

    def _read_as_times(self, values: pd.Series) -> pd.Series:
        """Text (a CSV's dates) as timestamps: as text, "12/31/2023" would follow "01/02/2024".

        Raises:
            ValueError: a value does not read as a date or time.
        """
        parsed = parse_times(values)
        unread = parsed.isna().to_numpy()
        if unread.any():
            examples = ", ".join(repr(value) for value in values[unread].unique()[:3])
            raise ValueError(
                f"cannot order rows by time_column '{self.time_column}': {int(unread.sum())} "
                f"of {len(values)} values do not read as dates or times ({examples}); write "
                "them as ISO dates (2024-03-31 or 2024-03-31T13:00:00), or as numbers that "
                "grow with time"
            )
        return parsed

    def _stratified(self, frame: pd.DataFrame, n_test: int) -> tuple[np.ndarray, np.ndarray]:
        """A draw that keeps each class's share in the holdout.

        A class of a single row cannot be on both sides: its row trains, and the other classes
        are stratified (one rare label must not cost every class its share). When the rest
        cannot be stratified either (more classes than rows on a side), the holdout is a plain
        random draw, with a warning.
        """
        classes = frame[self.stratify].astype(object).map(str)  # one type, NaN as a class
        counts = classes.value_counts()
        single = counts[counts < 2].index.tolist()
        alone = classes.isin(single).to_numpy()
        if single:
            shown = ", ".join(repr(c) for c in single[:5]) + (" ..." if len(single) > 5 else "")
            logger.warning(
                "class(es) %s of '%s' have a single row: it trains, and the holdout is "
                "stratified on the other classes",
                shown,
                self.stratify,
            )
        rest = np.flatnonzero(~alone)
        n_train = len(rest) - n_test
        classes_left = len(counts) - len(single)
        reason = None
        if n_train < 1:
            reason = f"only {len(rest)} rows are of classes with more than one row"
        elif classes_left > min(n_test, n_train):
            reason = (
                f"'{self.stratify}' has {classes_left} classes, more than the {n_test} held-out "
                f"and {n_train} training rows can each cover"
            )
        if reason is None:
            try:
                train, test = model_selection.train_test_split(
                    rest,
                    test_size=n_test,
                    random_state=self.random_state,
                    shuffle=True,
                    stratify=classes.to_numpy()[rest],
                )
                return np.concatenate([train, np.flatnonzero(alone)]), test
            except ValueError as error:
                reason = str(error)
        logger.warning(
            "cannot stratify the holdout on '%s' (%s): holding out a plain random %d rows",
            self.stratify,
            reason,
            n_test,
        )
        order = np.random.default_rng(self.random_state).permutation(len(frame))
        return order[:-n_test], order[-n_test:]

    def _warn_missing_classes(self, train: pd.Series, test: pd.Series) -> None:
        absent = sorted(set(train.dropna().unique()) - set(test.dropna().unique()), key=str)
        if absent:
            shown = ", ".join(repr(_plain(c)) for c in absent[:10])
            more = f" and {len(absent) - 10} more" if len(absent) > 10 else ""
            logger.warning(
                "the holdout has no row of class(es) %s%s of '%s' (present in training): "
                "their metrics are not evaluated",
                shown,
                more,
                self.stratify,
            )


def _plain(value: T.Any) -> T.Any:
    """A numpy scalar as its Python value, so that messages read 3 rather than np.int64(3)."""
    return value.item() if isinstance(value, np.generic) else value


# The registry of splitters: a KIND, `{type, config}` or a user's `package.module:Class`.
SPLITTERS = factories.Factory("splitter", Splitter, (TrainTestSplitter,))
# A job's splitter field: a Splitter, or a config with a KIND built by the registry (a user's
# class by import path included).
SplitterKind = T.Annotated[pdt.SerializeAsAny[Splitter], pdt.BeforeValidator(SPLITTERS.coerce)]
