"""Base job: start the services, run the story, and tell people how it went."""

from __future__ import annotations

import abc
import contextlib
import logging
import signal
import threading
import types
import typing as T

import mlflow
import pydantic as pdt
import requests
from mlflow.exceptions import MlflowException

from components.core import lineage
from components.core.model_refs import ModelRef
from components.io import alerts, services
from components.utils import secrets

# Tags of the MLflow run that each job records; the notify job reads them back to tell Slack
# which job failed and why, or what the pipeline produced.
JOB_TAG = "job.kind"
ERROR_TAG = "job.error"
WARNING_TAG = "job.warning"
PIPELINE_RUN_TAG = lineage.KFP_RUN_TAG
TASK_TAG = lineage.KFP_TASK_TAG

logger = logging.getLogger(__name__)

# Errors of the MLflow client: their text quotes the tracking URI (credentials included).
MLFLOW_ERRORS = (MlflowException, requests.RequestException)


class Job(abc.ABC, pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """A unit of work that a KFP component runs; it knows nothing of KFP.

    Use it as a context manager so that the services start first and a failure is alerted:

        with InferenceJob(...) as job:
            job.run()

    Each job records one MLflow run named after its KIND (with `run_tags`, e.g. the KFP run id),
    ended FAILED with the error when the job fails.

    Args:
        logger_service: logging configuration.
        mlflow_service: the MLflow tracking server and registry.
        alerter: where success and failure alerts go; default: LIFECYCLE_ALERTER, else the
            kind the environment chooses (Slack when SLACK_WEBHOOK_URL is set), else the log.
        run_tags: tags put on the job's MLflow run (the KFP run and task that ran it).
    """

    KIND: str
    RECORDS_RUN: T.ClassVar[bool] = True
    logger_service: services.LoggerService = services.LoggerService()
    mlflow_service: services.MlflowService = pdt.Field(default_factory=services.MlflowService)
    # A KIND, `{type, config}` or a user's `package.module:Class` (the registry ALERTERS).
    alerter: alerts.AlerterKind = pdt.Field(default_factory=alerts.default_alerter)
    run_tags: dict[str, str] = pdt.Field(default_factory=dict)

    def __enter__(self) -> T.Self:
        self.logger_service.start()
        logger.info("[START] %s", self.KIND)
        if self.RECORDS_RUN:
            try:
                self.mlflow_service.start()
                # Named after the step (train, predict), as the pipeline's graph shows it. A stop
                # while MLflow creates the run waits for it: a run created but not yet known here
                # could never be ended, and would stay RUNNING.
                with sigterm_deferred():
                    run = self.mlflow_service.start_run(
                        self.step, {JOB_TAG: self.KIND, **self.run_tags}
                    )
                logger.info("MLflow run %s at %s", run.info.run_id, self.mlflow_service.server())
            except Terminated as error:  # __exit__ will not run: end the run started, if any
                self.__exit__(type(error), error, error.__traceback__)
                raise
            except Exception as error:
                # __exit__ does not run when __enter__ fails: report here, with the cause.
                failure = self.mlflow_service.unavailable(self.step, error)
                self._report(failure)
                raise failure from None
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: types.TracebackType | None,
    ) -> T.Literal[False]:
        # The original error is logged and alerted first: recording it in MLflow may fail too
        # (MLflow may be the cause), and that must never hide it. MLflow's own errors quote
        # the tracking URI, credentials included: they are replaced by a redacted one.
        error = exc_value
        if isinstance(exc_value, MLFLOW_ERRORS):
            error = self.mlflow_service.unavailable(self.step, exc_value)
        elif isinstance(exc_value, OSError):
            error = self.mlflow_service.unreachable_artifacts(self.step, exc_value) or exc_value
        if error is not None:
            self._report(error)
        if self.RECORDS_RUN and mlflow.active_run() is not None:
            try:
                if error is not None:
                    text = secrets.redact(f"{type(error).__name__}: {error}")
                    mlflow.set_tag(ERROR_TAG, text[:5000])
                self.mlflow_service.end_run("FAILED" if error is not None else "FINISHED")
            except Exception as recording:
                _forget_active_run()
                failure = self.mlflow_service.unavailable(self.step, recording)
                if error is None:
                    self._report(failure)
                    raise failure from None
                logger.warning("the failure could not be recorded in MLflow: %s", failure)
        if error is None:
            logger.info("[END] %s", self.KIND)
        elif error is not exc_value:
            raise error from None
        return False

    @property
    def step(self) -> str:
        """The pipeline step running the job (its KIND outside a pipeline)."""
        return self.run_tags.get(TASK_TAG, self.KIND)

    def _report(self, error: BaseException) -> None:
        """Log and alert a failure, credentials masked."""
        text = secrets.redact(f"{type(error).__name__}: {error}")
        logger.error("[FAILED] %s: %s", self.KIND, secrets.redact(str(error)))
        self.alerter.notify(title=f"{self.KIND} failed", message=text, status="FAILED")

    @abc.abstractmethod
    def run(self) -> T.Any:
        """Run the job and return its typed result (see `components.core.results`)."""

    def lineage_of(self, model_ref: ModelRef, inputs: str) -> lineage.Lineage:
        """Where this job's outputs come from: the model, this job's runs, its input.

        Args:
            model_ref: the model that produced them.
            inputs: the location of the rows it read.
        """
        run = mlflow.active_run()
        return lineage.of_job(
            self.KIND,
            model_ref,
            inputs,
            mlflow_run_id=run.info.run_id if run else "",
            mlflow_experiment_id=run.info.experiment_id if run else "",
            tracking_uri=self.mlflow_service.tracking_uri,
            run_tags=self.run_tags,
        )

    def warn(self, warnings: T.Sequence[str]) -> None:
        """Record warnings on the job's MLflow run, where the pipeline's alert finds them."""
        if warnings and self.RECORDS_RUN and mlflow.active_run() is not None:
            mlflow.set_tag(WARNING_TAG, "; ".join(warnings)[:5000])


