"""Trends: a model's last batches side by side, so that a slow drift shows before it is large.

Each checked prediction records its drift share, its most drifted feature and its estimated
performance on its MLflow run (`components.io.monitoring`); a trend is the last runs of the
same model read back, oldest first, with one line for an alert and a small chart for the report.
Realized performance, measured when the labels arrived, joins it when a monitoring run recorded
one for the model.
"""

from __future__ import annotations

import typing as T

import pydantic as pdt

from components.core import svg

# A change in the drift share below this (absolute) is "steady", not rising or falling.
STEADY_SHARE = 0.05
# A change of the metric below this (relative) is steady.
STEADY_METRIC = 0.05
# Runs shown in the alert's line (the chart shows them all).
SHOWN = 5


class Point(pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """One checked batch of the model.

    Args:
        run_id: its MLflow run.
        start_time: when it ran (ms since the epoch).
        rows: rows predicted.
        drift_share: share of its judged features that drifted.
        worst: its most drifted feature ("" when none changed).
        estimated: its estimated primary metric (None: not estimated).
    """

    run_id: str
    start_time: int
    rows: float
    drift_share: float
    worst: str = ""
    estimated: float | None = None


class Realized(pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """The performance measured on labelled rows, by a monitoring run of the model.

    Args:
        start_time: when it was measured (ms since the epoch).
        value: the realized primary metric.
        rows: labelled rows it was measured on.
    """

    start_time: int
    value: float
    rows: float


class Trend(pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """The model's last checked batches, oldest first.

    Args:
        model_name: the registered model.
        metric: the primary metric estimated and realized (rmse, f1_macro).
        points: the batches, oldest first (the current one last).
        realized: measurements on labelled rows, oldest first.
    """

    model_name: str
    metric: str
    points: list[Point]
    realized: list[Realized] = pdt.Field(default_factory=list)

    def headline(self) -> str:
        """One line for an alert: the drift share and the estimate over the last runs.

        e.g. `last 4 runs of bike-sharing: drift share 0% -> 8% -> 25% (rising; worst now
        temp); estimated rmse 64.1 -> 71.2 (rising)`.
        """
        if len(self.points) < 2:
            return f"first checked run of {self.model_name}: no trend yet"
        shown = self.points[-SHOWN:]
        shares = " -> ".join(f"{p.drift_share:.0%}" for p in shown)
        first, last = self.points[0].drift_share, self.points[-1].drift_share
        worst = f"; worst now {self.points[-1].worst}" if self.points[-1].worst else ""
        line = (
            f"last {len(self.points)} runs of {self.model_name}: drift share {shares} "
            f"({_direction(last - first, STEADY_SHARE)}{worst})"
        )
        estimated = [p.estimated for p in self.points if p.estimated is not None]
        if len(estimated) >= 2:
            values = " -> ".join(f"{v:.4g}" for v in estimated[-SHOWN:])
            change = (estimated[-1] - estimated[0]) / (abs(estimated[0]) or 1.0)
            line += f"; estimated {self.metric} {values} ({_direction(change, STEADY_METRIC)})"
        if self.realized:
            latest = self.realized[-1]
            line += (
                f"; realized {self.metric} {latest.value:.4g} on {latest.rows:,.0f} labelled rows"
            )
        return line

    def chart(self) -> str:
        """The drift share and the metric by run, as an SVG data: URI (components.core.svg)."""
        runs = [f"run {index + 1}" for index in range(len(self.points))]
        estimated = [p.estimated for p in self.points]
        metric: list[svg.Series] = []
        if any(value is not None for value in estimated):
            metric.append(svg.Series("estimated", estimated, "#0969da", "line"))
        if self.realized:  # placed by time among the runs
            times = [p.start_time for p in self.points]
            metric.append(
                svg.Series(
                    "realized",
                    [r.value for r in self.realized],
                    "#cf222e",
                    "points",
                    positions=[_position(times, r.start_time) for r in self.realized],
                )
            )
        share = svg.Series("drift share", [p.drift_share for p in self.points], "#1f6feb", "line")
        return svg.chart(
            [
                svg.Panel(
                    f"{self.model_name}: the last {len(self.points)} runs",
                    runs,
                    [share],
                    y_label="drift share",
                    height=200,
                ),
                svg.Panel("", runs, metric, y_label=self.metric, from_zero=False, height=200),
            ]
        )


def _direction(change: float, steady: float) -> str:
    if change > steady:
        return "rising"
    if change < -steady:
        return "falling"
    return "steady"


def _position(times: T.Sequence[int], when: int) -> float:
    """Where a moment falls among the runs' times, as a fractional run index."""
    for index, time in enumerate(times):
        if when <= time:
            if index == 0:
                return 0.0
            span = (time - times[index - 1]) or 1
            return index - 1 + (when - times[index - 1]) / span
    return float(len(times) - 1)
