"""Services: logging and the MLflow tracking / registry connection that every job starts."""

from __future__ import annotations

import logging
import os
import pathlib

import mlflow
import pydantic as pdt
from mlflow.tracking import MlflowClient

# The embedded default: a project-local store, used when MLFLOW_TRACKING_URI is not set.
LOCAL_STORE = pathlib.Path(".mlflow")


def local_tracking_uri(store: pathlib.Path = LOCAL_STORE) -> str:
    """The sqlite tracking URI of a local MLflow store folder."""
    return f"sqlite:///{(store / 'mlflow.db').absolute()}"


def default_tracking_uri() -> str:
    """MLFLOW_TRACKING_URI when set (a server on a cluster), else the local store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or local_tracking_uri()


class LoggerService(pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """Configure the standard logging once for a job.

    Args:
        level: the log level name (DEBUG, INFO, WARNING, ERROR).
    """

    level: str = "INFO"

    def start(self) -> None:
        logging.basicConfig(
            level=self.level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        # MLflow and alembic are chatty at INFO; keep the job's own story readable.
        for noisy in ("alembic", "mlflow.store", "urllib3"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


class MlflowService(pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """Connect to MLflow tracking and the model registry.

    Args:
        tracking_uri: where runs go; defaults to MLFLOW_TRACKING_URI, else a local sqlite store.
        registry_uri: where models are registered; defaults to the tracking URI.
        experiment_name: the experiment that the job's runs belong to.
    """

    tracking_uri: str = pdt.Field(default_factory=default_tracking_uri)
    registry_uri: str | None = None
    experiment_name: str = "bike-sharing"

    def start(self) -> None:
        """Point the MLflow client at the configured stores and experiment."""
        store = self.local_store()
        if store is not None:
            store.mkdir(parents=True, exist_ok=True)
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.registry_uri or self.tracking_uri)
        if mlflow.get_experiment_by_name(self.experiment_name) is None:
            # A local store keeps its artifacts beside its database, not in the working directory.
            location = (store / "artifacts").absolute().as_uri() if store else None
            mlflow.create_experiment(self.experiment_name, artifact_location=location)
        mlflow.set_experiment(self.experiment_name)

    def local_store(self) -> pathlib.Path | None:
        """The folder of a local sqlite store, or None for a server."""
        if self.tracking_uri.startswith("sqlite:///"):
            return pathlib.Path(self.tracking_uri.removeprefix("sqlite:///")).parent
        return None

    def client(self) -> MlflowClient:
        """A client bound to the configured stores."""
        return MlflowClient(
            tracking_uri=self.tracking_uri, registry_uri=self.registry_uri or self.tracking_uri
        )
