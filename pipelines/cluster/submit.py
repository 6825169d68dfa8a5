"""Submit a compiled pipeline to KFP, uploading a new pipeline version only when it changed."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import kfp

from pipelines.cluster.client import content_hash, display_name_filter, paginate
from pipelines.common.errors import UsageError

FINAL_STATES = frozenset({"SUCCEEDED", "FAILED", "SKIPPED", "CANCELED"})


@dataclass(frozen=True)
class PipelineVersion:
    """A pipeline version on KFP whose content matches a local compiled file.

    Attributes:
        pipeline_id: KFP id of the pipeline.
        version_id: KFP id of the version.
        version_name: `<pipeline>-<content hash>`.
        content_hash: short SHA-256 of the compiled YAML.
        uploaded: True when this call uploaded it, False when it already existed.
    """

    pipeline_id: str
    version_id: str
    version_name: str
    content_hash: str
    uploaded: bool


def version_name(pipeline: str, digest: str) -> str:
    """Name a version by its content so an unchanged file maps to the same version."""
    return f"{pipeline}-{digest}"


def find_pipeline_id(client: kfp.Client, name: str, namespace: str | None = None) -> str | None:
    """Return the id of the pipeline with this display name, or None.

    Raises:
        UsageError: several pipelines carry the name, so the target is ambiguous.
    """
    found = [
        pipeline.pipeline_id
        for pipeline in paginate(
            client.list_pipelines,
            "pipelines",
            filter=display_name_filter(name),
            namespace=namespace,
        )
        if pipeline.display_name == name
    ]
    if len(found) > 1:
        raise UsageError(f"{len(found)} pipelines are named {name!r} on KFP; expected one")
    return found[0] if found else None


def find_version_id(client: kfp.Client, pipeline_id: str, name: str) -> str | None:
    """Return the id of the pipeline's version with this display name, or None."""
    versions = paginate(
        client.list_pipeline_versions,
        "pipeline_versions",
        pipeline_id=pipeline_id,
        filter=display_name_filter(name),
    )
    return next((v.pipeline_version_id for v in versions if v.display_name == name), None)


def ensure_pipeline_version(
    client: kfp.Client, name: str, path: Path, namespace: str | None = None
) -> PipelineVersion:
    """Make sure KFP holds the compiled file as a version of pipeline `name`; upload if not.

    The content hash lives in the version name, so re-submitting an unchanged file reuses
    its version and a changed file adds exactly one.

    Args:
        client: connected KFP client.
        name: pipeline display name on KFP.
        path: compiled pipeline YAML.
        namespace: namespace for a new pipeline on multi-user KFP; None for a shared one.

    Returns:
        The version matching the file's content.
    """
    digest = content_hash(path)
    wanted = version_name(name, digest)
    pipeline_id = find_pipeline_id(client, name, namespace)
    if pipeline_id is None:
        # upload_pipeline also creates a first version, named after the pipeline and not
        # after the content; the content-named version below is the one runs use.
        description = f"Compiled pipeline {name}; versions are named {name}-<sha256[:12]>."
        pipeline = client.upload_pipeline(
            str(path), pipeline_name=name, description=description, namespace=namespace
        )
        pipeline_id = pipeline.pipeline_id
    version_id = find_version_id(client, pipeline_id, wanted)
    if version_id is not None:
        return PipelineVersion(pipeline_id, version_id, wanted, digest, uploaded=False)
    version = client.upload_pipeline_version(
        str(path), wanted, pipeline_id=pipeline_id, description=f"content sha256 {digest}"
    )
    return PipelineVersion(pipeline_id, version.pipeline_version_id, wanted, digest, uploaded=True)


def run_link(host: str, run_id: str) -> str:
    """Link to a run's page in the KFP UI."""
    return f"{host.rstrip('/')}/#/runs/details/{run_id}"


def find_or_create_experiment(client: kfp.Client, name: str, namespace: str | None = None) -> str:
    """Return the id of the experiment with this name, creating it when missing."""
    return client.create_experiment(name, namespace=namespace).experiment_id


def start_run(
    client: kfp.Client,
    name: str,
    path: Path,
    values: dict,
    experiment: str = "Default",
    run_name: str | None = None,
    namespace: str | None = None,
) -> tuple[PipelineVersion, str]:
    """Upload the compiled pipeline if it changed, then create a run of it.

    Args:
        client: connected KFP client.
        name: the pipeline's display name on KFP.
        path: its compiled YAML.
        values: the run's parameters, already checked against the file.
        experiment: the KFP experiment (created if missing).
        run_name: the run's name (default: `<name>-<UTC time>`).
        namespace: the profile namespace on a multi-user KFP.

    Returns:
        The pipeline version run, and the new run's id.
    """
    version = ensure_pipeline_version(client, name, path, namespace)
    experiment_id = find_or_create_experiment(client, experiment, namespace)
    run = client.run_pipeline(
        experiment_id=experiment_id,
        job_name=run_name or f"{name}-{datetime.now(UTC):%Y%m%d-%H%M%S}",
        pipeline_id=version.pipeline_id,
        version_id=version.version_id,
        params=values,
    )
    return version, run.run_id


def wait_for_run(client: kfp.Client, run_id: str, timeout_s: float, poll_s: float = 10.0) -> str:
    """Poll a run until it reaches a final state or the timeout passes.

    Returns:
        The final state (SUCCEEDED, FAILED, SKIPPED, CANCELED), or the last state seen when
        the timeout passed first.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        state = str(client.get_run(run_id).state or "RUNTIME_STATE_UNSPECIFIED").upper()
        if state in FINAL_STATES or time.monotonic() >= deadline:
            return state
        time.sleep(min(poll_s, max(deadline - time.monotonic(), 0.0)))
