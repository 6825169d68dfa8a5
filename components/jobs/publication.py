"""Publication job: publish the shards' parts as one dataset, once every shard has succeeded."""

from __future__ import annotations

import collections
import functools
import json
import logging
import time
import typing as T

import mlflow
import pydantic as pdt

from components.core import drift, estimation, results, schemas, shadow
from components.core.model_refs import ModelRef
from components.io import datasets, monitoring, references, shards
from components.jobs import base
from components.utils import secrets

logger = logging.getLogger(__name__)


class PublicationJob(base.Job, frozen=True):
    """Publish a sharded prediction: check every shard's report, then write the manifest.

    The parts stay where the shards wrote them; the published folder holds only the manifest
    that lists them (see `components.io.shards.Manifest`), written last and at once. Nothing is
    published unless each shard of the plan reported once, all with the plan's model version,
    and no rows broke a rule: the rules broken are then reported with their totals over every
    shard, as one pod would have reported them.

    Args:
        plan: the plan file the shards ran (see PlanningJob).
        reports: each shard's report.
        output: the folder to publish, a local path or a URI.
        drift_policy: report the drift summed over the shards (`warn`), also refuse to
            publish when a feature drifted (`fail`), or neither (`off`).
        drift_thresholds: when a feature counts as drifted.
        performance_tolerance: how much worse than the holdout the estimated performance
            summed over the shards may be before it counts as degraded (see InferenceJob).
    """

    KIND: T.Literal["PublicationJob"] = "PublicationJob"
    plan: str
    reports: list[shards.ShardReport]
    output: str
    drift_policy: T.Literal["off", "warn", "fail"] = "warn"
    drift_thresholds: drift.Thresholds = pdt.Field(default_factory=drift.Thresholds)
    performance_tolerance: float = pdt.Field(default=0.1, ge=0)

    def run(self) -> results.InferenceResult:
        """Check the reports against the plan, total the rules broken, write the manifest."""
        started = time.perf_counter()
        plan = shards.ShardPlan.read(self.plan)
        model_ref = plan.model_ref()
        # Tagged at once: a trend read while this run is judged finds it among the model's.
        mlflow.set_tags({"model_name": model_ref.name, "model_version": model_ref.version})
        # Every shard of the plan reported exactly once, with the plan's model.
        reports = sorted(self.reports, key=lambda report: report.shard)
        self._check_complete(len(plan.shards), reports)
        if wrong := [r.shard for r in reports if r.model_version != plan.model_version]:
            raise shards.ShardError(
                f"shard(s) {_listed(wrong)} predicted with another model than the plan's "
                f"{model_ref.describe()}; nothing was published"
            )
        # The rules broken, with their totals over every shard; nothing is published then.
        rows_in = sum(report.rows_in for report in reports)
        self._raise_for_violations(reports, rows_in)
        rows = sum(report.rows for report in reports)
        parts = [shards.Part(shard=r.shard, uri=r.uri, rows=r.rows) for r in reports if r.uri]
        formats = {report.format for report in reports if report.uri}
        if len(formats) != 1:
            raise shards.ShardError(
                f"the shards wrote parts of {len(formats)} formats ({', '.join(sorted(formats))}) "
                f"for {rows} rows; one format expected; nothing was published"
            )
        # The drift and the challenger's comparison, summed over the shards: under `fail`, a
        # drifted feature publishes nothing.
        report, summary, estimate, notes = self._monitoring(plan, reports)
        # Publish: the manifest, written last and at once, makes the parts one dataset.
        manifest = shards.Manifest(
            format=formats.pop(),
            files=[part.uri for part in parts],
            parts=parts,
            rows=rows,
            model=model_ref.describe(),
            model_version=model_ref.version,
            model_uri=model_ref.uri,
            run_id=self.run_tags.get(base.PIPELINE_RUN_TAG, ""),
            inputs=secrets.redact(str(plan.inputs.get("path", ""))),
        )
        filesystem, folder = datasets.resolve(self.output)
        shards.write_manifest(filesystem, folder, manifest)
        logger.info("published in %.1fs", time.perf_counter() - started)
        warnings = list(dict.fromkeys(w for report in reports for w in report.warnings))
        self.warn(warnings)
        logger.info("published %d rows in %d parts to %s", rows, len(parts), self.output)
        mlflow.set_tags(
            {
                "model_name": model_ref.name,
                "model_version": model_ref.version,
                "model_uri": model_ref.uri,
                "outputs": secrets.redact(self.output),
            }
        )
        mlflow.log_metrics({"rows_predicted": rows, "shards": len(reports)})
        page = monitoring.record(
            report, summary, model_ref, notes, estimate, self.performance_tolerance
        )
        self.alerter.notify(
            title=f"{self.KIND} succeeded",
            message=f"Predicted {rows} rows in {len(reports)} shards with "
            f"{model_ref.describe()}."
            + monitoring.alert_lines(report, estimate, summary, self.performance_tolerance)
            + "".join(f"\nWarning: {warning}" for warning in warnings),
            fields={"rows": rows, "parts": len(parts), "output": self.output},
        )
        return results.InferenceResult(
            model_ref=model_ref,
            rows_in=rows_in,
            rows=rows,
            columns=max(report.columns for report in reports),
            output=self.output,
            # The shards ran side by side: the slowest one is the prediction's wall time.
            seconds=max(report.seconds for report in reports),
            warnings=warnings,
            shards=len(reports),
            drift=report,
            estimate=estimate,
            shadow=summary,
            notes=notes,
            monitoring_page=page,
            # As the one-pod predict gives its predictions (the Kubeflow UI shows it).
            lineage=self.lineage_of(model_ref, manifest.inputs),
        )

    def _monitoring(
        self, plan: shards.ShardPlan, reports: list[shards.ShardReport]
    ) -> tuple[
        drift.DriftReport | None,
        shadow.ShadowSummary | None,
        estimation.Estimate | None,
        list[str],
    ]:
        """Add up the shards' tallies and comparisons, score them, and judge them."""
        notes = list(dict.fromkeys(note for report in reports for note in report.notes))
        model_ref = plan.model_ref()
        tallies = [report.tally for report in reports if report.tally is not None]
        report = None
        if tallies and self.drift_policy != "off":
            reference = references.load_profile(self.mlflow_service.client(), model_ref)
            if reference is None:
                raise drift.DriftError(
                    f"the shards counted drift against the reference profile of "
                    f"{model_ref.describe()}, which is gone; nothing was published"
                )
            report = drift.score(
                reference, functools.reduce(drift.Tally.merge, tallies), self.drift_thresholds
            )
        comparisons = [report_.comparison for report_ in reports if report_.comparison]
        summary = None
        if comparisons:
            challenger = next(r.challenger for r in reports if r.comparison is not None)
            merged = functools.reduce(shadow.Comparison.merge, comparisons)
            summary = merged.summary(challenger, model_ref.describe())
        estimate = self._estimate(model_ref, reports, notes)
        tolerance = self.performance_tolerance
        scope = f" over the {len(reports)} shards"
        error = monitoring.refusal(report, estimate, tolerance, model_ref.describe(), scope)
        if self.drift_policy == "fail" and error is not None:
            monitoring.record(report, summary, model_ref, notes, estimate, tolerance)
            raise error
        return report, summary, estimate, notes

    def _estimate(
        self, model_ref: ModelRef, reports: list[shards.ShardReport], notes: list[str]
    ) -> estimation.Estimate | None:
        """The performance estimated over every shard's rows (None: no shard estimated)."""
        tallies = [r.estimate_tally for r in reports if r.estimate_tally is not None]
        if not tallies or self.drift_policy == "off":
            return None
        if len(tallies) < len([r for r in reports if r.rows]):
            notes.append("some shards did not estimate the performance: it is not estimated")
            return None
        estimator = references.load_estimator(self.mlflow_service.client(), model_ref)
        if estimator is None:
            notes.append(f"the performance estimator of {model_ref.describe()} is gone")
            return None
        merged = functools.reduce(
            estimation.EstimateTally.merge,
            [estimation.EstimateTally.model_validate_json(json.dumps(t)) for t in tallies],
        )
        return estimation.estimate(estimator, merged)

    @staticmethod
    def _check_complete(count: int, reports: list[shards.ShardReport]) -> None:
        """Raise unless the reports are those of shards 0 to count - 1, each once."""
        seen = collections.Counter(report.shard for report in reports)
        problems = []
        if missing := [shard for shard in range(count) if shard not in seen]:
            problems.append(f"no report from shard(s) {_listed(missing)}")
        if twice := sorted(shard for shard, times in seen.items() if times > 1):
            problems.append(f"shard(s) {_listed(twice)} reported more than once")
        if unknown := sorted(shard for shard in seen if shard >= count):
            problems.append(f"shard(s) {_listed(unknown)} are not in the plan")
        if problems:
            raise shards.ShardError(
                f"the plan has {count} shards, but {'; '.join(problems)}; nothing was published"
            )

    @staticmethod
    def _raise_for_violations(reports: list[shards.ShardReport], rows_in: int) -> None:
        """Raise one ValidationError with every rule broken, totalled over the shards."""
        totals: collections.Counter[tuple[str, str]] = collections.Counter()
        for report in reports:
            for violation in report.violations:
                if violation.rule != schemas.NO_ROWS:  # an error only when no shard read any
                    totals[(violation.column, violation.rule)] += violation.rows
        if totals:
            raise schemas.ValidationError(
                [schemas.Violation(column, rule, rows) for (column, rule), rows in totals.items()],
                rows_in,
            )
        if rows_in == 0:
            raise schemas.ValidationError([schemas.Violation("*", schemas.NO_ROWS, 0)], 0)


def _listed(shards_: T.Iterable[int]) -> str:
    """Shard indices as `0, 3`."""
    return ", ".join(str(shard) for shard in shards_)
