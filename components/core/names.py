"""Names: a user's column names as XGBoost and LightGBM take them, and back.

A user's columns may be named anything ("area [m2]", "rooms<5", "city, region"), but XGBoost
refuses feature names that hold `[`, `]` or `<`, and LightGBM refuses `"`, `,`, `:`, `[`, `]`,
`{` and `}`, fails on a tab or a line break, and writes each space as `_` in the booster it
saves. Both get their DataFrame's
column names as feature names, so:

- the project's XGBoost and LightGBM models name their preprocessed features with
  `booster_feature_name` (each such character as its full-width look-alike, which both take);
  the explanations map these names back to the user's columns (`explainers.source_columns`);
- a user's own LightGBM model, trained on "contract type", keeps "contract_type" in its
  booster: `lightgbm_name` finds the column again (`categories.as_categories`).

This module imports nothing but the standard library: a saved model refers to
`booster_feature_name` by import path, and loading it must not import a framework.
"""

from __future__ import annotations

# Each character that XGBoost or LightGBM refuses in a feature name, and its full-width form;
# a tab or a line break (LightGBM's saved model cannot hold one) as a space.
_LOOK_ALIKES = str.maketrans(
    {"[": "［", "]": "］", "<": "＜", "{": "｛", "}": "｝", ",": "，", ":": "：", '"': "＂"}
    | dict.fromkeys("\t\n\r\v\f", " ")
)


def booster_name(name: str) -> str:
    """The name with each character that XGBoost or LightGBM refuses as its look-alike."""
    return name.translate(_LOOK_ALIKES)


def booster_feature_name(transformer: str, feature: str) -> str:
    """A ColumnTransformer's output name ("num__area ［m2］"), one that the boosters take.

    Passed as `verbose_feature_names_out`: sklearn calls it with the transformer's name and the
    feature's name.
    """
    return f"{transformer}__{booster_name(feature)}"


def lightgbm_name(name: str) -> str:
    """The name LightGBM keeps for a column in the booster it saves: each space as `_`."""
    return name.replace(" ", "_")
