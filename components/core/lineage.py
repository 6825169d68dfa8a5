"""Lineage: where an output came from (model, runs, input), kept as metadata in the output."""

from __future__ import annotations

import dataclasses
import datetime
import functools
import importlib.metadata
import typing as T

from components.utils import secrets

if T.TYPE_CHECKING:
    from components.core.model_refs import ModelRef

# Every lineage key starts with this prefix: `lineage.model_uri`, `lineage.kfp_run_id`, ...
PREFIX = "lineage."
# The run tags a pipeline step puts on its job's MLflow run (see components.steps.step_settings).
KFP_RUN_TAG = "kfp.run_id"
KFP_TASK_TAG = "kfp.task"
# The distribution whose version is recorded.
DISTRIBUTION = "kfp-model-lifecycle"


@dataclasses.dataclass(frozen=True)
class Lineage:
    """Where an output file came from, written into the file as `lineage.<field>` pairs.

    One flat key per field, each value text (Parquet key-value metadata holds text only), so
    that any tool shows it without knowing this project: pyarrow
    (`pyarrow.parquet.read_schema(path).metadata[b"lineage.model_uri"]`), DuckDB
    (`SELECT * FROM parquet_kv_metadata('predictions.parquet')`), `parquet-tools meta`, or
    `Lineage.from_metadata(writer.read_metadata())` here. CSV outputs keep the same pairs in a
    JSON sidecar file beside them (see `datasets.CSVWriter`). Every field is always written; an
    unknown one (no KFP run outside a pipeline, no version for a model given by a runs:/ URI)
    is the empty string.

    Attributes:
        job_kind: the job that wrote the file (InferenceJob, ExplanationsJob).
        model_name: the registered model's name.
        model_version: its registered version.
        model_uri: the URI the model was loaded from (models:/name/version, runs:/...).
        model_run_id: the MLflow run that logged the model (its training run).
        mlflow_run_id: the MLflow run of the job that wrote the file.
        mlflow_experiment_id: that run's experiment.
        mlflow_tracking_uri: the tracking server of those runs, credentials masked.
        kfp_run_id: the KFP pipeline run that ran the job.
        kfp_task: the pipeline step that ran it (predict, explain).
        inputs: the input data's location, credentials masked.
        created_at: when the job started writing, UTC, ISO 8601.
        project_version: the version of this package that wrote it.
    """

    job_kind: str
    model_name: str
    model_version: str
    model_uri: str
    model_run_id: str
    mlflow_run_id: str
    mlflow_experiment_id: str
    mlflow_tracking_uri: str
    kfp_run_id: str
    kfp_task: str
    inputs: str
    created_at: str
    project_version: str

    def metadata(self) -> dict[str, str]:
        """The key-value pairs written into an output, e.g. `lineage.model_name`."""
        return {f"{PREFIX}{key}": value for key, value in dataclasses.asdict(self).items()}

    @classmethod
    def from_metadata(cls, metadata: T.Mapping[str | bytes, str | bytes]) -> Lineage:
        """Read the lineage back from an output's metadata (text or pyarrow's bytes).

        Args:
            metadata: e.g. `pyarrow.parquet.read_schema(path).metadata`; other keys are ignored.

        Returns:
            The lineage.

        Raises:
            ValueError: a lineage key is missing; the message names the missing keys.
        """
        pairs = {_text(key): _text(value) for key, value in metadata.items()}
        fields = [field.name for field in dataclasses.fields(cls)]
        if missing := [f"{PREFIX}{name}" for name in fields if f"{PREFIX}{name}" not in pairs]:
            raise ValueError(f"no lineage in this metadata: missing {', '.join(missing)}")
        return cls(**{name: pairs[f"{PREFIX}{name}"] for name in fields})


def of_job(
    job_kind: str,
    model_ref: ModelRef,
    inputs: str,
    *,
    mlflow_run_id: str,
    mlflow_experiment_id: str,
    tracking_uri: str,
    run_tags: T.Mapping[str, str],
    now: datetime.datetime | None = None,
) -> Lineage:
    """The lineage of what a job writes now.

    Args:
        job_kind: the job's KIND.
        model_ref: the model it found and loaded.
        inputs: the input location (path or URI); credentials are masked here.
        mlflow_run_id: the job's MLflow run ("" when it records none).
        mlflow_experiment_id: that run's experiment ("" when none).
        tracking_uri: the tracking server; credentials are masked here.
        run_tags: the job's run tags, where a pipeline step puts the KFP run id and task.
        now: the creation time (the current UTC time when None).

    Returns:
        The lineage, every field text.
    """
    created = (now or datetime.datetime.now(datetime.UTC)).astimezone(datetime.UTC)
    return Lineage(
        job_kind=job_kind,
        model_name=model_ref.name or "",
        model_version="" if model_ref.version is None else str(model_ref.version),
        model_uri=secrets.redact(model_ref.uri),
        model_run_id=model_ref.run_id or "",
        mlflow_run_id=mlflow_run_id,
        mlflow_experiment_id=mlflow_experiment_id,
        mlflow_tracking_uri=secrets.redact(tracking_uri),
        kfp_run_id=run_tags.get(KFP_RUN_TAG, ""),
        kfp_task=run_tags.get(KFP_TASK_TAG, ""),
        inputs=secrets.redact(inputs),
        created_at=created.isoformat(timespec="seconds"),
        project_version=project_version(),
    )


@functools.cache
def project_version() -> str:
    """The installed version of this package ("" when it runs from a source tree only)."""
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return ""


def _text(value: str | bytes) -> str:
    """Text from metadata: pyarrow hands it over as bytes, JSON sidecars as text."""
    return value.decode() if isinstance(value, bytes) else value
