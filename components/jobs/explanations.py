"""Explanations job: SHAP explanations of a registered model and of individual samples."""

from __future__ import annotations

import dataclasses
import logging
import time
import typing as T

import mlflow
import numpy as np
import pandas as pd
import pydantic as pdt

from components.core import cards, explainers, reports, results, schemas
from components.io import cards as card_store
from components.io import datasets, registries
from components.jobs import base
from components.utils import secrets

logger = logging.getLogger(__name__)

# Where the explanations report goes among the artifacts of the job's run.
REPORT_PATH = "reports/explanations.html"
# The most samples whose explanations and values the report charts (the summary chart).
REPORTED_SAMPLES = 500


class ExplanationsJob(base.Job, frozen=True):
    """Explain a registered model (global feature importance) and some samples (SHAP values).

    Any registered model: its richest native flavour (sklearn, xgboost, lightgbm, catboost) is
    loaded, else pyfunc. XGBoost, LightGBM and CatBoost models get their frameworks' own exact
    Tree SHAP, scikit-learn trees shap's Tree SHAP, linear models Linear SHAP, all on the
    features after preprocessing; any other model (a pyfunc-only one included) permutation
    SHAP with a bounded budget. The values are then summed per input column (a one-hot
    categorical is one feature again). See `core.explainers` for what they add up to.

    Args:
        inputs_samples: the rows to explain; at most `max_samples` are read, batch by batch.
        models_explanations: where the model explanations go: one row per feature with its
            importance (mean absolute SHAP value) and rank.
        samples_explanations: where the sample explanations go: one row per sample (and class,
            for a multiclass model) with `output`, `base_value` and one `shap_<column>` column
            per input column the model reads; base_value + the sum of the row's SHAP values =
            the model's raw output (a classifier's margin; its probability for permutation SHAP).
        finder: which model: a registered alias or version, the best run of an experiment, a URI.
        loader: how the model is loaded, as the predictions load it; by default its richest
            flavour. Its `label_mapping` (else the version's `label_mapping` tag) names the
            outputs of a classifier trained on label-encoded classes.
        explainer: force an explainer (a KIND of `explainers.EXPLAINERS`, `{type, config}`
            or a user's class by import path); by default the registry chooses it for the
            final estimator.
        input_schema: a pandera schema (YAML file or `module:NAME`) with domain rules.
        passthrough: input columns copied beside the sample explanations (ids).
        allow_unsigned: explain a model that has no signature (inputs then go unchecked).
        max_samples: the most samples explained.
        background_samples: rows kept as the reference distribution (linear and permutation).
        spread: draw the samples across the input's pieces (files, row groups), as a sharded
            prediction does, instead of taking its first rows.
    """

    KIND: T.Literal["ExplanationsJob"] = "ExplanationsJob"
    inputs_samples: datasets.ReaderKind
    models_explanations: datasets.WriterKind
    samples_explanations: datasets.WriterKind
    finder: registries.FinderKind
    loader: registries.LoaderKind = pdt.Field(default_factory=registries.FlavorLoader)
    explainer: explainers.ExplainerKind | None = None
    input_schema: str | None = None
    passthrough: list[str] = pdt.Field(default_factory=list)
    max_samples: int = pdt.Field(default=1000, gt=0)
    background_samples: int = pdt.Field(default=100, gt=0)
    allow_unsigned: bool = False
    spread: bool = False

    def run(self) -> results.ExplanationsResult:
        """Find and load the native model, explain the samples, then the model; card it."""
        started = time.perf_counter()
        # Find and load the model: natively where it can be (trees, margins), else pyfunc.
        model_ref = self.finder.find(self.mlflow_service.client())
        # The predictions' loader (by default chosen by the model's flavours): its `model` is the
        # native estimator, Pipeline or booster (the pyfunc model where there is no native one).
        predictor = self.loader.load(model_ref.uri)
        warnings = registries.check_signature(model_ref, predictor, self.allow_unsigned)
        self.warn(warnings)
        model = predictor.model
        explainer = self.explainer or explainers.explainer_for(model)
        logger.info("explaining %s with %s", model_ref.describe(), explainer.KIND)
        schema = schemas.load_schema(self.input_schema) if self.input_schema else None
        extra = [*self.passthrough, *(schema.columns if schema else [])]
        reader = self.inputs_samples.model_copy(
            update={
                "columns": schemas.needed_columns(
                    self.inputs_samples.schema().names, predictor.signature, extra
                ),
                "batch_size": min(self.inputs_samples.batch_size, self.max_samples),
            }
        )
        validator = schemas.Validator(predictor.signature, schema, self.passthrough)
        # A classifier trained on label-encoded classes explains each class by its label, as
        # its predictions name them (the loader's mapping, else the version's tag; docs: README).
        mapping = self.loader.labels(model_ref.uri)
        # Both outputs carry their lineage (model, runs, input) so that they can be traced back.
        origin = self.lineage_of(model_ref, self.inputs_samples.path)
        # Explain the samples batch by batch, summing |SHAP| for the model explanations.
        background: pd.DataFrame | None = None
        shown: list[pd.DataFrame] = []  # the first samples' explanations, for the report
        shown_inputs: list[pd.DataFrame] = []  # and their values
        total_abs: np.ndarray | None = None
        samples = 0
        with self.samples_explanations.open(metadata=origin.metadata()) as sink:
            frames = reader.sample_frames(self.max_samples) if self.spread else reader.frames()
            for frame in frames:
                if samples >= self.max_samples:
                    break
                frame = frame.head(self.max_samples - samples).reset_index(drop=True)
                if not validator.check(frame) or validator.counts:
                    continue
                inputs = schemas.conform(frame, predictor.signature)
                if background is None:
                    background = inputs.head(self.background_samples)
                # One value per input column: one-hot features summed back to their column.
                explained = explainer.explain(model, inputs, background).grouped(inputs.columns)
                if mapping is not None:
                    labels = [str(mapping.get(str(output), output)) for output in explained.outputs]
                    explained = dataclasses.replace(explained, outputs=labels)
                table = explained.frame()
                kept_samples = max(0, REPORTED_SAMPLES - samples)
                if kept_samples:
                    shown.append(table.head(kept_samples * len(explained.outputs)))
                    shown_inputs.append(inputs.head(kept_samples))
                kept = frame[self.passthrough].loc[np.repeat(frame.index, len(explained.outputs))]
                sink.write(pd.concat([kept.reset_index(drop=True), table], axis=1))
                batch_abs = np.abs(explained.values).sum(axis=0)
                total_abs = batch_abs if total_abs is None else total_abs + batch_abs
                samples += len(frame)
            validator.raise_for_violations()
            # Model explanations: the mean absolute SHAP value of each feature.
            importances = explainers.importances(
                (total_abs / samples)[None, :, :], explained.features
            )
            self.models_explanations.write(importances, metadata=origin.metadata())
        seconds = time.perf_counter() - started
        mlflow.set_tags(
            {
                "model_name": model_ref.name,
                "model_version": model_ref.version,
                "model_uri": origin.model_uri,
                "inputs_samples": origin.inputs,
                "models_explanations": secrets.redact(self.models_explanations.path),
                "samples_explanations": secrets.redact(self.samples_explanations.path),
            }
        )
        mlflow.log_metrics({"samples_explained": samples, "seconds": seconds})
        result = results.ExplanationsResult(
            model_ref=model_ref,
            explainer=explainer.KIND,
            samples=samples,
            importances=importances,
            preview=shown[0].head(3 * len(explained.outputs)) if shown else pd.DataFrame(),
            shown=pd.concat(shown, ignore_index=True) if shown else None,
            shown_inputs=pd.concat(shown_inputs, ignore_index=True) if shown_inputs else None,
            seconds=seconds,
            warnings=warnings,
            lineage=origin,
        )
        # Complete the model card with the top features, when the model is a version with one.
        card = card_store.complete(
            self.mlflow_service.client(),
            model_ref,
            lambda card: cards.with_explanations(card, result),
        )
        # The report, among the run's artifacts, where the MLflow UI shows it.
        page = reports.explanations_page(result)
        mlflow.log_text(page, REPORT_PATH)
        top = ", ".join(importances["feature"].head(3))
        self.alerter.notify(
            title=f"{self.KIND} succeeded",
            message=f"Explained {samples} samples of {model_ref.describe()}; top features: {top}.",
            fields={"samples": samples, "features": len(importances), "explainer": explainer.KIND},
        )
        return dataclasses.replace(result, card=card, report=page)
