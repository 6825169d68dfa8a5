"""Models: tabular sklearn pipelines that bundle the preprocessing with the estimator.

The kinds cover scikit-learn, XGBoost and LightGBM (regressors and classifiers), and any
estimator with the scikit-learn API named by its import path (`EstimatorModel`); CatBoost's,
where it is installed, are trained as kinds of their own (`CatBoostModel`). Every one is saved
as one sklearn Pipeline in skops format, with the types it holds reviewed per kind.
"""

from __future__ import annotations

import abc
import dataclasses
import difflib
import importlib
import importlib.util
import inspect
import json
import re
import typing as T

import numpy as np
import pandas as pd
import pydantic as pdt
from sklearn import compose, ensemble, impute, linear_model, pipeline, preprocessing
from sklearn.base import BaseEstimator, is_classifier
from sklearn.utils import get_tags

from components.utils import factories

Task = T.Literal["regression", "classification"]

PREDICTION = "prediction"

PROBABILITY_PREFIX = "probability_"
# The fitted trees of sklearn's histogram gradient boosting, which skops does not trust by default.
HIST_TREES = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
# At most this many one-hot columns per categorical feature: the rarest categories share one
# "infrequent" column, so that an identifier-like column cannot blow the memory up.
MAX_CATEGORIES = 100
# The fitted trees of sklearn's forests (random and extra trees).
SKLEARN_TREE = "sklearn.tree._tree.Tree"
# SimpleImputer keeps the dtype it was fitted on.
NUMPY_DTYPE = "numpy.dtype"
# The fitted categories of XGBoost's and LightGBM's categorical columns (plain lists inside).
CATEGORY_CASTER = "components.core.frameworks.CategoryCaster"
# The boosters, which skops stores in their framework's own format (XGBoost's UBJSON buffer,
# LightGBM's model text) through their __getstate__, never as a pickle.
XGB_BOOSTER = "xgboost.core.Booster"
LGBM_BOOSTER = ("collections.OrderedDict", "lightgbm.basic.Booster")
# How XGBoost's and LightGBM's preprocessing names its features (a function skops stores by name).
BOOSTER_NAMES = "components.core.names.booster_feature_name"


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
    - `PANDAS_OUTPUT`: its preprocessor hands the estimator a DataFrame (column dtypes kept,
      `category` included) rather than a numpy array.
    - `FRAMEWORK`: the package its estimator comes from when the project does not install it
      (CatBoost); where every kind is looked at, a kind whose package is missing is skipped.
    """

    KIND: str
    TASK: T.ClassVar[Task]
    FLAVOR: T.ClassVar[str] = "sklearn"
    TRUSTED_TYPES: T.ClassVar[tuple[str, ...]] = ()
    TREE_ENSEMBLE: T.ClassVar[bool] = False
    PANDAS_OUTPUT: T.ClassVar[bool] = False
    FRAMEWORK: T.ClassVar[str | None] = None
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
        return integral_params(cls.model_construct().estimator(), params)

    @pdt.field_validator("params", mode="after")
    @classmethod
    def _accepted_by_the_estimator(cls, params: dict[str, T.Any]) -> dict[str, T.Any]:
        """Refuse what the estimator would refuse at fit time, before any data is read.

        A name it does not take is named with the closest ones it does; a value is checked
        against the estimator's own rules (types, ranges, choices), as its `fit` checks them.

        Raises:
            ValueError: an unknown parameter, or a value the estimator refuses.
        """
        check_params(
            cls.model_construct().estimator(),
            params,
            lambda: cls.model_construct(params=params).estimator(),
        )
        return params

    @property
    def kind_name(self) -> str:
        """The model's kind as a user names it in `model_kind`: its KIND."""
        return self.KIND

    @classmethod
    def installed(cls) -> bool:
        """Whether the kind's estimator can be built here: its `FRAMEWORK` is installed."""
        return cls.FRAMEWORK is None or importlib.util.find_spec(cls.FRAMEWORK) is not None

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

    def encoder(self) -> T.Any:
        """How categorical columns are preprocessed: one-hot (see `categorical` above)."""
        return preprocessing.OneHotEncoder(
            handle_unknown="infrequent_if_exist",
            max_categories=MAX_CATEGORIES,
            sparse_output=False,
        )

    def feature_names_out(self) -> T.Any:
        """How the preprocessing names its features: "num__<column>", "cat__<column>_<value>"."""
        return True

    def skops_trusted(self) -> tuple[str, ...]:
        """The types beyond skops' defaults that a fitted model of this kind may hold."""
        return tuple(self.TRUSTED_TYPES)

    def how_to_trust(self) -> str:
        """What a user does about a type that `skops_trusted` does not list, for messages."""
        return (
            "review them and declare them in the model kind's TRUSTED_TYPES (or the saver's "
            "trusted_types)"
        )

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
            transformers.append(("cat", self.encoder(), self.categorical))
        preprocessor = compose.ColumnTransformer(
            transformers, verbose_feature_names_out=self.feature_names_out()
        )
        if self.PANDAS_OUTPUT:
            preprocessor.set_output(transform="pandas")
        return pipeline.Pipeline([("preprocessor", preprocessor), ("estimator", self.estimator())])


