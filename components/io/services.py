"""Services: logging and the MLflow tracking / registry connection that every job starts."""

from __future__ import annotations

import logging
import os
import pathlib
import sys
import time
import types
import typing as T

import mlflow
import pydantic as pdt
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from components.core import lineage
from components.io import parents
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
    # Progress bars of artifact downloads (reference profiles, cards) fill a pod's log.
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}
for _name, _value in HTTP_LIMITS.items():
    os.environ.setdefault(_name, _value)


class MlflowUnavailableError(ConnectionError):
    """MLflow could not be used; the message names the server (no credentials) and the step."""


class ArtifactStoreError(OSError):
    """A run's artifacts could not be written where the MLflow server said they go."""


# MLflow's error codes for a request it understood and refused (a name, a value, a state):
# the server answered, so "check that MLflow answers" would send a user the wrong way.
REFUSED_REQUESTS = frozenset(
    {
        "INVALID_PARAMETER_VALUE", "BAD_REQUEST", "RESOURCE_ALREADY_EXISTS",
        "RESOURCE_DOES_NOT_EXIST", "INVALID_STATE", "MALFORMED_REQUEST",
    }
)  # fmt: skip


APP_NAME = "kfp-model-lifecycle"

# Set in every step by KFP's MLflow plugin, when a deployment turns it on: the task's run.
PARENT_RUN_VARIABLE = "MLFLOW_RUN_ID"


def parent_run_id() -> str | None:
    """The run of KFP's MLflow plugin for this step, if the plugin is on."""
    return os.environ.get(PARENT_RUN_VARIABLE) or None


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


# kfp.local keeps no log of its steps, and a step that is killed, or that fails before MLflow
# can record it, leaves the exit step nothing else to say why: each step then also writes its log
# to this file, beside its outputs, where the exit step reads it (see components.io.runs).
STEP_LOG_VARIABLE = "LIFECYCLE_STEP_LOG"
STEP_LOG = "step.log"  # the name local runs give it
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def kfp_task_folder() -> pathlib.Path | None:
    """The folder of the KFP task this process runs, or None outside a KFP task.

    KFP's executor derives it from the task's own output paths before the component's body runs:
    under kfp.local it is `<pipeline_root>/<run>/<task>`, beside the task's outputs.
    """
    import warnings

    from kfp import dsl

    try:
        with warnings.catch_warnings():
            # On a cluster, KFP warns that it has no task folder to give: None says so here.
            warnings.simplefilter("ignore", RuntimeWarning)
            uri = dsl.get_uri("")
    except RuntimeError:  # not inside a KFP task
        return None
    # Remote URIs (gs://, s3://, minio://) and a cluster's scratch folder are no place for it.
    return pathlib.Path(uri) if uri.startswith("/") else None


class StepLogHandler(logging.FileHandler):
    """The log file of a step; a process has at most one (see LoggerService.file)."""


