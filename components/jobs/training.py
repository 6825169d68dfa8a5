"""Training job: fit the template model, sign it, and register it as a new version."""

from __future__ import annotations

import logging
import time
import typing as T

import mlflow
import pydantic as pdt

from components.core import metrics, models, schemas
from components.io import datasets, registries
from components.jobs import base
from components.utils import signers, splitters

logger = logging.getLogger(__name__)


def default_model() -> models.ModelKind:
    """The demo model: gradient-boosted trees on the bike sharing features."""
    return models.HistGradientBoostingRegressorModel(
        numerical=models.BIKE_NUMERICAL, categorical=models.BIKE_CATEGORICAL
    )


class TrainingJob(base.Job, frozen=True):
    """Train a model on a dataset and register it in MLflow with its signature.

    Args:
        inputs: the training data (features and target).
        target: the column to predict.
        model: the template model (preprocessor + estimator) to fit.
        model_name: the registered model name; each training adds a version.
        splitter: how rows are held out for evaluation.
        signer: how the model signature is generated.
        saver: how the model is logged and registered.
        holdout: where to write the held-out rows (for the evaluation job), if anywhere.
    """

    KIND: T.Literal["TrainingJob"] = "TrainingJob"
    inputs: datasets.ReaderKind = pdt.Field(..., discriminator="KIND")
    target: str = models.BIKE_TARGET
    model: models.ModelKind = pdt.Field(default_factory=default_model, discriminator="KIND")
    model_name: str = "bike-sharing"
    splitter: splitters.SplitterKind = splitters.TrainTestSplitter()
    signer: signers.SignerKind = signers.InferSigner()
    saver: registries.SaverKind = registries.SklearnSaver()
    holdout: datasets.WriterKind | None = pdt.Field(default=None, discriminator="KIND")

    def run(self) -> base.Locals:
        started = time.perf_counter()
        # Read the training data and check that the model's columns are there.
        data = schemas.normalize(self.inputs.read())
        missing = [c for c in [*self.model.features, self.target] if c not in data.columns]
        if missing:
            raise schemas.ValidationError(
                [schemas.Violation(c, "missing, needed for training", len(data)) for c in missing],
                len(data),
            )
        unlabeled = int(data[self.target].isna().sum())
        if unlabeled:
            logger.warning("dropping %d rows without a value in '%s'", unlabeled, self.target)
            data = data[data[self.target].notna()].reset_index(drop=True)
        # Hold rows out for evaluation.
        train, test = self.splitter.split(data)
        logger.info("training on %d rows, holding out %d", len(train), len(test))
        # Fit the preprocessor and the estimator together.
        pipeline = self.model.build()
        pipeline.fit(train[self.model.features], train[self.target])
        # Score on the held-out rows.
        test_predictions = models.predict_frame(pipeline, test[self.model.features])
        scores = metrics.score(self.model.TASK, test[self.target], test_predictions)
        logger.info("holdout metrics: %s", scores)
        # Sign the model with its inputs and outputs.
        example = train[self.model.features].head(5)
        signature = self.signer.sign(train[self.model.features], pipeline.predict(example))
        # Log parameters and metrics, then register a new version.
        mlflow.log_params(
            {
                "model_kind": self.model.KIND,
                "target": self.target,
                "numerical": ",".join(self.model.numerical),
                "categorical": ",".join(self.model.categorical),
                "train_rows": len(train),
                "test_rows": len(test),
                **{f"param_{k}": v for k, v in self.model.params.items()},
            }
        )
        mlflow.log_metrics({f"test_{name}": value for name, value in scores.items()})
        model_ref = self.saver.save(pipeline, self.model_name, signature, example)
        mlflow.set_tags({"model_name": self.model_name, "model_version": model_ref.version})
        logger.info("registered %s from run %s", model_ref.describe(), model_ref.run_id)
        # Keep the held-out rows for the evaluation job.
        if self.holdout is not None:
            self.holdout.write(test)
        # Tell people which version exists now.
        seconds = time.perf_counter() - started
        self.alerter.notify(
            title=f"{self.KIND} succeeded",
            message=f"Registered {model_ref.describe()} ({self.model.KIND}).",
            fields={"rows": len(data), **{k: round(v, 4) for k, v in scores.items()}},
        )
        return locals()
