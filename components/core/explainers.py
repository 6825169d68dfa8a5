"""Explainers: SHAP values per sample and feature, chosen by the kind of the final estimator."""

from __future__ import annotations

import abc
import dataclasses
import itertools
import multiprocessing
import typing as T

import numpy as np
import pandas as pd
import pydantic as pdt
from sklearn import ensemble, tree
from sklearn.base import is_classifier
from sklearn.pipeline import Pipeline

from components.core import models
from components.utils import cpus, factories

if T.TYPE_CHECKING:  # shap (and numba under it) loads where an explanation is computed,
    import shap  # not where jobs are only built (the pre-run check)

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
        base_values: shape (samples, outputs); base + sum of a row's values = the raw output.
        features: the names of the explained features (after preprocessing for tree and linear
            models, so one-hot columns are explained one by one).
        outputs: what each output is: "prediction" for a regressor, the class label whose
            margin is explained for a classifier.
    """

    values: np.ndarray
    base_values: np.ndarray
    features: list[str]
    outputs: list[str]

    def frame(self, prefix: str = "shap_") -> pd.DataFrame:
        """One row per sample and output: `output`, `base_value`, then one column per feature."""
        samples, n_features, n_outputs = self.values.shape
        flat = self.values.transpose(0, 2, 1).reshape(samples * n_outputs, n_features)
        frame = pd.DataFrame(flat, columns=[prefix + name for name in self.features])
        frame.insert(0, "base_value", self.base_values.reshape(-1))
        frame.insert(0, "output", np.tile(np.asarray(self.outputs, dtype=object), samples))
        return frame


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


def raw_output_labels(estimator: T.Any, n_outputs: int) -> list[str]:
    """Label each raw output: the class whose margin it is, or "prediction"."""
    if not is_classifier(estimator):
        return [models.PREDICTION]
    classes = [str(label) for label in estimator.classes_]
    # A binary classifier has one margin: the log-odds of its second (positive) class.
    return classes[1:] if n_outputs == 1 and len(classes) == 2 else classes


class Explainer(abc.ABC, pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """Compute SHAP values for a fitted Pipeline(preprocessor, estimator).

    The registry (`EXPLAINERS`) chooses one for a model when none is named: the first kind whose
    `chosen_for` says so, else permutation SHAP, which explains any model.
    """

    KIND: str

    @classmethod
    def chosen_for(cls, estimator: T.Any) -> bool:
        """Whether this explainer is the one for the final estimator when none is named.

        Args:
            estimator: the fitted final estimator of the pipeline.

        Returns:
            False unless a kind says otherwise: such an explainer is used when named only.
        """
        return False

    @abc.abstractmethod
    def explain(
        self, model: Pipeline, inputs: pd.DataFrame, background: pd.DataFrame
    ) -> Explanations:
        """Explain the model's raw output for each input row.

        Args:
            model: the fitted pipeline.
            inputs: the rows to explain (model input columns).
            background: a bounded sample of rows that stands for "typical" inputs.
        """


# Below this many rows per process, forking a pool and gathering its results costs more than
# the Tree SHAP time it saves: two processes need at least twice this many rows.
MIN_ROWS_PER_PROCESS = 200

# What a pool's worker explains: set in each forked child by its initializer, never in the
# parent, so that concurrent explain() calls cannot see each other's model.
_worker_explainer: shap.TreeExplainer | None = None
_worker_features: np.ndarray | None = None


def _install_worker(explainer: shap.TreeExplainer, features: np.ndarray) -> None:
    """Keep the fitted explainer and the rows in a forked worker (inherited, not pickled)."""
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


class TreeExplainer(Explainer, frozen=True):
    """Exact path-dependent Tree SHAP on the preprocessed features of a tree ensemble.

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

    def explain(self, model, inputs, background):
        """Tree SHAP of the preprocessed features (the background is not needed)."""
        preprocessor, estimator = model[:-1], model[-1]
        import shap

        features = np.asarray(preprocessor.transform(inputs), dtype=float)
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
        names = [str(name) for name in preprocessor.get_feature_names_out()]
        return Explanations(values, base, names, raw_output_labels(estimator, values.shape[2]))


