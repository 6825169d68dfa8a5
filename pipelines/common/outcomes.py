"""Outcomes: what a finished pipeline run produced, read back from its outputs or from MLflow.

A local run (kfp.local) is read from its run folder: each step's `executor_output.json` holds its
output artifacts and values. A run on a cluster is read from MLflow, where every step's job
records a run tagged with the KFP run id (`kfp.run_id`): the training run names the version it
registered, the prediction run where it wrote and how many rows.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
import typing as T

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from components.core import champions, lineage
from components.io import registries

# The pipeline steps whose outputs make a run's outcome.
TRAIN = "train"
SELECT = "select-trial"  # a tuning's step that registers the best trial
EVALUATE = "evaluate"
PREDICT = "predict"
PUBLISH = "publish-predictions"
MONITOR = "monitor"
# The monitor step's headline of the realized performance, on its MLflow run.
REALIZED_TAG = "monitoring.realized"
EXECUTOR_OUTPUT = "executor_output.json"
# The alias the pipelines promote to, and why evaluation refused a version (its version tags).
CHAMPION = "Champion"
REASONS_TAG = "evaluation.reasons"
# What KFP's launcher mounts an artifact's URI as, in a pod: the inverse gives the URI back.
_MOUNTS = {"/gcs/": "gs://", "/s3/": "s3://", "/minio/": "minio://"}


class OutcomeError(LookupError):
    """A finished run whose outputs cannot be found; says which."""


@dataclasses.dataclass(frozen=True)
class TrainedModel:
    """The model version a training run registered.

    Attributes:
        name: the registered model.
        version: the version registered.
        uri: `models:/<name>/<version>`.
        run_id: the MLflow run that trained it.
        metrics: its holdout metrics (`test_r2`, `test_f1_macro`...).
        passed: whether it passed evaluation (None when it was not evaluated).
        reasons: why it did not pass ("" when it passed or was not evaluated).
        champion: the version the Champion alias points to when read (None: no Champion).
        approval: its approval state when a manual promotion held it (awaiting, approved,
            rejected; "" otherwise).
    """

    name: str
    version: int
    uri: str
    run_id: str
    metrics: dict[str, float]
    passed: bool | None
    reasons: str = ""
    champion: int | None = None
    approval: str = ""

    def story(self) -> str:
        """`bike-sharing v2 registered (test rmse 64.15); not promoted: ...; v1 serves`."""
        figures = ", ".join(f"{k.replace('_', ' ')} {v:.4g}" for k, v in self.metrics.items())
        text = f"{self.name} v{self.version} registered" + (f" ({figures})" if figures else "")
        if self.champion == self.version:
            return f"{text}; promoted: Champion is now v{self.version}"
        serving = f"Champion v{self.champion} serves" if self.champion else "no Champion serves"
        if self.passed is False:
            return f"{text}; not promoted: {self.reasons or 'it failed its evaluation'}; {serving}"
        if self.approval == "awaiting":
            command = f"model approve {self.name} {self.version}"
            return f"{text}; awaiting approval (`{command}`); {serving}"
        return f"{text}; not promoted; {serving}"


@dataclasses.dataclass(frozen=True)
class Predictions:
    """The predictions a run published.

    Attributes:
        uri: the predictions Dataset: a file, or a folder of parts with its manifest.
        rows: rows predicted.
        model_name: the registered model that predicted them ("" for a model given by URI).
        model_version: its version (None for a model given by URI).
    """

    uri: str
    rows: int
    model_name: str
    model_version: int | None

    def story(self) -> str:
        """`17,379 rows predicted with bike-sharing v1`."""
        model = f"{self.model_name} v{self.model_version}" if self.model_version else "the model"
        return f"{self.rows:,} rows predicted with {model}"


@dataclasses.dataclass(frozen=True)
class LifecycleOutcome:
    """What a lifecycle run produced: the version trained, and the predictions made.

    Attributes:
        model: the version trained and registered.
        predictions: the predictions of the Champion after promotion.
    """

    model: TrainedModel
    predictions: Predictions

    def story(self) -> str:
        """The version trained and what became of it, then the predictions and their version."""
        return f"{self.model.story()}; {self.predictions.story()}"


@dataclasses.dataclass(frozen=True)
class Monitored:
    """What a monitoring run measured: the realized performance of a version.

    Attributes:
        model: the version compared with (`bike-sharing v1`; "" when unknown).
        headline: the realized performance against the holdout's, in one line.
    """

    model: str
    headline: str

    def story(self) -> str:
        """`bike-sharing v1 realized rmse 81.3 over 2,412 labelled rows, ...`."""
        return f"{self.model or 'the model'} realized {self.headline}"


Outcome = TrainedModel | Predictions | LifecycleOutcome | Monitored


def to_dict(outcome: Outcome) -> dict[str, T.Any]:
    """The outcome as plain JSON-ready data, with its kind."""
    return {"kind": type(outcome).__name__, **dataclasses.asdict(outcome)}


def from_dict(data: T.Mapping[str, T.Any]) -> Outcome:
    """Read an outcome back from `to_dict`'s data."""
    fields = {key: value for key, value in data.items() if key != "kind"}
    if data.get("kind") == "LifecycleOutcome":
        return LifecycleOutcome(
            model=TrainedModel(**fields["model"]), predictions=Predictions(**fields["predictions"])
        )
    kinds: dict[str, type[TrainedModel] | type[Predictions] | type[Monitored]] = {
        "TrainedModel": TrainedModel,
        "Predictions": Predictions,
        "Monitored": Monitored,
    }
    kind = kinds.get(data.get("kind", ""))
    if kind is None:
        raise OutcomeError(f"unknown outcome kind {data.get('kind')!r}")
    return kind(**fields)


