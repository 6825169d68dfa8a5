"""A user's own model kinds and strategies, outside the project's packages, loaded by import path.

None of them is registered: each is named by its `tests.user_models:Class` path, as a user
names a class of their own package.
"""

from __future__ import annotations

import typing as T

import numpy as np
import pandas as pd
import pydantic as pdt
from mlflow.models import infer_signature
from mlflow.models.signature import ModelSignature
from sklearn import ensemble
from sklearn.base import BaseEstimator
from sklearn.pipeline import Pipeline

from components.core import explainers, models, schemas
from components.core.model_refs import ModelRef
from components.io import registries
from components.utils import signers, splitters

# What sklearn's fitted decision trees are to skops: not trusted unless declared.
SKLEARN_TREE = "sklearn.tree._tree.Tree"


class RandomForestRegressorModel(models.Model, frozen=True):
    """A random forest for a numeric target. It declares no KIND: it keeps its path."""

    TASK: T.ClassVar[models.Task] = "regression"
    TRUSTED_TYPES: T.ClassVar[tuple[str, ...]] = (SKLEARN_TREE,)
    TREE_ENSEMBLE: T.ClassVar[bool] = True

    def estimator(self) -> BaseEstimator:
        """A small, seeded forest (one process: tests share the machine)."""
        return ensemble.RandomForestRegressor(
            **{"n_estimators": 10, "max_depth": 6, "random_state": 0, "n_jobs": 1, **self.params}
        )


class UndeclaredForestModel(RandomForestRegressorModel, frozen=True):
    """The same forest, whose kind forgot to declare the tree type skops must trust."""

    TRUSTED_TYPES: T.ClassVar[tuple[str, ...]] = ()


class BoostedClassifierModel(models.Model, frozen=True):
    """sklearn's GradientBoostingClassifier, which the explainers' own list does not name."""

    KIND: T.Literal["BoostedClassifier"] = "BoostedClassifier"
    TASK: T.ClassVar[models.Task] = "classification"
    TRUSTED_TYPES: T.ClassVar[tuple[str, ...]] = (SKLEARN_TREE,)
    TREE_ENSEMBLE: T.ClassVar[bool] = True

    def estimator(self) -> BaseEstimator:
        """A few seeded boosting rounds."""
        return ensemble.GradientBoostingClassifier(
            **{"n_estimators": 20, "random_state": 0, **self.params}
        )


class OtherFlavorModel(RandomForestRegressorModel, frozen=True):
    """A kind saved with a flavour no project saver is chosen for."""

    FLAVOR: T.ClassVar[str] = "xgboost"


class TaggingSaver(registries.SklearnSaver, frozen=True):
    """The sklearn saver, which also tags the version with who saved it."""

    KIND: T.Literal["TaggingSaver"] = "TaggingSaver"  # type: ignore[assignment]
    label: str = "mine"

    def save(self, model, name, signature, input_example, tags=None, kind=None) -> ModelRef:
        """Save as SklearnSaver does, with one more tag."""
        tags = {**(tags or {}), "saved_by": self.label}
        return super().save(model, name, signature, input_example, tags=tags, kind=kind)


class InputsOnlySigner(signers.Signer, frozen=True):
    """Signs the inputs only: the registered model declares no outputs."""

    def sign(self, inputs: pd.DataFrame, outputs: T.Any) -> ModelSignature:
        """The inputs' signature, without outputs."""
        return infer_signature(model_input=schemas.normalize(inputs))


class FirstRowsSplitter(splitters.Splitter, frozen=True):
    """Holds out the first rows of the file, whatever the training knows of them.

    Args:
        rows: how many rows are held out.
    """

    rows: int = pdt.Field(default=100, gt=0)

    def split(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Return (the other rows, the first rows)."""
        test = frame.iloc[: self.rows].reset_index(drop=True)
        return frame.iloc[self.rows :].reset_index(drop=True), test


class OcclusionExplainer(explainers.Explainer, frozen=True):
    """A regressor's prediction change when one raw column takes the background's first value.

    Not SHAP (the values need not add up): a user's own way to explain, on the raw columns.
    """

    def explain(
        self, model: Pipeline, inputs: pd.DataFrame, background: pd.DataFrame
    ) -> explainers.Explanations:
        """One prediction per input row and column, against the unchanged prediction."""
        reference = background.iloc[0]
        predicted = np.asarray(model.predict(inputs), dtype=float)
        columns = list(inputs.columns)
        values = np.empty((len(inputs), len(columns), 1))
        for position, column in enumerate(columns):
            occluded = inputs.copy()
            occluded[column] = reference[column]
            values[:, position, 0] = predicted - model.predict(occluded)
        base = np.full((len(inputs), 1), float(model.predict(background.head(1))[0]))
        return explainers.Explanations(values, base, columns, [models.PREDICTION])


class NotAKind(pdt.BaseModel):
    """Looks like a strategy (it has a KIND), but subclasses no role's base class."""

    KIND: str = "NotAKind"
