"""Artifacts: fill KFP output artifacts (paths and metadata) from job results, without KFP."""

from __future__ import annotations

import json
import pathlib
import typing as T

from components.io import registries


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


def log_metrics(artifact: T.Any, scores: T.Mapping[str, float], prefix: str = "") -> None:
    """Log scalar metrics on a Metrics artifact (shown in the Kubeflow UI)."""
    for name, value in scores.items():
        artifact.log_metric(prefix + name, float(value))
