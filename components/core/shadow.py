"""Shadow scoring: how a challenger's predictions differ from the Champion's, on the same rows.

A `Comparison` adds batch after batch in fixed memory (sums for a regressor, a confusion count
per pair of labels for a classifier) and adds up across shards (`merge`); `summary` turns it
into the scores that the report, the metrics and the alert show.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pydantic as pdt

# Pairs of labels counted one by one; a classifier with more classes than this is compared on
# agreement alone.
MAX_PAIRS = 10_000


class ShadowError(ValueError):
    """The challenger cannot be compared with the Champion; the message says why."""


class Comparison(pdt.BaseModel, strict=True, extra="forbid"):
    """The Champion's and the challenger's predictions, compared row by row so far.

    Args:
        task: regression or classification.
        tolerance: a regressor's rows differ when |challenger - champion| > tolerance.
        rows: rows compared.
        sum_abs: sum of |challenger - champion| (regression).
        sum_x: sum of the Champion's predictions; sum_y, the challenger's; sum_xx, sum_yy,
            sum_xy their squares and products (for the correlation).
        beyond: rows differing by more than the tolerance (regression).
        agree: rows with the same label (classification).
        pairs: rows per (Champion label, challenger label) (classification).
    """

    task: str
    tolerance: float = pdt.Field(default=0.0, ge=0)
    rows: int = 0
    sum_abs: float = 0.0
    sum_x: float = 0.0
    sum_y: float = 0.0
    sum_xx: float = 0.0
    sum_yy: float = 0.0
    sum_xy: float = 0.0
    beyond: int = 0
    agree: int = 0
    pairs: dict[str, dict[str, int]] = pdt.Field(default_factory=dict)

    def add(self, champion: pd.Series, challenger: pd.Series) -> None:
        """Compare one batch of predictions, row for row."""
        if len(champion) != len(challenger):
            raise ShadowError(
                f"the challenger returned {len(challenger)} predictions for {len(champion)} rows"
            )
        self.rows += len(champion)
        if self.task == "classification":
            self._add_labels(champion, challenger)
        else:
            self._add_values(champion, challenger)

    def _add_values(self, champion: pd.Series, challenger: pd.Series) -> None:
        x = champion.to_numpy(dtype="float64", na_value=np.nan)
        y = challenger.to_numpy(dtype="float64", na_value=np.nan)
        difference = np.abs(y - x)
        self.sum_abs += float(np.nansum(difference))
        self.beyond += int(np.count_nonzero(difference > self.tolerance))
        self.sum_x += float(x.sum())
        self.sum_y += float(y.sum())
        self.sum_xx += float(np.dot(x, x))
        self.sum_yy += float(np.dot(y, y))
        self.sum_xy += float(np.dot(x, y))

    def _add_labels(self, champion: pd.Series, challenger: pd.Series) -> None:
        left = champion.astype(str).to_numpy()
        right = challenger.astype(str).to_numpy()
        self.agree += int(np.count_nonzero(left == right))
        counted = pd.DataFrame({"a": left, "b": right}).value_counts()
        for (a, b), count in counted.items():
            row = self.pairs.setdefault(a, {})
            if b in row or sum(map(len, self.pairs.values())) < MAX_PAIRS:
                row[b] = row.get(b, 0) + int(count)

    def merge(self, other: Comparison) -> Comparison:
        """The comparison of both sets of rows (e.g. two shards)."""
        if other.task != self.task:
            raise ShadowError(f"cannot add a {other.task} comparison to a {self.task} one")
        pairs = {a: dict(row) for a, row in self.pairs.items()}
        for a, row in other.pairs.items():
            for b, count in row.items():
                pairs.setdefault(a, {})[b] = pairs.get(a, {}).get(b, 0) + count
        sums = ("rows", "sum_abs", "sum_x", "sum_y", "sum_xx", "sum_yy", "sum_xy")
        sums += ("beyond", "agree")
        return Comparison(
            task=self.task,
            tolerance=self.tolerance,
            pairs=pairs,
            **{name: getattr(self, name) + getattr(other, name) for name in sums},
        )

    def summary(self, challenger: str, champion: str) -> ShadowSummary:
        """The scores of the comparison.

        Args:
            challenger: the challenger's label, e.g. `bike-sharing v4`.
            champion: the Champion's label.
        """
        rows = self.rows
        scores: dict[str, float] = {"rows": float(rows)}
        if self.task == "classification":
            scores["agreement"] = self.agree / rows if rows else math.nan
            headline = (
                f"challenger {challenger} agrees with {champion} on "
                f"{scores['agreement']:.1%} of {rows:,} rows"
            )
        else:
            scores["mean_absolute_difference"] = self.sum_abs / rows if rows else math.nan
            scores["correlation"] = self._correlation()
            scores["share_beyond_tolerance"] = self.beyond / rows if rows else math.nan
            headline = (
                f"challenger {challenger} vs {champion} over {rows:,} rows: mean absolute "
                f"difference {scores['mean_absolute_difference']:.4g}, correlation "
                f"{scores['correlation']:.4f}, {scores['share_beyond_tolerance']:.1%} of rows "
                f"differ by more than {self.tolerance:.4g}"
            )
        return ShadowSummary(
            challenger=challenger,
            champion=champion,
            task=self.task,
            tolerance=self.tolerance,
            scores=scores,
            confusion=self.pairs,
            headline=headline,
        )

    def _correlation(self) -> float:
        """Pearson's correlation from the sums (1.0 for two identical constant predictions)."""
        n = self.rows
        if not n:
            return math.nan
        cov = self.sum_xy / n - (self.sum_x / n) * (self.sum_y / n)
        var_x = max(self.sum_xx / n - (self.sum_x / n) ** 2, 0.0)
        var_y = max(self.sum_yy / n - (self.sum_y / n) ** 2, 0.0)
        if var_x == 0.0 or var_y == 0.0:
            return 1.0 if self.sum_abs == 0.0 else math.nan
        return float(min(1.0, max(-1.0, cov / math.sqrt(var_x * var_y))))


class ShadowSummary(pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """How the challenger compares with the Champion.

    Args:
        challenger: the challenger's label.
        champion: the Champion's label.
        task: regression or classification.
        tolerance: the regression tolerance applied.
        scores: regression: mean_absolute_difference, correlation, share_beyond_tolerance;
            classification: agreement; both: rows.
        confusion: rows per Champion label, then per challenger label (classification).
        headline: one line for an alert.
    """

    challenger: str
    champion: str
    task: str
    tolerance: float
    scores: dict[str, float]
    confusion: dict[str, dict[str, int]] = pdt.Field(default_factory=dict)
    headline: str

    def confusion_table(self) -> pd.DataFrame:
        """Rows: the Champion's labels; columns: the challenger's; cells: rows."""
        labels = sorted({*self.confusion, *(b for row in self.confusion.values() for b in row)})
        return pd.DataFrame(
            [[self.confusion.get(a, {}).get(b, 0) for b in labels] for a in labels],
            index=pd.Index(labels, name="champion"),
            columns=pd.Index(labels, name="challenger"),
        )


def task_of(predictions: pd.DataFrame, prediction: str = "prediction") -> str:
    """Regression when the predictions are real numbers without class probabilities.

    Used when the model has no reference profile to say its task: labels (text, integers,
    booleans) and probability columns mean a classifier.
    """
    probabilities = [c for c in predictions.columns if str(c).startswith("probability_")]
    real = pd.api.types.is_float_dtype(predictions[prediction])
    return "regression" if real and not probabilities else "classification"