def integral_params(estimator: BaseEstimator, params: dict[str, T.Any]) -> dict[str, T.Any]:
    """The params with their integral floats made ints where the estimator expects an int.

    An integral float becomes an int where the estimator's default is an int or None
    (max_iter, max_depth, random_state); float parameters (max_features=1.0) stay floats.

    Args:
        estimator: the estimator with its default parameters.
        params: the parameters as given.
    """
    defaults = estimator.get_params()

    def integer_expected(name: str) -> bool:
        default = defaults.get(name)
        return default is None or type(default) is int

    return {
        name: int(value)
        if isinstance(value, float) and value.is_integer() and integer_expected(name)
        else value
        for name, value in params.items()
    }


def init_params(estimator: BaseEstimator) -> list[str]:
    """The keyword parameters an estimator's class takes, as its `__init__` names them.

    CatBoost's `get_params` lists only the parameters that were set; its `__init__` names all.
    """
    try:
        signature = inspect.signature(type(estimator).__init__)
    except (TypeError, ValueError):  # a constructor written in C: get_params alone tells
        return []
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [
        name
        for name, parameter in signature.parameters.items()
        if name != "self" and parameter.kind in kinds
    ]


def check_params(
    estimator: BaseEstimator,
    params: T.Mapping[str, T.Any],
    configured: T.Callable[[], BaseEstimator],
) -> None:
    """Refuse the parameters an estimator would refuse at fit time, before any data is read.

    A name it does not take is named with the closest ones it does; a value is checked against
    the estimator's own rules (types, ranges, choices) where it declares them, as sklearn's
    estimators do (XGBoost and LightGBM declare none: they check values as they fit).

    Args:
        estimator: the estimator with its default parameters.
        params: the parameters given.
        configured: builds the estimator with those parameters (called once names are known).

    Raises:
        ValueError: an unknown parameter, or a value the estimator refuses.
    """
    known = {**dict.fromkeys(init_params(estimator)), **estimator.get_params()}
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
    built = configured()
    if hasattr(built, "_parameter_constraints"):
        # sklearn's InvalidParameterError is a ValueError: "The 'max_iter' parameter of ...
        # must be an int in the range [1, inf). Got 0 instead."
        built._validate_params()


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


class RandomForestRegressorModel(Model, frozen=True):
    """scikit-learn's random forest for a numeric target (missing values taken as they are)."""

    KIND: T.Literal["RandomForestRegressor"] = "RandomForestRegressor"
    TASK: T.ClassVar[Task] = "regression"
    TRUSTED_TYPES: T.ClassVar[tuple[str, ...]] = (SKLEARN_TREE,)
    TREE_ENSEMBLE: T.ClassVar[bool] = True

    def estimator(self) -> BaseEstimator:
        """The forest, seeded for repeatable fits."""
        return ensemble.RandomForestRegressor(**{"random_state": 42, **self.params})


