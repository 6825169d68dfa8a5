"""Integration: predictions and explanations carry their lineage in the files' own metadata.

A small regressor is trained and registered on the session's real MLflow server; the inference
and explanations jobs then run as a pipeline step would (with the KFP run id in their run tags),
and every lineage field read back from the Parquet footers is checked against the registry and
the jobs' own MLflow runs, found through the MLflow client by their tags.
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import json
import pathlib
import typing as T

import pandas as pd
import pyarrow.parquet as pq
import pytest
from mlflow.entities import Run

from components.core import lineage, models
from components.core.model_refs import ModelRef
from components.io import datasets, registries
from components.jobs import explanations, inference, training
from tests.jobs.helpers import BIKE_CATEGORICAL, BIKE_EXCLUDE, BIKE_TARGET, run, settings, unique

pytestmark = pytest.mark.integration

KFP_RUN = "run-123"
ROWS = 200


@dataclasses.dataclass(frozen=True)
class Registered:
    """The trained version, its job settings and the rows to predict."""

    model_ref: ModelRef
    common: dict[str, T.Any]
    inputs: pathlib.Path


@pytest.fixture(scope="module")
def registered(mlflow_server, bike, tmp_path_factory) -> Registered:
    """A small regressor trained on a slice of the bike data, registered as v1."""
    root = tmp_path_factory.mktemp("lineage")
    training_rows, inputs = root / "training.parquet", root / "inputs.parquet"
    bike.iloc[:3000].to_parquet(training_rows, index=False)
    bike.iloc[5000 : 5000 + ROWS].to_parquet(inputs, index=False)
    common = settings(mlflow_server, unique("lineage"))
    trained = run(
        training.TrainingJob(
            inputs=datasets.ParquetReader(path=str(training_rows)),
            target=BIKE_TARGET,
            model=models.HistGradientBoostingRegressorModel(params={"max_iter": 10}),
            model_name=unique("lineage"),
            exclude=BIKE_EXCLUDE,
            categorical=list(BIKE_CATEGORICAL),
            **common,
        )
    )
    return Registered(trained.model_ref, common, inputs)


def finder(registered: Registered) -> registries.RegistryFinder:
    ref = registered.model_ref
    return registries.RegistryFinder(name=ref.name, alias_or_version=ref.version)


def job_runs(registered: Registered, kind: str, tags: dict[str, str]) -> list[Run]:
    """The MLflow runs of a job, found by their tags (as a user tracing a file would)."""
    service = registered.common["mlflow_service"]
    client = service.client()
    experiment = client.get_experiment_by_name(service.experiment_name)
    wanted = {"job.kind": kind, **tags}
    query = " and ".join(f"tags.`{key}` = '{value}'" for key, value in wanted.items())
    return client.search_runs([experiment.experiment_id], filter_string=query)


def footer_lineage(path: pathlib.Path) -> dict[str, str]:
    """The lineage pairs as any pyarrow user reads them: the Parquet schema's metadata."""
    metadata = pq.read_schema(path).metadata
    assert b"pandas" in metadata, f"{path.name}: pandas' own metadata is gone"
    return {
        key.decode(): value.decode()
        for key, value in metadata.items()
        if key.startswith(lineage.PREFIX.encode())
    }


def expected_lineage(
    registered: Registered, job: Run, kind: str, task: str, kfp_run: str
) -> dict[str, str]:
    """Every lineage field but the creation time, from the registry and the job's run."""
    ref = registered.model_ref
    return {
        "lineage.job_kind": kind,
        "lineage.model_name": ref.name,
        "lineage.model_version": str(ref.version),
        "lineage.model_uri": f"models:/{ref.name}/{ref.version}",
        "lineage.model_run_id": ref.run_id,
        "lineage.mlflow_run_id": job.info.run_id,
        "lineage.mlflow_experiment_id": job.info.experiment_id,
        "lineage.mlflow_tracking_uri": registered.common["mlflow_service"].tracking_uri,
        "lineage.kfp_run_id": kfp_run,
        "lineage.kfp_task": task,
        "lineage.inputs": str(registered.inputs),
        "lineage.project_version": importlib.metadata.version("kfp-model-lifecycle"),
    }


