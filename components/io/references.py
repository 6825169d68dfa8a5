"""References: the training profile stored with each model version, found again from the version."""

from __future__ import annotations

import logging
import pathlib
import posixpath
import tempfile

import mlflow
import pydantic as pdt
from mlflow.tracking import MlflowClient

from components.core import drift
from components.core.results import ModelRef

logger = logging.getLogger(__name__)

# Where the profile goes among the artifacts of the run that logged the model.
PROFILE_PATH = "reference/profile.json"


def log_profile(profile: drift.Profile) -> None:
    """Store the profile among the artifacts of the active run (the one that logs the model)."""
    mlflow.log_text(profile.model_dump_json(), PROFILE_PATH)


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
    # Listed first: a missing profile is an answer, while an MLflow that fails is an error.
    folder, _ = posixpath.split(PROFILE_PATH)
    listed = {item.path for item in client.list_artifacts(model_ref.run_id, folder)}
    if PROFILE_PATH not in listed:
        logger.info("%s has no reference profile (%s)", model_ref.describe(), PROFILE_PATH)
        return None
    with tempfile.TemporaryDirectory(prefix="profile-") as local:
        path = client.download_artifacts(model_ref.run_id, PROFILE_PATH, local)
        text = pathlib.Path(path).read_text(encoding="utf-8")
    try:
        return drift.Profile.model_validate_json(text)
    except pdt.ValidationError as error:
        raise drift.DriftError(
            f"the reference profile of {model_ref.describe()} ({PROFILE_PATH} of run "
            f"{model_ref.run_id}) cannot be read: {error.error_count()} error(s), first: "
            f"{error.errors()[0]['msg']}"
        ) from None
