"""Background runs: a local pipeline run in a process of its own, followed through its folder.

Each job has a folder `<jobs home>/<id>/` (by default `lifecycle_home()/jobs/<id>/`):

    job.json      what runs: the pipeline, its parameters, when it was submitted, the worker pid
    state.json    where it is: queued, running, completed, errored or canceled, the times, the
                  error or the outcome; replaced atomically, under `lock`
    worker.log    the worker's output (kfp.local's and the steps' logs)
    outputs/      the run's outputs (`pipeline-root/<run>/...`)

The worker (`python -m pipelines.local.background JOB_FOLDER`) leads a process group of its own,
so that a cancel ends it and every step it started. Any process that can read the folder can
follow the job: that is how a future is found again from its id in a new process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import json
import logging
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time
import traceback
import typing as T
import uuid

logger = logging.getLogger(__name__)

QUEUED, RUNNING, COMPLETED, ERRORED, CANCELED = (
    "queued",
    "running",
    "completed",
    "errored",
    "canceled",
)
FINAL_STATES = frozenset({COMPLETED, ERRORED, CANCELED})
JOB_FILE, STATE_FILE, LOCK_FILE, LOG_FILE, OUTPUTS = (
    "job.json",
    "state.json",
    "lock",
    "worker.log",
    "outputs",
)
# A job id: what `new_id` makes; checked before it becomes part of a path.
_ID = re.compile(r"[0-9a-f]{16}")
# The MLflow runs a step started, as its log names them (see jobs.base.Job.__enter__).
_MLFLOW_RUN = re.compile(r"MLflow run ([0-9a-f]{32}) at ")
# How long a canceled run has to end before it is killed.
TERM_GRACE_S = 10.0
# What a pipeline step's environment holds about its own run (KFP's MLflow plugin's run, the
# experiment the step resolved, the pipeline's name and parameters): never a new run's.
# (The last two are `components.io.parents`' variables; that module loads MLflow.)
STEP_ONLY_VARIABLES = frozenset(
    {"MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "LIFECYCLE_PIPELINE", "LIFECYCLE_PIPELINE_PARAMETERS"}
)


def jobs_home() -> pathlib.Path:
    """Where local jobs keep their folders by default: `lifecycle_home()/jobs`."""
    from components.io import services

    return services.lifecycle_home() / "jobs"


def now() -> str:
    """The current UTC time, ISO 8601."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def new_id() -> str:
    """A new job id: 16 hex digits."""
    return uuid.uuid4().hex[:16]


def check_id(job_id: str) -> str:
    """The id, if it is one that `new_id` makes (it becomes a folder name).

    Raises:
        ValueError: it is not.
    """
    if not isinstance(job_id, str) or not _ID.fullmatch(job_id):
        raise ValueError(f"not a local job id: {job_id!r} (16 hex digits expected)")
    return job_id


@dataclasses.dataclass(frozen=True)
class JobState:
    """Where a job is, as `state.json` holds it.

    Attributes:
        state: queued, running, completed, errored or canceled.
        updated_at: when it was written.
        started_at: when the worker started the run, if it did.
        completed_at: when the job reached a final state.
        error: why it errored or was canceled.
        outcome: what it produced (`outcomes.to_dict`), when it completed.
        run_dir: the run's output folder, once known.
    """

    state: str
    updated_at: str
    started_at: str | None = None
    completed_at: str | None = None
    error: str | None = None
    outcome: dict[str, T.Any] | None = None
    run_dir: str | None = None


