"""Integration: a batch in which a feature has no value at all, against the session's MLflow server.

A feature that is empty in a whole batch (a CSV's empty column, a Parquet column written from
None values) reads as pyarrow's null type, which pandas gives as objects. XGBoost refused such a
batch (`DataFrame.dtypes for data must be int, float, bool or category ... num__x2: object`):
the predict step failed where the model handles missing values. Each booster kind predicts it
as the model predicts NaN in that column, from Parquet and from CSV.
"""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest

from components.core import schemas
from components.io import datasets, registries
from components.jobs import inference, training
from tests.jobs.helpers import native_model, run, settings, unique

pytestmark = pytest.mark.integration


def table(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "x1": rng.normal(size=rows),
            "x2": rng.normal(size=rows),
            "shop": rng.choice(["a", "b"], rows),
        }
    )
    return frame.assign(y=frame["x1"] * 2 + frame["x2"] + rng.normal(scale=0.1, size=rows))


@pytest.mark.parametrize("kind", ["XGBRegressor", "LGBMRegressor"])
def test_a_feature_without_a_value_in_the_batch_is_predicted_as_missing(tracking, tmp_path, kind):
    name, experiment = unique("empty"), unique("empty")
    table(400).to_parquet(tmp_path / "train.parquet", index=False)
    trained = run(
        training.TrainingJob(
            inputs=datasets.ParquetReader(path=str(tmp_path / "train.parquet")),
            target="y",
            model_name=name,
            model={"KIND": kind, "params": {"n_estimators": 20.0}},
            **settings(tracking, experiment),
        )
    )
    batch = table(50).drop(columns="y").assign(x2=None)
    batch.to_parquet(tmp_path / "batch.parquet", index=False)
    batch.to_csv(tmp_path / "batch.csv", index=False)
    model = native_model(name, int(trained.model_ref.version))
    expected = model.predict(batch.assign(x2=np.nan))
    for source in ("batch.parquet", "batch.csv"):
        read = datasets.reader_for(str(tmp_path / source)).read()
        assert read["x2"].dtype == object and read["x2"].isna().all()  # as pyarrow gives it
        output = tmp_path / f"predicted-{source}.parquet"
        result = run(
            inference.InferenceJob(
                inputs=datasets.reader_for(str(tmp_path / source)),
                outputs=datasets.ParquetWriter(path=str(output)),
                finder=registries.RegistryFinder(name=name, alias_or_version=1),
                **settings(tracking, experiment),
            )
        )
        assert result.rows == 50
        predicted = pd.read_parquet(output)["prediction"].to_numpy()
        np.testing.assert_allclose(predicted, expected, rtol=1e-6)


def test_conform_reads_a_column_of_no_value_as_nan_for_a_number_only():
    signature = mlflow.models.infer_signature(
        pd.DataFrame({"x": [1.5], "n": [1], "t": ["a"], "f": np.array([1.0], dtype="float32")})
    )
    frame = pd.DataFrame({"x": [None, None], "n": [None, None], "t": [None, None], "f": [None] * 2})
    conformed = schemas.conform(frame, signature)
    assert conformed.dtypes.astype(str).to_dict() == {
        "x": "float64",
        "n": "float64",
        "t": "object",
        "f": "float32",
    }
    assert conformed[["x", "n", "f"]].isna().all().all()