def assert_lineage(found: dict[str, str], expected: dict[str, str], since: datetime.datetime):
    """The found pairs are exactly the expected ones, with a creation time during the test."""
    created = datetime.datetime.fromisoformat(found.pop("lineage.created_at"))
    assert created.utcoffset() == datetime.timedelta(0), "created_at must be UTC"
    # Written with whole seconds: the lower bound is the test's start, truncated the same way.
    assert since.replace(microsecond=0) <= created <= datetime.datetime.now(datetime.UTC)
    assert found == expected


def test_predictions_carry_their_lineage(tracking, registered, tmp_path):
    since = datetime.datetime.now(datetime.UTC)
    tags = {"kfp.run_id": KFP_RUN, "kfp.task": "predict"}
    output = tmp_path / "predictions.parquet"
    result = run(
        inference.InferenceJob(
            inputs=datasets.ParquetReader(path=str(registered.inputs)),
            outputs=datasets.ParquetWriter(path=str(output)),
            finder=finder(registered),
            passthrough=["instant"],
            run_tags=tags,
            **registered.common,
        )
    )
    [job] = job_runs(registered, "InferenceJob", tags)
    found = footer_lineage(output)
    expected = expected_lineage(registered, job, "InferenceJob", "predict", KFP_RUN)
    assert result.lineage == lineage.Lineage.from_metadata(found)
    assert_lineage(found, expected, since)
    # The rows read back as they would without lineage.
    assert len(pd.read_parquet(output)) == ROWS == result.rows
    # The job's run points the other way: to the model, the input and the output.
    assert job.data.tags["model_uri"] == expected["lineage.model_uri"]
    assert job.data.tags["inputs"] == str(registered.inputs)
    assert job.data.tags["outputs"] == str(output)


def test_both_explanations_carry_their_lineage(tracking, registered, tmp_path):
    since = datetime.datetime.now(datetime.UTC)
    tags = {"kfp.run_id": KFP_RUN, "kfp.task": "explain"}
    models_path, samples_path = tmp_path / "models.parquet", tmp_path / "samples.parquet"
    result = run(
        explanations.ExplanationsJob(
            inputs_samples=datasets.ParquetReader(path=str(registered.inputs)),
            models_explanations=datasets.ParquetWriter(path=str(models_path)),
            samples_explanations=datasets.ParquetWriter(path=str(samples_path)),
            finder=finder(registered),
            max_samples=50,
            run_tags=tags,
            **registered.common,
        )
    )
    [job] = job_runs(registered, "ExplanationsJob", tags)
    expected = expected_lineage(registered, job, "ExplanationsJob", "explain", KFP_RUN)
    for path in (models_path, samples_path):
        found = footer_lineage(path)
        assert result.lineage == lineage.Lineage.from_metadata(found), path.name
        assert_lineage(found, expected, since)
    assert len(pd.read_parquet(samples_path)) == 50
    assert job.data.tags["samples_explanations"] == str(samples_path)


def test_outside_a_pipeline_csv_predictions_have_a_lineage_sidecar(tracking, registered, tmp_path):
    """No KFP run: its id is empty. CSV cannot hold metadata: the sidecar file holds it."""
    since = datetime.datetime.now(datetime.UTC)
    output = tmp_path / "predictions.csv"
    writer = datasets.CSVWriter(path=str(output))
    run(
        inference.InferenceJob(
            inputs=datasets.ParquetReader(path=str(registered.inputs)),
            outputs=writer,
            finder=finder(registered),
            **registered.common,
        )
    )
    sidecar = tmp_path / "_predictions.csv.metadata.json"
    assert sorted(p.name for p in tmp_path.iterdir()) == [sidecar.name, output.name]
    # Every other job of this module runs with a KFP run id: this run is the one without.
    runs = job_runs(registered, "InferenceJob", {})
    [job] = [found for found in runs if "kfp.run_id" not in found.data.tags]
    expected = expected_lineage(registered, job, "InferenceJob", "", "")
    assert_lineage(json.loads(sidecar.read_text()), expected, since)
    assert len(datasets.CSVReader(path=str(output)).read()) == ROWS
