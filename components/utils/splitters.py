"""Splitters: hold rows out of training to evaluate the model on data it has not seen."""

from __future__ import annotations

import abc
import typing as T

import numpy as np
import pandas as pd
import pydantic as pdt


class Splitter(abc.ABC, pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """Split a frame into a training part and a test (holdout) part."""

    KIND: str

    @abc.abstractmethod
    def split(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Return (train, test)."""


class TrainTestSplitter(Splitter, frozen=True):
    """Hold out a fraction of the rows.

    Args:
        test_size: the fraction of rows held out, in (0, 1).
        shuffle: draw the holdout at random; False keeps the last rows (time-ordered data).
        random_state: seed for the shuffle.
    """

    KIND: T.Literal["TrainTestSplitter"] = "TrainTestSplitter"
    test_size: float = pdt.Field(default=0.2, gt=0.0, lt=1.0)
    shuffle: bool = False
    random_state: int = 42

    def split(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        n_test = int(round(len(frame) * self.test_size))
        if n_test < 1 or n_test >= len(frame):
            raise ValueError(
                f"cannot hold out {self.test_size:.0%} of {len(frame)} rows: "
                "need at least one row on each side"
            )
        order = np.arange(len(frame))
        if self.shuffle:
            order = np.random.default_rng(self.random_state).permutation(len(frame))
        train, test = order[:-n_test], order[-n_test:]
        return frame.iloc[train].reset_index(drop=True), frame.iloc[test].reset_index(drop=True)


SplitterKind = TrainTestSplitter
