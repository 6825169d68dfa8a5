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
    import pandera.pandas as pandera
    from mlflow.tracking import MlflowClient

    from components.core import lineage

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
        passthrough: input columns copied beside the predictions (ids, timestamps) for joins;
            each once, and none named as an output column (`prediction`, `probability_...`).
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

    @pdt.field_validator("passthrough")
    @classmethod
    def _distinct_from_outputs(cls, passthrough: list[str]) -> list[str]:
        # Checked before any step runs: at write time the clash is a bare "duplicate column
        # names" from the writer, after training and promotion have already happened.
        return models.check_passthrough(passthrough)

    def run(self) -> results.InferenceResult:
        """Find the model, read and validate the rows, predict and write them, then report."""
        started = time.perf_counter()
        client = self.mlflow_service.client()
        # Find the model (an alias resolved to a version) and load it.
        model_ref, predictor, warnings = self._find_model(client)
        # What watches the rows beside it: the training profile, the estimator, the challenger.
        monitors = self._monitors(client, model_ref)
        warnings += monitors.notes
        self.warn(warnings)
        # Read only the columns that the models, the schema, the profile and the pass-through
        # need, checked against the model's signature and the user's schema.
        schema = schemas.load_schema(self.input_schema) if self.input_schema else None
        reader = self._reader(predictor, schema, monitors)
        validator = schemas.Validator(predictor.signature, schema, self.passthrough)
        # Validate, predict and write batch by batch; the output appears only if all succeed,
        # carrying its lineage (model, runs, input) so that the file can be traced back.
        origin = self.lineage_of(model_ref, self.inputs.path)
        predicted = self._predict_and_write(
            reader, validator, predictor, monitors, model_ref, origin
        )
        if predicted.violations:  # reported, not raised (a shard's job): nothing was written
            broken = f"{len(predicted.violations)} rule(s) broken; nothing was written"
            warnings = [*warnings, broken]
            self.warn(warnings)
        seconds = time.perf_counter() - started
        logger.info("predicted %d rows in %.1fs", predicted.rows, seconds)
        # Record on the job's run what predicted which rows, and where they went.
        self._record(model_ref, origin, predicted.rows, seconds)
        # Report the drift, the estimated performance and the challenger's comparison.
        summary = monitors.summary(model_ref)
        failure = monitors.note_challenger_failure()
        if failure is not None:
            warnings = [*warnings, failure]
            self.warn(warnings)
        page = self._monitoring_page(model_ref, predicted, monitors, summary)
        # Tell people the shape of the output, or the rules broken (reported by the caller).
        self._notify(model_ref, predicted, summary, warnings)
        result = self._result(
            model_ref, predicted, monitors, summary=summary, seconds=seconds,
            warnings=warnings, origin=origin, page=page,
        )  # fmt: skip
        if self.shard is None:
            return result
        # A shard's result also carries what the publishing step needs of it.
        return dataclasses.replace(result, shard_report=self._shard_report(result))

    def _find_model(self, client: MlflowClient) -> tuple[ModelRef, registries.Predictor, list[str]]:
        """Find the model, tag the job's run with it, load it and check its signature.

        Returns:
            The model found, the model loaded, and what the user should know of its signature.
        """
        model_ref = self.finder.find(client)
        logger.info("predicting with %s", model_ref.describe())
        # Tagged at once: a trend read while this run is judged finds it among the model's.
        mlflow.set_tags({"model_name": model_ref.name, "model_version": model_ref.version})
        predictor = self.loader.load(model_ref.uri)
        warnings = registries.check_signature(model_ref, predictor, self.allow_unsigned)
        return model_ref, predictor, warnings

    def _monitors(self, client: MlflowClient, model_ref: ModelRef) -> Monitors:
        """The training profile, the performance estimator and the challenger, as configured."""
        reference, notes = self._reference(client, model_ref)
        estimates = self._estimates(client, model_ref, notes)
        shadowing = self._challenger(client, reference)
        return Monitors(reference=reference, estimates=estimates, shadowing=shadowing, notes=notes)

    def _reference(
        self, client: MlflowClient, model_ref: ModelRef
    ) -> tuple[drift.Profile | None, list[str]]:
        """The model's training profile, with a note when drift cannot be checked."""
        if self.drift_policy == "off":
            return None, []
        reference = references.load_profile(client, model_ref)
        if reference is not None:
            return reference, []
        why = (
            f"{model_ref.describe()} has no reference profile (a model trained before profiles "
            "were stored, or elsewhere): drift was not checked; store one with `model "
            f"reference {model_ref.name} --data ROWS --target COLUMN`"
        )
        if self.drift_policy == "fail":
            raise drift.DriftError(
                f"{why}; with drift_policy=fail nothing is predicted unchecked: store one, "
                "or set drift_policy=warn"
            )
        return None, [why]

    def _estimates(
        self, client: MlflowClient, model_ref: ModelRef, notes: list[str]
    ) -> estimation.EstimateCounter | None:
        """The counter of the batch's estimated performance; None (with a note) without one."""
        if self.drift_policy == "off":
            return None
        estimator = references.load_estimator(client, model_ref)
        if estimator is None:
            notes.append(
                f"{model_ref.describe()} has no performance estimator (trained elsewhere, "
                "before estimators were stored, or on a holdout that could not fit one: see "
                "its training warnings): performance was not estimated; fit one with "
                f"`model reference {model_ref.name} --data ROWS --target COLUMN`"
            )
            return None
        return estimation.EstimateCounter(estimator)

    def _challenger(
        self, client: MlflowClient, reference: drift.Profile | None
    ) -> Shadowing | None:
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

    def _reader(
        self,
        predictor: registries.Predictor,
        schema: pandera.DataFrameSchema | None,
        monitors: Monitors,
    ) -> datasets.Reader:
        """The input's reader, narrowed to the columns that something reads."""
        available = self.inputs.schema().names
        extra = [
            *self.passthrough,
            *(schema.columns if schema else []),
            *monitors.columns(available),
        ]
        columns = schemas.needed_columns(available, predictor.signature, extra)
        return self.inputs.model_copy(update={"columns": columns})

    def _predict_and_write(
        self,
        reader: datasets.Reader,
        validator: schemas.Validator,
        predictor: registries.Predictor,
        monitors: Monitors,
        model_ref: ModelRef,
        origin: lineage.Lineage,
    ) -> Predicted:
        """Validate, predict and write batch by batch, then judge the totals.

        Raises:
            schemas.ValidationError: the rows break rules (reported instead under
                `report_violations`); nothing is written either way.
            drift.DriftError: under `drift_policy=fail`, the rows drifted; nothing is written.
            estimation.PerformanceError: under `drift_policy=fail`, the model's estimated
                performance degraded; nothing is written.
        """
        rows, width = 0, 0
        violations: list[schemas.Violation] = []
        report: drift.DriftReport | None = None
        estimate: estimation.Estimate | None = None
        # A long prediction says how far it is (rows of a Parquet input are in its footers).
        progress = services.Progress("rows", total=lambda: _known_rows(reader))
        try:
            with self.outputs.open(metadata=origin.metadata()) as sink:
                for frame in reader.frames():
                    progress.add(len(frame))
                    if not validator.check(frame) or validator.counts:
                        continue  # keep checking the rest, to report every broken rule at once
                    output = self._predict_batch(frame, predictor, monitors)
                    sink.write(output)
                    rows, width = rows + len(frame), output.shape[1]
                validator.raise_for_violations()
                # Judge before the output appears: `fail` leaves nothing behind.
                report, estimate = self._judge(monitors, rows, model_ref)
        except schemas.ValidationError as error:
            if not self.report_violations:
                raise
            violations, rows = error.violations, 0
        return Predicted(
            rows_in=validator.rows,
            rows=rows,
            columns=width,
            violations=violations,
            report=report,
            estimate=estimate,
        )

    def _predict_batch(
        self, frame: pd.DataFrame, predictor: registries.Predictor, monitors: Monitors
    ) -> pd.DataFrame:
        """Predict one batch, count it into the monitors, and return the rows to write."""
        predictions = predictor.predict(frame)
        # Counted with every column the model gave, before the probabilities may be dropped.
        monitors.add(frame, predictions)
        if not self.probabilities:
            predictions = predictions[[models.PREDICTION]]
        kept = frame[self.passthrough].reset_index(drop=True)
        return pd.concat([kept, predictions], axis=1)

    def _judge(
        self, monitors: Monitors, rows: int, model_ref: ModelRef
    ) -> tuple[drift.DriftReport | None, estimation.Estimate | None]:
        """The drift report and the estimated performance; under `fail`, refuse a bad batch.

        Under `report_violations` (a shard's job) nothing is judged: the publishing step judges
        the totals over every shard.

        Returns:
            The drift report and the estimate (None: not checked, not estimated, or a shard).

        Raises:
            drift.DriftError: under `drift_policy=fail`, the rows drifted.
            estimation.PerformanceError: under `drift_policy=fail`, the estimated performance
                degraded. Either way the report is kept in MLflow first, to explain why.
        """
        report: drift.DriftReport | None = None
        estimate: estimation.Estimate | None = None
        if monitors.estimates is not None and not self.report_violations and rows:
            estimate = estimation.estimate(monitors.estimates.estimator, monitors.estimates.tally())
        if monitors.counter is not None and not self.report_violations:
            counter = monitors.counter
            report = drift.score(counter.reference, counter.tally(), self.drift_thresholds)
        if self.drift_policy != "fail":
            return report, estimate
        tolerance = self.performance_tolerance
        error = monitoring.refusal(report, estimate, tolerance, model_ref.describe())
        if error is None:
            return report, estimate
        summary = monitors.summary(model_ref)
        monitoring.record(report, summary, model_ref, monitors.notes, estimate, tolerance)
        raise error

    def _record(
        self, model_ref: ModelRef, origin: lineage.Lineage, rows: int, seconds: float
    ) -> None:
        """Tag the job's run with the model, the input and the output; log the rows and time."""
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

    def _monitoring_page(
        self,
        model_ref: ModelRef,
        predicted: Predicted,
        monitors: Monitors,
        summary: shadow.ShadowSummary | None,
    ) -> str:
        """Log the monitoring scores on the job's run; return their HTML page.

        Under `report_violations` (a shard's job) nothing is logged and "" returned: the
        publishing step logs the totals over every shard.
        """
        if self.report_violations:
            return ""
        return monitoring.record(
            predicted.report,
            summary,
            model_ref,
            monitors.notes,
            predicted.estimate,
            self.performance_tolerance,
        )

    def _notify(
        self,
        model_ref: ModelRef,
        predicted: Predicted,
        summary: shadow.ShadowSummary | None,
        warnings: list[str],
    ) -> None:
        """Alert the output's shape and the monitoring's headlines, or log the rules broken."""
        if predicted.violations:  # the caller reports them, with every shard's
            violations = "; ".join(map(str, predicted.violations))
            logger.warning("input validation failed: %s", violations)
            return
        tolerance = self.performance_tolerance
        self.alerter.notify(
            title=f"{self.KIND} succeeded",
            message=f"Predicted {predicted.rows} rows with {model_ref.describe()}."
            + monitoring.alert_lines(predicted.report, predicted.estimate, summary, tolerance)
            + "".join(f"\nWarning: {warning}" for warning in warnings),
            fields={
                "shape": f"({predicted.rows}, {predicted.columns})",
                "output": self.outputs.path,
            },
        )

    def _result(
        self,
        model_ref: ModelRef,
        predicted: Predicted,
        monitors: Monitors,
        *,
        summary: shadow.ShadowSummary | None,
        seconds: float,
        warnings: list[str],
        origin: lineage.Lineage,
        page: str,
    ) -> results.InferenceResult:
        """The job's result: what was predicted, with what, and what the monitors found."""
        return results.InferenceResult(
            model_ref=model_ref,
            rows_in=predicted.rows_in,
            rows=predicted.rows,
            columns=predicted.columns,
            output=self.outputs.path,
            seconds=seconds,
            warnings=warnings,
            lineage=origin,
            violations=predicted.violations,
            drift=predicted.report,
            estimate=predicted.estimate,
            estimate_tally=monitors.estimate_tally(),
            tally=monitors.tally(),
            shadow=summary,
            comparison=monitors.comparison(),
            notes=monitors.notes,
            monitoring_page=page,
        )

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

    def __init__(
        self,
        model_ref: ModelRef,
        predictor: registries.Predictor,
        task: str | None,
        tolerance: float,
    ):
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