class RandomForestClassifierModel(RandomForestRegressorModel, frozen=True):
    """scikit-learn's random forest for a categorical target."""

    KIND: T.Literal["RandomForestClassifier"] = "RandomForestClassifier"  # type: ignore[assignment]
    TASK: T.ClassVar[Task] = "classification"

    def estimator(self) -> BaseEstimator:
        """The forest, seeded for repeatable fits."""
        return ensemble.RandomForestClassifier(**{"random_state": 42, **self.params})


class ExtraTreesRegressorModel(RandomForestRegressorModel, frozen=True):
    """scikit-learn's extremely randomised trees for a numeric target."""

    KIND: T.Literal["ExtraTreesRegressor"] = "ExtraTreesRegressor"  # type: ignore[assignment]

    def estimator(self) -> BaseEstimator:
        """The trees, seeded for repeatable fits."""
        return ensemble.ExtraTreesRegressor(**{"random_state": 42, **self.params})


class ExtraTreesClassifierModel(RandomForestRegressorModel, frozen=True):
    """scikit-learn's extremely randomised trees for a categorical target."""

    KIND: T.Literal["ExtraTreesClassifier"] = "ExtraTreesClassifier"  # type: ignore[assignment]
    TASK: T.ClassVar[Task] = "classification"

    def estimator(self) -> BaseEstimator:
        """The trees, seeded for repeatable fits."""
        return ensemble.ExtraTreesClassifier(**{"random_state": 42, **self.params})


class NativeCategoricalModel(Model, frozen=True):
    """A booster that splits on pandas `category` columns itself (XGBoost, LightGBM).

    Categorical columns are not one-hot encoded: `frameworks.CategoryCaster` casts them to
    `category` with the categories fitted in training (an unseen category is missing), and the
    booster receives a DataFrame. Numeric columns pass as they are: boosters take missing
    values natively.
    """

    TREE_ENSEMBLE: T.ClassVar[bool] = True
    PANDAS_OUTPUT: T.ClassVar[bool] = True

    def encoder(self) -> T.Any:
        """The cast to `category` with the training categories."""
        from components.core import frameworks

        return frameworks.CategoryCaster()

    def feature_names_out(self) -> T.Any:
        """Names that the booster takes whatever the user's columns are called ("area [m2]").

        The booster gets the preprocessed DataFrame, whose column names become its feature
        names; XGBoost and LightGBM refuse some characters in those (`components.core.names`).
        """
        from components.core import names

        return names.booster_feature_name


class XGBRegressorModel(NativeCategoricalModel, frozen=True):
    """XGBoost's gradient-boosted trees for a numeric target (histogram method)."""

    KIND: T.Literal["XGBRegressor"] = "XGBRegressor"
    TASK: T.ClassVar[Task] = "regression"
    TRUSTED_TYPES: T.ClassVar[tuple[str, ...]] = (
        CATEGORY_CASTER,
        BOOSTER_NAMES,
        XGB_BOOSTER,
        "xgboost.sklearn.XGBRegressor",
    )

    def estimator(self) -> BaseEstimator:
        """The regressor, seeded, with native categorical splits."""
        import xgboost

        defaults = {"random_state": 42, "tree_method": "hist", "enable_categorical": True}
        return xgboost.XGBRegressor(**{**defaults, **self.params})


class XGBClassifierModel(NativeCategoricalModel, frozen=True):
    """XGBoost's classifier, on any labels (`frameworks.LabelledXGBClassifier`)."""

    KIND: T.Literal["XGBClassifier"] = "XGBClassifier"
    TASK: T.ClassVar[Task] = "classification"
    TRUSTED_TYPES: T.ClassVar[tuple[str, ...]] = (
        CATEGORY_CASTER,
        BOOSTER_NAMES,
        XGB_BOOSTER,
        "components.core.frameworks.LabelledXGBClassifier",
    )

    def estimator(self) -> BaseEstimator:
        """The classifier, seeded, with native categorical splits; it answers with labels."""
        from components.core import frameworks

        defaults = {"random_state": 42, "tree_method": "hist", "enable_categorical": True}
        return frameworks.LabelledXGBClassifier(**{**defaults, **self.params})


