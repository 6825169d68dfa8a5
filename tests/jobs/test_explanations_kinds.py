"""Integration: the explanations job takes its explainer from the registry, a user's by path.

A model is trained and registered on the session's real MLflow server, then explained by a
user's explainer named by its import path; the job also refuses an unknown explainer or a class
of another role in one line that lists the allowed kinds.
"""

from __future__ import annotations

import pathlib

import numpy as np
import pandas as pd
import pydantic as pdt
import pytest

from components.io import datasets, registries
from components.jobs import base, explanations, training
from tests.jobs.helpers import (
    COLUMNS,
    features,
    native_model,
    run,
    settings,
    unique,
    with_demand,
)

pytestmark = pytest.mark.integration

OCCLUSION = "tests.user_models:OcclusionExplainer"


@pytest.fixture(scope="module")
def rows(bike, tmp_path_factory) -> pathlib.Path:
    """A tenth of the demo data: enough to fit on, quick to log."""
    path = tmp_path_factory.mktemp("explained") / "rows.parquet"
    with_demand(bike.iloc[::10].reset_index(drop=True)).to_parquet(path, index=False)
    return path


def explanations_job(
    rows: pathlib.Path, folder: pathlib.Path, **fields
) -> explanations.ExplanationsJob:
    """An ExplanationsJob of the rows, writing into the folder, with the given fields."""
    return explanations.ExplanationsJob(
        inputs_samples=datasets.ParquetReader(path=str(rows)),
        models_explanations=datasets.ParquetWriter(path=str(folder / "models.parquet")),
        samples_explanations=datasets.ParquetWriter(path=str(folder / "samples.parquet")),
        passthrough=["instant"],
        **fields,
    )


def test_a_users_explainer_explains_a_registered_model_by_its_import_path(tracking, rows, tmp_path):
    name = unique("explained")
    common = settings(tracking, unique("kinds"))
    run(
        training.TrainingJob(
            inputs=datasets.ParquetReader(path=str(rows)),
            target="cnt",
            model={"KIND": "Ridge"},
            model_name=name,
            **features("cnt"),
            **common,
        )
    )
    done = run(
        explanations_job(
            rows,
            tmp_path,
            finder=registries.RegistryFinder(name=name, alias_or_version=1),
            explainer={"type": OCCLUSION},
            max_samples=20,
            background_samples=5,
            **common,
        )
    )
    assert done.explainer == OCCLUSION and done.samples == 20
    samples = pd.read_parquet(tmp_path / "samples.parquet")
    # The user's explainer explains the raw columns, not the preprocessed ones as Linear SHAP.
    assert samples.columns.tolist() == [
        "instant", "output", "base_value", *[f"shap_{name}" for name in COLUMNS]
    ]  # fmt: skip
    # Its values: the prediction's change when a column takes the first row's value.
    inputs = pd.read_parquet(rows).head(20).reset_index(drop=True)
    model = native_model(name, 1)
    occluded = inputs[COLUMNS].copy()
    occluded["temp"] = inputs.loc[0, "temp"]
    expected = model.predict(inputs[COLUMNS]) - model.predict(occluded)
    np.testing.assert_allclose(samples["shap_temp"], expected, rtol=1e-9, atol=1e-9)
    assert np.count_nonzero(samples["shap_temp"]) > 0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"KIND": "KernelShap"}, "explainer: Value error, unknown explainer type 'KernelShap'; "
         "allowed: 'XGBoostExplainer', 'LightGBMExplainer', 'CatBoostExplainer', 'TreeExplainer', "
         "'LinearExplainer', 'PermutationExplainer', or the import "
         "path package.module:Class of a subclass of components.core.explainers:Explainer"),
        ({"KIND": "tests.user_models:FirstRowsSplitter"}, "explainer: Value error, explainer "
         "type 'tests.user_models:FirstRowsSplitter' is not a subclass of "
         "components.core.explainers:Explainer; allowed: 'XGBoostExplainer'"),
    ],
    ids=["unknown", "base"],
)  # fmt: skip
def test_the_job_refuses_an_unknown_explainer_or_another_roles_class_in_one_line(
    rows, tmp_path, value, expected
):
    with pytest.raises(pdt.ValidationError) as caught:
        explanations_job(
            rows, tmp_path, finder={"KIND": "UriFinder", "uri": "models:/x/1"}, explainer=value
        )
    line = base.describe_errors("ExplanationsJob", caught.value)
    assert "\n" not in line
    assert line.startswith(f"invalid ExplanationsJob settings: {expected}"), line


def test_the_explainer_is_given_as_a_kind_or_type_and_config(rows, tmp_path):
    finder = {"KIND": "UriFinder", "uri": "models:/x/1"}
    by_kind = explanations_job(rows, tmp_path, finder=finder, explainer={"KIND": "TreeExplainer"})
    by_type = explanations_job(
        rows,
        tmp_path,
        finder=finder,
        explainer={"type": "PermutationExplainer", "config": {"max_evals": 50}},
    )
    assert by_kind.explainer.KIND == "TreeExplainer"
    assert by_type.explainer.model_dump() == {
        "KIND": "PermutationExplainer",
        "max_evals": 50,
        "max_background": 50,
    }
    assert explanations_job(rows, tmp_path, finder=finder).explainer is None
