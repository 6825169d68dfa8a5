"""Publication job: publish the shards' parts as one dataset, once every shard has succeeded."""

from __future__ import annotations

import collections
import logging
import time
import typing as T

import mlflow

from components.core import results, schemas
from components.io import datasets, shards
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
    """

    KIND: T.Literal["PublicationJob"] = "PublicationJob"
    plan: str
    reports: list[shards.ShardReport]
    output: str

    def run(self) -> results.InferenceResult:
        """Check the reports against the plan, total the rules broken, write the manifest."""
        started = time.perf_counter()
        plan = shards.ShardPlan.read(self.plan)
        model_ref = plan.model_ref()
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
        self.alerter.notify(
            title=f"{self.KIND} succeeded",
            message=f"Predicted {rows} rows in {len(reports)} shards with "
            f"{model_ref.describe()}." + "".join(f"\nWarning: {warning}" for warning in warnings),
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
        )

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