class LGBMRegressorModel(NativeCategoricalModel, frozen=True):
    """LightGBM's gradient-boosted trees for a numeric target."""

    KIND: T.Literal["LGBMRegressor"] = "LGBMRegressor"
    TASK: T.ClassVar[Task] = "regression"
    TRUSTED_TYPES: T.ClassVar[tuple[str, ...]] = (
        CATEGORY_CASTER,
        BOOSTER_NAMES,
        *LGBM_BOOSTER,
        "lightgbm.sklearn.LGBMRegressor",
    )

    def estimator(self) -> BaseEstimator:
        """The regressor, seeded and quiet (LightGBM logs every tree otherwise)."""
        import lightgbm

        return lightgbm.LGBMRegressor(**{"random_state": 42, "verbose": -1, **self.params})


class LGBMClassifierModel(NativeCategoricalModel, frozen=True):
    """LightGBM's classifier (it keeps the original labels itself)."""

    KIND: T.Literal["LGBMClassifier"] = "LGBMClassifier"
    TASK: T.ClassVar[Task] = "classification"
    TRUSTED_TYPES: T.ClassVar[tuple[str, ...]] = (
        CATEGORY_CASTER,
        BOOSTER_NAMES,
        *LGBM_BOOSTER,
        "lightgbm.sklearn.LGBMClassifier",
    )

    def estimator(self) -> BaseEstimator:
        """The classifier, seeded and quiet."""
        import lightgbm

        return lightgbm.LGBMClassifier(**{"random_state": 42, "verbose": -1, **self.params})


# CatBoost's fitted estimators, which skops stores in CatBoost's own binary format (the bytes
# of its __getstate__), never as a pickle; and the cast of its categorical columns to text.
CATBOOST_TEXT = "components.core.catboosts.CategoryText"


class CatBoostModel(Model, frozen=True):
    """CatBoost's gradient-boosted trees, splitting on the categorical columns natively.

    Categorical columns are not one-hot encoded: `catboosts.CategoryText` makes them text (a
    missing value a category of its own) and CatBoost is told which they are (`cat_features`,
    by position). Numbers pass as they are: CatBoost takes missing values. Its training output
    is silenced and it writes no `catboost_info/` folder, unless the params say otherwise
    (`verbose`, `allow_writing_files`). Its explainer is CatBoost's own exact Tree SHAP
    (`explainers.CatBoostExplainer`). catboost is not installed with the project: a user
    installs it (`pip install "catboost>=1.2,<1.3"`) and names it by import path.
    """

    PANDAS_OUTPUT: T.ClassVar[bool] = True
    # Where the estimator comes from: skipped where every kind is looked at when missing.
    FRAMEWORK: T.ClassVar[str | None] = "catboost"

    def encoder(self) -> T.Any:
        """The cast of the categorical columns to text."""
        from components.core import catboosts

        return catboosts.CategoryText()

    def catboost_params(self) -> dict[str, T.Any]:
        """The params with the defaults: seeded, quiet, the categorical columns by position."""
        from components.core import catboosts

        positions = list(range(len(self.numerical), len(self.features)))
        defaults: dict[str, T.Any] = {"random_seed": 42}
        if positions:
            defaults["cat_features"] = positions
        return catboosts.quiet({**defaults, **self.params})


class CatBoostRegressorModel(CatBoostModel, frozen=True):
    """CatBoost's regressor."""

    KIND: T.Literal["CatBoostRegressor"] = "CatBoostRegressor"
    TASK: T.ClassVar[Task] = "regression"
    TRUSTED_TYPES: T.ClassVar[tuple[str, ...]] = (CATBOOST_TEXT, "catboost.core.CatBoostRegressor")

    def estimator(self) -> BaseEstimator:
        """The regressor, seeded and quiet."""
        import catboost

        return catboost.CatBoostRegressor(**self.catboost_params())


class CatBoostClassifierModel(CatBoostModel, frozen=True):
    """CatBoost's classifier, on any labels (text or integers: CatBoost keeps them itself)."""

    KIND: T.Literal["CatBoostClassifier"] = "CatBoostClassifier"
    TASK: T.ClassVar[Task] = "classification"
    TRUSTED_TYPES: T.ClassVar[tuple[str, ...]] = (
        CATBOOST_TEXT,
        "components.core.catboosts.LabelledCatBoostClassifier",
    )

    def estimator(self) -> BaseEstimator:
        """The classifier, seeded and quiet; it answers with one label per row."""
        from components.core import catboosts

        return catboosts.LabelledCatBoostClassifier(**self.catboost_params())


