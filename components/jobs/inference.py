"""Inference job: batch predictions from a registered model, streamed batch by batch."""

from __future__ import annotations

import logging
import time
import typing as T

import mlflow
import pandas as pd
import pydantic as pdt

from components.core import models, results, schemas
from components.io import datasets, registries
from components.jobs import base
from components.utils import secrets

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
            is written either way); a shard does, so that the publishing step reports the
            totals over every shard.
    """

    KIND: T.Literal["InferenceJob"] = "InferenceJob"
    inputs: datasets.ReaderKind = pdt.Field(..., discriminator="KIND")
    outputs: datasets.WriterKind = pdt.Field(..., discriminator="KIND")
    finder: registries.FinderKind
    loader: registries.LoaderKind = pdt.Field(default_factory=registries.FlavorLoader)
    input_schema: str | None = None
    passthrough: list[str] = pdt.Field(default_factory=list)
    probabilities: bool = True
    allow_unsigned: bool = False
    report_violations: bool = False

    def run(self) -> results.InferenceResult:
        """Find and load the model, then validate, predict and write batch by batch."""
        started = time.perf_counter()
        # Find the model (alias resolved to a version) and load it.
        model_ref = self.finder.find(self.mlflow_service.client())
        logger.info("predicting with %s", model_ref.describe())
        predictor = self.loader.load(model_ref.uri)
        warnings = registries.check_signature(model_ref, predictor, self.allow_unsigned)
        self.warn(warnings)
        schema = schemas.load_schema(self.input_schema) if self.input_schema else None
        # Read only the columns the model, the schema and the pass-through need.
        extra = [*self.passthrough, *(schema.columns if schema else [])]
        columns = schemas.needed_columns(self.inputs.schema().names, predictor.signature, extra)
        reader = self.inputs.model_copy(update={"columns": columns})
        validator = schemas.Validator(predictor.signature, schema, self.passthrough)
        # Validate, predict and write batch by batch; the output appears only if all succeed,
        # carrying its lineage (model, runs, input) so that the file can be traced back.
        origin = self.lineage_of(model_ref, self.inputs.path)
        rows, width = 0, 0
        violations: list[schemas.Violation] = []
        try:
            with self.outputs.open(metadata=origin.metadata()) as sink:
                for frame in reader.frames():
                    if not validator.check(frame) or validator.counts:
                        continue  # keep checking the rest, to report every broken rule at once
                    predictions = predictor.predict(frame)
                    if not self.probabilities:
                        predictions = predictions[[models.PREDICTION]]
                    kept = frame[self.passthrough].reset_index(drop=True)
                    output = pd.concat([kept, predictions], axis=1)
                    sink.write(output)
                    rows, width = rows + len(frame), output.shape[1]
                validator.raise_for_violations()
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
        # Tell people the shape of the output, or the rules broken (reported by the caller).
        if violations:
            logger.warning("input validation failed: %s", "; ".join(map(str, violations)))
        else:
            self.alerter.notify(
                title=f"{self.KIND} succeeded",
                message=f"Predicted {rows} rows with {model_ref.describe()}."
                + "".join(f"\nWarning: {warning}" for warning in warnings),
                fields={"shape": f"({rows}, {width})", "output": self.outputs.path},
            )
        return results.InferenceResult(
            model_ref=model_ref,
            rows_in=validator.rows,
            rows=rows,
            columns=width,
            output=self.outputs.path,
            seconds=seconds,
            warnings=warnings,
            lineage=origin,
            violations=violations,
        )
