"""Training job: fit a model on any tabular data, sign it, and register it as a new version.

A tuning's trial trains the same way but registers nothing: it logs its model on its own run,
and the tuning's selection registers the best trial's (`components.jobs.selection`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import typing as T
import warnings

import mlflow
import mlflow.data
import pandas as pd  # type: ignore[import-untyped]
import pydantic as pdt
from mlflow.exceptions import MlflowException
from mlflow.models.signature import ModelSignature
from sklearn.pipeline import Pipeline

from components.core import (
    cards,
    drift,
    estimation,
    features,
    metrics,
    models,
    results,
    schemas,
    search,
)
from components.core.features import Features  # the field `features` hides the module in the class
from components.core.model_refs import ModelRef
from components.io import cards as card_store
from components.io import datasets, references, registries
from components.jobs import base
from components.utils import secrets, signers, splitters

logger = logging.getLogger(__name__)

# MLflow keeps at most this many characters of a param's value.
PARAM_LIMIT = 6000
# Fewer held-out rows than this make metrics that one row more or less would swing.
MIN_HOLDOUT_ROWS = 30


class TrainingJob(base.Job, frozen=True):
    """Train a model on a dataset and register it in MLflow with its signature.

    Features come from the data: numeric and boolean columns are numerical, text and categories
    categorical, unless `features`, `categorical` and `exclude` say otherwise. The task follows
    from the model kind, and a target that does not fit it is refused before fitting.

    Args:
        inputs: the training data (features and target).
        target: the column to predict.
        model: the model kind (preprocessor + estimator) and its parameters: a KIND of
            `models.MODELS`, `{type, config}` or a user's subclass of `models.Model` by import
            path; its class declares the task, and what saving and explaining it need.
        model_name: the registered model name; each training adds a version.
        features: the candidate feature columns (all columns but the target when None).
        categorical: columns to treat as categories even if numeric (codes).
        exclude: columns never used as features (ids, timestamps, leaks of the target).
        time_column: a time column: the holdout is then the latest rows, not a random draw.
        splitter: how rows are held out for evaluation.
        signer: how the model signature is generated.
        saver: how the model is logged and registered; by default the saver registered for
            the model kind's flavour.
        holdout: where to write the held-out rows (for the evaluation job), if anywhere.
        register_version: register the model as a new version of `model_name`; False (a tuning's
            trial): log it on the job's run only, with what its card needs, for the tuning's
            selection to register it if it is the best.
        trial: the number of the tuning's trial this training is, tagged on its run (None:
            not a trial).
    """

    KIND: T.Literal["TrainingJob"] = "TrainingJob"
    inputs: datasets.ReaderKind
    target: str = pdt.Field(min_length=1)
    model: models.ModelKind = pdt.Field(default_factory=models.HistGradientBoostingRegressorModel)
    model_name: registries.ModelName
    features: list[str] | None = None
    categorical: list[str] | None = None
    exclude: list[str] = pdt.Field(default_factory=list)
    time_column: str | None = None
    splitter: splitters.SplitterKind = pdt.Field(default_factory=splitters.TrainTestSplitter)
    signer: signers.SignerKind = pdt.Field(default_factory=signers.InferSigner)
    saver: registries.SaverKind | None = None
    holdout: datasets.WriterKind | None = None
    register_version: bool = True
    trial: int | None = pdt.Field(default=None, ge=0)

    def run(self) -> results.TrainingResult:
        """Read, infer the features, split, fit, score, sign, log, keep the holdout, register."""
        started = time.perf_counter()
        # What a user should know of the data (rows dropped, a column that looks like an id,
        # a holdout too small to trust) reaches the alert and the run, not the step log alone.
        with base.warnings_logged(logger, features.logger, splitters.logger) as noted:
            # Read the training data and find the target; rows without a value cannot train.
            data = self._read()
            # Infer the features from the column types, and check the target suits the task.
            model, found = self._model_for(data)
            data[self.target] = features.check_target(model.TASK, data[self.target], self.target)
            # Hold rows out for evaluation: the latest when time-ordered, stratified for classes.
            train, test = self._split(model, data)
            # Fit the preprocessor and the estimator together.
            pipeline = self._fit(model, found, train)
            # Score on the held-out rows.
            test_predictions, scores = self._evaluate_on_holdout(model, found, pipeline, test)
            # Sign the model with its inputs and outputs.
            example, signature = self._sign(found, pipeline, train)
            # Log how it was trained and how well, on which data, and the references for
            # inference (a holdout that cannot fit the performance estimator is told).
            hyperparameters = self._log_training(
                model, found, pipeline, len(train), len(test), scores
            )
            source, digest = self._log_input(data)
            profile = self._log_reference(model, found, pipeline, train, test, test_predictions)
        self.warn(noted)
        # Keep the held-out rows for the evaluation job, before registering: a failure here
        # must not leave a version behind.
        if self.holdout is not None:
            self.holdout.write(test)
        if self.trial is not None:
            mlflow.set_tag(search.TRIAL_TAG, str(self.trial))
        if self.register_version:
            # Register last; a retry of the same pipeline task keeps the version it registered.
            model_ref = self._register(model, pipeline, signature, example)
            mlflow.set_tags({"model_name": self.model_name, "model_version": model_ref.version})
        else:
            model_ref = self._log_model(model, pipeline, signature, example)
        result = results.TrainingResult(
            model_ref=model_ref,
            model_kind=model.kind_name,
            task=model.TASK,
            numerical=found.numerical,
            categorical=found.categorical,
            rows=len(data),
            train_rows=len(train),
            test_rows=len(test),
            scores=scores,
            seconds=time.perf_counter() - started,
            profile=profile,
            warnings=noted,
        )
        # Write the version's model card: its data, features, model, metrics and profile (a
        # trial keeps them on its run, for the card of the version its selection registers).
        result = self._card(result, model, source, digest, hyperparameters)
        # Tell people which version exists now.
        self._notify(result)
        return result

    def _read(self) -> pd.DataFrame:
        """The training data, normalised, without the rows that have no target value.

        Raises:
            features.FeatureError: the target column is not in the data.
        """
        data = self.inputs.read()
        if self.target not in data.columns:
            raise features.FeatureError(
                f"target column '{self.target}' is not in the data; columns: "
                + ", ".join(map(str, data.columns))
            )
        data, unlabeled = schemas.labelled(data, self.target)
        if unlabeled:
            logger.warning("dropping %d rows without a value in '%s'", unlabeled, self.target)
        return data

    def _model_for(self, data: pd.DataFrame) -> tuple[models.Model, Features]:
        """The features inferred from the data, and the configured model kind built on them."""
        found = features.infer(
            data, self.target, self.features, self.categorical, self.exclude, self.time_column
        )
        # An infinity in a feature or the target would be fitted silently: refused first.
        schemas.refuse_infinite(data, [*found.columns, self.target])
        # Validated again with its features: a kind's own fields (a user's kind) are kept.
        model = type(self.model).model_validate(
            {**dict(self.model), "numerical": found.numerical, "categorical": found.categorical}
        )
        logger.info(
            "%s on %d numerical and %d categorical features",
            model.KIND,
            len(found.numerical),
            len(found.categorical),
        )
        return model, found

    def _split(self, model: models.Model, data: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The (train, test) rows, as the splitter holds them out for this data and task."""
        stratify = self.target if model.TASK == "classification" else None
        train, test = self.splitter.refined(self.time_column, stratify).split(data)
        logger.info("training on %d rows, holding out %d", len(train), len(test))
        if len(test) < MIN_HOLDOUT_ROWS:
            logger.warning(
                "only %d rows are held out: the holdout metrics, and the evaluation's thresholds "
                "that they meet, rest on too few rows to trust; train on more rows or hold out "
                "more (test_size)",
                len(test),
            )
        return train, test

    def _fit(self, model: models.Model, found: Features, train: pd.DataFrame) -> Pipeline:
        """The model's pipeline (preprocessor and estimator), fitted on the training rows."""
        pipeline = model.build()
        try:
            pipeline.fit(train[found.columns], train[self.target])
        except Exception as error:
            refusal = models.fit_refusal(model, error)
            if refusal is None:
                raise
            raise refusal from error
        return pipeline

    def _evaluate_on_holdout(
        self, model: models.Model, found: Features, pipeline: Pipeline, test: pd.DataFrame
    ) -> tuple[pd.DataFrame, dict[str, float]]:
        """The predictions on the held-out rows, and the task's metrics on them."""
        test_predictions = models.predict_frame(pipeline, test[found.columns])
        scores = metrics.score(model.TASK, test[self.target], test_predictions)
        logger.info("holdout metrics: %s", scores)
        return test_predictions, scores

    def _sign(
        self, found: Features, pipeline: Pipeline, train: pd.DataFrame
    ) -> tuple[pd.DataFrame, ModelSignature]:
        """An input example (a few training rows), and the signature the signer generates.

        Numerical integer columns are signed as doubles: every model trained here takes a
        missing number (natively or imputed), and a `long` column would refuse the first batch
        with one, as MLflow's own hint says. Integers still pass at inference (`conform` widens
        them); integer codes named `categorical` stay `long`.
        """
        inputs = train[found.columns]
        integers = [name for name in found.numerical if schemas.kind_of(inputs[name]) in "iu"]
        if integers:
            inputs = inputs.astype(dict.fromkeys(integers, "float64"))
        example = inputs.head(5)
        signature = self.signer.sign(inputs, pipeline.predict(example))
        return example, signature

    def _log_training(
        self,
        model: models.Model,
        found: Features,
        pipeline: Pipeline,
        train_rows: int,
        test_rows: int,
        scores: dict[str, float],
    ) -> dict[str, T.Any]:
        """Log the run's params, the features and the holdout metrics.

        Returns:
            the estimator's hyperparameters, given or default.
        """
        hyperparameters: dict[str, T.Any] = pipeline[-1].get_params(deep=False)
        mlflow.log_params(self._params(model, found, train_rows, test_rows, hyperparameters))
        # Which of them the config set; the others are the estimator's defaults.
        mlflow.set_tag("model.params_set", ", ".join(sorted(model.params)) or "-")
        # Feature names can be many and long: a file, not params with a length limit.
        mlflow.log_text(
            json.dumps({"numerical": found.numerical, "categorical": found.categorical}, indent=2),
            "features.json",
        )
        mlflow.log_metrics({f"test_{name}": value for name, value in scores.items()})
        return hyperparameters

    def _log_reference(
        self,
        model: models.Model,
        found: Features,
        pipeline: Pipeline,
        train: pd.DataFrame,
        test: pd.DataFrame,
        test_predictions: pd.DataFrame,
    ) -> drift.Profile:
        """Log what inference batches are compared with, and what estimates their performance.

        Returns:
            the reference profile stored with the run.
        """
        # The training rows' distributions, and the predictions' on the training rows and the
        # holdout (the holdout alone is too few rows: its noise would pass for drift).
        train_predictions = models.predict_frame(pipeline, train[found.columns])
        reference = drift.profile(
            train[found.columns],
            found.numerical,
            found.categorical,
            model.TASK,
            pd.concat(
                [train_predictions[models.PREDICTION], test_predictions[models.PREDICTION]],
                ignore_index=True,
            ),
        )
        references.log_profile(reference)
        # What estimating the performance before the labels needs, fitted on the holdout.
        try:
            references.log_estimator(
                estimation.fit(model.TASK, test[self.target], test_predictions)
            )
        except ValueError as error:  # e.g. a class absent from the holdout: no estimate
            logger.warning(
                "no performance estimator for this version (predict will not estimate its "
                "performance): %s; a larger holdout (test_size) may hold every class",
                error,
            )
        return reference

    def _card(
        self,
        result: results.TrainingResult,
        model: models.Model,
        source: str,
        digest: str,
        hyperparameters: dict[str, T.Any],
    ) -> results.TrainingResult:
        """Save the version's model card, and describe the registered model with it.

        A trial, which registered no version, keeps the card's training facts on its run.

        Returns:
            the result with its card (Markdown; None for a trial).
        """
        facts = cards.training_facts(
            result,
            target=self.target,
            source=source,
            digest=digest,
            params=hyperparameters,
            params_set=model.params,
        )
        client = self.mlflow_service.client()
        if not self.register_version:
            card_store.save_training(client, str(result.model_ref.run_id), facts)
            return result
        run = mlflow.active_run()
        experiment_id = run.info.experiment_id if run else ""
        markdown = card_store.publish(
            client,
            result.model_ref,
            cards.card_of(result.model_ref, facts),
            self.mlflow_service.tracking_uri,
            experiment_id,
        )
        return dataclasses.replace(result, card=markdown)

    def _notify(self, result: results.TrainingResult) -> None:
        """Tell people which version exists now, and how well it scored on the holdout."""
        done = "Registered" if self.register_version else f"Logged trial {self.trial}'s model"
        self.alerter.notify(
            title=f"{self.KIND} succeeded",
            message=f"{done} {result.model_ref.describe()} ({result.model_kind})."
            + "".join(f"\nWarning: {warning}" for warning in result.warnings),
            fields={"rows": result.rows, **{k: round(v, 4) for k, v in result.scores.items()}},
        )

    def _params(
        self,
        model: models.Model,
        found: Features,
        train_rows: int,
        test_rows: int,
        hyperparameters: dict[str, T.Any],
    ) -> dict[str, str]:
        """The run's params: the estimator's hyperparameters, then what it was trained on.

        Every hyperparameter, given or default, under its own name, as MLflow's autologging
        names them; a name of ours that an estimator also uses is kept as `training.<name>`.
        """
        context = {
            "model_kind": model.kind_name,
            "target": self.target,
            "n_numerical_features": len(found.numerical),
            "n_categorical_features": len(found.categorical),
            "train_rows": train_rows,
            "test_rows": test_rows,
        }
        params = {name: str(value)[:PARAM_LIMIT] for name, value in hyperparameters.items()}
        clashing = sorted(set(params) & set(context))
        if clashing:  # an estimator's own name wins; ours is kept under a prefix
            context = {(f"training.{k}" if k in clashing else k): v for k, v in context.items()}
        return {**params, **{name: str(value) for name, value in context.items()}}

    def _register(
        self,
        model: models.Model,
        pipeline: Pipeline,
        signature: ModelSignature,
        example: pd.DataFrame,
    ) -> ModelRef:
        """Register a new version, or find the one an earlier attempt of this task registered.

        The saver is the job's, or the one registered for the model kind's flavour; it saves
        the pipeline as its model kind declares (the types skops may trust).
        """
        tags = registries.task_tags(self.run_tags)
        client = self.mlflow_service.client()
        earlier = registries.task_version(client, self.model_name, tags)
        if earlier is not None:
            logger.warning(
                "keeping %s, registered by an earlier attempt of task %s of run %s",
                earlier.describe(),
                tags[base.TASK_TAG],
                tags[base.PIPELINE_RUN_TAG],
            )
            return earlier
        saver = self.saver or registries.saver_for(model)
        model_ref = saver.save(pipeline, self.model_name, signature, example, tags=tags, kind=model)
        logger.info("registered %s from run %s", model_ref.describe(), model_ref.run_id)
        return model_ref

    def _log_model(
        self,
        model: models.Model,
        pipeline: Pipeline,
        signature: ModelSignature,
        example: pd.DataFrame,
    ) -> ModelRef:
        """Log the model on the job's run without registering it (a tuning's trial).

        The saver is the one `_register` would use: the model it logs is the one a selection
        registers, with the same signature, example and trusted types.
        """
        saver = self.saver or registries.saver_for(model)
        logged = saver.log(pipeline, self.model_name, signature, example, kind=model)
        logger.info("logged %s on run %s (not registered)", logged.uri, logged.run_id)
        return logged

    def _log_input(self, data) -> tuple[str, str]:
        """Record the training data on the run: its location and digest (MLflow's dataset).

        Returns:
            the location (credentials redacted) and the digest.
        """
        location = secrets.redact(str(self.inputs.path))
        name = location.rstrip("/").rsplit("/", 1)[-1]
        with warnings.catch_warnings():  # "can be interpreted in multiple ways": a local path
            warnings.simplefilter("ignore", UserWarning)
            try:
                dataset = mlflow.data.from_pandas(
                    data, source=location, targets=self.target, name=name
                )
            except MlflowException:  # a scheme MLflow has no source for (demo://): a tag says it
                dataset = mlflow.data.from_pandas(data, targets=self.target, name=name)
        for attempt in range(DATASET_ATTEMPTS):
            try:
                mlflow.log_input(dataset, context="training")
                break
            except MlflowException as error:
                # Two runs that log the same new dataset at once race on the tracking server's
                # insert (its get-or-create is not atomic on PostgreSQL): the one that lost
                # finds the row on its next try. Its failed call linked nothing.
                if attempt == DATASET_ATTEMPTS - 1 or not _duplicate_key(error):
                    raise
                time.sleep(0.2 * (attempt + 1))
        mlflow.set_tag("training.data", location)
        logger.info("training data %s (digest %s)", location, dataset.digest)
        return location, dataset.digest


# How many times a training logs its dataset when another run inserts the same one meanwhile.
DATASET_ATTEMPTS = 3


def _duplicate_key(error: Exception) -> bool:
    """Whether a tracking server refused an insert because the row exists (a lost race)."""
    text = str(error)
    return any(
        sign in text
        for sign in (
            "UniqueViolation",
            "duplicate key",
            "UNIQUE constraint failed",
            "IntegrityError",
        )
    )