# The kinds whose estimator class an `EstimatorModel` may stand for (the first match wins);
# those with a `FRAMEWORK` are not registered (`MODELS`), and skipped where it is not installed.
TEMPLATE_KINDS: tuple[type[Model], ...] = (
    HistGradientBoostingRegressorModel,
    HistGradientBoostingClassifierModel,
    RidgeModel,
    LogisticRegressionModel,
    RandomForestRegressorModel,
    RandomForestClassifierModel,
    ExtraTreesRegressorModel,
    ExtraTreesClassifierModel,
    XGBRegressorModel,
    XGBClassifierModel,
    LGBMRegressorModel,
    LGBMClassifierModel,
    CatBoostRegressorModel,
    CatBoostClassifierModel,
)


class EstimatorError(factories.FactoryError):
    """An import path that does not name an estimator with the scikit-learn API."""


def estimator_class(path: str) -> type[BaseEstimator]:
    """The estimator class at an import path `package.module:Class`.

    Raises:
        EstimatorError: the path is malformed, its module does not import, or the name is not
            a class with the scikit-learn API (`fit`, `predict`, `get_params`).
    """
    module_name, _, name = path.partition(":")
    if not module_name or not name:
        raise EstimatorError(f"estimator {path!r}: give it as package.module:Class")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise EstimatorError(
            f"estimator {path!r}: cannot import {module_name!r} ({error})"
        ) from None
    found = getattr(module, name, None)
    if not isinstance(found, type) or not all(
        callable(getattr(found, method, None)) for method in ("fit", "predict", "get_params")
    ):
        raise EstimatorError(
            f"{path!r} is not an estimator with the scikit-learn API (a class with fit, "
            "predict and get_params)"
        )
    _refuse_an_unknown_task(path, found)
    return found


# Estimators whose task is set by a parameter (CatBoost's by its loss_function), where
# sklearn's tags give one task for all: their classifier and regressor classes are named.
TASK_BY_PARAMETER = {
    "catboost.core:CatBoost": "catboost:CatBoostRegressor or catboost:CatBoostClassifier",
}


def _refuse_an_unknown_task(path: str, found: type) -> None:
    """Refuse an estimator that neither classifies nor regresses, or whose task is a setting.

    The project trains, scores and promotes a classifier or a regressor; a ranker or a
    clusterer would be scored as a regressor, on metrics that mean nothing for it.
    """
    own = f"{found.__module__}:{found.__qualname__}"
    if own in TASK_BY_PARAMETER:
        raise EstimatorError(
            f"estimator {path!r}: its task depends on its parameters; name "
            f"{TASK_BY_PARAMETER[own]} instead"
        )
    try:
        tags = get_tags(found())
    except Exception:  # an estimator sklearn cannot tag, or one that needs arguments
        return
    if tags.estimator_type not in ("classifier", "regressor"):
        raise EstimatorError(
            f"estimator {path!r} is neither a classifier nor a regressor (scikit-learn "
            f"tags it {tags.estimator_type or 'as neither'}): the project trains one or the other"
        )


def is_estimator_path(value: T.Any) -> bool:
    """Whether a KIND names a class by import path that is an estimator, not a Model."""
    if not isinstance(value, str) or ":" not in value or value in MODELS.kinds:
        return False
    module_name, _, name = value.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), name, None)
    except Exception:  # the Factory says why it does not import
        return False
    return (
        isinstance(found, type)
        and not issubclass(found, pdt.BaseModel)
        and callable(getattr(found, "fit", None))
    )


@dataclasses.dataclass(frozen=True)
class _ParamsOf:
    """An EstimatorModel's params on their way to their check, with the estimator they are for."""

    estimator: type[BaseEstimator]
    params: T.Any


