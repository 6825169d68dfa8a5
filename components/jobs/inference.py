"""Inference job: batch predictions from a registered model, streamed batch by batch."""

from __future__ import annotations

import logging
import time
import typing as T

import mlflow
import pandas as pd
import pydantic as pdt

from components.core import schemas
from components.io import datasets, registries
from components.jobs import base

logger = logging.getLogger(__name__)


def needed_columns(
    reader: datasets.Reader, predictor: registries.Predictor, extra: T.Iterable[str]
) -> list[str] | None:
    """The input columns a job must read: the signature's, plus extra ones, in file order.

    Reading only these keeps memory and time down on wide inputs. Columns absent from the file
    are left for the validator to report.
    """
    signature = predictor.signature
    if signature is None or not signature.inputs.has_input_names():
        return None
    wanted = {*signature.inputs.input_names(), *extra}
    return [name for name in reader.schema().names if name in wanted]


class InferenceJob(base.Job, frozen=True):
    """Generate batch predictions with a model from the registry.

    Args:
        inputs: the rows to predict; read in batches of `inputs.batch_size` rows.
        outputs: where predictions go (pass-through columns, `prediction`, class probabilities).
        finder: which model: by default the registered model's Champion alias.
        loader: how the model is loaded (pyfunc by default; sklearn adds class probabilities).
        input_schema: a pandera schema (YAML file or `module:NAME`) with domain rules.
        passthrough: input columns copied beside the predictions (ids, timestamps) for joins.
    """

    KIND: T.Literal["InferenceJob"] = "InferenceJob"
    inputs: datasets.ReaderKind = pdt.Field(..., discriminator="KIND")
    outputs: datasets.WriterKind = pdt.Field(..., discriminator="KIND")
    finder: registries.FinderKind = pdt.Field(
        default_factory=registries.RegistryFinder, discriminator="KIND"
    )
    loader: registries.LoaderKind = pdt.Field(
        default_factory=registries.PyfuncLoader, discriminator="KIND"
    )
    input_schema: str | None = None
    passthrough: list[str] = pdt.Field(default_factory=list)

    def run(self) -> base.Locals:
        started = time.perf_counter()
        # Find the model (alias resolved to a version) and load it.
        model_ref = self.finder.find(self.mlflow_service.client())
        logger.info("predicting with %s", model_ref.describe())
        predictor = self.loader.load(model_ref.uri)
        schema = schemas.load_schema(self.input_schema) if self.input_schema else None
        # Read only the columns the model, the schema and the pass-through need.
        extra = [*self.passthrough, *(schema.columns if schema else [])]
        reader = self.inputs.model_copy(
            update={"columns": needed_columns(self.inputs, predictor, extra)}
        )
        validator = schemas.Validator(predictor.signature, schema, self.passthrough)
        # Validate, predict and write batch by batch; the output appears only if all succeed.
        rows = 0
        with self.outputs.open() as sink:
            for frame in reader.frames():
                if not validator.check(frame) or validator.counts:
                    continue  # keep checking the rest, to report every broken rule at once
                predictions = predictor.predict(frame)
                kept = frame[self.passthrough].reset_index(drop=True)
                sink.write(pd.concat([kept, predictions], axis=1))
                rows += len(frame)
            validator.raise_for_violations()
        columns = len(self.passthrough) + len(predictions.columns)
        seconds = time.perf_counter() - started
        logger.info("predicted %d rows in %.1fs", rows, seconds)
        mlflow.set_tags({"model_name": model_ref.name, "model_version": model_ref.version})
        mlflow.log_metrics({"rows_predicted": rows, "seconds": seconds})
        # Tell people the shape of the output.
        self.alerter.notify(
            title=f"{self.KIND} succeeded",
            message=f"Predicted {rows} rows with {model_ref.describe()}.",
            fields={"shape": f"({rows}, {columns})", "output": self.outputs.path},
        )
        return locals()
