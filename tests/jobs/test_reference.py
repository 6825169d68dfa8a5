"""Integration: a version trained elsewhere gets a reference, then its batches are checked.

A LightGBM classifier is registered from test code as a notebook would (`mlflow.lightgbm`, with
a signature, alias Champion). Before: predicting a batch checks neither drift nor performance,
and says how to store a reference. `model reference` (the CLI, then the job) profiles labelled
rows with the model's own predictions and fits the performance estimator on them, stored with
the model's run; after it, a shifted batch is reported as drifted and its performance estimated.
A second reference is refused unless replacing; rows without the target column, or a model name
that does not exist, are refused with the culprit named and nothing stored.
"""

from __future__ import annotations

import lightgbm
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from components.io import datasets, references, registries
from components.jobs.inference import InferenceJob
from components.jobs.reference import ReferenceError, ReferenceJob
from pipelines.cli import main
from tests.jobs.helpers import register_as_a_notebook, run, settings, unique

pytestmark = pytest.mark.integration


def rows(count: int, seed: int) -> pd.DataFrame:
    """Customers with a churn label that two of their three columns decide."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "monthly charges": rng.uniform(10, 100, count),
            "tenure": rng.uniform(0, 72, count),
            "contract": rng.choice(["month", "year", "two year"], count),
        }
    )
    churned = (frame["contract"] == "month") & (frame["monthly charges"] > 50)
    frame["churned"] = np.where(churned ^ (rng.random(count) < 0.05), "yes", "no")
    return frame


@pytest.fixture(scope="module")
def notebook_model(mlflow_server, tmp_path_factory) -> dict[str, str]:
    """A LightGBM classifier registered by hand, its validation rows and a batch to score."""
    mlflow.set_tracking_uri(mlflow_server)
    train = rows(1500, seed=0)
    features = train.drop(columns="churned").astype({"contract": "category"})
    model = lightgbm.LGBMClassifier(n_estimators=30, verbose=-1).fit(features, train["churned"])
    name = unique("notebook-churn")
    mlflow.set_experiment(unique("notebook"))
    version = register_as_a_notebook(name, "lightgbm", model, features)
    MlflowClient().set_registered_model_alias(name, "Champion", str(version))
    folder = tmp_path_factory.mktemp("reference")
    rows(600, seed=1).to_csv(folder / "validation.csv", index=False)
    shifted = rows(400, seed=2).drop(columns="churned")
    shifted["monthly charges"] += 60  # every batch row above the training range
    shifted.to_parquet(folder / "batch.parquet", index=False)
    return {"name": name, "folder": str(folder)}


def predict(tracking: str, notebook_model: dict[str, str], output: str) -> object:
    return run(
        InferenceJob(
            inputs=datasets.ParquetReader(path=f"{notebook_model['folder']}/batch.parquet"),
            outputs=datasets.ParquetWriter(path=output),
            finder=registries.RegistryFinder(name=notebook_model["name"]),
            **settings(tracking, unique("reference")),
        )
    )


def test_a_reference_makes_predict_check_a_notebook_models_batches(
    tracking, notebook_model, tmp_path, capsys
):
    name, folder = notebook_model["name"], notebook_model["folder"]
    before = predict(tracking, notebook_model, str(tmp_path / "before"))
    assert before.drift is None and before.estimate is None
    assert any(f"`model reference {name} --data ROWS --target COLUMN`" in n for n in before.notes)

    code = main(
        ["model", "reference", name, "--data", f"{folder}/validation.csv", "--target", "churned"]
    )

    assert code == 0
    assert capsys.readouterr().out.strip() == (
        f"Stored a reference profile and a performance estimator of 3 features from 600 rows "
        f"with {name} v1: predict now checks drift and the estimated performance of each batch."
    )
    client = MlflowClient()
    ref = registries.RegistryFinder(name=name).find(client)
    profile = references.load_profile(client, ref)
    assert profile is not None and profile.task == "classification" and profile.rows == 600
    assert sorted(profile.features) == ["contract", "monthly charges", "tenure"]
    assert profile.prediction is not None  # the model's own predictions, profiled
    assert references.load_estimator(client, ref) is not None

    after = predict(tracking, notebook_model, str(tmp_path / "after"))
    assert after.drift is not None
    assert [column.column for column in after.drift.drifted] == ["monthly charges"]
    assert after.estimate is not None
    assert not any("no reference profile" in note for note in after.notes)


def test_a_second_reference_or_a_bad_input_is_refused_and_stores_nothing(
    tracking, notebook_model, tmp_path, capsys
):
    name, folder = notebook_model["name"], notebook_model["folder"]
    client = MlflowClient()
    ref = registries.RegistryFinder(name=name).find(client)
    job = {
        "inputs": datasets.CSVReader(path=f"{folder}/validation.csv"),
        "model_name": name,
        **settings(tracking, unique("reference")),
    }
    if references.load_profile(client, ref) is None:  # this test may run alone
        run(ReferenceJob(target="churned", **job))
    stored = references.run_text(client, str(ref.run_id), references.PROFILE_PATH)

    with pytest.raises(ReferenceError, match="has a reference already .*add --replace"):
        run(ReferenceJob(**job))
    # Without the target column the rows cannot fit an estimator: the target is named.
    assert main(["model", "reference", name, "--data", f"{folder}/batch.parquet",
                 "--target", "churned", "--replace"]) == 2  # fmt: skip
    assert "column 'churned': missing, the target column" in capsys.readouterr().err
    assert main(["model", "reference", "no-such-model", "--data", f"{folder}/batch.parquet"]) == 2
    assert "no registered model named 'no-such-model'" in capsys.readouterr().err
    assert references.run_text(client, str(ref.run_id), references.PROFILE_PATH) == stored

    # Replacing, without a target: the profile of the batch alone, the estimator kept.
    replaced = run(ReferenceJob(**{**job, "inputs": datasets.ParquetReader(
        path=f"{folder}/batch.parquet")}, replace=True))  # fmt: skip
    assert replaced.rows == 400 and not replaced.estimator
    assert references.load_profile(client, ref).rows == 400
    assert references.load_estimator(client, ref) is not None


REGISTER = """
import sys, mlflow, lightgbm, pandas as pd
from tests.jobs.helpers import register_as_a_notebook
from tests.jobs.test_reference import rows
mlflow.set_tracking_uri(sys.argv[1])
train = rows(300, seed=0)
features = train.drop(columns="churned").astype({"contract": "category"})
model = lightgbm.LGBMClassifier(n_estimators=5, verbose=-1).fit(features, train["churned"])
register_as_a_notebook("local-churn", "lightgbm", model, features)
"""


def test_the_command_finds_a_model_of_the_local_store_from_any_folder(tmp_path):
    """A fresh process, as a user runs it: no MLFLOW_TRACKING_URI, the local store of
    LIFECYCLE_HOME. The job loaded the model through MLflow's default store instead (a new
    `mlflow.db` in the working folder): "Registered Model with name=... not found"."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    store = f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"
    (home / "mlflow").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(LIFECYCLE_HOME=str(home), PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, "-c", REGISTER, store], env=env, cwd=ROOT, check=True)
    rows(200, seed=1).to_csv(work / "validation.csv", index=False)

    done = subprocess.run(
        [sys.executable, "-m", "pipelines", "model", "reference", "local-churn",
         "--version", "1", "--data", "validation.csv", "--target", "churned"],
        env=env, cwd=work, capture_output=True, text=True, timeout=300,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("Stored a reference profile and a performance estimator")
    assert not (work / "mlflow.db").exists()
