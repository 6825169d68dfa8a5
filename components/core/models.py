"""Models: tabular sklearn pipelines that bundle the preprocessing with the estimator."""

from __future__ import annotations

import abc
import difflib
import inspect
import typing as T

import numpy as np
import pandas as pd
import pydantic as pdt
from sklearn import compose, ensemble, impute, linear_model, pipeline, preprocessing
from sklearn.base import BaseEstimator, is_classifier

from components.utils import factories

Task = T.Literal["regression", "classification"]

PREDICTION = "prediction"

PROBABILITY_PREFIX = "probability_"
# The fitted trees of sklearn's histogram gradient boosting, which skops does not trust by default.
HIST_TREES = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
# At most this many one-hot columns per categorical feature: the rarest categories share one
# "infrequent" column, so that an identifier-like column cannot blow the memory up.
MAX_CATEGORIES = 100


class Model(abc.ABC, pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """A template tabular model: a ColumnTransformer preprocessor followed by an estimator.

    The preprocessor travels inside the registered model, so inference applies exactly the
    preprocessing that training fitted (one-hot categories, scaling).

    Both feature lists may be left empty, meaning "infer them from the data" (see
    `features.infer`): the training job fills them in before it calls `build`.

    Args:
        numerical: numeric and boolean feature columns (missing values allowed).
        categorical: categorical feature columns, one-hot encoded: missing values (NaN, None)
            make a category of their own, the rarest categories beyond `MAX_CATEGORIES` share
            an "infrequent" one, and categories unseen in training count as infrequent (all
            zeros when no category was rare).
        params: keyword arguments for the estimator.

    A kind declares, beside its estimator, what the other roles need to know of it:

    - `TASK`: what it predicts, "regression" or "classification" (the target is checked
      against it before fitting).
    - `FLAVOR`: the MLflow flavour it is saved with; the saver is the one registered for it
      (`components.io.registries.SAVERS`).
    - `TRUSTED_TYPES`: the types its fitted pipeline holds that skops does not trust by
      default, reviewed by hand; the saver trusts these and refuses any other.
    - `TREE_ENSEMBLE`: its estimator is a tree ensemble that Tree SHAP explains exactly
      (`components.core.explainers.TreeExplainer`).
    """

    KIND: str
    TASK: T.ClassVar[Task]
    FLAVOR: T.ClassVar[str] = "sklearn"
    TRUSTED_TYPES: T.ClassVar[tuple[str, ...]] = ()
    TREE_ENSEMBLE: T.ClassVar[bool] = False
    numerical: list[str] = pdt.Field(default_factory=list)
    categorical: list[str] = pdt.Field(default_factory=list)
    params: dict[str, T.Any] = pdt.Field(default_factory=dict)

    @pdt.model_validator(mode="after")
    def _features_do_not_overlap(self) -> Model:
        overlap = set(self.numerical) & set(self.categorical)
        if overlap:
            raise ValueError(f"columns both numerical and categorical: {sorted(overlap)}")
        return self

    @pdt.field_validator("params", mode="after")
    @classmethod
    def _integers_back(cls, params: dict[str, T.Any]) -> dict[str, T.Any]:
        """Give back the integers that arrived as floats (max_iter=30.0 is refused).

        KFP hands dict parameters over as protobuf Structs, where every number is a float. An
        integral float becomes an int where the estimator's default is an int or None
        (max_iter, max_depth, random_state); float parameters (max_features=1.0) stay floats.
        """
        defaults = cls.model_construct().estimator().get_params()

        def integer_expected(name: str) -> bool:
            default = defaults.get(name)
            return default is None or type(default) is int

        return {
            name: int(value)
            if isinstance(value, float) and value.is_integer() and integer_expected(name)
            else value
            for name, value in params.items()
        }

    @pdt.field_validator("params", mode="after")
    @classmethod
    def _accepted_by_the_estimator(cls, params: dict[str, T.Any]) -> dict[str, T.Any]:
        """Refuse what the estimator would refuse at fit time, before any data is read.

        A name it does not take is named with the closest ones it does; a value is checked
        against the estimator's own rules (types, ranges, choices), as its `fit` checks them.

        Raises:
            ValueError: an unknown parameter, or a value the estimator refuses.
        """
        estimator = cls.model_construct().estimator()
        known = estimator.get_params()
        unknown = [name for name in params if name not in known]
        if unknown:

            def hint(name: str) -> str:
                close = difflib.get_close_matches(name, list(known), n=3)
                return f" (did you mean: {', '.join(close)}?)" if close else ""

            named = ", ".join(f"{name!r}{hint(name)}" for name in unknown)
            raise ValueError(
                f"unknown parameter{'s' if len(unknown) > 1 else ''} {named} of "
                f"{type(estimator).__name__}; its parameters: {', '.join(sorted(known))}"
            )
        # sklearn's InvalidParameterError is a ValueError: "The 'max_iter' parameter of ...
        # must be an int in the range [1, inf). Got 0 instead."
        cls.model_construct(params=params).estimator()._validate_params()
        return params

    @property
    def features(self) -> list[str]:
        """All input feature columns, in the order the model expects them."""
        return [*self.numerical, *self.categorical]

    @abc.abstractmethod
    def estimator(self) -> BaseEstimator:
        """The final estimator, configured from params."""

    def scaler(self) -> T.Any:
        """How numeric columns are preprocessed; trees need nothing."""
        return "passthrough"

    def build(self) -> pipeline.Pipeline:
        """Build the unfitted sklearn Pipeline(preprocessor, estimator).

        Categorical columns may hold text, numbers (codes) and missing values; run the data
        through `schemas.normalize` first, which turns pd.NA into NaN and text mixed with
        numbers into text, as one-hot encoding needs.

        Raises:
            ValueError: the model has no feature yet (neither numerical nor categorical).
        """
        if not self.numerical and not self.categorical:
            raise ValueError(
                f"{self.KIND} has no feature to build on: name numerical or categorical "
                "columns, or infer them from the data first (components.core.features.infer)"
            )
        transformers = []
        if self.numerical:
            transformers.append(("num", self.scaler(), self.numerical))
        if self.categorical:
            encoder = preprocessing.OneHotEncoder(
                handle_unknown="infrequent_if_exist",
                max_categories=MAX_CATEGORIES,
                sparse_output=False,
            )
            transformers.append(("cat", encoder, self.categorical))
        preprocessor = compose.ColumnTransformer(transformers, verbose_feature_names_out=True)
        return pipeline.Pipeline([("preprocessor", preprocessor), ("estimator", self.estimator())])


class HistGradientBoostingRegressorModel(Model, frozen=True):
    """Gradient-boosted trees for a numeric target (the default)."""

    KIND: T.Literal["HistGradientBoostingRegressor"] = "HistGradientBoostingRegressor"
    TASK: T.ClassVar[Task] = "regression"
    TRUSTED_TYPES: T.ClassVar[tuple[str, ...]] = (HIST_TREES,)
    TREE_ENSEMBLE: T.ClassVar[bool] = True

    def estimator(self) -> BaseEstimator:
        """The regressor, seeded for repeatable fits."""
        return ensemble.HistGradientBoostingRegressor(**{"random_state": 42, **self.params})


class HistGradientBoostingClassifierModel(Model, frozen=True):
    """Gradient-boosted trees for a categorical target (binary or multiclass)."""

    KIND: T.Literal["HistGradientBoostingClassifier"] = "HistGradientBoostingClassifier"
    TASK: T.ClassVar[Task] = "classification"
    TRUSTED_TYPES: T.ClassVar[tuple[str, ...]] = (HIST_TREES,)
    TREE_ENSEMBLE: T.ClassVar[bool] = True

    def estimator(self) -> BaseEstimator:
        """The classifier, seeded for repeatable fits."""
        return ensemble.HistGradientBoostingClassifier(**{"random_state": 42, **self.params})


class RidgeModel(Model, frozen=True):
    """A linear regression with L2 penalty on standardised features."""

    KIND: T.Literal["Ridge"] = "Ridge"
    TASK: T.ClassVar[Task] = "regression"
    # SimpleImputer keeps the dtype it was fitted on.
    TRUSTED_TYPES: T.ClassVar[tuple[str, ...]] = ("numpy.dtype",)

    def scaler(self) -> T.Any:
        """Fill missing numbers with the median, then standardise."""
        return pipeline.make_pipeline(
            impute.SimpleImputer(strategy="median"), preprocessing.StandardScaler()
        )

    def estimator(self) -> BaseEstimator:
        """The ridge regressor."""
        return linear_model.Ridge(**self.params)


class LogisticRegressionModel(RidgeModel, frozen=True):
    """A linear classifier on standardised features."""

    KIND: T.Literal["LogisticRegression"] = "LogisticRegression"  # type: ignore[assignment]
    TASK: T.ClassVar[Task] = "classification"

    def estimator(self) -> BaseEstimator:
        """The logistic regression, with room to converge."""
        return linear_model.LogisticRegression(**{"max_iter": 1000, **self.params})


# The registry of model kinds: a KIND, `{type, config}` or a user's `package.module:Class`.
MODELS = factories.Factory(
    "model",
    Model,
    (
        HistGradientBoostingRegressorModel,
        HistGradientBoostingClassifierModel,
        RidgeModel,
        LogisticRegressionModel,
    ),
)
# A job's model field: a Model, or a config with a KIND built by the registry (a user's class by
# import path included); the task, flavour and trusted types are read from the class.
ModelKind = T.Annotated[pdt.SerializeAsAny[Model], pdt.BeforeValidator(MODELS.coerce)]


def model_task(kind: str) -> Task:
    """The task a model KIND (or a user's `package.module:Class`) serves.

    Returns:
        "regression" or "classification", as the class declares it (`TASK`).

    Raises:
        factories.FactoryError: the kind is unknown or not a Model; the message lists the
            allowed kinds.
    """
    return MODELS.resolve(kind).TASK


def known_kinds() -> list[type[Model]]:
    """Every model kind this process knows: the registered ones, then any other imported.

    A user's kind given by import path is a subclass of Model once its module is imported.
    """
    found: list[type[Model]] = list(MODELS.kinds.values())
    pending = list(Model.__subclasses__())
    while pending:
        kind = pending.pop(0)
        pending.extend(kind.__subclasses__())
        if kind not in found and not inspect.isabstract(kind):
            found.append(kind)
    return found


def tree_estimators() -> tuple[type, ...]:
    """The estimator classes of the known model kinds that declare a tree ensemble."""
    return tuple(
        dict.fromkeys(
            type(kind.model_construct().estimator()) for kind in known_kinds() if kind.TREE_ENSEMBLE
        )
    )


def trusted_types() -> tuple[str, ...]:
    """The types that the registered model kinds declare for skops, each once, in order."""
    return tuple(
        dict.fromkeys(name for kind in MODELS.kinds.values() for name in kind.TRUSTED_TYPES)
    )


def task_of(model: T.Any) -> Task:
    """Whether a fitted model classifies or regresses."""
    return "classification" if is_classifier(model) else "regression"


def probability_column(label: T.Any) -> str:
    """The output column that holds the probability of one class label."""
    return f"{PROBABILITY_PREFIX}{label}"


def predict_frame(model: T.Any, inputs: pd.DataFrame) -> pd.DataFrame:
    """Predict with a fitted sklearn model: `prediction`, plus one probability column per class.

    A classifier's prediction is the original label (not a class index), taken as the most
    probable class so that the model runs once per batch.
    """
    if is_classifier(model) and hasattr(model, "predict_proba"):
        probabilities = model.predict_proba(inputs)
        classes = model.classes_
        frame = pd.DataFrame(
            probabilities, columns=[probability_column(label) for label in classes]
        )
        frame.insert(0, PREDICTION, classes[np.argmax(probabilities, axis=1)])
        return frame
    return pd.DataFrame({PREDICTION: np.asarray(model.predict(inputs))})
