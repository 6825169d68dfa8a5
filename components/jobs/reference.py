"""Reference job: give a version trained elsewhere what drift and performance checks compare with.

A version the project trains stores, with its model, the profile of its training rows and a
performance estimator fitted on its holdout (`components.jobs.training`); `predict` compares
each batch with them. A model trained in a notebook and registered in MLflow has neither, so its
batches go unchecked. This job computes both from labelled rows the user gives (ideally rows the
model did not train on, such as its validation set), with the model's own predictions on them,
and stores them among the artifacts of the run that logged the model, where `predict` finds
them: `model reference NAME --data ROWS --target COLUMN` on the command line.
"""

from __future__ import annotations

import logging
import typing as T

import pydantic as pdt
from mlflow.tracking import MlflowClient

from components.core import drift, estimation, features, models, results, schemas
from components.core.model_refs import ModelRef
from components.io import datasets, references, registries
from components.jobs import base

logger = logging.getLogger(__name__)


class ReferenceError(ValueError):
    """The reference cannot be stored as asked; says why and what to do."""


class ReferenceJob(base.Job, frozen=True):
    """Store a reference profile (and a performance estimator) with a registered version.

    The features are the model's signature inputs (all columns but the target without one),
    numerical or categorical by their type in the rows; the profile is of the rows and of the
    model's predictions on them, as training profiles its rows. With a target, the estimator of
    the performance on unlabelled batches is fitted on the same rows and predictions.

    Args:
        inputs: the labelled rows (features and, for the estimator, the target).
        model_name: the registered model name.
        alias_or_version: the version to complete: an alias (Champion) or a version number.
        target: the column of the true values; None: the profile only (drift is checked,
            performance is not estimated).
        loader: how the model is loaded (its richest flavour by default).
        replace: store over a reference the version has already (one the training stored
            included); without it such a version is refused.
    """

    KIND: T.Literal["ReferenceJob"] = "ReferenceJob"
    RECORDS_RUN: T.ClassVar[bool] = False  # stored with the model's own run
    inputs: datasets.ReaderKind
    model_name: registries.ModelName
    alias_or_version: str | int = "Champion"
    target: str | None = None
    loader: registries.LoaderKind = pdt.Field(default_factory=registries.FlavorLoader)
    replace: bool = False

    def run(self) -> results.ReferenceResult:
        """Find the version, predict the rows, profile them, fit the estimator, store both."""
        # No run of its own to start, but a model to load (MLflow's own calls) from the store.
        self.mlflow_service.point()
        client = self.mlflow_service.client()
        finder = registries.RegistryFinder(
            name=self.model_name, alias_or_version=self.alias_or_version
        )
        model_ref = finder.find(client)
        self._check_storable(client, model_ref)
        data = schemas.normalize(self.inputs.read())
        if data.empty:
            raise schemas.ValidationError([schemas.Violation("*", schemas.NO_ROWS, 0)], 0)
        if self.target is not None and self.target not in data.columns:
            raise schemas.ValidationError(
                [schemas.Violation(self.target, "missing, the target column", len(data))], len(data)
            )
        predictor = self.loader.load(model_ref.uri)
        # The model's own inputs, as its signature names them; without one, every other column.
        signed = predictor.signature.inputs.input_names() if predictor.signature else None
        columns = [str(c) for c in (signed or data.columns) if c != self.target]
        kinds = _feature_kinds(data, columns)
        predictions = predictor.predict(data)
        profile = drift.profile(
            data[columns], kinds.numerical, kinds.categorical, predictor.task,
            predictions[models.PREDICTION],
        )  # fmt: skip
        estimator = None
        if self.target is not None:
            labelled = data[self.target].notna().to_numpy()  # rows without a label: profiled
            try:
                estimator = estimation.fit(
                    predictor.task, data[self.target][labelled], predictions[labelled]
                )
            except ValueError as error:  # e.g. a class with no row: nothing was stored
                raise ReferenceError(
                    f"no performance estimator can be fitted on these rows of '{self.target}' "
                    f"({error}); nothing was stored: give more labelled rows, or leave out "
                    "--target to store the profile alone"
                ) from None
        references.store_profile(client, str(model_ref.run_id), profile)
        if estimator is not None:
            references.store_estimator(client, str(model_ref.run_id), estimator)
        result = results.ReferenceResult(
            model_ref=model_ref,
            rows=len(data),
            numerical=kinds.numerical,
            categorical=kinds.categorical,
            estimator=estimator is not None,
        )
        self.alerter.notify(
            title=f"{self.KIND} succeeded",
            message=result.describe(),
            fields={"rows": len(data), "features": len(columns), "run": model_ref.run_id},
        )
        return result

    def _check_storable(self, client: MlflowClient, model_ref: ModelRef) -> None:
        """Refuse a version logged by no run, or one with a reference (unless replacing)."""
        if not model_ref.run_id:
            raise ReferenceError(
                f"{model_ref.describe()} was registered from a location that names no MLflow "
                "run: its reference is stored among the artifacts of the run that logged the "
                "model; log the model in a run (mlflow.<flavor>.log_model) and register that"
            )
        if self.replace:
            return
        stored = [
            path
            for path in (references.PROFILE_PATH, references.ESTIMATOR_PATH)
            if references.run_text(client, str(model_ref.run_id), path) is not None
        ]
        if stored:
            raise ReferenceError(
                f"{model_ref.describe()} has a reference already ({', '.join(stored)} of run "
                f"{model_ref.run_id}): add --replace to store this one instead"
            )


def _feature_kinds(data: T.Any, columns: list[str]) -> features.Features:
    """Numerical and categorical columns by their type in the rows, as training sorts them."""
    missing = [column for column in columns if column not in data.columns]
    if missing:
        raise schemas.ValidationError(
            [
                schemas.Violation(column, "missing, required by the model signature", len(data))
                for column in missing
            ],
            len(data),
        )
    # `infer` sorts a training table, target included: these rows get a stand-in target.
    return features.infer(data[columns].assign(__target__=0), "__target__")
