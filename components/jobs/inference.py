"""Inference job: batch predictions from a registered model, streamed batch by batch."""

from __future__ import annotations

import dataclasses
import logging
import time
import typing as T

import mlflow
import pandas as pd
import pydantic as pdt

from components.core import drift, estimation, models, results, schemas, shadow
from components.core.model_refs import ModelRef
from components.io import datasets, monitoring, references, registries, services, shards
from components.jobs import base
from components.utils import secrets

if T.TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

logger = logging.getLogger(__name__)


class InferenceJob(base.Job, frozen=True):
    """Generate batch predictions with a model from the registry.

    Args:
        inputs: the rows to predict; read in batches of `inputs.batch_size` rows.
        outputs: where predictions go (pass-through columns, `prediction`, class probabilities).
        finder: which model: a registered alias or version, the best run of an experiment, a URI.
        loader: how the model is loaded; by default its richest flavour (native sklearn gives
            class probabilities, any other MLflow model loads through pyfunc).
        input_schema: a pandera schema (YAML file or `module:NAME`) with domain rules.
        passthrough: input columns copied beside the predictions (ids, timestamps) for joins.
        probabilities: add one probability column per class (classifiers that have them).
        allow_unsigned: predict with a model that has no signature (inputs then go unchecked).
        report_violations: return the rules the input breaks instead of raising them (nothing
            is written either way), and the drift tallies instead of their verdict; a shard
            does, so that the publishing step judges the totals over every shard.
        drift_policy: compare the batch with the model's training profile and report it
            (`warn`), also refuse to publish when a feature drifted (`fail`), or skip it (`off`).
        drift_thresholds: when a feature counts as drifted (tests or distances chosen by the
            rows, missing rate, range, unseen; see `components.core.drift.Thresholds`).
        challenger: a second model that scores the same batches, for comparison only: the
            predictions written stay the Champion's.
        challenger_tolerance: a regressor's rows differ when the two predictions differ by more
            than this; None: a tenth of the standard deviation of the Champion's predictions
            on its training rows (0 without a reference profile).
        performance_tolerance: how much worse than its holdout's (relative) the model's
            performance may be estimated, with its whole 95% band, before it counts as
            degraded: reported under `drift_policy=warn`, refused under `fail`. The estimate
            (before the labels: see `components.core.estimation`) is made whenever drift is
            checked and the version stored an estimator.
        shard: the shard of a sharded prediction this job predicts (None: the whole input);
            its result then carries the shard's report for the publishing step.
        part_uri: where the publishing step finds this shard's part (default: `outputs.path`;
            on a cluster, the artifact's URI rather than the pod's local path).
    """

    KIND: T.Literal["InferenceJob"] = "InferenceJob"
    inputs: datasets.ReaderKind
    outputs: datasets.WriterKind
    finder: registries.FinderKind
    loader: registries.LoaderKind = pdt.Field(default_factory=registries.FlavorLoader)
    input_schema: str | None = None
    passthrough: list[str] = pdt.Field(default_factory=list)
    probabilities: bool = True
    allow_unsigned: bool = False
    report_violations: bool = False
    drift_policy: T.Literal["off", "warn", "fail"] = "warn"
    drift_thresholds: drift.Thresholds = pdt.Field(default_factory=drift.Thresholds)
    challenger: registries.FinderKind | None = None
    challenger_tolerance: float | None = pdt.Field(default=None, ge=0)
    performance_tolerance: float = pdt.Field(default=0.1, ge=0)
    shard: int | None = pdt.Field(default=None, ge=0)
    part_uri: str = ""

    def run(self) -> results.InferenceResult:
        """Find and load the model, then validate, predict and write batch by batch."""
        started = time.perf_counter()
        client = self.mlflow_service.client()
        # Find the model (alias resolved to a version) and load it.
        model_ref = self.finder.find(client)
        logger.info("predicting with %s", model_ref.describe())
        # Tagged at once: a trend read while this run is judged finds it among the model's.
        mlflow.set_tags({"model_name": model_ref.name, "model_version": model_ref.version})
        predictor = self.loader.load(model_ref.uri)
        warnings = registries.check_signature(model_ref, predictor, self.allow_unsigned)
        # The training profile the batch is compared with, and the challenger, if any.
        reference, notes = self._reference(client, model_ref)
        estimates = self._estimates(client, model_ref, notes)
        shadowing = self._challenger(client, reference)
        warnings += notes
        self.warn(warnings)
        schema = schemas.load_schema(self.input_schema) if self.input_schema else None
        # Read only the columns the models, the schema, the profile and the pass-through need.
        available = self.inputs.schema().names
        extra = [*self.passthrough, *(schema.columns if schema else [])]
        if shadowing is not None:  # the challenger may use other columns (all, unsigned)
            wanted = schemas.needed_columns(available, shadowing.predictor.signature, [])
            extra += available if wanted is None else wanted
        counter = None
        if reference is not None:
            counter = drift.Counter(reference, models.PREDICTION)
            extra += [name for name in reference.features if name in available]
        columns = schemas.needed_columns(available, predictor.signature, extra)
        reader = self.inputs.model_copy(update={"columns": columns})
        validator = schemas.Validator(predictor.signature, schema, self.passthrough)
        # Validate, predict and write batch by batch; the output appears only if all succeed,
        # carrying its lineage (model, runs, input) so that the file can be traced back.
        origin = self.lineage_of(model_ref, self.inputs.path)
        rows, width = 0, 0
        violations: list[schemas.Violation] = []
        report = estimate = None
        # A long prediction says how far it is (rows of a Parquet input are in its footers).
        progress = services.Progress("rows", total=lambda: _known_rows(reader))
        try:
            with self.outputs.open(metadata=origin.metadata()) as sink:
                for frame in reader.frames():
                    progress.add(len(frame))
                    if not validator.check(frame) or validator.counts:
                        continue  # keep checking the rest, to report every broken rule at once
                    predictions = predictor.predict(frame)
                    # Count the batch into the training profile's bins; score it with the
                    # challenger. Both keep fixed-size sums, never rows.
                    if counter is not None:
                        counter.add(frame, predictions)
                    if estimates is not None:
                        estimates = self._estimate_batch(estimates, predictions, notes)
                    if shadowing is not None:
                        shadowing.add(frame, predictions[models.PREDICTION])
                    if not self.probabilities:
                        predictions = predictions[[models.PREDICTION]]
                    kept = frame[self.passthrough].reset_index(drop=True)
                    output = pd.concat([kept, predictions], axis=1)
                    sink.write(output)
                    rows, width = rows + len(frame), output.shape[1]
                validator.raise_for_violations()
                # Judge the drift before the output appears: `fail` leaves nothing behind. A
                # shard leaves it to the publishing step, which judges every shard's total.
                if estimates is not None and not self.report_violations and rows:
                    estimate = estimation.estimate(estimates.estimator, estimates.tally())
                if counter is not None and not self.report_violations:
                    report = drift.score(reference, counter.tally(), self.drift_thresholds)
                self._judge(report, estimate, shadowing, model_ref, notes)
        except schemas.ValidationError as error:
            if not self.report_violations:
                raise
            violations, rows = error.violations, 0
            warnings = [*warnings, f"{len(violations)} rule(s) broken; nothing was written"]
            self.warn(warnings)
        seconds = time.perf_counter() - started
        logger.info("predicted %d rows in %.1fs", rows, seconds)
        mlflow.set_tags(
            {
                "model_name": model_ref.name,
                "model_version": model_ref.version,
                "model_uri": origin.model_uri,
                "inputs": origin.inputs,
                "outputs": secrets.redact(self.outputs.path),
            }
        )
        mlflow.log_metrics({"rows_predicted": rows, "seconds": seconds})
        summary = shadowing.summary(model_ref) if shadowing is not None else None
        if shadowing is not None and shadowing.failure:
            notes.append(
                f"the challenger {shadowing.model_ref.describe()} failed ({shadowing.failure}): "
                "the comparison covers the rows before"
            )
            warnings = [*warnings, notes[-1]]
            self.warn(warnings)
        page = ""
        if not self.report_violations:
            page = monitoring.record(
                report, summary, model_ref, notes, estimate, self.performance_tolerance
            )
        # Tell people the shape of the output, or the rules broken (reported by the caller).
        if violations:
            logger.warning("input validation failed: %s", "; ".join(map(str, violations)))
        else:
            self.alerter.notify(
                title=f"{self.KIND} succeeded",
                message=f"Predicted {rows} rows with {model_ref.describe()}."
                + monitoring.alert_lines(report, estimate, summary, self.performance_tolerance)
                + "".join(f"\nWarning: {warning}" for warning in warnings),
                fields={"shape": f"({rows}, {width})", "output": self.outputs.path},
            )
        result = results.InferenceResult(
            model_ref=model_ref,
            rows_in=validator.rows,
            rows=rows,
            columns=width,
            output=self.outputs.path,
            seconds=seconds,
            warnings=warnings,
            lineage=origin,
            violations=violations,
            drift=report,
            estimate=estimate,
            estimate_tally=estimates.tally() if estimates is not None else None,
            tally=counter.tally() if counter is not None else None,
            shadow=summary,
            comparison=shadowing.comparison if shadowing is not None else None,
            notes=notes,
            monitoring_page=page,
        )
        if self.shard is None:
            return result
        return dataclasses.replace(result, shard_report=self._shard_report(result))

    def _shard_report(self, result: results.InferenceResult) -> shards.ShardReport:
        """What the publishing step needs of this shard: its part, counts, tallies, findings."""
        assert self.shard is not None  # only a shard's job reports
        return shards.ShardReport(
            shard=self.shard,
            uri=(self.part_uri or self.outputs.path) if result.rows else "",
            rows=result.rows,
            rows_in=result.rows_in,
            columns=result.columns,
            model_version=result.model_ref.version,
            format="csv" if isinstance(self.outputs, datasets.CSVWriter) else "parquet",
            violations=result.violations,
            warnings=result.warnings,
            seconds=result.seconds,
            tally=result.tally,
            estimate_tally=(
                result.estimate_tally.model_dump(mode="json")
                if result.estimate_tally is not None
                else None
            ),
            comparison=result.comparison,
            challenger=result.shadow.challenger if result.shadow is not None else "",
            notes=result.notes,
        )

    def _reference(self, client, model_ref: ModelRef) -> tuple[drift.Profile | None, list[str]]:
        """The model's training profile, with a note when drift cannot be checked."""
        if self.drift_policy == "off":
            return None, []
        reference = references.load_profile(client, model_ref)
        if reference is not None:
            return reference, []
        why = (
            f"{model_ref.describe()} has no reference profile (a model trained before profiles "
            "were stored, or elsewhere): drift was not checked"
        )
        if self.drift_policy == "fail":
            raise drift.DriftError(
                f"{why}; with drift_policy=fail nothing is predicted unchecked: retrain the "
                "model with this project, or set drift_policy=warn"
            )
        return None, [why]

    def _challenger(self, client, reference: drift.Profile | None) -> Shadowing | None:
        """Find and load the challenger, if any."""
        if self.challenger is None:
            return None
        challenger_ref = self.challenger.find(client)
        logger.info("shadow scoring with %s", challenger_ref.describe())
        tolerance = self.challenger_tolerance
        if tolerance is None:
            spread = reference.prediction if reference is not None else None
            std = getattr(spread, "std", None)
            tolerance = 0.1 * std if std else 0.0
        return Shadowing(
            model_ref=challenger_ref,
            predictor=self.loader.load(challenger_ref.uri),
            task=reference.task if reference is not None else None,
            tolerance=tolerance,
        )

    def _judge(
        self,
        report: drift.DriftReport | None,
        estimate: estimation.Estimate | None,
        shadowing: Shadowing | None,
        model_ref: ModelRef,
        notes: list[str],
    ) -> None:
        """Under `fail`, refuse a batch that drifted or whose estimated performance degraded.

        The report is kept in MLflow first: the refusal is explained there.
        """
        if self.drift_policy != "fail":
            return
        tolerance = self.performance_tolerance
        error = monitoring.refusal(report, estimate, tolerance, model_ref.describe())
        if error is None:
            return
        summary = shadowing.summary(model_ref) if shadowing is not None else None
        monitoring.record(report, summary, model_ref, notes, estimate, tolerance)
        raise error

    def _estimates(
        self, client: MlflowClient, model_ref: ModelRef, notes: list[str]
    ) -> estimation.EstimateCounter | None:
        """The counter of the batch's estimated performance; None (with a note) without one."""
        if self.drift_policy == "off":
            return None
        estimator = references.load_estimator(client, model_ref)
        if estimator is None:
            notes.append(
                f"{model_ref.describe()} has no performance estimator (a model trained before "
                "estimators were stored, or elsewhere): performance was not estimated"
            )
            return None
        return estimation.EstimateCounter(estimator)

    @staticmethod
    def _estimate_batch(
        estimates: estimation.EstimateCounter, predictions: pd.DataFrame, notes: list[str]
    ) -> estimation.EstimateCounter | None:
        """Count a batch into the estimate; a batch it cannot read ends the estimate, noted."""
        try:
            estimates.add(predictions)
        except ValueError as error:
            notes.append(f"performance not estimated: {error}")
            return None
        return estimates