class LinearExplainer(Explainer, frozen=True):
    """Linear SHAP on the preprocessed features, with the background as the reference."""

    KIND: T.Literal["LinearExplainer"] = "LinearExplainer"

    @classmethod
    def chosen_for(cls, estimator: T.Any) -> bool:
        """Linear models: a coefficient per feature and an intercept."""
        return hasattr(estimator, "coef_") and hasattr(estimator, "intercept_")

    def explain(self, model, inputs, background):
        """Linear SHAP of the preprocessed features against the background's means."""
        preprocessor, estimator = model[:-1], model[-1]
        import shap

        reference = np.asarray(preprocessor.transform(background), dtype=float)
        features = np.asarray(preprocessor.transform(inputs), dtype=float)
        masker = shap.maskers.Independent(reference, max_samples=len(reference))
        explanation = shap.LinearExplainer(estimator, masker)(features)
        values, base = _shaped(explanation.values, explanation.base_values, len(inputs))
        names = [str(name) for name in preprocessor.get_feature_names_out()]
        return Explanations(values, base, names, raw_output_labels(estimator, values.shape[2]))


class PermutationExplainer(Explainer, frozen=True):
    """Model-agnostic permutation SHAP on the raw input columns (the registry's fallback).

    Args:
        max_evals: the model evaluations per sample; bounds the cost (at least 2 * features + 1).
    """

    KIND: T.Literal["PermutationExplainer"] = "PermutationExplainer"
    max_evals: int = 500

    def explain(self, model, inputs, background):
        """Permutation SHAP of the raw input columns, with a bounded number of evaluations."""
        columns = list(inputs.columns)
        classify = is_classifier(model)

        def output(rows: np.ndarray) -> np.ndarray:
            frame = pd.DataFrame(rows, columns=columns).astype(inputs.dtypes.to_dict())
            return model.predict_proba(frame) if classify else model.predict(frame)

        import shap

        masker = shap.maskers.Independent(background, max_samples=len(background))
        explainer = shap.PermutationExplainer(output, masker)
        max_evals = max(self.max_evals, 2 * len(columns) + 1)
        explanation = explainer(inputs, max_evals=max_evals, silent=True)
        values, base = _shaped(explanation.values, explanation.base_values, len(inputs))
        outputs = [str(c) for c in model.classes_] if classify else [models.PREDICTION]
        return Explanations(values, base, columns, outputs)


# The registry of explainers, tried in this order for a model when none is named; permutation
# SHAP, which only calls predict, explains any model the others are not chosen for.
EXPLAINERS = factories.Factory(
    "explainer",
    Explainer,
    (TreeExplainer, LinearExplainer, PermutationExplainer),
    fallback=PermutationExplainer,
)
# A job's explainer field: an Explainer, or a config with a KIND built by the registry (a user's
# class by import path included).
ExplainerKind = T.Annotated[pdt.SerializeAsAny[Explainer], pdt.BeforeValidator(EXPLAINERS.coerce)]


def explainer_for(model: Pipeline) -> Explainer:
    """The explainer the registry chooses for the pipeline's final estimator.

    Args:
        model: the fitted pipeline.
    """
    return EXPLAINERS.choose(model[-1])()


def raw_output(model: Pipeline, inputs: pd.DataFrame) -> np.ndarray:
    """What the tree and linear explainers explain, as (samples, outputs).

    The regression value, or a classifier's margin (decision function).

    Args:
        model: the fitted pipeline.
        inputs: the rows.
    """
    if is_classifier(model):
        margin = np.asarray(model.decision_function(inputs), dtype=float)
    else:
        margin = np.asarray(model.predict(inputs), dtype=float)
    return margin.reshape(len(inputs), -1)


def importances(values: np.ndarray, features: list[str]) -> pd.DataFrame:
    """Global feature importance: the mean absolute SHAP value over samples and outputs."""
    mean_abs = np.abs(values).mean(axis=(0, 2))
    frame = pd.DataFrame({"feature": features, "importance": mean_abs})
    frame = frame.sort_values("importance", ascending=False, kind="stable").reset_index(drop=True)
    frame["rank"] = np.arange(1, len(frame) + 1)
    return frame