class _Collector(logging.Handler):
    """Keeps the message of each warning a logger emits."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message not in self.messages:
            self.messages.append(message)


@contextlib.contextmanager
def warnings_logged(*loggers: logging.Logger) -> T.Iterator[list[str]]:
    """The warnings these loggers emit meanwhile, each once, in order (what a user should know).

    A job's modules log what a user should know as warnings (rows dropped, a column that looks
    like an identifier); collected, they reach the job's alert and its MLflow run (`Job.warn`)
    rather than the step log alone.
    """
    collector = _Collector()
    for each in loggers:
        each.addHandler(collector)
    try:
        yield collector.messages
    finally:
        for each in loggers:
            each.removeHandler(collector)


def _forget_active_run() -> None:
    """Drop the run MLflow could not end, so this process starts clean (tests, notebooks)."""
    stack = mlflow.tracking.fluent._active_run_stack.get()
    if stack:
        stack.pop()


class Terminated(BaseException):
    """The step was told to stop (SIGTERM: a canceled local run, a deleted or evicted pod).

    A BaseException, as KeyboardInterrupt is: no `except Exception` may take it for a failure
    of the job's own and carry on.
    """


def stop_on_sigterm() -> None:
    """Turn SIGTERM into `Terminated` in this process's main thread.

    Python's default ends the process at once, leaving the job's MLflow run RUNNING; raised
    instead, it ends the run FAILED with the cause (`Job.__exit__`) before the process ends,
    within the grace period Kubernetes and local cancels give.
    """
    if threading.current_thread() is not threading.main_thread():
        return

    def terminate(signum: int, frame: types.FrameType | None) -> None:
        if _sigterm.deferred:
            _sigterm.pending = True
            return
        raise Terminated(_STOPPED)

    signal.signal(signal.SIGTERM, terminate)


_STOPPED = "the step was stopped (SIGTERM: canceled, or its pod deleted)"


class _SigtermState:
    deferred = 0  # how many `sigterm_deferred` blocks are open
    pending = False  # a SIGTERM came while one was


_sigterm = _SigtermState()


@contextlib.contextmanager
def sigterm_deferred() -> T.Iterator[None]:
    """Hold a SIGTERM that comes inside the block until the block ends, then raise `Terminated`.

    For a few calls that must not be cut in half (MLflow creating the job's run). A signal
    handler runs in the main thread whichever thread the signal reached, so a flag the handler
    reads holds it where blocking the signal in one thread (`pthread_sigmask`) would not.
    """
    _sigterm.deferred += 1
    try:
        yield
    finally:
        _sigterm.deferred -= 1
    if not _sigterm.deferred and _sigterm.pending:
        _sigterm.pending = False
        raise Terminated(_STOPPED)


class SettingsError(ValueError):
    """A job's settings are invalid; the message names each field, the rule and the value."""


def describe_errors(kind: str, error: pdt.ValidationError) -> str:
    """One readable line per invalid field, e.g. `inputs.batch_size: must be > 0 (got 0)`."""
    lines = []
    for item in error.errors():
        # Field names are snake_case; CamelCase parts are union tags (the KIND) pydantic adds.
        parts = [str(part) for part in item["loc"] if not str(part)[:1].isupper()]
        where = ".".join(parts) or "settings"
        given = item.get("input")
        shown = "" if isinstance(given, dict) else f" (got {given!r})"
        lines.append(f"{where}: {item['msg']}{shown}")
    return f"invalid {kind} settings: " + "; ".join(lines)
