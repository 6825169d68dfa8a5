"""Monitoring job: a registered model's realized performance, once the ground truth arrives."""

from __future__ import annotations

import dataclasses
import logging
import math
import time
import typing as T

import mlflow
import pyarrow as pa
import pydantic as pdt

from components.core import labels, lineage, metrics, reports, results
from components.core.model_refs import ModelRef
from components.io import datasets, monitoring, registries
from components.jobs import base
from components.utils import secrets

logger = logging.getLogger(__name__)

# Where the performance report goes among the artifacts of the job's run.
REPORT_PATH = "reports/performance.html"
# On the job's run: the headline of the realized performance.
REALIZED_TAG = "monitoring.realized"
# The training run's holdout metrics, and an inference run's estimate made before the labels.
HOLDOUT_PREFIX = "test_"
ESTIMATE_PREFIX = "estimated_"


class MonitoringError(LookupError):
    """The version's holdout metrics to compare with cannot be found; the message says why."""


class PerformanceDegradedError(RuntimeError):
    """Under policy=fail: the realized performance is worse than the holdout's."""


class MonitoringJob(base.Job, frozen=True):
    """Measure a model's performance on predictions whose ground truth has arrived.

    The predictions (a prediction run's output, a folder of them, or any table with the key
    columns and `prediction`) are matched with the ground truth on the keys, scored per period
    of a time column and over all rows, and set against the holdout metrics of the version
    that made them (and against the estimate its prediction run recorded, if any). The
    version is the one the predictions' lineage names; without lineage, `alias_or_version`.

    Args:
        predictions: the predictions: the key columns, `prediction`, class probabilities.
        truth: the ground truth: the key columns and the target.
        keys: the columns that identify a row on both sides, e.g. ["instant"].
        target: the truth's column with the true value.
        model_name: the registered model that made the predictions.
        alias_or_version: the version compared with, when the predictions do not name theirs.
        time_column: the predictions' column that places a row in a period (None: all rows
            at once only).
        period: a pandas period alias: "h", "D", "W", "M".
        min_rows: a period with fewer labelled rows is counted but not scored.
        tolerance: how much worse than the holdout a metric may be, relative (0.1 = 10%).
        policy: warn (report a degradation) or fail (report it, then fail the job).
    """

    KIND: T.Literal["MonitoringJob"] = "MonitoringJob"
    predictions: datasets.ReaderKind
    truth: datasets.ReaderKind
    keys: list[str] = pdt.Field(min_length=1)
    target: str = pdt.Field(min_length=1)
    model_name: registries.ModelName
    alias_or_version: str | int = "Champion"
    time_column: str | None = None
    period: str = pdt.Field(default="D", min_length=1)
    min_rows: int = pdt.Field(default=labels.MIN_ROWS, ge=1)
    tolerance: float = pdt.Field(default=0.1, ge=0.0)
    policy: T.Literal["warn", "fail"] = "warn"

    def run(self) -> results.MonitoringResult:
        """Match, score, compare, record on the job's run, and tell people the headline."""
        started = time.perf_counter()
        client = self.mlflow_service.client()
        # Read the predictions and their ground truth, and match them on the keys.
        predictions, truth = self.predictions.read(), self.truth.read()
        joined, summary = labels.join(predictions, truth, self.keys, self.target)
        logger.info("labels: %s", summary.describe())
        # The version that predicted: the predictions' lineage names it, else the alias given.
        origins = _lineages(self.predictions)
        notes = list(summary.notes)
        model_ref, source = self._version(client, origins, notes)
        # Its holdout metrics, and the estimate made before the labels, when one was.
        reference = self._holdout(client, model_ref)
        task = _task_of(reference)
        reference = {k: v for k, v in reference.items() if k in metrics.TASK_METRICS[task]}
        estimated = self._estimate(client, origins, task, notes)
        # Score by period and compare with the holdout (and the estimate).
        by_period = labels.metrics_by_period(
            joined, task, self.target, self.time_column, self.period, self.min_rows
        )
        report = labels.compare(by_period, reference, estimated, self.tolerance)
        headline = report.headline()
        degraded = bool(report.degraded) or report.overall.verdict == "degraded"
        result = results.MonitoringResult(
            model_ref=model_ref,
            version_source=source,
            task=task,
            join=summary,
            report=report,
            by_period=by_period,
            table=report.table(),
            headline=headline,
            metrics={**self._flat(report, summary), "realized_degraded": float(degraded)},
            degraded=degraded,
            policy=self.policy,
            notes=notes,
            seconds=time.perf_counter() - started,
        )
        # Record the figures, the headline and the report on this job's run, and nowhere else.
        page = reports.performance_page(result)
        mlflow.set_tags(
            {
                "model_name": model_ref.name,
                "model_version": model_ref.version,
                REALIZED_TAG: headline[:5000],
                # The pipeline's alert shows each step's performance line.
                monitoring.PERFORMANCE_TAG: f"realized {headline}"[:5000],
                "monitoring.labels": summary.describe()[:5000],
                "monitoring.compared_with": f"{model_ref.describe()} ({source})",
                "predictions": secrets.redact(self.predictions.path),
                "truth": secrets.redact(self.truth.path),
            }
        )
        mlflow.log_metrics(result.metrics)
        mlflow.log_text(page, REPORT_PATH)
        if degraded and self.policy == "fail":
            raise PerformanceDegradedError(
                f"{model_ref.describe()}: realized performance degraded: {headline}"
            )
        # Tell people the headline.
        self.alerter.notify(
            title=f"{self.KIND} succeeded",
            message=f"{model_ref.describe()}: {headline}. {summary.describe()}.",
            fields={k: round(v, 4) for k, v in result.metrics.items() if k.startswith("realized")},
            status="SUCCEEDED",
        )
        return dataclasses.replace(result, page=page)

    def _version(
        self, client: T.Any, origins: list[lineage.Lineage], notes: list[str]
    ) -> tuple[ModelRef, str]:
        """The version compared with, and where it was named (lineage, or the alias given)."""
        named = sorted({(o.model_name, o.model_version) for o in origins if o.model_version})
        if len(named) == 1 and named[0][0] == self.model_name:
            version = int(named[0][1])
            finder = registries.RegistryFinder(name=self.model_name, alias_or_version=version)
            return finder.find(client), "named by the predictions' lineage"
        if len(named) > 1:
            notes.append(
                "the predictions come from several versions ("
                + ", ".join(f"{name} v{version}" for name, version in named)
                + f"): compared with {self.model_name} {self.alias_or_version}"
            )
        elif named:
            notes.append(
                f"the predictions' lineage names {named[0][0]} v{named[0][1]}, not "
                f"{self.model_name}: compared with {self.model_name} {self.alias_or_version}"
            )
        finder = registries.RegistryFinder(
            name=self.model_name, alias_or_version=self.alias_or_version
        )
        return finder.find(client), f"{self.alias_or_version} given"

    @staticmethod
    def _holdout(client: T.Any, model_ref: ModelRef) -> dict[str, float]:
        """The version's holdout metrics: its training run's `test_*`, else its evaluation tags.

        Raises:
            MonitoringError: the version has neither.
        """
        found: dict[str, float] = {}
        if model_ref.run_id:
            logged = client.get_run(model_ref.run_id).data.metrics
            found = {
                name.removeprefix(HOLDOUT_PREFIX): float(value)
                for name, value in logged.items()
                if name.startswith(HOLDOUT_PREFIX)
                and name.removeprefix(HOLDOUT_PREFIX) in metrics.DIRECTIONS
            }
        if not found and model_ref.name and model_ref.version:
            version = client.get_model_version(model_ref.name, str(model_ref.version))
            for name in metrics.DIRECTIONS:
                text = (version.tags or {}).get(registries.METRIC_TAG.format(name))
                try:
                    found[name] = float(text) if text is not None else math.nan
                except ValueError:
                    continue
            found = {name: value for name, value in found.items() if math.isfinite(value)}
        if not found:
            raise MonitoringError(
                f"{model_ref.describe()} has no holdout metrics to compare with: its training "
                f"run {model_ref.run_id or '(none)'} logged no test_<metric> and the version has "
                "no evaluation.<metric> tags; evaluate it first (the evaluate step tags them)"
            )
        return found

    @staticmethod
    def _estimate(
        client: T.Any, origins: list[lineage.Lineage], task: str, notes: list[str]
    ) -> dict[str, float] | None:
        """The `estimated_*` metrics of the run that predicted, when one run did and made one."""
        run_ids = sorted({o.mlflow_run_id for o in origins if o.mlflow_run_id})
        if len(run_ids) != 1:
            if len(run_ids) > 1:
                notes.append(f"the predictions come from {len(run_ids)} runs: no estimate used")
            return None
        try:
            logged = client.get_run(run_ids[0]).data.metrics
        except base.MLFLOW_ERRORS as error:
            notes.append(f"the prediction run {run_ids[0]} cannot be read: no estimate used")
            logger.warning("cannot read the prediction run: %s", secrets.redact(str(error)))
            return None
        names = metrics.TASK_METRICS[T.cast(T.Any, task)]
        estimated = {
            name: float(logged[f"{ESTIMATE_PREFIX}{name}"])
            for name in names
            if f"{ESTIMATE_PREFIX}{name}" in logged
            and math.isfinite(logged[f"{ESTIMATE_PREFIX}{name}"])
        }
        return estimated or None

    @staticmethod
    def _flat(report: labels.PerformanceReport, summary: labels.JoinSummary) -> dict[str, float]:
        return {
            **report.metrics(),
            "predictions_without_truth": float(summary.predictions_without_truth),
            "truth_without_predictions": float(summary.truth_without_predictions),
        }


def _lineages(reader: datasets.Reader) -> list[lineage.Lineage]:
    """The lineage each file of the predictions carries ([] for a table without any)."""
    found: list[T.Mapping[T.Any, T.Any]] = []
    try:
        if isinstance(reader, datasets.ParquetReader):
            fragments = reader.dataset().get_fragments()
            found = [fragment.physical_schema.metadata or {} for fragment in fragments]
        else:
            found = [datasets.CSVWriter(path=reader.path).read_metadata()]
    except (datasets.DatasetError, OSError, pa.ArrowException) as error:
        logger.info("no lineage read from the predictions: %s", error)
        return []
    origins = []
    for metadata in found:
        try:
            origins.append(lineage.Lineage.from_metadata(metadata))
        except ValueError:
            continue  # a table written elsewhere: no lineage
    return origins


def _task_of(reference: T.Mapping[str, float]) -> T.Any:
    """The task whose metrics the holdout holds: its primary metric's, else the most of them."""
    for task, primary in metrics.PRIMARY.items():
        if primary in reference:
            return task
    return max(
        metrics.TASK_METRICS, key=lambda t: len(set(metrics.TASK_METRICS[t]) & set(reference))
    )
