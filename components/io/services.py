"""Services: logging and the MLflow tracking / registry connection that every job starts."""

from __future__ import annotations

import logging
import os
import pathlib

import mlflow
import pydantic as pdt
from mlflow.tracking import MlflowClient

from components.utils import secrets

# MLflow's client retries an unreachable server for many minutes by default. Bounded here, so a
# step fails within about 50 s of MLflow going away (3 attempts of at most 15 s, 1 + 2 s apart),
# with its cause; an explicit value in the environment still wins.
HTTP_LIMITS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
    # MLflow writes "View run ... at: <tracking URI>" to stdout, credentials and all; the jobs
    # log their run themselves, redacted.
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}
for _name, _value in HTTP_LIMITS.items():
    os.environ.setdefault(_name, _value)


class MlflowUnavailableError(ConnectionError):
    """MLflow could not be used; the message names the server (no credentials) and the step."""


APP_NAME = "kfp-model-lifecycle"


def lifecycle_home() -> pathlib.Path:
    """Where local runs keep their MLflow store and outputs, whatever the working directory.

    `$LIFECYCLE_HOME` when set, else `$XDG_DATA_HOME/kfp-model-lifecycle`, where XDG_DATA_HOME
    defaults to `~/.local/share` (and, as the XDG spec says, a relative value is ignored).
    """
    home = os.environ.get("LIFECYCLE_HOME")
    if home:
        return pathlib.Path(home).expanduser().absolute()
    data = pathlib.Path(os.environ.get("XDG_DATA_HOME") or "~/.local/share").expanduser()
    if not data.is_absolute():
        data = pathlib.Path("~/.local/share").expanduser()
    return data / APP_NAME


def local_store() -> pathlib.Path:
    """The local MLflow store folder: `lifecycle_home()/mlflow` (mlflow.db and artifacts/)."""
    return lifecycle_home() / "mlflow"


def local_tracking_uri(store: pathlib.Path | None = None) -> str:
    """The sqlite tracking URI of a local MLflow store folder (default: local_store())."""
    folder = local_store() if store is None else store
    return f"sqlite:///{(folder / 'mlflow.db').absolute()}"


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
        """Set the log level and format, and quiet the chattiest libraries."""
        logging.basicConfig(
            level=self.level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        # MLflow and alembic are chatty at INFO; keep the job's own story readable.
        for noisy in ("alembic", "mlflow.store", "urllib3"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        # Credentials inside URIs (MLFLOW_TRACKING_URI, webhooks) never reach a log line.
        secrets.install_log_redaction()


class MlflowService(pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """Connect to MLflow tracking and the model registry.

    Args:
        tracking_uri: where runs go; defaults to MLFLOW_TRACKING_URI, else a local sqlite store.
        registry_uri: where models are registered; defaults to the tracking URI.
        experiment_name: the experiment that the job's runs belong to.
    """

    tracking_uri: str = pdt.Field(default_factory=default_tracking_uri)
    registry_uri: str | None = None
    experiment_name: str = "model-lifecycle"

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

    def server(self) -> str:
        """The tracking server or store, credentials masked, for messages."""
        return secrets.redact(self.tracking_uri)

    def unavailable(self, step: str, error: BaseException) -> MlflowUnavailableError:
        """The error to raise when MLflow failed a step: the server, the step, the cause.

        Args:
            step: the step (or job) that needed MLflow.
            error: what the MLflow client raised.
        """
        cause = secrets.redact(f"{type(error).__name__}: {error}")
        return MlflowUnavailableError(
            f"cannot use MLflow at {self.server()} in step {step}: {secrets.clip(cause, 600)}"
        )

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
