"""Frameworks: what XGBoost and LightGBM need around them to train like any sklearn estimator.

Both take pandas `category` columns as they are and split on them natively, which beats one-hot
encoding (one split groups several categories; no column per category). Two small pieces make
them fit the project's pipelines, and travel inside the registered model:

- `CategoryCaster` casts the categorical columns to `category` with the categories seen in
  training, so that a batch read from Parquet or CSV (text, codes) reaches the booster with the
  very categories it was trained on; an unseen category becomes missing.
- `LabelledXGBClassifier` is XGBoost's classifier trained on label-encoded classes (which
  XGBoost requires) that gives back the original labels: `classes_`, `predict`.

Only this module imports the frameworks; a saved model refers to these classes by import path.
"""

from __future__ import annotations

import typing as T

import numpy as np
import pandas as pd  # type: ignore[import-untyped]
import xgboost
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted


def _plain(value: T.Any) -> T.Any:
    """A numpy scalar as the Python scalar it holds (skops stores those without trusting)."""
    return value.item() if isinstance(value, np.generic) else value


class CategoryCaster(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Cast columns to pandas `category` with the categories fitted in training.

    The categories are kept as plain Python lists (text or numbers), sorted, so that the
    fitted caster is saved by skops without any type to trust. Missing values stay missing,
    and a value unseen in training becomes missing too: the booster sends it down the
    missing-value branch rather than failing the batch.
    """

    def fit(self, X: pd.DataFrame, y: T.Any = None) -> CategoryCaster:
        """Record each column's categories (its distinct values, missing ones left out)."""
        frame = pd.DataFrame(X)
        self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        self.n_features_in_ = frame.shape[1]
        self.categories_: dict[str, list[T.Any]] = {}
        for column in frame.columns:
            values = frame[column].dropna().unique()
            try:
                ordered = sorted(values)
            except TypeError:  # text mixed with numbers: sorted as text
                ordered = sorted(values, key=str)
            self.categories_[str(column)] = [_plain(value) for value in ordered]
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """The columns as `category` with the fitted categories (unseen values: missing)."""
        check_is_fitted(self, "categories_")
        frame = pd.DataFrame(X)
        cast = {}
        for column in frame.columns:
            categories = self.categories_[str(column)]
            # Unseen values made missing first: pandas is to refuse them in a Categorical.
            known = frame[column].where(frame[column].isin(categories))
            cast[column] = pd.Categorical(known, categories=categories)
        return pd.DataFrame(cast, index=frame.index)

    def get_feature_names_out(self, input_features: T.Any = None) -> np.ndarray:
        """The same column names: a cast keeps one column per column."""
        check_is_fitted(self, "categories_")
        return np.asarray(list(self.categories_), dtype=object)


class LabelledXGBClassifier(xgboost.XGBClassifier):
    """XGBoost's classifier on any labels: trained on their indices, answering with the labels.

    XGBoost requires the classes 0..n-1. This one encodes the labels as their sorted indices
    (as sklearn's LabelEncoder would) and keeps them in `labels_`, so that `classes_` and
    `predict` give the labels of the type trained on (text or numbers), and the probability
    columns of `predict_proba` follow `classes_`, as any sklearn classifier's do.
    """

    def fit(self, X: T.Any, y: T.Any, **kwargs: T.Any) -> LabelledXGBClassifier:
        """Fit on the label indices; keep the labels."""
        labels, codes = np.unique(np.asarray(y), return_inverse=True)
        self.__dict__.pop("labels_", None)  # XGBoost checks the indices against `classes_`
        super().fit(X, codes, **kwargs)
        self.labels_ = labels
        return self

    @property
    def classes_(self) -> np.ndarray:
        """The original labels, in the order of the probability columns (indices while fitting)."""
        labels = self.__dict__.get("labels_")
        return np.asarray(super().classes_ if labels is None else labels)

    def decision_function(self, X: T.Any) -> np.ndarray:
        """The raw margins (log-odds), as sklearn's classifiers give them: what SHAP explains.

        One column per class for several classes, one value per row for two (the second
        class's log-odds).
        """
        return np.asarray(super().predict(X, output_margin=True))

    def predict(self, X: T.Any, **kwargs: T.Any) -> np.ndarray:
        """The most probable class of each row, as its label."""
        codes = np.asarray(super().predict(X, **kwargs), dtype=int)
        return np.asarray(self.labels_[codes])
