"""Parent runs: one MLflow run per pipeline run, under which every step's run is nested.

Steps run as separate processes (pods, kfp.local subprocesses), some at once (the shards of a
sharded prediction), and none of them knows whether it is the first: each finds the parent by
the KFP run id tag, or creates it. Two steps that both find none both create one. Every step
then decides only once the oldest candidate is `SETTLE_SECONDS` old, searching again: by then
every candidate that sorts before it is stored and seen, so every step keeps the same oldest
(start time, then run id), and a step whose own candidate lost deletes it before any run is
nested under it. (This holds while an MLflow call and the skew between the steps' clocks stay
under `SETTLE_SECONDS`; only the step that creates the parent, or one that finds it younger
than that, waits.)
"""

from __future__ import annotations

import json
import logging
import os
import time
import typing as T

from mlflow.entities import Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from components.core import lineage
from components.utils import secrets

logger = logging.getLogger(__name__)

# Tags of the parent run: it carries the KFP run id like its steps' runs, and says it is the
# pipeline run's own (readers of the steps' runs skip it).
PARENT_TAG = "kfp.pipeline_run"
PIPELINE_TAG = "kfp.pipeline"
# The pipeline's name (set at compile time on every step) and its parameters (JSON, set by
# the runner that knows them: `run --local`) reach the steps through their environment.
PIPELINE_VARIABLE = "LIFECYCLE_PIPELINE"
PARAMETERS_VARIABLE = "LIFECYCLE_PIPELINE_PARAMETERS"
# MLflow keeps at most this many characters of a param's value.
PARAM_LIMIT = 6000
# How old the oldest candidate parent must be before a step settles on it.
SETTLE_SECONDS = 1.0


def pipeline_name() -> str:
    """The pipeline this step belongs to ("" when no one said)."""
    return os.environ.get(PIPELINE_VARIABLE, "")


def pipeline_parameters() -> dict[str, str]:
    """The pipeline run's parameters as MLflow params ({} when no one said, or unreadable)."""
    text = os.environ.get(PARAMETERS_VARIABLE, "")
    if not text:
        return {}
    try:
        values = json.loads(text)
    except json.JSONDecodeError:
        logger.warning("%s is not JSON: the parent run gets no parameters", PARAMETERS_VARIABLE)
        return {}
    if not isinstance(values, dict):
        return {}
    return {str(key): param_value(value) for key, value in values.items()}


def param_value(value: T.Any) -> str:
    """A value as MLflow param text: strings as they are, the rest as JSON, within the limit."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return secrets.redact(text)[:PARAM_LIMIT]


def run_name(pipeline: str, kfp_run_id: str) -> str:
    """The parent's name: the KFP run id, led by the pipeline's name when it does not hold it."""
    if not pipeline or kfp_run_id.startswith(pipeline):
        return kfp_run_id
    return f"{pipeline} {kfp_run_id}"


def find(client: MlflowClient, experiment_id: str, kfp_run_id: str) -> list[T.Any]:
    """The parent runs of a KFP run, oldest first (ties by run id, so every step agrees)."""
    quoted = kfp_run_id.replace("'", "\\'")
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{lineage.KFP_RUN_TAG}` = '{quoted}' and tags.`{PARENT_TAG}` = 'true'",
        max_results=100,
    )
    return sorted(runs, key=lambda run: (run.info.start_time, run.info.run_id))


def find_or_create(client: MlflowClient, experiment_id: str, kfp_run_id: str) -> str:
    """The id of the pipeline run's parent run, created if no step created it yet.

    Its name, tags (KFP run id, pipeline name) and params (the pipeline's parameters) are set
    at creation; a later step adds the parameters only it was told of (MLflow keeps a param's
    first value and accepts the same one again).

    Args:
        client: the tracking client.
        experiment_id: the experiment of the steps' runs.
        kfp_run_id: the KFP run id.
    """
    pipeline = pipeline_name()
    parameters = pipeline_parameters()
    found = find(client, experiment_id, kfp_run_id)
    created = None
    if not found:
        tags = {lineage.KFP_RUN_TAG: kfp_run_id, PARENT_TAG: "true"}
        if pipeline:
            tags[PIPELINE_TAG] = pipeline
        created = client.create_run(
            experiment_id, run_name=run_name(pipeline, kfp_run_id), tags=tags
        ).info.run_id
        found = find(client, experiment_id, kfp_run_id)
    # Settle: decide once the oldest is old enough that every earlier candidate is seen.
    age = time.time() - found[0].info.start_time / 1000 if found else 0.0
    if not found or age < SETTLE_SECONDS:
        time.sleep(max(0.0, SETTLE_SECONDS - age))
        found = find(client, experiment_id, kfp_run_id)
    if not found:
        raise MlflowException(f"the parent run of KFP run {kfp_run_id} could not be found")
    parent = found[0]
    keeper = parent.info.run_id
    if created is not None and created != keeper:  # another step's came first: never ours
        client.delete_run(created)
        logger.info("parent run %s was created meanwhile; %s deleted", keeper, created)
    elif created is not None:
        logger.info("parent run %s of KFP run %s", keeper, kfp_run_id)
    known = parent.data.params
    missing = [Param(k, v) for k, v in parameters.items() if k not in known]
    if missing:
        try:
            for start in range(0, len(missing), 100):  # MLflow takes 100 params per call
                client.log_batch(keeper, params=missing[start : start + 100])
        except MlflowException as error:  # a step told of other values: the first ones stay
            logger.warning("parameters of parent run %s not updated: %s", keeper, error)
    if pipeline and PIPELINE_TAG not in parent.data.tags:
        client.log_batch(keeper, tags=[RunTag(PIPELINE_TAG, pipeline)])
    return str(keeper)


def end(client: MlflowClient, experiment_id: str, kfp_run_id: str, state: str) -> list[str]:
    """End the pipeline run's parent runs with the pipeline's state; return their ids.

    Args:
        client: the tracking client.
        experiment_id: the experiment of the steps' runs.
        kfp_run_id: the KFP run id.
        state: the pipeline's final state (SUCCEEDED, FAILED, CANCELED...).
    """
    status = {"SUCCEEDED": "FINISHED", "CANCELED": "KILLED"}.get(state, "FAILED")
    ended = []
    for run in find(client, experiment_id, kfp_run_id):
        if run.info.status == "RUNNING":
            client.set_terminated(run.info.run_id, status=status)
            ended.append(run.info.run_id)
    return ended