@dataclasses.dataclass
class Monitors:
    """What watches the batches beside the model; each keeps fixed-size sums, never rows.

    Args:
        reference: the model's training profile, whose bins the batches are counted into
            (None: drift not checked).
        estimates: the sums of the model's estimated performance (None: not estimated, or no
            longer: a batch it could not read ended it).
        shadowing: the challenger scoring the same batches (None: no challenger).
        notes: why drift, the performance or the comparison was not checked, or only in part.
    """

    reference: drift.Profile | None
    estimates: estimation.EstimateCounter | None
    shadowing: Shadowing | None
    notes: list[str]
    counter: drift.Counter | None = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.counter = None
        if self.reference is not None:
            self.counter = drift.Counter(self.reference, models.PREDICTION)

    def columns(self, available: T.Sequence[str]) -> list[str]:
        """The input columns the monitors read: the challenger's, then the profiled features.

        Args:
            available: the input's columns.
        """
        extra: list[str] = []
        if self.shadowing is not None:  # the challenger may use other columns (all, unsigned)
            wanted = schemas.needed_columns(available, self.shadowing.predictor.signature, [])
            extra += available if wanted is None else wanted
        if self.reference is not None:
            extra += [name for name in self.reference.features if name in available]
        return extra

    def add(self, frame: pd.DataFrame, predictions: pd.DataFrame) -> None:
        """Count a batch and the model's predictions into the profile, estimate and comparison.

        Args:
            frame: the batch's rows.
            predictions: the model's predictions of them, every column the model gave.
        """
        if self.counter is not None:
            self.counter.add(frame, predictions)
        if self.estimates is not None:
            try:
                self.estimates.add(predictions)
            except ValueError as error:  # a batch it cannot read ends the estimate, noted
                self.notes.append(f"performance not estimated: {error}")
                self.estimates = None
        if self.shadowing is not None:
            self.shadowing.add(frame, predictions[models.PREDICTION])

    def summary(self, champion_ref: ModelRef) -> shadow.ShadowSummary | None:
        """The challenger's comparison with the Champion (None: no challenger, or no batch)."""
        return self.shadowing.summary(champion_ref) if self.shadowing is not None else None

    def note_challenger_failure(self) -> str | None:
        """Note that the challenger failed on a batch, if it did; return the note (else None)."""
        if self.shadowing is None or not self.shadowing.failure:
            return None
        self.notes.append(
            f"the challenger {self.shadowing.model_ref.describe()} failed "
            f"({self.shadowing.failure}): the comparison covers the rows before"
        )
        return self.notes[-1]

    def tally(self) -> drift.Tally | None:
        """The batches counted into the profile's bins (None: drift not checked)."""
        return self.counter.tally() if self.counter is not None else None

    def estimate_tally(self) -> estimation.EstimateTally | None:
        """The sums of the estimated performance (None: not estimated)."""
        return self.estimates.tally() if self.estimates is not None else None

    def comparison(self) -> shadow.Comparison | None:
        """The challenger's comparison sums (None: no challenger, or no batch scored)."""
        return self.shadowing.comparison if self.shadowing is not None else None


@dataclasses.dataclass(frozen=True)
class Predicted:
    """What a pass over the input wrote, and what was judged of it.

    Args:
        rows_in: input rows read and checked.
        rows: rows predicted and written (0 when rules broken are reported: nothing is written).
        columns: the output's columns.
        violations: the rules the input broke, when reported instead of raised.
        report: the rows against the training profile (None: not checked, or left to the
            publishing step of a sharded prediction).
        estimate: the rows' estimated performance (None: not estimated, or left to it too).
    """

    rows_in: int
    rows: int
    columns: int
    violations: list[schemas.Violation]
    report: drift.DriftReport | None
    estimate: estimation.Estimate | None
