"""Flavours: a registered model loaded as the object its framework made, not through pyfunc.

The predict, evaluate, promote and explain steps need more than pyfunc gives: class
probabilities, the fitted preprocessing, the trees (for exact SHAP values). MLflow keeps each
framework's own format beside the generic pyfunc one; this module loads the richest one a
model has, in the order of `NATIVE_FLAVORS`, and says which it loaded.

It also keeps what a model registered outside the project needs to predict as it was trained:

- its class labels, when it was trained on label-encoded classes (XGBoost requires 0..n-1):
  the `label_mapping` tag of the model version (JSON, `["Adelie", "Chinstrap"]` or
  `{"0": "Adelie", "1": "Chinstrap"}`), or a loader's `label_mapping` setting;
- its categorical columns and their categories: a model trained on pandas categoricals
  (XGBoost's `enable_categorical`, LightGBM's categorical features) meets the same columns as
  text when they are read from Parquet or CSV, and must see them as the categories it learnt
  (`components.core.categories`, which the explainers share).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import re
import typing as T

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature

from components.core import models

# The frameworks' own flavours, richest first: a model logged with sklearn (a Pipeline around
# an XGBoost estimator, say) keeps its preprocessing only in the sklearn flavour.
NATIVE_FLAVORS = ("sklearn", "xgboost", "lightgbm", "catboost")
# The model-version tag that maps a label-encoded classifier's class indices to its labels.
LABEL_MAPPING_TAG = "label_mapping"
# A JSON list (index -> label) or object ({"0": "Adelie"}), as given in a tag or a setting.
LabelMapping = list[T.Any] | dict[str, T.Any]


class LabelMappingError(ValueError):
    """A label mapping that cannot be read, or that misses one of the model's classes."""


@dataclasses.dataclass(frozen=True)
class NativeModel:
    """A model in its framework's own form.

    Attributes:
        model: what the flavour's `load_model` gives: a sklearn estimator or Pipeline, an
            `xgboost.Booster` or `XGBModel`, a `lightgbm.Booster` or `LGBMModel`, a CatBoost
            model.
        flavor: the flavour it was loaded from, one of `NATIVE_FLAVORS`.
        signature: the signature logged beside it, None when the model has none.
    """

    model: T.Any
    flavor: str
    signature: ModelSignature | None


def native_flavor(flavors: T.Iterable[str]) -> str | None:
    """The richest native flavour among a model's flavours, None when it has none."""
    present = set(flavors)
    return next((flavor for flavor in NATIVE_FLAVORS if flavor in present), None)


def load_native(uri: str, flavor: str | None = None) -> NativeModel | None:
    """Load the model at an MLflow URI in its richest native flavour (or the one named).

    Args:
        uri: the model's MLflow URI.
        flavor: the flavour to load; None: the richest the model has.

    Returns:
        The native model, or None when the model has no native flavour (pyfunc only: a
        custom python model, or a framework not listed in NATIVE_FLAVORS) or not the one named.
    """
    info = mlflow.models.get_model_info(uri)
    flavor = flavor if flavor is not None else native_flavor(info.flavors)
    if flavor is None or flavor not in info.flavors:
        return None
    # Each flavour's module is imported only when a model needs it.
    loader = importlib.import_module(f"mlflow.{flavor}")
    return NativeModel(model=loader.load_model(uri), flavor=flavor, signature=info.signature)


# %% LABELS


def version_tags(uri: str) -> dict[str, str]:
    """The tags of the registered model version a models:/ URI names ({} for any other URI)."""
    match = re.fullmatch(r"models:/([^/@]+)(?:/(\d+)|@(.+))", uri)
    if match is None:
        return {}
    name, version, alias = match.groups()
    client = mlflow.MlflowClient()
    found = (
        client.get_model_version(name, version)
        if version is not None
        else client.get_model_version_by_alias(name, alias)
    )
    return dict(found.tags or {})


def label_mapping(value: str | LabelMapping | None) -> dict[str, T.Any] | None:
    """A label mapping read from a tag (JSON text) or a setting, keyed by the class as text.

    Args:
        value: a JSON list (index -> label), a JSON object (class -> label), either as text,
            or None.

    Returns:
        class (as `str` spells it: "0") -> label; None when no mapping is given, or an empty
        one (which a setting gives to ignore a version's tag).

    Raises:
        LabelMappingError: the text is not JSON, or neither a list nor an object.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise LabelMappingError(
                f"{LABEL_MAPPING_TAG} {value!r} is not JSON: give a list of labels in class "
                'order (["Adelie", "Chinstrap"]) or an object ({"0": "Adelie"})'
            ) from error
    if isinstance(value, list | dict) and not value:
        return None
    if isinstance(value, list):
        return {str(index): label for index, label in enumerate(value)}
    if isinstance(value, dict):
        return {str(key): label for key, label in value.items()}
    raise LabelMappingError(
        f"{LABEL_MAPPING_TAG} must be a list of labels in class order or an object "
        f"class -> label, got {type(value).__name__}"
    )


def mapped_classes(
    classes: T.Sequence[T.Any] | np.ndarray, mapping: T.Mapping[str, T.Any] | None
) -> np.ndarray:
    """The model's classes as the labels the mapping gives them (as they are without one).

    Raises:
        LabelMappingError: a class of the model has no label in the mapping.
    """
    known = np.asarray(classes)
    if mapping is None:
        return known
    missing = [str(c) for c in known if str(c) not in mapping]
    if missing:
        raise LabelMappingError(
            f"{LABEL_MAPPING_TAG} has no label for the model's class(es) {', '.join(missing)} "
            f"(the model's classes: {', '.join(str(c) for c in known)}; the mapping's: "
            f"{', '.join(mapping)})"
        )
    labels = [mapping[str(c)] for c in known]
    return np.asarray(labels, dtype=object if any(isinstance(x, str) for x in labels) else None)


def class_frame(probabilities: np.ndarray, classes: np.ndarray) -> pd.DataFrame:
    """`prediction` (the most probable class's label) and one probability column per class.

    The same frame as `models.predict_frame` gives for a scikit-learn classifier.
    """
    frame = pd.DataFrame(
        probabilities, columns=[models.probability_column(label) for label in classes]
    )
    frame.insert(0, models.PREDICTION, classes[np.argmax(probabilities, axis=1)])
    return frame


def relabel(predictions: pd.DataFrame, mapping: T.Mapping[str, T.Any] | None) -> pd.DataFrame:
    """Predictions of class indices given the labels of a mapping (its probability columns too).

    For a model whose classes are not known before it predicts (pyfunc, a classifier without
    probabilities); a native classifier maps its classes once instead (`mapped_classes`).

    Raises:
        LabelMappingError: a predicted class has no label in the mapping.
    """
    if mapping is None:
        return predictions
    predicted = predictions[models.PREDICTION]
    labels = predicted.map(lambda value: mapping.get(str(value), _UNMAPPED))
    unmapped = labels.map(lambda value: value is _UNMAPPED)
    if unmapped.any():
        classes = sorted({str(value) for value in predicted[unmapped]})
        raise LabelMappingError(
            f"{LABEL_MAPPING_TAG} has no label for the predicted class(es) {', '.join(classes)} "
            f"({int(unmapped.sum())} rows; the mapping's classes: {', '.join(mapping)})"
        )
    renamed = {
        models.probability_column(key): models.probability_column(label)
        for key, label in mapping.items()
    }
    predictions = predictions.rename(columns=renamed)
    predictions[models.PREDICTION] = labels.to_numpy()
    return predictions


_UNMAPPED = object()
