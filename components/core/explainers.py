"""Explainers: SHAP values per sample and feature, chosen by the kind of the final estimator.

Which explainer a model gets (`EXPLAINERS`, tried in order, when none is named):

- XGBoost (`XGBModel` or `Booster`): XGBoost's own exact Tree SHAP (`pred_contribs=True`), on
  the CUDA device when one can be used (`utils.devices.xgboost_device`), else on the CPU cores;
- LightGBM (`LGBMModel` or `Booster`): LightGBM's own exact Tree SHAP (`pred_contrib=True`);
- CatBoost (any `CatBoost` model): CatBoost's own exact Tree SHAP
  (`get_feature_importance(type="ShapValues")`);
- scikit-learn's trees (and the model kinds that declare a tree ensemble): shap's exact
  path-dependent Tree SHAP;
- linear models: Linear SHAP against the background's means;
- anything else, a model loaded through pyfunc only included: model-agnostic permutation SHAP
  with a bounded budget (`PermutationExplainer`). No model is refused an explanation.

Each of them explains the final estimator of a scikit-learn Pipeline on the features its
preprocessing makes (one-hot columns one by one); `Explanations.grouped` then sums the values of
the features that come from one of the user's columns (a one-hot categorical is one feature
again, named as the user named it, without `num__`/`cat__`).

What the values add up to (base value + the sum of a sample's values, per output):

- the tree and linear explainers: the model's raw output: a regressor's prediction (through
  its link where it has one: the log of a Poisson, gamma or Tweedie regressor's prediction,
  labelled `log(prediction)`, the logit of a logistic regressor's, `output_link`); a
  classifier's margin per class, i.e. log-odds (`decision_function`, XGBoost's
  `output_margin=True`, LightGBM's `raw_score=True`, CatBoost's `RawFormulaVal`); a binary
  classifier has one margin, of its second (positive) class; a classifier without margins (a
  random forest, which averages its trees' class frequencies) its probabilities;
- the permutation explainer: what the model predicts: `predict_proba` (one probability per
  class) for a classifier with probabilities, else `predict` (a pyfunc model's numeric columns;
  labels alone as one 0/1 indicator per label).

Tolerance: exact Tree SHAP adds up to 1e-6 relative in float64 (shap, LightGBM); XGBoost
computes in float32, so its values add up to 1e-4 relative of the largest raw output (the
documented tolerance for every explainer), as do permutation values, exactly additive by
construction.
"""

from __future__ import annotations

import abc
import dataclasses
import itertools
import json
import logging
import multiprocessing
import sys
import typing as T

import numpy as np
import pandas as pd
import pydantic as pdt
from scipy import sparse, special
from sklearn import ensemble, tree
from sklearn.base import is_classifier
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline

from components.core import categories, models, names
from components.utils import cpus, devices, factories

if T.TYPE_CHECKING:  # shap (and numba under it) loads where an explanation is computed,
    import shap  # not where jobs are only built (the pre-run check)

logger = logging.getLogger(__name__)

# The relative gap (to the largest raw output) within which every explainer's values add up.
ADDITIVITY_TOLERANCE = 1e-4

# sklearn's tree estimators that Tree SHAP explains exactly, whoever trained them (a model
# registered elsewhere too); a model kind of the project says so itself (`Model.TREE_ENSEMBLE`).
SKLEARN_TREES = (
    ensemble.HistGradientBoostingRegressor,
    ensemble.HistGradientBoostingClassifier,
    ensemble.RandomForestRegressor,
    ensemble.RandomForestClassifier,
    ensemble.ExtraTreesRegressor,
    ensemble.ExtraTreesClassifier,
    ensemble.GradientBoostingRegressor,
    tree.DecisionTreeRegressor,
    tree.DecisionTreeClassifier,
)


@dataclasses.dataclass(frozen=True)
class Explanations:
    """SHAP values of a batch of samples.

    Attributes:
        values: shape (samples, features, outputs).
        base_values: shape (samples, outputs); base + sum of a row's values = the explained
            output (see the module's docstring).
        features: the names of the explained features (after preprocessing for the tree and
            linear explainers, so one-hot columns are explained one by one).
        outputs: what each output is: "prediction" for a regressor, the class label whose
            margin (or probability, for permutation SHAP) is explained for a classifier.
        columns: the user's input column each feature comes from, in the order of `features`;
            None when the features are the user's columns already.
    """

    values: np.ndarray
    base_values: np.ndarray
    features: list[str]
    outputs: list[str]
    columns: list[str] | None = None

    def grouped(self, order: T.Sequence[str] = ()) -> Explanations:
        """The values summed per user column: one feature per column the model reads.

        SHAP values are additive, so the sum over a column's one-hot features is that
        column's contribution, and the total (the explained output) does not change.

        Args:
            order: the user's columns in their order (the input's); the grouped features
                follow it, those it does not name last, in the order they come.
        """
        sources = self.columns if self.columns is not None else self.features
        position = {name: i for i, name in enumerate(order)}
        names = sorted(dict.fromkeys(sources), key=lambda name: position.get(name, len(position)))
        if names == self.features:
            return dataclasses.replace(self, columns=None)
        membership = np.zeros((len(sources), len(names)))
        membership[np.arange(len(sources)), [names.index(c) for c in sources]] = 1.0
        values = np.einsum("nfk,fg->ngk", self.values, membership)
        return Explanations(values, self.base_values, names, self.outputs)

    def frame(self, prefix: str = "shap_") -> pd.DataFrame:
        """One row per sample and output: `output`, `base_value`, then one column per feature."""
        samples, n_features, n_outputs = self.values.shape
        flat = self.values.transpose(0, 2, 1).reshape(samples * n_outputs, n_features)
        frame = pd.DataFrame(flat, columns=[prefix + name for name in self.features])
        frame.insert(0, "base_value", self.base_values.reshape(-1))
        frame.insert(0, "output", np.tile(np.asarray(self.outputs, dtype=object), samples))
        return frame

    def totals(self) -> np.ndarray:
        """The explained output of each sample, as (samples, outputs): base + the values' sum."""
        return self.base_values + self.values.sum(axis=1)


