"""References: the training profile stored with each model version, found again from the version."""

from __future__ import annotations

import logging
import pathlib
import posixpath
import tempfile

import mlflow
import pydantic as pdt
from mlflow.tracking import MlflowClient

from components.core import drift, estimation
from components.core.model_refs import ModelRef

logger = logging.getLogger(__name__)

# Where the profile goes among the artifacts of the run that logged the model.
PROFILE_PATH = "reference/profile.json"
# Beside it: what estimating the model's performance without labels needs (its holdout's
# calibration or error model, see components.core.estimation).
ESTIMATOR_PATH = "reference/estimator.json"


def log_profile(profile: drift.Profile) -> None:
    """Store the profile among the artifacts of the active run (the one that logs the model)."""
    mlflow.log_text(profile.model_dump_json(), PROFILE_PATH)


def store_profile(client: MlflowClient, run_id: str, profile: drift.Profile) -> None:
    """Store the profile among the artifacts of a run (a model's, logged elsewhere)."""
    client.log_text(run_id, profile.model_dump_json(), PROFILE_PATH)


def store_estimator(client: MlflowClient, run_id: str, estimator: estimation.Estimator) -> None:
    """Store the performance estimator among the artifacts of a run (a model's)."""
    client.log_text(run_id, estimator.model_dump_json(), ESTIMATOR_PATH)


def load_profile(client: MlflowClient, model_ref: ModelRef) -> drift.Profile | None:
    """The reference profile of a model, from the run that logged it; None when it has none.

    A model trained elsewhere, or before profiles were stored, has none; so does a model given
    by a URI that names no run.

    Args:
        client: the MLflow client of the tracking server.
        model_ref: the model found (its `run_id` names the run).

    Raises:
        DriftError: the profile exists but cannot be read.
    """
    if not model_ref.run_id:
        return None
    text = run_text(client, model_ref.run_id, PROFILE_PATH)
    if text is None:
        logger.info("%s has no reference profile (%s)", model_ref.describe(), PROFILE_PATH)
        return None
    try:
        return drift.Profile.model_validate_json(text)
    except pdt.ValidationError as error:
        raise drift.DriftError(
            f"the reference profile of {model_ref.describe()} ({PROFILE_PATH} of run "
            f"{model_ref.run_id}) cannot be read: {error.error_count()} error(s), first: "
            f"{error.errors()[0]['msg']}"
        ) from None


def log_estimator(estimator: estimation.Estimator) -> None:
    """Store the performance estimator among the artifacts of the active run."""
    mlflow.log_text(estimator.model_dump_json(), ESTIMATOR_PATH)


def load_estimator(client: MlflowClient, model_ref: ModelRef) -> estimation.Estimator | None:
    """The model's performance estimator; None when it has none (trained elsewhere, earlier).

    Raises:
        ValueError: the estimator exists but cannot be read.
    """
    if not model_ref.run_id:
        return None
    text = run_text(client, model_ref.run_id, ESTIMATOR_PATH)
    if text is None:
        return None
    try:
        return estimation.Estimator.model_validate_json(text)
    except pdt.ValidationError as error:
        raise ValueError(
            f"the performance estimator of {model_ref.describe()} ({ESTIMATOR_PATH} of run "
            f"{model_ref.run_id}) cannot be read: {error.error_count()} error(s), first: "
            f"{error.errors()[0]['msg']}"
        ) from None


def run_text(client: MlflowClient, run_id: str, path: str) -> str | None:
    """A text artifact of a run; None when the run has no such artifact.

    The artifact is listed first: a missing one is an answer, while an MLflow that fails
    raises its error.

    Args:
        client: the MLflow client of the tracking server.
        run_id: the run.
        path: the artifact's path among the run's artifacts.
    """
    folder, _ = posixpath.split(path)
    if path not in {item.path for item in client.list_artifacts(run_id, folder or None)}:
        return None
    with tempfile.TemporaryDirectory(prefix="artifact-") as local:
        downloaded = client.download_artifacts(run_id, path, local)
        return pathlib.Path(downloaded).read_text(encoding="utf-8")
