"""Times: text read as timestamps, the way a user's CSV writes them.

A time column read from CSV is text ("03/31/2024 13:00", "2024-03-31"): ordered as text, rows
of December would come before those of January. The splitter (a holdout of the latest rows) and
the labels' periods (`components.core.labels`) read such text as timestamps first.
"""

from __future__ import annotations

import warnings

import pandas as pd  # type: ignore[import-untyped]


def parse_times(values: pd.Series) -> pd.Series:
    """Read text as timestamps: in one format (month first, else day first), else value by value.

    A value that reads in none is NaT.
    """
    with warnings.catch_warnings():
        # pandas warns when it falls back to parsing value by value: that is the point here.
        warnings.simplefilter("ignore", UserWarning)
        missing = values.isna().sum()
        times = pd.to_datetime(values, errors="coerce")
        if times.isna().sum() > missing:
            # The first value's format, read month first ("01/02/2025"), misses the days
            # after the 12th of a day-first file ("13/01/2025"): read day first, in one format.
            times = pd.to_datetime(values, errors="coerce", dayfirst=True)
        if times.isna().sum() > missing:
            # The format inferred from the first value can miss others ("2012-10-22" then
            # "2012-10-22 13:00"); each value in its own format is slower but reads them all.
            # Not before: value by value, "02/01/2025" is February and "13/01/2025" January.
            times = pd.to_datetime(values, errors="coerce", format="mixed")
    return pd.Series(times, index=values.index, name=values.name)
