"""Categories: what a model trained on pandas categoricals learnt, and the columns cast back to it.

XGBoost (`enable_categorical`) and LightGBM (categorical features) code each category by its
place among the categories seen in training. The same columns read from Parquet or CSV arrive
as text, or as categoricals with other categories: the predictors (`components.io.registries`)
and the explainers (`components.core.explainers`) cast them back with `as_categories`, so that
every value gets the code it had in training and an unseen one is missing.
"""

from __future__ import annotations

import re
import typing as T

import pandas as pd

from components.core import names

# Categorical columns -> the categories the model was trained on, in the model's code order.
Categories = dict[str, list[T.Any]]


class CategoriesError(ValueError):
    """A model trained on categoricals whose categories cannot be recovered."""


def xgboost_categories(booster: T.Any) -> Categories:
    """The categorical features of an XGBoost booster and the categories each was trained on.

    XGBoost 3.1 and later store the categories of a model trained on pandas categoricals;
    an older model keeps only which features are categorical.

    Raises:
        CategoriesError: the model has categorical features but no stored categories.
    """
    names = booster.feature_names or []
    categorical = [n for n, t in zip(names, booster.feature_types or [], strict=False) if t == "c"]
    if not categorical:
        return {}
    stored = booster.get_categories(export_to_arrow=True)
    found = {} if stored.empty() else dict(stored.to_arrow())
    missing = [name for name in categorical if found.get(name) is None]
    if missing:
        raise CategoriesError(
            f"the XGBoost model has categorical features {', '.join(missing)} but no stored "
            "categories (a model saved before XGBoost 3.1): retrain it with XGBoost >= 3.1 "
            "so that text read from Parquet or CSV is coded as in training"
        )
    damaged = [name for name in categorical if _damaged(found[name])]
    if damaged:
        raise CategoriesError(
            f"the XGBoost model's stored categories of {', '.join(map(repr, damaged))} are "
            f"damaged: XGBoost {_xgboost_version()} truncates category names that are not "
            "ASCII when it stores them (fixed after 3.2, dmlc/xgboost#12371), so text read "
            "from Parquet or CSV cannot be coded as in training; retrain with ASCII category "
            "names, or with this project's XGBoost model kinds, which keep the categories "
            "beside the booster"
        )
    return {name: found[name].to_pylist() for name in categorical}


def _xgboost_version() -> str:
    import xgboost

    return str(xgboost.__version__)


def _damaged(stored: T.Any) -> bool:
    """Whether XGBoost stored these categories with offsets counted in characters.

    XGBoost up to 3.2 measures each name in characters but stores its UTF-8 bytes, so a name
    outside ASCII shifts every later one and the last are cut: the text does not decode, or
    decodes to names that are not the trained ones. Only text categories can be damaged.
    """
    import pyarrow as pa

    if not pa.types.is_string(stored.type) and not pa.types.is_large_string(stored.type):
        return False
    major, minor = (int(part) for part in _xgboost_version().split(".")[:2])
    if (major, minor) > (3, 2):
        return False
    data = stored.buffers()[2]
    raw = b"" if data is None else data.to_pybytes()
    return not raw.isascii()


def lightgbm_categories(booster: T.Any) -> Categories:
    """The pandas categorical features of a LightGBM booster and their trained categories.

    LightGBM keeps the categories of the pandas categorical columns it was trained on
    (`pandas_categorical`, in column order) and the indices of its categorical features in
    the parameters saved with the model.
    """
    trained = getattr(booster, "pandas_categorical", None) or []
    if not trained:
        return {}
    # The parameters close the text, whatever the iterations; one iteration is cheap.
    text = booster.model_to_string(num_iteration=1)
    found = re.search(r"^\[categorical_feature: ([0-9,]*)\]$", text, flags=re.M)
    indices = [int(i) for i in found.group(1).split(",") if i] if found else []
    names = booster.feature_name()
    if len(indices) != len(trained):
        raise CategoriesError(
            f"the LightGBM model has {len(trained)} pandas categorical column(s) but "
            f"{len(indices)} categorical feature(s) {indices}: which columns were categorical "
            "cannot be told; train with categorical_feature='auto' on category columns"
        )
    return {
        names[index]: list(categories) for index, categories in zip(indices, trained, strict=True)
    }


def categories_of(model: T.Any) -> Categories:
    """The categorical columns of a bare XGBoost or LightGBM model, {} for anything else.

    A scikit-learn Pipeline gets {}: its first step (an encoder) takes the columns as text.
    """
    framework = type(model).__module__.partition(".")[0]
    if framework == "xgboost":
        return xgboost_categories(model.get_booster() if hasattr(model, "get_booster") else model)
    if framework == "lightgbm":
        return lightgbm_categories(getattr(model, "booster_", model))
    return {}


def as_categories(
    frame: pd.DataFrame, categories: T.Mapping[str, T.Sequence[T.Any]]
) -> pd.DataFrame:
    """The categorical columns cast to the categories the model learnt; unknown ones missing.

    Columns arrive as text (Parquet, CSV, `schemas.normalize`) or as categoricals with other
    categories or another order; either way each value gets the model's code for it. A
    column is found by the model's name for it, or by the name LightGBM saved for it
    ("contract_type" for "contract type", `names.lightgbm_name`).
    """
    if not categories:
        return frame
    frame = frame.copy(deep=False)
    found = columns_named(list(categories), list(frame.columns))
    for name, known in categories.items():
        column = found.get(name)
        if column is None:
            continue
        values, dtype = frame[column], pd.CategoricalDtype(list(known))
        if isinstance(values.dtype, pd.CategoricalDtype):
            frame[column] = values.cat.set_categories(dtype.categories)
            continue
        if (
            pd.api.types.is_object_dtype(values.dtype)
            and all(isinstance(c, str) for c in known)
            and pd.api.types.infer_dtype(values, skipna=True) != "string"
        ):
            # Text categories meet numbers read from a file as their text ("1" for 1).
            values = values.map(
                lambda v: v if v is None or isinstance(v, str) or v != v else str(v)
            )
        frame[column] = pd.Categorical(values, dtype=dtype)
    return frame


def columns_named(features: T.Sequence[str], columns: T.Sequence[T.Any]) -> dict[str, T.Any]:
    """The column of each of a model's feature names found among the columns.

    A feature is the column of its name, or else the one whose name LightGBM writes as the
    feature's (each space as `_`): a LightGBM booster trained on "contract type" calls it
    "contract_type". A feature found in neither way is left out.
    """
    exact = set(columns)
    saved = {names.lightgbm_name(c): c for c in columns if isinstance(c, str)}
    found = {}
    for feature in features:
        if feature in exact:
            found[feature] = feature
        elif feature in saved:
            found[feature] = saved[feature]
    return found


def in_booster_order(frame: pd.DataFrame, features: T.Sequence[str]) -> pd.DataFrame:
    """The frame's columns in the order of a booster's features, when it has them all.

    LightGBM reads a DataFrame's columns by position, not by name: the same columns in another
    order would be predicted silently wrong. A frame that lacks a feature is left as it is
    (for the booster to refuse, naming the count it expected).
    """
    found = columns_named(features, list(frame.columns))
    if len(found) < len(features):
        return frame
    order = [found[feature] for feature in features]
    return frame if list(frame.columns) == order else frame[order]
