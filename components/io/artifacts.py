"""Artifacts: fill KFP output artifacts (paths and metadata) from job results, without KFP."""

from __future__ import annotations

import json
import math
import pathlib
import shutil
import typing as T

from components.core import drift, reports
from components.io import monitoring, registries


def write_text(artifact: T.Any, text: str) -> None:
    """Write a text artifact (Markdown, HTML) to its path."""
    path = pathlib.Path(artifact.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def describe_model(artifact: T.Any, ref: registries.ModelRef) -> None:
    """Record a registered model on a Model artifact: metadata for the UI, a JSON file for tools.

    The model itself stays in MLflow; the artifact points at it.
    """
    facts = {"mlflow_uri": ref.uri, "name": ref.name, "version": ref.version, "run_id": ref.run_id}
    artifact.metadata.update({key: value for key, value in facts.items() if value is not None})
    write_text(artifact, json.dumps(facts, indent=2))


def copy_data(source: str, destination: str) -> None:
    """Copy an artifact's data (a file, or a folder of parts) to another artifact's path."""
    if pathlib.Path(source).is_dir():
        shutil.copytree(source, destination)
    else:
        shutil.copyfile(source, destination)


def log_metrics(artifact: T.Any, scores: T.Mapping[str, float], prefix: str = "") -> None:
    """Log scalar metrics on a Metrics artifact (shown in the Kubeflow UI).

    A metric that is not a finite number (sklearn's r2 of one row is NaN) is left out: an
    artifact's metadata is a protobuf Struct, which cannot hold NaN or infinities, and one such
    value fails the whole step when KFP writes its outputs. The step's MLflow run keeps it.
    """
    for name, value in scores.items():
        if math.isfinite(float(value)):
            artifact.log_metric(prefix + name, float(value))


# Metadata key of a Dataset artifact that only points at data stored elsewhere (see docs/data.md).
EXTERNAL_URI = "external_uri"


def input_location(data: str, dataset: T.Any | None) -> str:
    """Where a step reads its input: the `data` path or URI, or a connected Dataset artifact.

    A Dataset artifact is read from its local path (KFP's launcher has copied it into the pod),
    unless its metadata names an `external_uri`: then the data is streamed from there, and the
    artifact itself is only a small pointer.

    Args:
        data: a path or URI given as a parameter ("" when none).
        dataset: the Dataset artifact connected to the step, or None.

    Raises:
        ValueError: both or neither were given.
    """
    if dataset is not None and data:
        raise ValueError(
            f"give the input either as data ({data!r}) or as a Dataset artifact, not both"
        )
    if dataset is not None:
        return str(dataset.metadata.get(EXTERNAL_URI) or dataset.path)
    if not data:
        raise ValueError("no input: set data (a path or URI) or connect a Dataset artifact")
    return data


def write_monitoring(metrics: T.Any, table: T.Any, report: T.Any, result: T.Any) -> None:
    """Fill a prediction's monitoring outputs from its result: scores, drift table, HTML report.

    Each is written also when nothing was checked (KFP expects every output): the metrics are
    then empty, the table has no rows and the page says why.

    Args:
        metrics: the Metrics artifact (`drift_*` and `challenger_*` scores).
        table: the Dataset artifact (one row per feature, Parquet).
        report: the HTML artifact.
        result: the InferenceResult (its drift, shadow and notes).
    """
    log_metrics(metrics, monitoring.metrics(result.drift, result.shadow, result.estimate))
    empty = drift.DriftReport(rows=0, reference_rows=0, thresholds=drift.Thresholds(), columns=[])
    frame = (result.drift or empty).table()
    pathlib.Path(table.path).parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(table.path, index=False)
    page = result.monitoring_page  # rendered once, by the job, as it is kept in MLflow
    if not page:
        notes = result.notes or ["Drift was not checked (drift_policy=off)."]
        page = reports.drift_page(result.model_ref.describe(), None, None, notes)
    write_text(report, page)
