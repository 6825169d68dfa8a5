"""Futures: handles on pipeline runs started in the background, here or on a cluster.

    future = trainer.train(data="s3://bucket/rows.parquet")   # returns at once
    future.id                  # "local:3f2a9c0d1b7e4a56", or "kfp:<run id>"
    future.status().state      # queued, running, completed, errored, canceled
    future.wait(timeout=600)   # the final status
    future.result()            # TrainedModel / Predictions, or the job's error raised
    future.cancel()

A future is found again from its id alone, in any process: `ModelManager().get_future(id)`.
"""

from __future__ import annotations

import abc
import dataclasses
import datetime
import pathlib
import time
import typing as T

from pipelines.common import outcomes
from pipelines.common.errors import UsageError
from pipelines.local import background

QUEUED, RUNNING, COMPLETED, ERRORED, CANCELED = (
    background.QUEUED,
    background.RUNNING,
    background.COMPLETED,
    background.ERRORED,
    background.CANCELED,
)
FINAL_STATES = background.FINAL_STATES
LOCAL, KFP = "local", "kfp"
# KFP's run states, as a future's states.
_KFP_STATES = {
    "PENDING": QUEUED,
    "RUNTIME_STATE_UNSPECIFIED": QUEUED,
    "RUNNING": RUNNING,
    "PAUSED": RUNNING,
    "CANCELING": RUNNING,
    "SUCCEEDED": COMPLETED,
    "FAILED": ERRORED,
    "SKIPPED": ERRORED,
    "CANCELED": CANCELED,
}


class JobError(RuntimeError):
    """The job ended in error; the message is the job's error (the failed step and its cause)."""


class JobCanceled(JobError):
    """The job was canceled before it produced anything."""


class FutureNotFound(UsageError):
    """No job has this id here; says where it looked."""


@dataclasses.dataclass(frozen=True)
class JobStatus:
    """Where a job is.

    Attributes:
        id: the future's id.
        state: queued, running, completed, errored or canceled.
        submitted_at: when it was submitted, UTC.
        completed_at: when it reached its final state (None before).
        error: why it errored or was canceled (None otherwise).
    """

    id: str
    state: str
    submitted_at: datetime.datetime | None
    completed_at: datetime.datetime | None = None
    error: str | None = None

    @property
    def done(self) -> bool:
        """Whether the job reached a final state."""
        return self.state in FINAL_STATES

    def to_dict(self) -> dict[str, T.Any]:
        """The status as JSON-ready data."""
        data = dataclasses.asdict(self)
        for key in ("submitted_at", "completed_at"):
            data[key] = data[key].isoformat() if data[key] else None
        return data


