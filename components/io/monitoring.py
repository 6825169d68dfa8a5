"""Monitoring records: a batch's drift, estimated performance and shadow comparison, in MLflow.

The pipeline's alert reads the headlines back from the run's tags (`DRIFT_TAG`,
`PERFORMANCE_TAG`, `SHADOW_TAG`); the full report stays among the run's artifacts, also when
the step fails on drift and KFP keeps none of its outputs.
"""

from __future__ import annotations

import html
import re
import typing as T

import mlflow

from components.core import drift, reports, shadow, trends

if T.TYPE_CHECKING:  # these load scikit-learn: not for the notify step
    from components.core import estimation
    from components.core.model_refs import ModelRef

DRIFT_TAG = "monitoring.drift"
SHADOW_TAG = "monitoring.shadow"
PERFORMANCE_TAG = "monitoring.performance"
TREND_TAG = "monitoring.trend"
# The batch's most drifted feature ("" when none changed): read back by later runs' trends.
WORST_TAG = "monitoring.worst"
# The runs a trend looks back over, the current one included.
TREND_RUNS = 10
REPORT_PATH = "monitoring/drift_report.html"
DRIFT_PATH = "monitoring/drift.json"
SHADOW_PATH = "monitoring/shadow.json"
PERFORMANCE_PATH = "monitoring/performance.json"
# MLflow metric names allow letters, digits and `_-. /`; a feature's name may hold anything.
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. /]")


def metric_name(name: str) -> str:
    """A metric name MLflow accepts, e.g. `drift_psi.temp (C)` for a feature `temp (°C)`."""
    return _UNSAFE.sub("_", name)[:250]


def metrics(
    report: drift.DriftReport | None,
    summary: shadow.ShadowSummary | None,
    estimate: estimation.Estimate | None = None,
) -> dict[str, float]:
    """The scalar scores of a batch: `drift_*`, `challenger_*`, `estimated_*`, names MLflow takes.

    A score without a value (NaN: e.g. the correlation of no rows) is left out.
    """
    scores: dict[str, float] = {}
    if report is not None:
        scores.update({metric_name(f"drift_{k}"): v for k, v in report.metrics().items()})
    if summary is not None:
        scores.update({metric_name(f"challenger_{k}"): v for k, v in summary.scores.items()})
    if estimate is not None:
        scores.update(estimate.metrics())
    return {name: value for name, value in scores.items() if value == value}


def performance_headline(estimate: estimation.Estimate, tolerance: float) -> str:
    """The estimate's line for an alert, and which metrics are confidently worse, if any."""
    worse = estimate.degraded(tolerance)
    if not worse:
        return estimate.headline()
    named = ", ".join(
        f"{m.metric} {m.value:.4g} ({m.lower:.4g} to {m.upper:.4g}) against {m.holdout:.4g}"
        for m in worse
    )
    return f"{estimate.headline()}; worse than the holdout beyond {tolerance:.0%}: {named}"


def alert_lines(
    report: drift.DriftReport | None,
    estimate: estimation.Estimate | None,
    summary: shadow.ShadowSummary | None,
    tolerance: float,
) -> str:
    """The batch's lines in a prediction's alert: drift, estimated performance, challenger."""
    lines = [f"\nDrift: {report.headline()}" if report is not None else ""]
    if estimate is not None:
        lines.append(f"\nPerformance: {performance_headline(estimate, tolerance)}")
    lines.append(f"\nChallenger: {summary.headline}" if summary is not None else "")
    return "".join(lines)


def refusal(
    report: drift.DriftReport | None,
    estimate: estimation.Estimate | None,
    tolerance: float,
    model: str,
    scope: str = "",
) -> Exception | None:
    """The error that refuses a batch under `drift_policy=fail`; None when it may be published.

    Args:
        report: the batch's drift report (None: not checked).
        estimate: its estimated performance (None: not estimated).
        tolerance: how much worse than the holdout an estimate may be (relative).
        model: the model that predicted, as the message names it.
        scope: where the rows were counted, e.g. " over the 3 shards".
    """
    if report is not None and report.dataset_drift:
        return report.refusal(scope)
    if estimate is None or not estimate.degraded(tolerance):
        return None
    from components.core import estimation  # loaded by the steps that estimate

    return estimation.PerformanceError(
        f"the estimated performance of {model}{scope} degraded: "
        f"{performance_headline(estimate, tolerance)}; with drift_policy=fail nothing was "
        "published"
    )