class EstimatorModel(Model, frozen=True):
    """Any estimator with the scikit-learn API, named by its import path.

    `model_kind: "sklearn.ensemble:RandomForestRegressor"` (or `"xgboost:XGBClassifier"`,
    `"catboost:CatBoostRegressor"` where it is installed) means
    `{KIND: EstimatorModel, estimator_class: "sklearn.ensemble:RandomForestRegressor"}`. The
    task is the estimator's own (sklearn's `is_classifier`). An estimator that a kind of
    `TEMPLATE_KINDS` uses is trained as that kind is (its preprocessing, native categoricals,
    label encoding, reviewed types: CatBoost's too, so that no `trusted_types` is needed for
    them); any other gets one-hot categories, and median imputation of
    numbers where the estimator does not take missing values, then standardisation.

    skops loads only the types it is told to trust: those of the kind this one stands for, and
    the ones listed in `trusted_types` (reviewed by the user). Any other type the fitted model
    holds is refused at save time, naming it.

    Args:
        estimator_class: the estimator's import path, `package.module:Class`.
        trusted_types: types of the fitted model that skops may load, reviewed by the user
            (`skops.io.get_untrusted_types` lists them).
    """

    KIND: T.Literal["EstimatorModel"] = "EstimatorModel"
    estimator_class: str
    trusted_types: list[str] = pdt.Field(default_factory=list)

    @pdt.model_validator(mode="before")
    @classmethod
    def _estimator_with_its_params(cls, data: T.Any) -> T.Any:
        """Resolve the estimator first, and hand it to the params' check with the params.

        The params are validated before `estimator_class` (fields go in order, the base's
        first): they travel with their estimator, so that a refused param is the params' error
        (`model.params`), as it is for every other kind.
        """
        if not isinstance(data, T.Mapping) or not isinstance(data.get("estimator_class"), str):
            return data
        found = estimator_class(data["estimator_class"])
        return {**data, "params": _ParamsOf(found, data.get("params", {}))}

    @pdt.field_validator("params", mode="before")
    @classmethod
    def _checked_against_the_estimator(cls, value: T.Any) -> T.Any:
        """The params, with integral floats back to ints, refused as the estimator refuses."""
        if not isinstance(value, _ParamsOf):
            return value
        params = value.params
        if not isinstance(params, dict):
            return params  # the field's own type check says what is wrong
        found = value.estimator
        params = integral_params(found(), params)
        check_params(found(), params, lambda: found(**params))
        return params

    @pdt.field_validator("params", mode="after")
    @classmethod
    def _integers_back(cls, params: dict[str, T.Any]) -> dict[str, T.Any]:
        """Done with the estimator known (`_checked_against_the_estimator`)."""
        return params

    @pdt.field_validator("params", mode="after")
    @classmethod
    def _accepted_by_the_estimator(cls, params: dict[str, T.Any]) -> dict[str, T.Any]:
        """Done with the estimator known (`_checked_against_the_estimator`)."""
        return params

    @property
    def kind_name(self) -> str:
        """The estimator's import path, as given in `model_kind`: a KIND of its own."""
        return self.estimator_class

    @property
    def TASK(self) -> Task:  # type: ignore[override]  # noqa: N802 - as every kind's TASK
        """What the estimator predicts, as sklearn tells it."""
        return task_of(estimator_class(self.estimator_class)())

    def template(self) -> Model | None:
        """The registered kind that trains this estimator class, on this model's fields."""
        wanted = estimator_class(self.estimator_class)
        for kind in TEMPLATE_KINDS:
            if not kind.installed():
                continue
            built = type(kind.model_construct().estimator())
            # LabelledXGBClassifier stands for XGBClassifier, which it subclasses.
            if wanted is built or wanted in built.__bases__:
                fields = ("numerical", "categorical", "params")
                return kind.model_validate({name: getattr(self, name) for name in fields})
        return None

    def estimator(self) -> BaseEstimator:
        """The estimator, seeded where it takes a `random_state`."""
        template = self.template()
        if template is not None:
            return template.estimator()
        found = estimator_class(self.estimator_class)
        seeded = {"random_state": 42} if "random_state" in found().get_params() else {}
        return found(**{**seeded, **self.params})

    def _imputes(self) -> bool:
        """Whether numbers are imputed first: the estimator does not take missing values."""
        try:
            return not get_tags(estimator_class(self.estimator_class)()).input_tags.allow_nan
        except Exception:  # an estimator without sklearn's tags: impute, to be safe
            return True

    def scaler(self) -> T.Any:
        """Median imputation where needed, then standardisation."""
        scale = preprocessing.StandardScaler()
        if self._imputes():
            return pipeline.make_pipeline(impute.SimpleImputer(strategy="median"), scale)
        return scale

    def build(self) -> pipeline.Pipeline:
        """The template kind's pipeline, or the generic one (see the class docstring)."""
        template = self.template()
        return template.build() if template is not None else super().build()

    def skops_trusted(self) -> tuple[str, ...]:
        """The template kind's reviewed types, the imputer's, and the user's `trusted_types`."""
        template = self.template()
        if template is not None:
            own = template.skops_trusted()
        else:
            own = (NUMPY_DTYPE,) if self._imputes() else ()
        return tuple(dict.fromkeys([*own, *self.trusted_types]))

    def how_to_trust(self) -> str:
        """Name the field that lists them."""
        return (
            "review them, and list the ones to trust in the training's trusted_types parameter "
            "(--param 'trusted_types=[...]') or the model's trusted_types: "
            f'{{"KIND": "EstimatorModel", "estimator_class": "{self.estimator_class}", '
            '"trusted_types": [...]}, or declare them in the TRUSTED_TYPES of a Model subclass '
            "of your own, named by model_kind as package.module:Class"
        )