class LoggerService(pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """Configure the standard logging once for a job.

    Args:
        level: the log level name (DEBUG, INFO, WARNING, ERROR).
        file: a file that also receives the log (credentials masked), and the last line of an
            uncaught exception. A relative path is taken inside the folder of the KFP task
            running the job, and ignored outside one. Default: $LIFECYCLE_STEP_LOG, which local
            runs set to `step.log`, so that the exit step can tell why a step died.
    """

    level: str = "INFO"
    file: str = ""

    def start(self) -> None:
        """Set the log level and format, open the log file if any, quiet the chattiest libraries."""
        logging.basicConfig(level=self.level, format=LOG_FORMAT)
        # MLflow and alembic are chatty at INFO; keep the job's own story readable.
        for noisy in ("alembic", "mlflow.store", "urllib3"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        self._start_file()
        # Credentials inside URIs (MLFLOW_TRACKING_URI, webhooks) never reach a log line.
        secrets.install_log_redaction()

    def log_file(self) -> pathlib.Path | None:
        """Where the log is also written, or None."""
        name = self.file or os.environ.get(STEP_LOG_VARIABLE, "")
        if not name:
            return None
        path = pathlib.Path(name).expanduser()
        if path.is_absolute():
            return path
        folder = kfp_task_folder()
        return folder / path if folder is not None else None

    def _start_file(self) -> None:
        """Also log to `log_file()`, in place of the file an earlier job of this process used."""
        path = self.log_file()
        root = logging.getLogger()
        for handler in [h for h in root.handlers if isinstance(h, StepLogHandler)]:
            if path is not None and handler.baseFilename == str(path.absolute()):
                return
            root.removeHandler(handler)
            handler.close()
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handler = StepLogHandler(path, encoding="utf-8")
        except OSError as error:  # the log file helps the alert; it must never fail the job
            logging.getLogger(__name__).warning("cannot write the log to %s: %s", path, error)
            return
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handler.setLevel(self.level)
        root.addHandler(handler)
        if not getattr(sys.excepthook, "logs_to_step_log", False):
            sys.excepthook = _logging_excepthook(sys.excepthook)


# Marks a long step's progress lines: a local run shows them even when quiet
# (pipelines.local.console).
PROGRESS_MARK = "[PROGRESS]"


class Progress:
    """Log how far a long loop has gone: at most once every `every` seconds, after `after`.

    A short loop logs nothing. The total, when `total` can tell it, is asked for once, at the
    first report: counting may cost a look at the input's metadata, which a short loop never pays.

    Args:
        unit: what is counted, e.g. "rows".
        total: how many there are to do (None: unknown), asked for at the first report.
        every: the fewest seconds between two reports.
        after: the seconds before the first report.
        clock: the monotonic clock (a test's, to move time on).
    """

    def __init__(
        self,
        unit: str = "rows",
        total: T.Callable[[], int | None] | None = None,
        every: float = 10.0,
        after: float = 5.0,
        clock: T.Callable[[], float] = time.monotonic,
    ):
        self.unit, self._total, self.every, self.clock = unit, total, every, clock
        self.started = clock()
        self.done = 0
        self._next = self.started + after
        self._known: int | None = None
        self._asked = False

    def add(self, count: int) -> str | None:
        """Count `count` more done; log and return a report when one is due."""
        self.done += count
        now = self.clock()
        if now < self._next:
            return None
        self._next = now + self.every
        report = self.report(now)
        logging.getLogger(__name__).info("%s %s", PROGRESS_MARK, report)
        return report

    def report(self, now: float) -> str:
        """How many done (of how many), how fast, and how long is left when the total is known."""
        if not self._asked and self._total is not None:
            self._asked = True
            try:
                self._known = self._total()
            except Exception:  # progress is a courtesy: it never fails the work it reports
                self._known = None
        rate = self.done / max(now - self.started, 1e-9)
        text = f"{self.done:,} {self.unit}"
        if self._known:
            text = f"{self.done:,} of {self._known:,} {self.unit} ({self.done / self._known:.0%})"
        text += f", {rate:,.0f} {self.unit}/s"
        if self._known and rate > 0 and self._known > self.done:
            text += f", about {(self._known - self.done) / rate:,.0f} s left"
        return text


def _logging_excepthook(previous: T.Callable[..., T.Any]) -> T.Callable[..., T.Any]:
    """An excepthook that writes an uncaught exception's line to the step log, then as before.

    A component can also fail outside its job (writing its artifacts once the job is done);
    Python prints that traceback to the console only, which kfp.local does not keep.
    """

    def hook(
        kind: type[BaseException],
        error: BaseException,
        traceback: types.TracebackType | None,
    ) -> None:
        for handler in logging.getLogger().handlers:
            if isinstance(handler, StepLogHandler):
                message = "[FAILED] %s: %s"
                args = (kind.__name__, error)
                record = logging.LogRecord(
                    "uncaught", logging.ERROR, __file__, 0, message, args, None
                )
                handler.handle(record)  # through its redacting filter
        previous(kind, error, traceback)

    hook.logs_to_step_log = True  # type: ignore[attr-defined]
    return hook


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

    def point(self) -> None:
        """Point MLflow's own calls (loading a model, reading artifacts) at the stores.

        Without it they go to MLflow's default store, a `mlflow.db` in the working directory,
        which has none of the registered models.
        """
        store = self.local_store()
        if store is not None:
            store.mkdir(parents=True, exist_ok=True)
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.registry_uri or self.tracking_uri)

    def start(self) -> None:
        """Point the MLflow client at the configured stores and experiment.

        The experiment is the deployment's when it sets one (see `experiment_id`), else
        `experiment_name`, created on first use.
        """
        self.point()
        given = os.environ.get("MLFLOW_EXPERIMENT_ID")
        mlflow.set_experiment(experiment_id=self.experiment_id(self.client(), create=True))
        # set_experiment also exports MLFLOW_EXPERIMENT_ID, which the next job of this process
        # and every subprocess (kfp.local's steps) would take for the deployment's: put it back.
        if given is None:
            os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
        else:
            os.environ["MLFLOW_EXPERIMENT_ID"] = given

    def experiment_id(self, client: MlflowClient, create: bool = True) -> str | None:
        """The experiment the jobs record their runs in (None: not created yet, `create` off).

        KFP's MLflow plugin gives every step `MLFLOW_RUN_ID` (its run for the task) and the
        experiment of the pipeline run; when it is on, the jobs record in that experiment, as
        nested runs of the plugin's run, so that MLflow never refuses to start their runs and the
        exit step finds them. `MLFLOW_EXPERIMENT_NAME` alone (the deployment's experiment) also
        wins over `experiment_name`; `MLFLOW_EXPERIMENT_ID` alone does not, because MLflow
        itself exports it whenever any code of the process sets an experiment.
        """
        parent = parent_run_id()
        if parent:
            return client.get_run(parent).info.experiment_id
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or self.experiment_name
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        if not create:
            return None
        # A local store keeps its artifacts beside its database, not in the working directory.
        store = self.local_store()
        location = (store / "artifacts").absolute().as_uri() if store else None
        try:
            return client.create_experiment(name, artifact_location=location)
        except MlflowException:  # created by a concurrent step in the meantime
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
            return experiment.experiment_id

    def start_run(self, run_name: str, tags: dict[str, str]) -> mlflow.ActiveRun:
        """Start the job's run, nested under its pipeline run's: the plugin's, or one of ours.

        With KFP's MLflow plugin on, the parent is the plugin's run: MLflow would resume the
        run named by `MLFLOW_RUN_ID` instead of starting one (and refuse when the experiments
        differ); the job's own run, nested, keeps its own status and error while the plugin's
        run stays the plugin's to end. Without the plugin, a step of a pipeline (its tags hold
        the KFP run id) nests under the one parent run of that KFP run, found or created (see
        `components.io.parents`); a job run on its own has no parent.

        Args:
            run_name: the run's name (the step's name, or the job's KIND outside a pipeline).
            tags: the run's tags.
        """
        plugin = os.environ.pop(PARENT_RUN_VARIABLE, None)
        try:
            parent = plugin or self._pipeline_parent(tags)
            return mlflow.start_run(run_name=run_name, tags=tags, parent_run_id=parent or None)
        finally:
            _restore_parent(plugin)

    def _pipeline_parent(self, tags: dict[str, str]) -> str | None:
        """The parent run of the step's KFP run (None outside a pipeline)."""
        kfp_run_id = tags.get(lineage.KFP_RUN_TAG)
        if not kfp_run_id:
            return None
        experiment_id = mlflow.tracking.fluent._get_experiment_id()
        if experiment_id is None:  # start() sets the experiment: no parent without one
            return None
        return parents.find_or_create(self.client(), experiment_id, kfp_run_id)

    @staticmethod
    def end_run(status: str) -> None:
        """End the job's run; the plugin's `MLFLOW_RUN_ID`, which MLflow unsets, is put back.

        Args:
            status: FINISHED or FAILED.
        """
        parent = os.environ.get(PARENT_RUN_VARIABLE)
        try:
            mlflow.end_run(status)
        finally:
            _restore_parent(parent)

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
        if getattr(error, "error_code", "") in REFUSED_REQUESTS:
            # MLflow answered: it is up, and what the step asked is what to fix.
            return MlflowUnavailableError(
                f"MLflow at {self.server()} refused a request of step {step}: "
                f"{secrets.clip(cause, 600)}"
            )
        return MlflowUnavailableError(
            f"cannot use MLflow at {self.server()} in step {step}: {secrets.clip(cause, 600)}"
        )

    def unreachable_artifacts(self, step: str, error: OSError) -> ArtifactStoreError | None:
        """Why a step could not write its run's artifacts to a folder on the MLflow server's disk.

        None when the error is about anything else. A server started with
        `--no-serve-artifacts` (or before MLflow 2) gives each run an artifact location on its
        own filesystem, which a client on another machine (a pod) writes to directly: it fails
        there with the path, which alone says nothing.

        Args:
            step: the step (or job) that wrote.
            error: what writing raised.
        """
        run = mlflow.active_run()
        location = run.info.artifact_uri if run is not None else ""
        served = "://" in location and not location.startswith("file://")
        if not location or served or not self.tracking_uri.startswith(("http://", "https://")):
            return None
        folder, name = location.removeprefix("file://"), str(error.filename or "")
        if not name or not (folder.startswith(name) or name.startswith(folder)):
            return None
        return ArtifactStoreError(
            f"step {step} cannot write its artifacts to {location}: MLflow at {self.server()} "
            f"keeps them in a folder of its own disk ({type(error).__name__}: "
            f"{error.strerror or error}), which only a client on the same machine can write. "
            "Let the server take the artifacts (`mlflow server --serve-artifacts`, MLflow's "
            "default) or point its --default-artifact-root at storage both reach (s3://, gs://)"
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


def _restore_parent(parent: str | None) -> None:
    if parent is not None:
        os.environ[PARENT_RUN_VARIABLE] = parent