def record(
    report: drift.DriftReport | None,
    summary: shadow.ShadowSummary | None,
    model_ref: ModelRef,
    notes: list[str] | None = None,
    estimate: estimation.Estimate | None = None,
    tolerance: float = 0.1,
) -> str:
    """Log the scores, the headlines and the report on the active MLflow run; return the report.

    The report and the `TREND_TAG` also show the registered model's last runs (see
    `components.core.trends`; a model given by URI has none).

    Args:
        report: the batch's drift report (None: not checked).
        summary: the shadow comparison (None: no challenger).
        model_ref: the model that predicted (the report's title, and whose trend).
        notes: why something was not checked, shown in the report.
        estimate: the batch's estimated performance (None: not estimated).
        tolerance: how much worse than the holdout an estimate may be (relative).
    """
    if report is None and summary is None and estimate is None:
        return ""
    scores = metrics(report, summary, estimate)
    if estimate is not None:  # the verdict under this tolerance, as the alert step reads it
        scores["estimated_degraded"] = float(bool(estimate.degraded(tolerance)))
    names = list(scores)
    for start in range(0, len(names), 1000):  # MLflow takes at most 1000 metrics per call
        mlflow.log_metrics({name: scores[name] for name in names[start : start + 1000]})
    if report is not None:
        mlflow.set_tag(DRIFT_TAG, report.headline()[:5000])
        mlflow.set_tag(WORST_TAG, report.columns[0].column if report.changed else "")
        mlflow.log_text(report.model_dump_json(), DRIFT_PATH)
    if summary is not None:
        mlflow.set_tag(SHADOW_TAG, summary.headline[:5000])
        mlflow.log_text(summary.model_dump_json(), SHADOW_PATH)
    if estimate is not None:
        mlflow.set_tag(PERFORMANCE_TAG, performance_headline(estimate, tolerance)[:5000])
        mlflow.log_text(estimate.model_dump_json(), PERFORMANCE_PATH)
    sections = []
    if model_ref.name and report is not None:
        trend = history(model_ref.name, estimate.task if estimate is not None else None)
        mlflow.set_tag(TREND_TAG, trend.headline()[:5000])
        sections = [
            "<h2>Trend</h2>",
            f"<p>{html.escape(trend.headline())}</p>",
            reports.image(trend.chart(), "trend") if len(trend.points) > 1 else "",
        ]
    page = reports.drift_page(
        model_ref.describe(),
        report,
        summary,
        notes or [],
        estimate,
        tolerance,
        extra_sections=sections,
    )
    mlflow.log_text(page, REPORT_PATH)
    return page


def history(model_name: str, task: str | None, runs: int = TREND_RUNS) -> trends.Trend:
    """The model's last checked runs in the active run's experiment, oldest first.

    The active run, whose scores are logged by then, is the newest. A monitoring run that
    measured the model on labelled rows (`realized_*` metrics) adds its measurement.

    Args:
        model_name: the registered model.
        task: its task, for the primary metric (None: drift only).
        runs: how many runs to look back over.
    """
    from mlflow.tracking import MlflowClient

    from components.core import metrics as scoring

    client = MlflowClient()
    active = mlflow.active_run()
    experiments = [active.info.experiment_id] if active is not None else []
    metric = scoring.PRIMARY[T.cast(T.Any, task)] if task in scoring.PRIMARY else ""
    quoted = model_name.replace("'", "\\'")
    found = client.search_runs(
        experiments,
        filter_string=f"tags.model_name = '{quoted}' and metrics.drift_rows >= 0",
        order_by=["attributes.start_time DESC"],
        max_results=runs,
    )
    points = [
        trends.Point(
            run_id=run.info.run_id,
            start_time=int(run.info.start_time or 0),
            rows=float(run.data.metrics.get("drift_rows", 0.0)),
            drift_share=float(run.data.metrics.get("drift_drift_share", 0.0)),
            worst=run.data.tags.get(WORST_TAG, ""),
            estimated=run.data.metrics.get(f"estimated_{metric}") if metric else None,
        )
        for run in reversed(found)
    ]
    realized = []
    if metric:
        measured = client.search_runs(
            experiments,
            filter_string=f"tags.model_name = '{quoted}' and metrics.realized_{metric} >= 0",
            order_by=["attributes.start_time DESC"],
            max_results=runs,
        )
        realized = [
            trends.Realized(
                start_time=int(run.info.start_time or 0),
                value=float(run.data.metrics[f"realized_{metric}"]),
                rows=float(run.data.metrics.get("realized_rows", 0.0)),
            )
            for run in reversed(measured)
        ]
    return trends.Trend(model_name=model_name, metric=metric, points=points, realized=realized)