class ModelFactory(factories.Factory[Model]):
    """The model registry: a Factory that also takes an estimator's import path as a KIND.

    A KIND that is the import path of an estimator class with the scikit-learn API (not a
    Model) means an `EstimatorModel` of that estimator; the registry stays generic otherwise.
    """

    def allowed(self) -> str:
        """What a KIND may be, for messages, estimator import paths included."""
        return f"{super().allowed()}, or of an estimator class ({ESTIMATOR_PATHS})"

    @property
    def names(self) -> tuple[str, ...]:
        """The kinds that a KIND alone builds: `EstimatorModel` needs its estimator's path."""
        return tuple(name for name, kind in self.kinds.items() if kind is not EstimatorModel)

    def listing(self) -> str:
        """The kinds for a help text (`names`), estimator import paths included."""
        names = [repr(name) for name in self.names]
        return (
            f"{', '.join(names[:-1])} or {names[-1]}, or the import path package.module:Class "
            f"of a subclass of {factories.qualified(self.base)}, or of an estimator class "
            f"({ESTIMATOR_PATHS})"
        )

    def coerce(self, value: T.Any) -> T.Any:
        """An estimator's import path as an EstimatorModel config; anything else as usual."""
        spec: T.Any = {"KIND": value} if isinstance(value, str) else value
        if not isinstance(spec, T.Mapping):
            return value
        spec = dict(spec)
        if "KIND" not in spec and "type" in spec and set(spec) <= set(factories.SPEC_KEYS):
            spec = self._flatten(spec)
        if is_estimator_path(spec.get("KIND")):
            spec = {**spec, "KIND": "EstimatorModel", "estimator_class": spec["KIND"]}
        return super().coerce(spec)


# How an estimator is named by import path, for help texts and messages.
ESTIMATOR_PATHS = (
    "any estimator with the scikit-learn API by its import path, e.g. "
    "'sklearn.ensemble:RandomForestRegressor', 'xgboost:XGBClassifier' or "
    "'catboost:CatBoostRegressor' where it is installed"
)
# The registry of model kinds: a KIND, `{type, config}`, a user's `package.module:Class`, or an
# estimator's import path (an EstimatorModel).
# The kinds of a framework the project does not install (CatBoost) are reached by their
# estimator's path only: a KIND alone must not promise what may not import.
MODELS = ModelFactory(
    "model",
    Model,
    (*(kind for kind in TEMPLATE_KINDS if kind.FRAMEWORK is None), EstimatorModel),
)
# A job's model field: a Model, or a config with a KIND built by the registry (a user's class by
# import path included); the task, flavour and trusted types are read from the class.
ModelKind = T.Annotated[pdt.SerializeAsAny[Model], pdt.BeforeValidator(MODELS.coerce)]


