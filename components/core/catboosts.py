"""CatBoost: what its estimators need around them to train like any sklearn estimator.

CatBoost splits on categorical columns itself (ordered target statistics), given as text or
integers: no one-hot encoding. Two small pieces make it fit the project's pipelines, and travel
inside the registered model, which refers to them by import path:

- `CategoryText` turns the categorical columns into text, with missing values as a category of
  their own (`MISSING`): CatBoost refuses NaN in a categorical column, and a code read as 2.0
  from one file and 2 from another must be the same category. A value unseen in training is
  taken by CatBoost as it is (its prior), never refused.
- `LabelledCatBoostClassifier` is CatBoost's classifier whose `predict` gives one label per row
  (CatBoost's gives a column for several classes), as any sklearn classifier's does.

Importing this module needs catboost installed (the dev extra has it; the image does not).
"""

from __future__ import annotations

import typing as T

import catboost
import numpy as np
import pandas as pd  # type: ignore[import-untyped]
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

# The category of a missing value: CatBoost takes no NaN among categories.
MISSING = "<missing>"
# The training output CatBoost prints unless told otherwise: one of these silences it.
VERBOSITY_PARAMS = ("verbose", "logging_level", "verbose_eval", "silent")


def _text(value: T.Any) -> str:
    """A category as text: missing values as `MISSING`, integral numbers without ".0"."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return MISSING
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, np.generic):
        return str(value.item())
    return str(value)


class CategoryText(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Cast categorical columns to text for CatBoost (missing values: `MISSING`).

    It learns nothing but the column names: CatBoost keeps the categories itself.
    """

    def fit(self, X: pd.DataFrame, y: T.Any = None) -> CategoryText:
        """Record the columns' names."""
        frame = pd.DataFrame(X)
        self.feature_names_in_ = np.asarray([str(c) for c in frame.columns], dtype=object)
        self.n_features_in_ = frame.shape[1]
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """The columns as object columns of text."""
        check_is_fitted(self, "feature_names_in_")
        frame = pd.DataFrame(X)
        text = {
            column: pd.Series([_text(v) for v in frame[column]], index=frame.index, dtype=object)
            for column in frame.columns
        }
        return pd.DataFrame(text, index=frame.index)

    def get_feature_names_out(self, input_features: T.Any = None) -> np.ndarray:
        """The same column names: one text column per column."""
        check_is_fitted(self, "feature_names_in_")
        return np.asarray(self.feature_names_in_, dtype=object)


class LabelledCatBoostClassifier(catboost.CatBoostClassifier):  # type: ignore[misc]
    """CatBoost's classifier answering with one label per row, of the type trained on."""

    def predict(self, data: T.Any, *args: T.Any, **kwargs: T.Any) -> np.ndarray:
        """The predicted class of each row (a flat array, not CatBoost's column of them)."""
        predicted = np.asarray(super().predict(data, *args, **kwargs))
        if kwargs.get("prediction_type", args[0] if args else "Class") != "Class":
            return predicted
        return predicted.reshape(len(predicted), -1)[:, 0]


def quiet(params: T.Mapping[str, T.Any]) -> dict[str, T.Any]:
    """The params with CatBoost's output silenced and no `catboost_info/` folder written.

    Silenced unless the user set one of `VERBOSITY_PARAMS` (CatBoost refuses two of them);
    files are written only where the user sets `allow_writing_files` (or a `train_dir`).
    """
    defaults: dict[str, T.Any] = {"allow_writing_files": "train_dir" in params}
    if not any(name in params for name in VERBOSITY_PARAMS):
        defaults["verbose"] = False
    return {**defaults, **params}


def pool(model: T.Any, features: T.Any) -> catboost.Pool:
    """The features as a Pool with the model's categorical columns (CatBoost's own SHAP takes one).

    A model registered elsewhere may meet missing values in its text columns: they are given
    `MISSING`, as `CategoryText` gives them.
    """
    indices = list(model.get_cat_feature_indices())
    if indices and isinstance(features, pd.DataFrame):
        features = features.copy(deep=False)
        for index in indices:
            column = features.iloc[:, index]
            if column.isna().any() or column.dtype.kind == "f":
                features.isetitem(index, [_text(v) for v in column])
    return catboost.Pool(features, cat_features=indices or None)


def is_classifier(model: T.Any) -> bool:
    """Whether a CatBoost model classifies: a classifier, or a bare model with a class loss."""
    if isinstance(model, catboost.CatBoostClassifier):
        return True
    if isinstance(model, catboost.CatBoostRegressor):
        return False
    loss = str(model.get_all_params().get("loss_function", ""))
    return loss.split(":")[0] in ("Logloss", "CrossEntropy", "MultiClass", "MultiClassOneVsAll")