def _known_rows(reader: datasets.Reader) -> int | None:
    """The input's rows when its metadata tells them all (Parquet), else None (CSV)."""
    pieces = reader.list_pieces()
    if any(piece.rows is None for piece in pieces):
        return None
    return sum(piece.rows or 0 for piece in pieces)


class Shadowing:
    """A challenger scoring the same batches as the Champion, for comparison only.

    A challenger that fails on a batch stops the comparison, with a warning; the Champion's
    predictions go on: they are what the step publishes.

    Args:
        model_ref: the challenger found.
        predictor: the challenger loaded.
        task: regression or classification (None: told by the first batch's predictions).
        tolerance: a regressor's rows differ when the predictions differ by more than this.
    """

    def __init__(self, model_ref, predictor, task: str | None, tolerance: float):
        self.model_ref, self.predictor = model_ref, predictor
        self.task, self.tolerance = task, tolerance
        self.comparison: shadow.Comparison | None = None
        self.failure: str | None = None

    def add(self, frame: pd.DataFrame, champion: pd.Series) -> None:
        """Score the batch with the challenger and compare, row for row."""
        if self.failure is not None:
            return
        try:
            predicted = self.predictor.predict(frame)
        except Exception as error:  # the Champion's predictions must not depend on it
            self.failure = secrets.redact(f"{type(error).__name__}: {error}")[:500]
            logger.warning("the challenger %s failed: %s", self.model_ref.describe(), self.failure)
            return
        if self.comparison is None:
            task = self.task or shadow.task_of(predicted, models.PREDICTION)
            self.comparison = shadow.Comparison(task=task, tolerance=self.tolerance)
        self.comparison.add(champion.reset_index(drop=True), predicted[models.PREDICTION])

    def summary(self, champion_ref: ModelRef) -> shadow.ShadowSummary | None:
        """The comparison's scores (None before any batch)."""
        if self.comparison is None:
            return None
        return self.comparison.summary(self.model_ref.describe(), champion_ref.describe())