class JobFolder:
    """The folder of one local job: its record, its state, its lock.

    Args:
        path: the job's folder.
    """

    def __init__(self, path: pathlib.Path):
        self.path = pathlib.Path(path)

    @property
    def id(self) -> str:
        """The job id: the folder's name."""
        return self.path.name

    def record(self) -> dict[str, T.Any]:
        """What runs (job.json)."""
        return json.loads((self.path / JOB_FILE).read_text())

    def state(self) -> JobState:
        """Where the job is (state.json)."""
        return JobState(**json.loads((self.path / STATE_FILE).read_text()))

    @contextlib.contextmanager
    def locked(self) -> T.Iterator[None]:
        """Hold the job's lock: state changes (finish, cancel) never interleave."""
        with open(self.path / LOCK_FILE, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def write_json(self, name: str, data: T.Mapping[str, T.Any]) -> None:
        """Replace a file atomically, so a reader never sees half of it."""
        temporary = self.path / f".{name}.tmp"
        temporary.write_text(json.dumps(data, indent=2, sort_keys=True))
        os.replace(temporary, self.path / name)

    def set_state(self, state: str, **fields: T.Any) -> JobState:
        """Move the job to a state, keeping what earlier states recorded (call under lock)."""
        try:
            known = dataclasses.asdict(self.state())
        except FileNotFoundError:
            known = {}
        known.update(fields, state=state, updated_at=now())
        if state in FINAL_STATES and not known.get("completed_at"):
            known["completed_at"] = now()
        self.write_json(STATE_FILE, known)
        return JobState(**known)

    def finish(self, state: str, **fields: T.Any) -> bool:
        """Record a final state, unless the job already reached one (a cancel came first)."""
        with self.locked():
            if self.state().state in FINAL_STATES:
                return False
            self.set_state(state, **fields)
            return True


def submit(
    pipeline: str, params: T.Mapping[str, T.Any], home: pathlib.Path | None = None
) -> JobFolder:
    """Start a pipeline run under kfp.local in a background process; return at once.

    The parameters must already be checked (`preflight.validate`): a mistake fails here, in the
    caller, not later in the background.

    Args:
        pipeline: one of `pipelines.dags.catalog.NAMES`.
        params: the run's parameters, of their declared types.
        home: the jobs' folder (default: `jobs_home()`).

    Returns:
        The job's folder, with the job queued and its worker started.
    """
    from pipelines.common import outcomes

    folder = JobFolder((home or jobs_home()) / new_id())
    folder.path.mkdir(parents=True)
    record = {"id": folder.id, "pipeline": pipeline, "params": dict(params), "submitted_at": now()}
    folder.write_json(JOB_FILE, record)
    with folder.locked():
        folder.set_state(QUEUED)
    # The worker and its steps share the store this process uses (the same default as a run).
    # Started from inside a step (a retraining started by an alert step), it is a run of its
    # own: nothing of the step's own run passes to it.
    environment = {k: v for k, v in os.environ.items() if k not in STEP_ONLY_VARIABLES}
    environment["MLFLOW_TRACKING_URI"] = outcomes.tracking_uri()
    with open(folder.path / LOG_FILE, "ab") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "pipelines.local.background", str(folder.path)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
            start_new_session=True,  # its own process group: a cancel ends every step too
        )
    folder.write_json(JOB_FILE, {**record, "pid": worker.pid})
    _CHILDREN[worker.pid] = worker
    return folder


# Workers this process started, reaped when they end (else they linger as zombies).
_CHILDREN: dict[int, subprocess.Popen] = {}


def alive(folder: JobFolder) -> bool:
    """Whether the job's worker process still runs."""
    pid = folder.record().get("pid")
    if not isinstance(pid, int):
        return True  # submitted a moment ago: the pid is not recorded yet
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        command = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
        status = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # A reused pid runs something else; a zombie has ended.
    return str(folder.path).encode() in command and status.rsplit(")", 1)[-1].split()[0] != "Z"


def running_in(path: pathlib.Path) -> bool:
    """Whether a process of this machine runs with this job folder in its command line.

    What `alive` answers for a folder whose job.json (and so the worker's pid) cannot be read.
    """
    needle = str(pathlib.Path(path)).encode()
    for cmdline in pathlib.Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if needle in cmdline.read_bytes():
                return True
    return False


def last_written(path: pathlib.Path | JobFolder) -> str:
    """When anything in a job's folder last changed (its files, not its outputs), ISO 8601 UTC.

    For a worker that died without saying, the nearest known time it ended.
    """
    folder = pathlib.Path(path.path if isinstance(path, JobFolder) else path)
    times = [folder.stat().st_mtime]
    for entry in folder.iterdir():
        with contextlib.suppress(OSError):
            times.append(entry.stat().st_mtime)
    when = datetime.datetime.fromtimestamp(max(times), datetime.UTC)
    return when.isoformat(timespec="seconds")