def tracking_uri() -> str:
    """The MLflow store: $MLFLOW_TRACKING_URI, else the local store that local runs use."""
    from components.io import services

    return os.environ.get("MLFLOW_TRACKING_URI") or services.default_tracking_uri()


def trained_model(name: str, version: int, uri: str | None = None) -> TrainedModel:
    """A registered version, with its training run's metrics and its evaluation verdict.

    Args:
        name: the registered model.
        version: the version.
        uri: the MLflow store (default: `tracking_uri()`).
    """
    client = MlflowClient(uri or tracking_uri(), uri or tracking_uri())
    found = client.get_model_version(name, str(version))
    metrics = {}
    if found.run_id:
        run = client.get_run(found.run_id)
        metrics = {key: value for key, value in run.data.metrics.items() if key.startswith("test_")}
    tags = found.tags or {}
    verdict = tags.get(registries.PASSED_TAG)
    try:
        champion: int | None = int(client.get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:  # no Champion yet
        champion = None
    return TrainedModel(
        name=name,
        version=int(version),
        uri=registries.uri_for(name, int(version)),
        run_id=found.run_id or "",
        metrics=metrics,
        passed=None if verdict is None else verdict.lower() == "true",
        reasons=tags.get(REASONS_TAG, ""),
        champion=champion,
        approval=tags.get(champions.APPROVAL_TAG, ""),
    )


# %% LOCAL RUNS


def from_local_run(pipeline: str, run_dir: pathlib.Path) -> Outcome:
    """What a successful kfp.local run of `pipeline` produced, from its run folder.

    Raises:
        OutcomeError: a step whose outputs make the outcome left none.
    """
    run_dir = pathlib.Path(run_dir)
    if pipeline == "training":
        return _local_model(run_dir)
    if pipeline == "tuning":
        return _local_model(run_dir, SELECT)
    if pipeline == "inference":
        return _local_predictions(run_dir)
    if pipeline == "monitoring":
        return _local_monitored(run_dir)
    return LifecycleOutcome(model=_local_model(run_dir), predictions=_local_predictions(run_dir))


def _executor_output(run_dir: pathlib.Path, task: str) -> dict[str, T.Any] | None:
    """The task's outputs; a task of a branch is `<task>-<n>` (the lifecycle's `predict-2`)."""
    for folder in sorted(run_dir.glob(f"{task}*")):
        path = folder / EXECUTOR_OUTPUT
        if re.fullmatch(rf"{re.escape(task)}(-\d+)?", folder.name) and path.is_file():
            return T.cast(dict[str, T.Any], json.loads(path.read_text()))
    return None


def versions(run_dir: pathlib.Path) -> dict[str, str]:
    """The model version each task of a local run used, by task folder: `bike-sharing v2`.

    A task's version is in its outputs (a `version` it returned, or its artifacts' metadata);
    a task that says none (evaluate, promote) worked on the version that `train` registered.
    """
    found = {}
    for folder in sorted(pathlib.Path(run_dir).iterdir()):
        output = _executor_output(run_dir, folder.name) if folder.is_dir() else None
        if output is not None and (described := _version_of(output)):
            found[folder.name] = described
    trained = found.get(TRAIN)
    if trained:
        for folder in pathlib.Path(run_dir).iterdir():
            if folder.is_dir() and folder.name not in found:
                found[folder.name] = trained
    return found


def _version_of(output: T.Mapping[str, T.Any]) -> str:
    for artifacts in output.get("artifacts", {}).values():
        for artifact in artifacts.get("artifacts", []):
            metadata = artifact.get("metadata", {})
            name = metadata.get(f"{lineage.PREFIX}model_name") or metadata.get("name")
            version = metadata.get(f"{lineage.PREFIX}model_version") or metadata.get("version")
            if name and version:
                return f"{name} v{int(float(version))}"
    return ""


def _artifact(output: T.Mapping[str, T.Any], name: str) -> dict[str, T.Any]:
    return output["artifacts"][name]["artifacts"][0]


def _local_model(run_dir: pathlib.Path, task: str = TRAIN) -> TrainedModel:
    output = _executor_output(run_dir, task)
    if output is None:
        raise OutcomeError(f"the run in {run_dir} has no output of step {task}")
    model = _artifact(output, "model")["metadata"]
    return trained_model(model["name"], int(model["version"]))


def _local_predictions(run_dir: pathlib.Path) -> Predictions:
    from components.io import datasets, shards

    published = _executor_output(run_dir, PUBLISH)
    if published is not None:  # a sharded prediction: its manifest says it all
        uri = _artifact(published, "predictions")["uri"]
        manifest = shards.read_manifest(*datasets.resolve(uri))
        if manifest is None:
            raise OutcomeError(f"the published predictions {uri} hold no manifest")
        name = manifest.model.rsplit(" v", 1)[0] if manifest.model_version else ""
        return Predictions(uri, manifest.rows, name, manifest.model_version)
    output = _executor_output(run_dir, PREDICT)
    if output is None:
        raise OutcomeError(f"the run in {run_dir} has no output of step {PREDICT} or {PUBLISH}")
    artifact = _artifact(output, "predictions")
    version = int(output["parameterValues"]["version"])
    name = artifact["metadata"].get(f"{lineage.PREFIX}model_name", "")
    return Predictions(
        artifact["uri"], int(output["parameterValues"]["rows"]), name, version or None
    )


def _local_monitored(run_dir: pathlib.Path) -> Monitored:
    output = _executor_output(run_dir, MONITOR)
    if output is None:
        raise OutcomeError(f"the run in {run_dir} has no output of step {MONITOR}")
    table = _artifact(output, "performance_table")
    return Monitored(
        model=str(table.get("metadata", {}).get("model", "")),
        headline=str(output["parameterValues"]["Output"]),
    )


# %% CLUSTER RUNS


def from_mlflow(pipeline: str, kfp_run_id: str, uri: str | None = None) -> Outcome:
    """What a successful KFP run of `pipeline` produced, from its steps' MLflow runs.

    Args:
        pipeline: training, inference, lifecycle, monitoring or tuning.
        kfp_run_id: the KFP run id, which every step put on its MLflow run.
        uri: the MLflow store the steps used (default: `tracking_uri()`).

    Raises:
        OutcomeError: no step of the run recorded what the outcome needs.
    """
    uri = uri or tracking_uri()
    client = MlflowClient(uri, uri)
    experiments = [e.experiment_id for e in client.search_experiments(max_results=1000)]
    runs = client.search_runs(
        experiments,
        filter_string=f"tags.`{lineage.KFP_RUN_TAG}` = '{_quoted(kfp_run_id)}'",
        max_results=1000,
    )
    finished = [run for run in runs if run.info.status == "FINISHED"]
    if pipeline == "training":
        return _mlflow_model(finished, kfp_run_id, uri)
    if pipeline == "tuning":
        return _mlflow_model(finished, kfp_run_id, uri, "TrialSelectionJob", SELECT)
    if pipeline == "inference":
        return _mlflow_predictions(finished, kfp_run_id)
    if pipeline == "monitoring":
        return _mlflow_monitored(finished, kfp_run_id)
    return LifecycleOutcome(
        model=_mlflow_model(finished, kfp_run_id, uri),
        predictions=_mlflow_predictions(finished, kfp_run_id),
    )


def _of_step(runs: T.Sequence[T.Any], job: str, task: str) -> T.Any | None:
    from components.jobs import base

    for run in runs:
        tags = run.data.tags
        if tags.get(base.JOB_TAG) == job and tags.get(lineage.KFP_TASK_TAG) == task:
            return run
    return None


def _mlflow_model(
    runs: T.Sequence[T.Any],
    kfp_run_id: str,
    uri: str,
    job: str = "TrainingJob",
    task: str = TRAIN,
) -> TrainedModel:
    run = _of_step(runs, job, task)
    if run is None or "model_version" not in run.data.tags:
        raise OutcomeError(f"no finished training step recorded in MLflow for run {kfp_run_id}")
    return trained_model(run.data.tags["model_name"], int(run.data.tags["model_version"]), uri)


def _mlflow_predictions(runs: T.Sequence[T.Any], kfp_run_id: str) -> Predictions:
    run = _of_step(runs, "PublicationJob", PUBLISH) or _of_step(runs, "InferenceJob", PREDICT)
    if run is None:
        raise OutcomeError(f"no finished prediction step recorded in MLflow for run {kfp_run_id}")
    tags = run.data.tags
    version = tags.get("model_version") or ""
    name = tags.get("model_name") or ""
    return Predictions(
        uri=artifact_uri(tags.get("outputs", "")),
        rows=int(run.data.metrics.get("rows_predicted", 0)),
        model_name="" if name == "None" else name,
        model_version=int(version) if version.isdigit() else None,
    )


def _mlflow_monitored(runs: T.Sequence[T.Any], kfp_run_id: str) -> Monitored:
    run = _of_step(runs, "MonitoringJob", MONITOR)
    if run is None or REALIZED_TAG not in run.data.tags:
        raise OutcomeError(f"no finished monitoring step recorded in MLflow for run {kfp_run_id}")
    tags = run.data.tags
    model = f"{tags['model_name']} v{tags['model_version']}" if tags.get("model_version") else ""
    return Monitored(model=model, headline=tags[REALIZED_TAG])


def artifact_uri(path: str) -> str:
    """An artifact's URI from the path a pod saw it at (`/minio/b/k` -> `minio://b/k`)."""
    for mount, scheme in _MOUNTS.items():
        if path.startswith(mount):
            return scheme + path[len(mount) :]
    return path


def _quoted(text: str) -> str:
    """A value safe inside MLflow's single-quoted filter strings."""
    return text.replace("\\", "\\\\").replace("'", "\\'")