def _shaped(values: T.Any, base_values: T.Any, samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Bring SHAP's 2-D or 3-D values and scalar or vector base values to (n, f, k) and (n, k)."""
    values = np.asarray(values, dtype=float)
    if values.ndim == 2:
        values = values[:, :, None]
    base = np.asarray(base_values, dtype=float)
    base = np.broadcast_to(
        base.reshape(-1, values.shape[2]) if base.ndim else base, (samples, values.shape[2])
    )
    return values, np.array(base)


def _contributions(
    contributions: np.ndarray, samples: int, outputs: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """A framework's contributions with the bias last, as SHAP values.

    Args:
        contributions: (n, k, f+1) (XGBoost's multiclass), or (n, k * (f+1)) with the k
            outputs' blocks side by side (LightGBM's; k = 1 is a single output's).
        samples: n.
        outputs: k, for the flat layout.

    Returns:
        (n, f, k) values and (n, k) base values (the bias column).
    """
    contributions = np.asarray(contributions, dtype=float)
    if contributions.ndim == 2:
        contributions = contributions.reshape(samples, outputs, -1)
    return contributions[:, :, :-1].transpose(0, 2, 1).copy(), contributions[:, :, -1].copy()


def split(model: T.Any) -> tuple[T.Any | None, T.Any]:
    """The preprocessing (None when there is none) and the final estimator of a model.

    A scikit-learn Pipeline is its steps but the last, then the last; anything else (a bare
    estimator, a framework's booster, a pyfunc model) is an estimator without preprocessing.
    """
    if isinstance(model, Pipeline):
        return (model[:-1] if len(model) > 1 else None), model[-1]
    return None, model


def estimator_of(model: T.Any) -> T.Any:
    """The final estimator of a model (the model itself when it is no Pipeline)."""
    return split(model)[1]


def _dense(features: T.Any) -> T.Any:
    """A preprocessor's output as a dense array or DataFrame (one-hot output may be sparse)."""
    return features.toarray() if sparse.issparse(features) else features


def transformed(model: T.Any, inputs: pd.DataFrame) -> T.Any:
    """The features the final estimator sees: the preprocessing's output, or the inputs."""
    preprocessor, _ = split(model)
    return inputs if preprocessor is None else preprocessor.transform(inputs)


def _transformer_names(preprocessor: T.Any) -> list[str]:
    """The names of the ColumnTransformers' transformers in a preprocessor (their prefixes)."""
    if isinstance(preprocessor, ColumnTransformer):
        names = [name for name, _, _ in preprocessor.transformers_]
        return names + [n for _, t, _ in preprocessor.transformers_ for n in _transformer_names(t)]
    if isinstance(preprocessor, Pipeline):
        return [name for _, step in preprocessor.steps for name in _transformer_names(step)]
    return []


def source_columns(features: list[str], columns: list[str], preprocessor: T.Any) -> list[str]:
    """The user's input column each preprocessed feature comes from.

    The feature's name without the prefix a ColumnTransformer adds ("num__", "cat__", ...) is
    either a column's name (scaled, imputed, passed through; as a booster takes it, see
    `components.core.names`), the name of a column followed
    by "_" and a category (one-hot), or ends with "_" and a column's name (a missing-value
    indicator); the longest such column wins. A feature that names no column (a polynomial
    product of two, say) keeps its own name, without the prefix.

    Args:
        features: the preprocessed features' names.
        columns: the model's input columns.
        preprocessor: the fitted preprocessing (its transformers' names are the prefixes).
    """
    prefixes = sorted({f"{name}__" for name in _transformer_names(preprocessor)}, key=len)
    longest_first = sorted(columns, key=len, reverse=True)
    # A booster's features are named as it takes them ("area ［m2］" for "area [m2]").
    known = {names.booster_name(column): column for column in columns}
    known.update({column: column for column in columns})
    sources = []
    for feature in features:
        bare = feature
        for prefix in reversed(prefixes):  # the longest prefix that the name starts with
            if bare.startswith(prefix) and bare != prefix:
                bare = bare.removeprefix(prefix)
                break
        if bare in known:
            sources.append(known[bare])
            continue
        one_hot = next((c for c in longest_first if bare.startswith(f"{c}_")), None)
        # An indicator of a column's missing values is named "missingindicator_<column>".
        indicator = next((c for c in longest_first if bare.endswith(f"_{c}")), None)
        sources.append(one_hot or indicator or bare)
    return sources


def feature_names(model: T.Any, inputs: pd.DataFrame, n_features: int) -> list[str]:
    """The names of the features the final estimator sees.

    The preprocessing's `get_feature_names_out`; without preprocessing the input columns; the
    estimator's own names (a booster's) when neither fits; else f0, f1, ...
    """
    preprocessor, estimator = split(model)
    if preprocessor is None:
        if len(inputs.columns) == n_features:
            return [str(column) for column in inputs.columns]
    else:
        try:
            names = [str(name) for name in preprocessor.get_feature_names_out()]
        except (AttributeError, ValueError, TypeError):  # a step that cannot name its output
            names = []
        if len(names) == n_features:
            return names
    own = getattr(estimator, "feature_names_in_", None)
    if own is not None and len(own) == n_features:
        return [str(name) for name in own]
    return [f"f{i}" for i in range(n_features)]


def with_sources(explained: Explanations, model: T.Any, inputs: pd.DataFrame) -> Explanations:
    """The explanations with the user's column of each feature, for `Explanations.grouped`."""
    preprocessor, _ = split(model)
    columns = [str(column) for column in inputs.columns]
    if preprocessor is None:
        return explained
    sources = source_columns(explained.features, columns, preprocessor)
    return dataclasses.replace(explained, columns=sources)


def _module_loaded(name: str) -> T.Any | None:
    """A framework's module when something imported it already (a model of it is loaded)."""
    return sys.modules.get(name)


def _is_xgboost(estimator: T.Any) -> bool:
    """Whether an estimator is XGBoost's, without importing XGBoost for the others."""
    xgboost = _module_loaded("xgboost")
    return xgboost is not None and isinstance(estimator, (xgboost.XGBModel, xgboost.Booster))


def _is_lightgbm(estimator: T.Any) -> bool:
    """Whether an estimator is LightGBM's, without importing LightGBM for the others."""
    lightgbm = _module_loaded("lightgbm")
    return lightgbm is not None and isinstance(estimator, (lightgbm.LGBMModel, lightgbm.Booster))


def _is_catboost(estimator: T.Any) -> bool:
    """Whether an estimator is CatBoost's, without importing CatBoost for the others."""
    catboost = _module_loaded("catboost")
    return catboost is not None and isinstance(estimator, catboost.CatBoost)


# The objectives whose raw output is the log of the prediction (Poisson, gamma, Tweedie, Cox),
# or its logit (a regressor of values in [0, 1], a booster's binary log loss), per framework.
# scikit-learn's estimators say it themselves (their loss's link).
LOG_OBJECTIVES = {
    "xgboost": {"count:poisson", "reg:gamma", "reg:tweedie", "survival:cox", "survival:aft"},
    "lightgbm": {"poisson", "gamma", "tweedie"},
    "catboost": {"Poisson", "Tweedie"},
}
LOGIT_OBJECTIVES = {
    "xgboost": {"reg:logistic"},
    "lightgbm": {"cross_entropy", "xentropy"},
    "catboost": {"Logloss", "CrossEntropy"},
}
# Each link: the raw output from the prediction, and the prediction back from the raw output.
LINKS: dict[
    str, tuple[T.Callable[[np.ndarray], np.ndarray], T.Callable[[np.ndarray], np.ndarray]]
] = {
    "log": (np.log, np.exp),
    "logit": (special.logit, special.expit),
}


def output_link(estimator: T.Any) -> str | None:
    """The link from a single-output model's prediction to the raw output its values add up to.

    "log" for a Poisson, gamma or Tweedie regressor (its trees or coefficients add up to the
    log of what it predicts), "logit" for a logistic one; None for the identity, and for a
    classifier, whose margins are labelled by class.
    """
    if _classifies(estimator):
        return None
    objective = _objective(estimator)
    if objective is not None:
        framework, name = objective
        if name in LOG_OBJECTIVES[framework]:
            return "log"
        return "logit" if name in LOGIT_OBJECTIVES[framework] else None
    # scikit-learn's gradient boosting and generalized linear models: their loss's link.
    loss = getattr(estimator, "_loss", None) or getattr(estimator, "_base_loss", None)
    link = type(getattr(loss, "link", None)).__name__
    return {"LogLink": "log", "LogitLink": "logit"}.get(link)


def _classifies(estimator: T.Any) -> bool:
    """Whether scikit-learn tags the estimator a classifier (a bare booster has no tags)."""
    try:
        return bool(is_classifier(estimator))
    except AttributeError:  # no __sklearn_tags__: no scikit-learn estimator
        return False


def prediction_of(output: str, raw: float) -> float | None:
    """The prediction whose raw output (base value + values) this is; None for a class margin.

    Args:
        output: the output's label: "prediction", "log(prediction)", ... or a class.
        raw: the raw output.
    """
    if output == models.PREDICTION:
        return raw
    link, _, rest = output.partition("(")
    if rest != f"{models.PREDICTION})" or link not in LINKS:
        return None
    return float(LINKS[link][1](np.asarray(raw, dtype=float)))


def _binary_booster(estimator: T.Any) -> bool:
    """Whether a bare booster (no classes) classifies two classes: one margin, of class 1."""
    objective = _objective(estimator)
    if objective is None or _classifies(estimator):
        return False
    framework, name = objective
    return (framework, name.split(":")[0]) in {("xgboost", "binary"), ("lightgbm", "binary")}


def _objective(estimator: T.Any) -> tuple[str, str] | None:
    """A booster's framework and objective name (None: not a booster, or none can be read)."""
    try:
        if _is_xgboost(estimator):
            config = json.loads(xgboost_booster(estimator).save_config())
            return "xgboost", str(config["learner"]["objective"]["name"])
        if _is_lightgbm(estimator):
            params = lightgbm_booster(estimator).params or {}
            return "lightgbm", str(params.get("objective", "regression")).split()[0]
        if _is_catboost(estimator):
            return "catboost", str(estimator.get_all_params()["loss_function"]).split(":")[0]
    except (AttributeError, KeyError, ValueError, TypeError):  # unfitted, or an older format
        return None
    return None


def raw_output_labels(estimator: T.Any, n_outputs: int) -> list[str]:
    """Label each raw output: the class whose margin it is, or "prediction".

    A regressor whose raw output is its prediction through a link is labelled with it:
    "log(prediction)" for a Poisson regressor (`output_link`).
    """
    classes = getattr(estimator, "classes_", None)
    if classes is None or not is_classifier(estimator):
        if n_outputs == 1 and _binary_booster(estimator):
            return ["1"]  # the margin of class index 1, which a label mapping names
        if n_outputs == 1:
            link = output_link(estimator)
            return [f"{link}({models.PREDICTION})" if link else models.PREDICTION]
        # A booster (no classes): its outputs are the class indices' margins.
        return [str(index) for index in range(n_outputs)]
    labels = [str(label) for label in classes]
    # A binary classifier has one margin: the log-odds of its second (positive) class.
    return labels[1:] if n_outputs == 1 and len(labels) == 2 else labels


class Explainer(abc.ABC, pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """Compute SHAP values for a fitted model.

    The model is a Pipeline(preprocessor, estimator), a bare estimator, a framework's booster
    or a pyfunc model.
    The registry (`EXPLAINERS`) chooses one for a model when none is named: the first kind whose
    `chosen_for` says so, else permutation SHAP, which explains any model.
    """

    KIND: str

    @classmethod
    def chosen_for(cls, estimator: T.Any) -> bool:
        """Whether this explainer is the one for the final estimator when none is named.

        Args:
            estimator: the fitted final estimator of the model.

        Returns:
            False unless a kind says otherwise: such an explainer is used when named only.
        """
        return False

    @abc.abstractmethod
    def explain(self, model: T.Any, inputs: pd.DataFrame, background: pd.DataFrame) -> Explanations:
        """Explain the model's output for each input row (see the module for which output).

        Args:
            model: the fitted model.
            inputs: the rows to explain (model input columns).
            background: a bounded sample of rows that stands for "typical" inputs.
        """

    def raw_output(self, model: T.Any, inputs: pd.DataFrame) -> np.ndarray:
        """What this explainer's values add up to, as (samples, outputs).

        By default what the model predicts: its probabilities when it has them, else its
        predictions (a pyfunc model's numeric columns, or one 0/1 indicator per label).
        """
        values, _ = _as_outputs(_predicted(model, inputs), None)
        return values


# %% XGBOOST AND LIGHTGBM: THE FRAMEWORKS' OWN EXACT TREE SHAP


def xgboost_booster(estimator: T.Any) -> T.Any:
    """The Booster of an XGBoost model (itself when it is one)."""
    return estimator.get_booster() if hasattr(estimator, "get_booster") else estimator


def _xgboost_iterations(booster: T.Any) -> tuple[int, int]:
    """The trees that predict: up to the best iteration when training stopped early, else all."""
    try:
        return 0, int(booster.best_iteration) + 1
    except AttributeError:  # no early stopping: every tree
        return 0, 0


def xgboost_matrix(booster: T.Any, features: T.Any) -> T.Any:
    """A DMatrix of the features as the booster was trained on them.

    A DataFrame's columns that the booster declares categorical are cast to the categories
    it was trained on, as the predictor casts them (`categories.as_categories`); an array gets
    the booster's feature names and types (a Pipeline's preprocessing outputs no names).
    """
    import xgboost

    # A sparse matrix stays sparse: XGBoost reads its absent entries as missing values, as
    # the model's own predict does (densified, they would be zeros).
    names, types = booster.feature_names, booster.feature_types
    if isinstance(features, pd.DataFrame):
        try:
            trained = categories.xgboost_categories(booster)
        except categories.CategoriesError:
            if not _cast_already(booster, features):
                raise
            trained = {}
        return xgboost.DMatrix(categories.as_categories(features, trained), enable_categorical=True)
    features = features if sparse.issparse(features) else np.asarray(features)
    return xgboost.DMatrix(
        features, feature_names=names, feature_types=types, enable_categorical=True
    )


def _cast_already(booster: T.Any, features: pd.DataFrame) -> bool:
    """Whether every categorical feature arrives as `category`, cast by the model itself.

    The project's XGBoost models cast their columns in the model (`frameworks.CategoryCaster`),
    to the categories kept beside the booster: where XGBoost stored its own copy damaged
    (`categories.xgboost_categories`), the cast columns are explained as they are predicted.
    """
    names, types = booster.feature_names or [], booster.feature_types or []
    categorical = [name for name, kind in zip(names, types, strict=False) if kind == "c"]
    return bool(categorical) and all(
        name in features.columns and isinstance(features[name].dtype, pd.CategoricalDtype)
        for name in categorical
    )


class XGBoostExplainer(Explainer, frozen=True):
    """XGBoost's own exact Tree SHAP (`Booster.predict(..., pred_contribs=True)`).

    On a CUDA device when `utils.devices.xgboost_device()` says one can be used, else on the
    CPU cores (multi-threaded); both compute in float32, so their values agree to float32
    rounding, well within `ADDITIVITY_TOLERANCE`. The values add up to the margin
    (`output_margin=True`): per class for a multiclass model, one for a binary one, the
    prediction for a regressor.
    """

    KIND: T.Literal["XGBoostExplainer"] = "XGBoostExplainer"

    @classmethod
    def chosen_for(cls, estimator: T.Any) -> bool:
        """XGBoost's models, scikit-learn API or Booster."""
        return _is_xgboost(estimator)

    def explain(self, model: T.Any, inputs: pd.DataFrame, background: pd.DataFrame) -> Explanations:
        """Exact Tree SHAP of the preprocessed features, on the device XGBoost may use."""
        _, estimator = split(model)
        booster = xgboost_booster(estimator)
        device = devices.xgboost_device()
        booster.set_param({"device": device})
        logger.info("XGBoost computes SHAP values on %s", device)
        matrix = xgboost_matrix(booster, transformed(model, inputs))
        contributions = booster.predict(
            matrix, pred_contribs=True, iteration_range=_xgboost_iterations(booster)
        )
        values, base = _contributions(contributions, len(inputs))
        names = feature_names(model, inputs, values.shape[1])
        explained = Explanations(values, base, names, raw_output_labels(estimator, base.shape[1]))
        return with_sources(explained, model, inputs)

    def raw_output(self, model: T.Any, inputs: pd.DataFrame) -> np.ndarray:
        """The margins these values add up to, as (samples, outputs)."""
        booster = xgboost_booster(estimator_of(model))
        margin = booster.predict(
            xgboost_matrix(booster, transformed(model, inputs)),
            output_margin=True,
            iteration_range=_xgboost_iterations(booster),
        )
        return np.asarray(margin, dtype=float).reshape(len(inputs), -1)


def lightgbm_booster(estimator: T.Any) -> T.Any:
    """The Booster of a LightGBM model (itself when it is one)."""
    return estimator.booster_ if hasattr(estimator, "booster_") else estimator


def lightgbm_frame(booster: T.Any, features: T.Any) -> T.Any:
    """The features as LightGBM was trained on them: in its order, its categoricals cast back.

    The same columns read from Parquet or CSV are text, which LightGBM refuses: they get the
    categories it was trained on, as the predictor gives them (`categories.as_categories`).
    """
    features = _dense(features)
    if not isinstance(features, pd.DataFrame):
        return features
    features = categories.in_booster_order(features, booster.feature_name())
    return categories.as_categories(features, categories.lightgbm_categories(booster))


class LightGBMExplainer(Explainer, frozen=True):
    """LightGBM's own exact Tree SHAP (`Booster.predict(..., pred_contrib=True)`).

    The values add up to the raw score (`raw_score=True`): per class for a multiclass model,
    one for a binary one, the prediction for a regressor.
    """

    KIND: T.Literal["LightGBMExplainer"] = "LightGBMExplainer"

    @classmethod
    def chosen_for(cls, estimator: T.Any) -> bool:
        """LightGBM's models, scikit-learn API or Booster."""
        return _is_lightgbm(estimator)

    def explain(self, model: T.Any, inputs: pd.DataFrame, background: pd.DataFrame) -> Explanations:
        """Exact Tree SHAP of the preprocessed features."""
        _, estimator = split(model)
        booster = lightgbm_booster(estimator)
        features = lightgbm_frame(booster, transformed(model, inputs))
        contributions = booster.predict(features, pred_contrib=True)
        outputs = booster.num_model_per_iteration()
        values, base = _contributions(_dense(contributions), len(inputs), outputs)
        names = feature_names(model, inputs, values.shape[1])
        explained = Explanations(values, base, names, raw_output_labels(estimator, base.shape[1]))
        return with_sources(explained, model, inputs)

    def raw_output(self, model: T.Any, inputs: pd.DataFrame) -> np.ndarray:
        """The raw scores these values add up to, as (samples, outputs)."""
        booster = lightgbm_booster(estimator_of(model))
        score = booster.predict(lightgbm_frame(booster, transformed(model, inputs)), raw_score=True)
        return np.asarray(score, dtype=float).reshape(len(inputs), -1)


class CatBoostExplainer(Explainer, frozen=True):
    """CatBoost's own exact Tree SHAP (`get_feature_importance(type="ShapValues")`).

    The values add up to the raw formula value (`prediction_type="RawFormulaVal"`): per class
    for a multiclass model, the log-odds of the second class for a binary one, the prediction
    for a regressor (with the RMSE loss; the loss's raw scale for others).
    """

    KIND: T.Literal["CatBoostExplainer"] = "CatBoostExplainer"

    @classmethod
    def chosen_for(cls, estimator: T.Any) -> bool:
        """CatBoost's models, whatever their class (regressor, classifier, bare CatBoost)."""
        return _is_catboost(estimator)

    def explain(self, model: T.Any, inputs: pd.DataFrame, background: pd.DataFrame) -> Explanations:
        """Exact Tree SHAP of the preprocessed features (categorical columns as CatBoost's)."""
        from components.core import catboosts

        _, estimator = split(model)
        features = catboosts.pool(estimator, _dense(transformed(model, inputs)))
        contributions = np.asarray(
            estimator.get_feature_importance(data=features, type="ShapValues"), dtype=float
        )
        values, base = _contributions(contributions, len(inputs))
        names = feature_names(model, inputs, values.shape[1])
        explained = Explanations(values, base, names, raw_output_labels(estimator, base.shape[1]))
        return with_sources(explained, model, inputs)

    def raw_output(self, model: T.Any, inputs: pd.DataFrame) -> np.ndarray:
        """The raw formula values these values add up to, as (samples, outputs)."""
        from components.core import catboosts

        estimator = estimator_of(model)
        features = catboosts.pool(estimator, _dense(transformed(model, inputs)))
        raw = estimator.predict(features, prediction_type="RawFormulaVal")
        return np.asarray(raw, dtype=float).reshape(len(inputs), -1)


# %% SCIKIT-LEARN'S TREES AND LINEAR MODELS

# Below this many rows per process, forking a pool and gathering its results costs more than
# the Tree SHAP time it saves: two processes need at least twice this many rows.
MIN_ROWS_PER_PROCESS = 200

# What a pool's worker explains: set in each forked child by its initializer, never in the
# parent, so that concurrent explain() calls cannot see each other's model.
_worker_explainer: shap.TreeExplainer | None = None
_worker_features: np.ndarray | None = None


def _install_worker(explainer: shap.TreeExplainer, features: np.ndarray) -> None:
    """Keep the fitted explainer and the rows in a forked worker (inherited, not pickled).

    The worker takes SIGTERM as Python's default does, dying at once: the step's handler
    (`jobs.base.stop_on_sigterm`), inherited through the fork, would hold it in a worker
    blocked on the pool's queue, and the pool's terminate (after a worker's error, or at the
    end of its block) would then wait for that worker forever.
    """
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    global _worker_explainer, _worker_features
    _worker_explainer, _worker_features = explainer, features


def _tree_shap(explainer: shap.TreeExplainer, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tree SHAP of some preprocessed rows, as (n, f, k) values and (n, k) base values."""
    explanation = explainer(rows, check_additivity=False)
    return _shaped(explanation.values, explanation.base_values, len(rows))


def _tree_shap_slice(bounds: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """In a worker: Tree SHAP of the rows [start, stop) of the features it inherited."""
    start, stop = bounds
    return _tree_shap(_worker_explainer, _worker_features[start:stop])


def _margin(model: T.Any, inputs: pd.DataFrame) -> np.ndarray:
    """A scikit-learn model's raw output: a classifier's decision function, else predict.

    A regressor with a link (`output_link`) outputs its prediction through it: the log of a
    Poisson regressor's prediction is what its trees or coefficients add up to.

    A classifier without one (a random forest) outputs its probabilities: the mean of its
    trees' class frequencies, which is what Tree SHAP explains for it.
    """
    if is_classifier(estimator_of(model)):
        raw = model.decision_function if hasattr(model, "decision_function") else None
        margin = np.asarray((raw or model.predict_proba)(inputs), dtype=float)
    else:
        margin = np.asarray(model.predict(inputs), dtype=float)
        link = output_link(estimator_of(model))
        if link is not None:  # a Poisson regressor's trees add up to the log of its prediction
            margin = LINKS[link][0](margin)
    return margin.reshape(len(inputs), -1)


class TreeExplainer(Explainer, frozen=True):
    """Exact path-dependent Tree SHAP (shap's) on the preprocessed features of a tree ensemble.

    shap's Tree SHAP runs in C but holds the GIL, so threads do not speed it up: the rows are
    split into contiguous chunks explained by forked processes, one per CPU, and put back in
    order. Each row's SHAP values depend on that row alone, so they are exactly those of one
    process.

    Args:
        workers: the most processes; by default the CPUs this process may use (a container's
            CPU limit, not the node's cores). 1 explains in this process.
    """

    KIND: T.Literal["TreeExplainer"] = "TreeExplainer"
    workers: int | None = pdt.Field(default=None, gt=0)

    @classmethod
    def chosen_for(cls, estimator: T.Any) -> bool:
        """Tree ensembles: sklearn's, and those of the model kinds that declare one."""
        return isinstance(estimator, SKLEARN_TREES + models.tree_estimators())

    def processes(self, rows: int) -> int:
        """How many processes explain this many rows: 1 when a pool would not pay.

        Args:
            rows: the rows to explain.
        """
        # A daemonic process (a multiprocessing pool's worker) may not start children.
        if multiprocessing.current_process().daemon:
            return 1
        workers = self.workers or cpus.available_cpus()
        return max(1, min(workers, rows // MIN_ROWS_PER_PROCESS))

    def explain(self, model: T.Any, inputs: pd.DataFrame, background: pd.DataFrame) -> Explanations:
        """Tree SHAP of the preprocessed features (the background is not needed)."""
        _, estimator = split(model)
        import shap

        features = np.asarray(_dense(transformed(model, inputs)), dtype=float)
        explainer = shap.TreeExplainer(estimator)
        processes = self.processes(len(features))
        if processes == 1:
            values, base = _tree_shap(explainer, features)
        else:
            edges = np.linspace(0, len(features), processes + 1).astype(int).tolist()
            bounds = list(itertools.pairwise(edges))  # contiguous (start, stop), in row order
            # fork: the children inherit the fitted explainer and the rows without pickling or
            # importing anything; only the chunks' SHAP values travel back. The context manager
            # terminates the pool whatever happens, and map re-raises a worker's exception.
            context = multiprocessing.get_context("fork")
            with context.Pool(
                processes, initializer=_install_worker, initargs=(explainer, features)
            ) as pool:
                chunks = pool.map(_tree_shap_slice, bounds, chunksize=1)
            values = np.concatenate([chunk_values for chunk_values, _ in chunks])
            base = np.concatenate([chunk_base for _, chunk_base in chunks])
        names = feature_names(model, inputs, values.shape[1])
        explained = Explanations(values, base, names, raw_output_labels(estimator, values.shape[2]))
        return with_sources(explained, model, inputs)

    def raw_output(self, model: T.Any, inputs: pd.DataFrame) -> np.ndarray:
        """The prediction, or a classifier's margins, as (samples, outputs)."""
        return _margin(model, inputs)


class LinearExplainer(Explainer, frozen=True):
    """Linear SHAP on the preprocessed features, with the background as the reference."""

    KIND: T.Literal["LinearExplainer"] = "LinearExplainer"

    @classmethod
    def chosen_for(cls, estimator: T.Any) -> bool:
        """Linear models: a coefficient per feature and an intercept."""
        return hasattr(estimator, "coef_") and hasattr(estimator, "intercept_")

    def explain(self, model: T.Any, inputs: pd.DataFrame, background: pd.DataFrame) -> Explanations:
        """Linear SHAP of the preprocessed features against the background's means."""
        _, estimator = split(model)
        import shap

        reference = np.asarray(_dense(transformed(model, background)), dtype=float)
        features = np.asarray(_dense(transformed(model, inputs)), dtype=float)
        masker = shap.maskers.Independent(reference, max_samples=len(reference))
        explanation = shap.LinearExplainer(estimator, masker)(features)
        values, base = _shaped(explanation.values, explanation.base_values, len(inputs))
        names = feature_names(model, inputs, values.shape[1])
        explained = Explanations(values, base, names, raw_output_labels(estimator, values.shape[2]))
        return with_sources(explained, model, inputs)

    def raw_output(self, model: T.Any, inputs: pd.DataFrame) -> np.ndarray:
        """The prediction, or a classifier's margins, as (samples, outputs)."""
        return _margin(model, inputs)


# %% ANY MODEL: PERMUTATION SHAP WITH A BOUNDED BUDGET


class _Codes:
    """The input columns as numbers, for shap's maskers, and back.

    shap's maskers compare and mix rows as floats: a text or categorical column is given the
    position of its value among the values seen (NaN stays NaN), and decoded before the model
    sees the rows, with the input's own dtypes.
    """

    def __init__(self, *frames: pd.DataFrame):
        first = frames[0]
        self.columns = list(first.columns)
        self.dtypes = first.dtypes.to_dict()
        self.levels: dict[T.Any, pd.Index] = {}
        for column, dtype in self.dtypes.items():
            if not (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)):
                seen = pd.concat([frame[column] for frame in frames], ignore_index=True)
                self.levels[column] = pd.Index(seen.dropna().unique())

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        """The rows as a float array, one column per input column."""
        encoded = np.empty((len(frame), len(self.columns)))
        for position, column in enumerate(self.columns):
            if column in self.levels:
                codes = self.levels[column].get_indexer(frame[column]).astype(float)
                encoded[:, position] = np.where(codes < 0, np.nan, codes)
            else:
                encoded[:, position] = np.asarray(frame[column], dtype=float)
        return encoded

    def decode(self, rows: np.ndarray) -> pd.DataFrame:
        """The float rows back as a frame of the input's columns and dtypes."""
        data: dict[T.Any, T.Any] = {}
        for position, column in enumerate(self.columns):
            if column in self.levels:
                codes = rows[:, position]
                known = ~np.isnan(codes)
                decoded = np.full(len(rows), None, dtype=object)
                decoded[known] = self.levels[column].to_numpy()[codes[known].astype(int)]
                data[column] = pd.Series(decoded).astype(self.dtypes[column])
            else:
                data[column] = pd.Series(rows[:, position]).astype(self.dtypes[column])
        return pd.DataFrame(data)


def _predicted(model: T.Any, frame: pd.DataFrame) -> T.Any:
    """What a model predicts for a frame: probabilities when it has them, else its predictions."""
    if hasattr(model, "predict_proba") and is_classifier(estimator_of(model)):
        return np.asarray(model.predict_proba(frame), dtype=float)
    return model.predict(frame)


def _as_outputs(predicted: T.Any, labels: list[str] | None) -> tuple[np.ndarray, list[str]]:
    """Predictions as a float (rows, outputs) array and the outputs' names.

    Numeric predictions are explained as they are (a DataFrame's numeric columns each); labels
    alone become one 0/1 indicator per label, in the order of `labels` (found when None).
    """
    if isinstance(predicted, pd.DataFrame):
        numeric = predicted.select_dtypes("number")
        if not numeric.empty:
            return numeric.to_numpy(float), [str(c) for c in numeric.columns]
        predicted = predicted.iloc[:, 0]
    array = np.asarray(predicted)
    if array.dtype.kind in "biuf":
        array = array.astype(float).reshape(len(array), -1)
        names = (
            [models.PREDICTION] if array.shape[1] == 1 else [str(i) for i in range(array.shape[1])]
        )
        return array, names
    found = labels if labels is not None else sorted({str(v) for v in array.reshape(-1)})
    as_text = array.reshape(-1).astype(str)
    return np.column_stack([(as_text == label).astype(float) for label in found]), found


class PermutationExplainer(Explainer, frozen=True):
    """Model-agnostic permutation SHAP on the raw input columns (the registry's fallback).

    It only calls the model's `predict_proba` (a classifier with probabilities) or `predict`,
    so it explains any model, a pyfunc-only one included, and its values add up to what these
    return. The budget is bounded: for each sample, at most `max_evals` evaluations (raised to
    the 2 * columns + 1 of one full permutation), each on at most `max_background` background
    rows: at most samples * (max_evals + 1) * max_background rows go through the model.

    Args:
        max_evals: the model evaluations per sample.
        max_background: the most background rows each evaluation masks with.
    """

    KIND: T.Literal["PermutationExplainer"] = "PermutationExplainer"
    max_evals: int = pdt.Field(default=500, gt=0)
    max_background: int = pdt.Field(default=50, gt=0)

    def explain(self, model: T.Any, inputs: pd.DataFrame, background: pd.DataFrame) -> Explanations:
        """Permutation SHAP of the raw input columns, with a bounded number of evaluations."""
        background = background.head(self.max_background)
        codes = _Codes(inputs, background)
        labels: list[str] | None = None
        sample = _predicted(model, codes.decode(codes.encode(background.head(1))))
        if not isinstance(sample, np.ndarray) or sample.dtype.kind not in "biuf":
            whole = _predicted(model, pd.concat([background, inputs], ignore_index=True))
            _, labels = _as_outputs(whole, None)
        outputs: list[str] = []

        def output(rows: np.ndarray) -> np.ndarray:
            nonlocal outputs
            values, outputs = _as_outputs(_predicted(model, codes.decode(rows)), labels)
            return values

        import shap

        reference = codes.encode(background)
        masker = shap.maskers.Independent(reference, max_samples=len(reference))
        explainer = shap.PermutationExplainer(output, masker)
        max_evals = max(self.max_evals, 2 * len(codes.columns) + 1)
        explanation = explainer(codes.encode(inputs), max_evals=max_evals, silent=True)
        values, base = _shaped(explanation.values, explanation.base_values, len(inputs))
        estimator = estimator_of(model)
        if hasattr(model, "predict_proba") and is_classifier(estimator):
            outputs = [str(label) for label in estimator.classes_]
        return Explanations(values, base, [str(c) for c in codes.columns], outputs)


# The registry of explainers, tried in this order for a model when none is named; permutation
# SHAP, which only calls predict, explains any model the others are not chosen for.
EXPLAINERS = factories.Factory(
    "explainer",
    Explainer,
    (
        XGBoostExplainer,
        LightGBMExplainer,
        CatBoostExplainer,
        TreeExplainer,
        LinearExplainer,
        PermutationExplainer,
    ),
    fallback=PermutationExplainer,
)
# A job's explainer field: an Explainer, or a config with a KIND built by the registry (a user's
# class by import path included).
ExplainerKind = T.Annotated[pdt.SerializeAsAny[Explainer], pdt.BeforeValidator(EXPLAINERS.coerce)]


def explainer_for(model: T.Any) -> Explainer:
    """The explainer the registry chooses for a model's final estimator.

    Args:
        model: the fitted model (a Pipeline, an estimator, a booster, a pyfunc model).
    """
    return EXPLAINERS.choose(estimator_of(model))()


def raw_output(model: T.Any, inputs: pd.DataFrame) -> np.ndarray:
    """What the registry's explainer for the model explains, as (samples, outputs).

    The regression value, or a classifier's margins (decision function, XGBoost's margin,
    LightGBM's raw score); for a model explained by permutation, its probabilities or
    predictions.

    Args:
        model: the fitted model.
        inputs: the rows.
    """
    return explainer_for(model).raw_output(model, inputs)


def importances(values: np.ndarray, features: list[str]) -> pd.DataFrame:
    """Global feature importance: the mean absolute SHAP value over samples and outputs."""
    mean_abs = np.abs(values).mean(axis=(0, 2))
    frame = pd.DataFrame({"feature": features, "importance": mean_abs})
    frame = frame.sort_values("importance", ascending=False, kind="stable").reset_index(drop=True)
    frame["rank"] = np.arange(1, len(frame) + 1)
    return frame
