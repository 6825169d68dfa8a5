"""Flavours: a registered model loaded as the object its framework made, not through pyfunc.

The predict, evaluate, promote and explain steps need more than pyfunc gives: class
probabilities, the fitted preprocessing, the trees (for exact SHAP values). MLflow keeps each
framework's own format beside the generic pyfunc one; this module loads the richest one a
model has, in the order of `NATIVE_FLAVORS`, and says which it loaded.
"""

from __future__ import annotations

import dataclasses
import importlib
import typing as T

import mlflow
from mlflow.models import ModelSignature

# The frameworks' own flavours, richest first: a model logged with sklearn (a Pipeline around
# an XGBoost estimator, say) keeps its preprocessing only in the sklearn flavour.
NATIVE_FLAVORS = ("sklearn", "xgboost", "lightgbm")


@dataclasses.dataclass(frozen=True)
class NativeModel:
    """A model in its framework's own form.

    Attributes:
        model: what the flavour's `load_model` gives: a sklearn estimator or Pipeline, an
            `xgboost.Booster` or `XGBModel`, a `lightgbm.Booster` or `LGBMModel`.
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


def load_native(uri: str) -> NativeModel | None:
    """Load the model at an MLflow URI in its richest native flavour.

    Returns:
        The native model, or None when the model has no native flavour (pyfunc only: a
        custom python model, or a framework not listed in NATIVE_FLAVORS).
    """
    info = mlflow.models.get_model_info(uri)
    flavor = native_flavor(info.flavors)
    if flavor is None:
        return None
    # Each flavour's module is imported only when a model needs it.
    loader = importlib.import_module(f"mlflow.{flavor}")
    return NativeModel(model=loader.load_model(uri), flavor=flavor, signature=info.signature)