def cancel(folder: JobFolder) -> bool:
    """End the job's run and remove its outputs, unless it already ended.

    Returns:
        True when the job was canceled now, False when it had already ended.
    """
    with folder.locked():
        if folder.state().state in FINAL_STATES:
            return False
        folder.set_state(CANCELED, error="canceled by the user")
        pid = folder.record().get("pid")
        if isinstance(pid, int):
            _end_group(pid)
            _CHILDREN.pop(pid, None)
    _mark_killed(folder)
    # Nothing half-written is published: the run's outputs go with it.
    shutil.rmtree(folder.path / OUTPUTS, ignore_errors=True)
    return True


def _end_group(pid: int) -> None:
    """Terminate a worker's process group, then kill what is left after a grace period."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + TERM_GRACE_S
    while time.monotonic() < deadline:
        child = _CHILDREN.get(pid)
        if child is not None:
            child.poll()
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _mark_killed(folder: JobFolder) -> None:
    """End the MLflow runs that the canceled run left running, as KILLED.

    The steps' logs name their runs; each names its pipeline run (the KFP run id tag), whose
    other runs are ended too: the parent run, and a step killed before its log named its run.
    """
    from mlflow.tracking import MlflowClient

    from components.core import lineage
    from pipelines.common import outcomes

    found = set()
    for log in (folder.path / OUTPUTS).glob("pipeline-root/*/**/step.log"):
        with contextlib.suppress(OSError):
            found.update(_MLFLOW_RUN.findall(log.read_text(errors="replace")))
    if not found:
        return
    try:
        client = MlflowClient(outcomes.tracking_uri())
        pipeline_runs = set()
        for run_id in found:
            run = client.get_run(run_id)
            if run.info.status == "RUNNING":
                client.set_terminated(run_id, status="KILLED")
            if kfp_run_id := run.data.tags.get(lineage.KFP_RUN_TAG):
                pipeline_runs.add((run.info.experiment_id, kfp_run_id))
        for experiment_id, kfp_run_id in pipeline_runs:
            for run in client.search_runs(
                [experiment_id],
                filter_string=f"tags.`{lineage.KFP_RUN_TAG}` = '{kfp_run_id}' "
                "and attributes.status = 'RUNNING'",
            ):
                client.set_terminated(run.info.run_id, status="KILLED")
    except Exception as error:  # the cancel is done; its MLflow bookkeeping is best effort
        logger.warning("could not mark the canceled steps' MLflow runs KILLED: %s", error)


def work(folder: JobFolder) -> int:
    """The worker: run the pipeline, then record its outcome or its error.

    Returns:
        0 when the pipeline succeeded, 1 otherwise.
    """
    from components.io import runs
    from components.utils import secrets
    from pipelines.common import outcomes
    from pipelines.local import runner

    record = folder.record()
    with folder.locked():
        if folder.state().state in FINAL_STATES:
            return 1  # canceled before it started
        folder.set_state(RUNNING, started_at=now())
    pipeline = record["pipeline"]
    try:
        ok, run_dir = runner.run_local(pipeline, record["params"], folder.path / OUTPUTS)
        with folder.locked():
            if folder.state().state not in FINAL_STATES:
                folder.set_state(RUNNING, run_dir=str(run_dir))
        runner.print_outputs(run_dir)
        if ok:
            outcome = outcomes.to_dict(outcomes.from_local_run(pipeline, run_dir))
            folder.finish(COMPLETED, outcome=outcome)
            return 0
        failures = runs.LocalTaskReader(run_folder=str(run_dir)).failures()
        causes = [f"step {failure.task}: {failure.cause}" for failure in failures]
        error = "; ".join(causes) or f"pipeline {pipeline} failed"
        folder.finish(ERRORED, error=secrets.redact(error))
    except Exception as error:
        traceback.print_exc()
        folder.finish(ERRORED, error=secrets.redact(f"{type(error).__name__}: {error}"))
    return 1


def main(argv: list[str]) -> int:
    """`python -m pipelines.local.background JOB_FOLDER`: run a submitted job."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return work(JobFolder(pathlib.Path(argv[0])))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