class JobFuture(abc.ABC):
    """A handle on a pipeline run started in the background.

    Args:
        id: the future's id, `<backend>:<job>`.
        pipeline: the pipeline it runs (training, inference, lifecycle).
    """

    def __init__(self, id: str, pipeline: str):  # noqa: A002 - the name users expect
        self.id, self.pipeline = id, pipeline

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.id!r}, pipeline={self.pipeline!r})"

    @abc.abstractmethod
    def status(self) -> JobStatus:
        """Where the job is now."""

    @abc.abstractmethod
    def cancel(self) -> bool:
        """Stop the job; True when it was stopped now, False when it had already ended."""

    @abc.abstractmethod
    def _outcome(self) -> outcomes.Outcome:
        """What the completed job produced."""

    def wait(self, timeout: float | None = None, poll_s: float = 1.0) -> JobStatus:
        """Wait for the job to end.

        Args:
            timeout: seconds to wait at most (None: as long as it takes).
            poll_s: seconds between looks.

        Returns:
            The final status.

        Raises:
            TimeoutError: the job is still queued or running after `timeout` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.status()
            if status.done:
                return status
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {self.id} still {status.state} after {timeout:g}s")
            pause = poll_s if deadline is None else min(poll_s, deadline - time.monotonic())
            time.sleep(max(pause, 0.0))

    def result(self, timeout: float | None = None) -> outcomes.Outcome:
        """What the job produced, once it ends.

        Returns:
            `TrainedModel` for training, `Predictions` for inference, `LifecycleOutcome` for
            the lifecycle.

        Raises:
            JobError: the job errored (its error); JobCanceled: it was canceled.
            TimeoutError: it has not ended after `timeout` seconds.
        """
        status = self.wait(timeout)
        if status.state == CANCELED:
            raise JobCanceled(f"job {self.id} was canceled: {status.error or 'no output'}")
        if status.state == ERRORED:
            raise JobError(f"job {self.id} failed: {status.error}")
        return self._outcome()


def moment(text: T.Any) -> datetime.datetime | None:
    """A timestamp from ISO text or a datetime, in UTC; None when there is none."""
    if not text:
        return None
    if isinstance(text, datetime.datetime):
        when = text
    else:
        when = datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    # KFP answers 1970-01-01 for a run not finished yet.
    return None if when.year <= 1970 else when


# %% LOCAL


class LocalFuture(JobFuture):
    """A pipeline run under kfp.local in a background process of its own.

    Args:
        folder: the job's folder (see `pipelines.local.background`).
    """

    def __init__(self, folder: background.JobFolder):
        self.folder = folder
        super().__init__(f"{LOCAL}:{folder.id}", folder.record()["pipeline"])

    @classmethod
    def find(cls, job_id: str, home: pathlib.Path | None = None) -> LocalFuture:
        """The future of a local job, from its id, in any process.

        Raises:
            FutureNotFound: no job folder has this id.
        """
        home = home or background.jobs_home()
        try:
            folder = background.JobFolder(home / background.check_id(job_id))
        except ValueError as error:
            raise FutureNotFound(str(error)) from None
        try:
            return cls(folder)
        except FileNotFoundError:  # never submitted here, or pruned
            raise FutureNotFound(f"no local job {job_id} in {folder.path.parent}") from None
        except (ValueError, TypeError, KeyError) as error:  # half-written or corrupt
            raise FutureNotFound(
                f"local job {job_id} in {folder.path.parent} cannot be read "
                f"({type(error).__name__}: {error}); `job prune` removes it once it is old"
            ) from None

    def status(self) -> JobStatus:
        """The state the worker recorded; errored when the worker died without saying.

        Raises:
            FutureNotFound: the job's folder was removed (`job prune`) since it was found.
        """
        try:
            return self._status()
        except FileNotFoundError:
            if self.folder.path.is_dir():
                raise
            # Pruned meanwhile: the folder goes whole (renamed aside first), so this is all.
            raise FutureNotFound(f"local job {self.folder.id} was removed") from None

    def _status(self) -> JobStatus:
        record, state = self.folder.record(), self.folder.state()
        if state.state not in FINAL_STATES and not background.alive(self.folder):
            # Killed from outside (out of memory, a reboot): the folder is all that is left,
            # and the last time the worker wrote to it is when it ended, as near as is known.
            self.folder.finish(
                ERRORED,
                error="the background run ended without recording an outcome (killed?)",
                completed_at=background.last_written(self.folder),
            )
            state = self.folder.state()
        return JobStatus(
            id=self.id,
            state=state.state,
            submitted_at=moment(record.get("submitted_at")),
            completed_at=moment(state.completed_at),
            error=state.error,
        )

    def cancel(self) -> bool:
        """End the run's process group and remove its outputs."""
        return background.cancel(self.folder)

    def _outcome(self) -> outcomes.Outcome:
        return outcomes.from_dict(self.folder.state().outcome or {})

    @property
    def log(self) -> pathlib.Path:
        """The background run's log file."""
        return self.folder.path / background.LOG_FILE


# %% KFP