def model_task(kind: str) -> Task:
    """The task a model KIND (a user's `package.module:Class`, an estimator's path) serves.

    Returns:
        "regression" or "classification", as the class declares it (`TASK`), or as the
        estimator says (sklearn's `is_classifier`).

    Raises:
        factories.FactoryError: the kind is unknown, not a Model nor an estimator, or is
            `EstimatorModel` without its estimator; the message lists the allowed kinds.
    """
    if is_estimator_path(kind):
        return task_of(estimator_class(kind)())
    found = MODELS.resolve(kind)
    if found is EstimatorModel:
        raise factories.FactoryError(
            "an EstimatorModel's task is its estimator's: name the estimator by import path "
            f"instead; {MODELS.allowed()}"
        )
    return found.TASK


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
            type(kind.model_construct().estimator())
            for kind in known_kinds()
            if kind.TREE_ENSEMBLE and kind.installed()
        )
    )


def trusted_types() -> tuple[str, ...]:
    """The types that the registered model kinds declare for skops, each once, in order."""
    return tuple(
        dict.fromkeys(name for kind in MODELS.kinds.values() for name in kind.TRUSTED_TYPES)
    )  # EstimatorModel declares none: an instance derives its own (`skops_trusted`)


class FitError(ValueError):
    """The estimator refused to fit the training rows.

    The message names the kind, its parameters and the framework's own reason (a Poisson
    objective given negative targets).
    """


# The errors a framework raises when it refuses the rows or its parameters as it fits, by name:
# importing each framework to catch its error would load them all for every kind.
FIT_REFUSALS = ("XGBoostError", "LightGBMError", "CatBoostError")
# What a framework's C++ message carries beside its reason: XGBoost's time and source line in
# front and its stack trace after; LightGBM's source line after a failed check.
_SOURCE_PREFIX = re.compile(r"^\[\d\d:\d\d:\d\d\] [^:\s]+:\d+: ")
_SOURCE_SUFFIX = re.compile(r" at \S+, line \d+ ?\.?$")


def fit_refusal(model: Model, error: Exception) -> FitError | None:
    """The user's error for an estimator that refused to fit, or None for any other failure.

    Args:
        model: the model kind that was fitted.
        error: what its fit raised: scikit-learn's ValueError, or a framework's own error.
    """
    if not (isinstance(error, ValueError) or type(error).__name__ in FIT_REFUSALS):
        return None
    reason = str(error).split("Stack trace:", 1)[0]
    reason = " ".join(_SOURCE_SUFFIX.sub("", _SOURCE_PREFIX.sub("", reason.strip())).split())
    reason = reason.rstrip(" .")
    given = f" with model_params {json.dumps(model.params, default=str)}" if model.params else ""
    return FitError(
        f"{model.kind_name}{given} cannot be fitted on the training rows: "
        f"{type(error).__name__}: {reason or 'no reason given'}; change model_params or "
        "model_kind, or the rows it is fitted on"
    )


def task_of(model: T.Any) -> Task:
    """Whether a fitted model classifies or regresses."""
    return "classification" if is_classifier(model) else "regression"


def check_passthrough(columns: list[str]) -> list[str]:
    """Input columns to copy beside the predictions, refused when the output cannot hold them.

    Raises:
        ValueError: a column is listed twice, or is named as an output column would be.
    """
    repeated = sorted({column for column in columns if columns.count(column) > 1})
    if repeated:
        raise ValueError(f"passthrough lists {', '.join(map(repr, repeated))} more than once")
    clashing = [
        column
        for column in columns
        if column == PREDICTION or column.startswith(PROBABILITY_PREFIX)
    ]
    if clashing:
        raise ValueError(
            f"passthrough column(s) {', '.join(map(repr, clashing))} would clash with the"
            f" output's own columns ({PREDICTION!r}, {PROBABILITY_PREFIX}<class>): rename them"
            " in the data, or leave them out of passthrough"
        )
    return columns


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