class KFPFuture(JobFuture):
    """A run on a Kubeflow Pipelines cluster.

    Its outcome is read from MLflow, where each step's job recorded a run tagged with the KFP
    run id (see `pipelines.common.outcomes.from_mlflow`).

    Args:
        client: a connected `kfp.Client`.
        run_id: the KFP run id.
        pipeline: the pipeline it runs; found from the run's pipeline when None.
        tracking_uri: the MLflow store the steps record in (default: $MLFLOW_TRACKING_URI).
    """

    def __init__(
        self,
        client: T.Any,
        run_id: str,
        pipeline: str | None = None,
        tracking_uri: str | None = None,
    ):
        self.client, self.run_id, self.tracking_uri = client, run_id, tracking_uri
        super().__init__(f"{KFP}:{run_id}", pipeline or "")

    @property
    def pipeline(self) -> str:
        """The pipeline the run runs; asked of KFP the first time (its result needs it)."""
        if not self._pipeline:
            self._pipeline = self._find_pipeline()
        return self._pipeline

    @pipeline.setter
    def pipeline(self, name: str) -> None:
        self._pipeline = name

    def __repr__(self) -> str:
        return f"KFPFuture({self.id!r})"

    def _run(self) -> T.Any:
        return self.client.get_run(self.run_id)

    def _find_pipeline(self) -> str:
        """The pipeline a run runs, from the display name of its pipeline version."""
        from pipelines.dags import catalog

        name = project_pipeline(self.client, self._run())
        if name is None:
            raise FutureNotFound(
                f"KFP run {self.run_id} is not a run of this project's pipelines "
                f"({', '.join(catalog.NAMES)})"
            )
        return name

    def status(self) -> JobStatus:
        """The run's state on KFP; the failed steps and their errors when it failed."""
        return self.status_of(self._run())

    @classmethod
    def status_of(cls, run: T.Any) -> JobStatus:
        """The status of a run as KFP answered it (`get_run`, or one item of `list_runs`)."""
        state = _KFP_STATES.get(str(run.state or "").upper(), RUNNING)
        error = None
        if state in (ERRORED, CANCELED):
            error = cls._error(run) or f"the KFP run ended {run.state}"
        return JobStatus(
            id=f"{KFP}:{run.run_id}",
            state=state,
            submitted_at=moment(run.created_at),
            completed_at=moment(run.finished_at) if state in FINAL_STATES else None,
            error=error,
        )

    @staticmethod
    def _error(run: T.Any) -> str:
        from components.io import runs

        tasks = list((run.run_details and run.run_details.task_details) or [])
        causes = [
            f"step {task.display_name or task.task_id}"
            + (f": {task.error.message}" if task.error and task.error.message else "")
            for task in runs.innermost_failed(tasks)
        ]
        if run.error is not None and run.error.message:
            causes.append(run.error.message)
        return "; ".join(causes)

    def cancel(self) -> bool:
        """Terminate the run on KFP (its pods stop; no step publishes after that)."""
        if self.status().done:
            return False
        self.client.terminate_run(self.run_id)
        return True

    def _outcome(self) -> outcomes.Outcome:
        return outcomes.from_mlflow(self.pipeline, self.run_id, self.tracking_uri)


def project_pipeline(client: T.Any, run: T.Any, names: dict[str, str] | None = None) -> str | None:
    """Which of this project's pipelines a KFP run runs; None when it runs another one.

    Args:
        client: a connected `kfp.Client`.
        run: the run, as KFP answered it.
        names: pipeline ids already looked up -> their display names; filled in, so that
            listing many runs asks KFP once per pipeline.
    """
    from pipelines.dags import catalog

    names = {} if names is None else names
    reference = run.pipeline_version_reference
    name = ""
    if reference is not None and reference.pipeline_id:
        if reference.pipeline_id not in names:
            names[reference.pipeline_id] = (
                client.get_pipeline(reference.pipeline_id).display_name or ""
            )
        name = names[reference.pipeline_id]
    for known in catalog.NAMES:
        if name == known or (run.display_name or "").startswith(f"{known}-"):
            return known
    return None


def split_id(future_id: str) -> tuple[str, str]:
    """`local:<job>` or `kfp:<run>` as (backend, job).

    Raises:
        FutureNotFound: the id names no backend.
    """
    backend, sep, job = str(future_id).partition(":")
    if not sep or backend not in (LOCAL, KFP) or not job:
        raise FutureNotFound(
            f"not a job id: {future_id!r}; ids look like local:<16 hex digits> or kfp:<run id>"
        )
    return backend, job
