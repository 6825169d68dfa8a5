"""Job housekeeping: list the local jobs and a cluster's KFP runs, prune the local jobs that ended.

    jobs = list_local(state="errored")              # newest first, from the jobs folder
    jobs += list_kfp(client)                        # this project's runs on a KFP cluster
    for line in table(newest_first(jobs)):
        print(line)
    report = prune(older_than=30, dry_run=True)     # what would go, and the space it would free
    report.removed, report.bytes_freed

A job folder that cannot be read (half-written, corrupt) is listed with the state `unreadable`
and what is wrong with it, never raised. Pruning removes only local jobs that ended (completed,
errored, canceled) before the cut-off, and only once their worker is gone; a KFP run is never
pruned (the cluster keeps its own runs). `ModelManager.list_jobs` and `prune_jobs` do the same
for every backend a run config names.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import pathlib
import shutil
import typing as T
import uuid

from pipelines.common.errors import UsageError
from pipelines.jobs import futures
from pipelines.local import background

STATES = (futures.QUEUED, futures.RUNNING, futures.COMPLETED, futures.ERRORED, futures.CANCELED)
ENDED = (futures.COMPLETED, futures.ERRORED, futures.CANCELED)
# What a job folder that cannot be read is listed as: not one of the states a job reaches.
UNREADABLE = "unreadable"
# A folder being removed is renamed to this prefix first: a reader then finds the job whole or
# not at all, and `list` skips it (a dot name is no job id).
ASIDE = ".pruning-"
# An unreadable folder this young may be a job being submitted now (its files not written yet).
SUBMIT_GRACE = datetime.timedelta(minutes=10)


@dataclasses.dataclass(frozen=True)
class JobSummary:
    """One job, as `job list` shows it.

    Attributes:
        id: the future's id, `local:<16 hex digits>` or `kfp:<run id>`.
        pipeline: the pipeline it runs ("" when its folder cannot be read).
        state: queued, running, completed, errored or canceled; `unreadable` for a local
            folder that cannot be read.
        submitted_at: when it was submitted, UTC.
        started_at: when its run started, when known.
        completed_at: when it reached its final state (None before).
        error: why it errored or was canceled; for an unreadable folder, what is wrong with it.
        changed_at: when an unreadable folder last changed (its place in the list, its age).
    """

    id: str
    pipeline: str
    state: str
    submitted_at: datetime.datetime | None
    started_at: datetime.datetime | None = None
    completed_at: datetime.datetime | None = None
    error: str | None = None
    changed_at: datetime.datetime | None = None

    @property
    def duration(self) -> datetime.timedelta | None:
        """How long it ran, from its start (else its submission) to its end; None before."""
        start = self.started_at or self.submitted_at
        if start is None or self.completed_at is None:
            return None
        return max(self.completed_at - start, datetime.timedelta(0))

    @property
    def ended_at(self) -> datetime.datetime | None:
        """When it ended, for pruning: its completion, or an unreadable folder's last change."""
        return self.completed_at if self.state in ENDED else self.changed_at

    def to_dict(self) -> dict[str, T.Any]:
        """The summary as JSON-ready data, with the duration in seconds."""
        data = dataclasses.asdict(self)
        for key in ("submitted_at", "started_at", "completed_at", "changed_at"):
            data[key] = data[key].isoformat() if data[key] else None
        duration = self.duration
        data["duration_s"] = None if duration is None else duration.total_seconds()
        return data


@dataclasses.dataclass(frozen=True)
class Pruned:
    """A job that `prune` removed (or would remove), and the space its folder took.

    Attributes:
        job: the job as it was listed.
        size: the bytes its folder held.
        folder: where its folder was.
    """

    job: JobSummary
    size: int
    folder: pathlib.Path


@dataclasses.dataclass(frozen=True)
class PruneReport:
    """What `prune` did.

    Attributes:
        removed: the jobs removed, or that would be with `dry_run`, newest first.
        dry_run: True when nothing was removed.
        leftovers: bytes freed from folders an interrupted prune had renamed aside.
    """

    removed: tuple[Pruned, ...]
    dry_run: bool
    leftovers: int = 0

    @property
    def bytes_freed(self) -> int:
        """The space freed (or that would be), in bytes."""
        return sum(pruned.size for pruned in self.removed) + self.leftovers

    def __add__(self, other: PruneReport) -> PruneReport:
        removed = sorted((*self.removed, *other.removed), key=lambda p: _order(p.job), reverse=True)
        return PruneReport(
            tuple(removed), self.dry_run and other.dry_run, self.leftovers + other.leftovers
        )


def check_state(state: str | None, allowed: T.Sequence[str] = STATES) -> str | None:
    """The state to filter by, if it is one a job reaches (one it ends in, for `ENDED`).

    Raises:
        UsageError: it is not one of `allowed`; the message lists them.
    """
    if state is not None and state not in allowed:
        which = "states a job ends in" if tuple(allowed) == ENDED else "states"
        raise UsageError(f"state {state!r} is not allowed; {which}: {', '.join(allowed)}")
    return state


def days(value: T.Any) -> float:
    """A number of days (from a number or its text), zero or more.

    Raises:
        UsageError: not a number, or negative.
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not number >= 0 or number == float("inf"):
        raise UsageError(f"older_than {value!r} is not allowed; a number of days, 0 or more")
    return number


# %% LISTING


def newest_first(jobs: T.Iterable[JobSummary]) -> list[JobSummary]:
    """The jobs, the most recently submitted first (unreadable folders by their last change)."""
    return sorted(jobs, key=_order, reverse=True)


def _order(job: JobSummary) -> tuple[datetime.datetime, str]:
    return (job.submitted_at or job.changed_at or _EPOCH, job.id)


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def list_local(home: pathlib.Path | None = None, state: str | None = None) -> list[JobSummary]:
    """The local jobs of a jobs folder, newest first.

    A job whose worker died without saying is errored, as `job status` finds it.

    Args:
        home: the jobs' folder (default: `background.jobs_home()`).
        state: only the jobs in this state (unreadable folders have none: left out then).

    Raises:
        UsageError: `state` is not one of `STATES`.
    """
    check_state(state)
    found = (read_local(path) for path in _job_folders(home))
    return newest_first(job for job in found if job and (state is None or job.state == state))


def _job_folders(home: pathlib.Path | None) -> list[pathlib.Path]:
    """The folders of a jobs folder that are jobs: named as `background.new_id` names them."""
    home = pathlib.Path(home) if home else background.jobs_home()
    if not home.is_dir():
        return []
    names = []
    for path in home.iterdir():
        with contextlib.suppress(ValueError):
            background.check_id(path.name)
            names.append(path)
    return names


def read_local(path: pathlib.Path) -> JobSummary | None:
    """One local job's summary; an unreadable one when its files cannot be read.

    Returns:
        None when the folder is gone (pruned while it was read).
    """
    folder = background.JobFolder(path)
    try:
        future = futures.LocalFuture(folder)
        status = future.status()
        started_at = futures.moment(folder.state().started_at)
    except futures.FutureNotFound:
        return None  # pruned while it was read
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as error:
        if not path.is_dir():
            return None
        return JobSummary(
            id=f"{futures.LOCAL}:{folder.id}",
            pipeline=_pipeline_of(path),
            state=UNREADABLE,
            submitted_at=None,
            error=_what_is_wrong(path, error),
            changed_at=_changed_at(path),
        )
    return JobSummary(
        id=status.id,
        pipeline=future.pipeline,
        state=status.state,
        submitted_at=status.submitted_at,
        started_at=started_at,
        completed_at=status.completed_at,
        error=status.error,
    )


def _pipeline_of(path: pathlib.Path) -> str:
    """The pipeline a broken folder's job.json names, when that much of it can be read."""
    with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
        pipeline = json.loads((path / background.JOB_FILE).read_text()).get("pipeline")
        return pipeline if isinstance(pipeline, str) else ""
    return ""


def _what_is_wrong(path: pathlib.Path, error: Exception) -> str:
    """Which file of a job folder cannot be read, and why."""
    for name in (background.JOB_FILE, background.STATE_FILE):
        try:
            data = json.loads((path / name).read_text())
        except FileNotFoundError:
            return f"no {name}"
        except (OSError, ValueError) as problem:
            return f"{name}: {problem}"
        if not isinstance(data, dict):
            return f"{name}: not a JSON object"
    return f"{type(error).__name__}: {error}"


def _changed_at(path: pathlib.Path) -> datetime.datetime | None:
    with contextlib.suppress(OSError):
        return futures.moment(background.last_written(path))
    return None


def list_kfp(
    client: T.Any, state: str | None = None, namespace: str | None = None
) -> list[JobSummary]:
    """The runs of this project's pipelines on a KFP cluster, newest first.

    Runs of other pipelines on the same cluster are left out: `job status` could not follow
    them either.

    Args:
        client: a connected `kfp.Client`.
        state: only the runs in this state (KFP's states as a future's: SUCCEEDED is completed).
        namespace: the profile namespace on a multi-user KFP.

    Raises:
        UsageError: `state` is not one of `STATES`.
    """
    from pipelines.cluster.client import paginate

    check_state(state)
    names: dict[str, str] = {}
    jobs = []
    for run in paginate(client.list_runs, "runs", namespace=namespace, sort_by="created_at desc"):
        pipeline = futures.project_pipeline(client, run, names)
        if pipeline is None:
            continue
        status = futures.KFPFuture.status_of(run)
        if state is None or status.state == state:
            jobs.append(
                JobSummary(
                    id=status.id,
                    pipeline=pipeline,
                    state=status.state,
                    submitted_at=status.submitted_at,
                    completed_at=status.completed_at,
                    error=status.error,
                )
            )
    return newest_first(jobs)


def table(jobs: T.Sequence[JobSummary]) -> list[str]:
    """The jobs as aligned lines under a header: id, pipeline, state, times (UTC), duration."""
    rows = [("ID", "PIPELINE", "STATE", "SUBMITTED (UTC)", "FINISHED (UTC)", "DURATION")]
    for job in jobs:
        row = (
            job.id,
            job.pipeline or "-",
            job.state,
            when_text(job.submitted_at),
            when_text(job.completed_at),
            _duration(job.duration),
        )
        if job.state == UNREADABLE:  # what is wrong with it, and how old it is
            changed = when_text(job.changed_at)
            row = (*row[:-1], f"{row[-1]}  ({job.error}; last changed {changed})")
        rows.append(row)
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    return [
        "  ".join(
            [*(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)), row[-1]]
        ).rstrip()
        for row in rows
    ]


def when_text(moment: datetime.datetime | None) -> str:
    """A time as `job list` shows it: UTC, to the second; "-" for none."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def _duration(duration: datetime.timedelta | None) -> str:
    """3s, 4m05s, 2h07m, 3d04h."""
    if duration is None:
        return "-"
    seconds = int(duration.total_seconds())
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days_, hours = divmod(hours, 24)
    if days_:
        return f"{days_}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{seconds:02d}s"
    return f"{seconds}s"


def size_text(size: int) -> str:
    """Bytes for people: 512 B, 3.4 KiB, 12.0 MiB, 1.5 GiB."""
    amount = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    raise AssertionError("unreachable")


# %% PRUNING


def prune(
    home: pathlib.Path | None = None,
    older_than: float = 30.0,
    state: str | None = None,
    dry_run: bool = False,
    now: datetime.datetime | None = None,
) -> PruneReport:
    """Remove the local jobs that ended more than `older_than` days ago.

    A queued or running job is never removed, nor one whose worker still runs; a worker that
    died without saying makes its job errored (as `job status` finds it), ended when the
    worker last wrote to its folder. An unreadable folder goes once nothing in it changed for
    `older_than` days (and for a few minutes at least: it may be a job being submitted) and no
    process runs it; never when `state` is given. Each folder is renamed aside under the job's
    lock before it is deleted, so a `job status` reading it at the same time finds the job
    whole or not at all.

    Args:
        home: the jobs' folder (default: `background.jobs_home()`).
        older_than: days since the job ended.
        state: only the jobs that ended in this state: completed, errored or canceled.
        dry_run: say what would be removed; remove nothing.
        now: the time the age is counted from (default: now).

    Returns:
        The jobs removed (or that would be), with the space each folder took.

    Raises:
        UsageError: `older_than` is not a number of days, or `state` not an ended state.
    """
    cut_off = (now or datetime.datetime.now(datetime.UTC)) - datetime.timedelta(
        days=days(older_than)
    )
    check_state(state, ENDED)
    removed = []
    for path in _job_folders(home):
        job = read_local(path)
        if job is None or not _prunable(job, cut_off, state):
            continue
        size = _size(path)
        if dry_run or _remove(path, job, cut_off, state):
            removed.append(Pruned(job, size, path))
    leftovers = 0 if dry_run else _remove_leftovers(home)
    return PruneReport(
        tuple(sorted(removed, key=lambda p: _order(p.job), reverse=True)), dry_run, leftovers
    )


def _prunable(job: JobSummary, cut_off: datetime.datetime, state: str | None) -> bool:
    ended = job.ended_at
    if ended is None or ended >= cut_off:
        return False
    if job.state == UNREADABLE:
        return state is None and ended < datetime.datetime.now(datetime.UTC) - SUBMIT_GRACE
    return job.state in ENDED and (state is None or job.state == state)


def _remove(
    path: pathlib.Path, job: JobSummary, cut_off: datetime.datetime, state: str | None
) -> bool:
    """Rename a job's folder aside, if it still may go, then delete it.

    Returns:
        False when the job changed meanwhile (or its worker runs): nothing removed.
    """
    aside = path.with_name(f"{ASIDE}{path.name}-{uuid.uuid4().hex[:8]}")
    try:
        if job.state == UNREADABLE:
            if background.running_in(path):
                return False
            os.replace(path, aside)
        else:
            folder = background.JobFolder(path)
            # Under the lock: a cancel or the worker's last word cannot land between the check
            # and the rename (both change the state under the same lock).
            with folder.locked():
                if not _still_ended(folder, cut_off, state) or background.alive(folder):
                    return False
                os.replace(path, aside)
    except FileNotFoundError:
        return False  # another prune took it
    shutil.rmtree(aside, ignore_errors=True)
    return True


def _still_ended(
    folder: background.JobFolder, cut_off: datetime.datetime, state: str | None
) -> bool:
    """Whether the job still ended before the cut-off, read again (under its lock)."""
    try:
        now = folder.state()
    except (OSError, ValueError, TypeError):
        return False
    ended = futures.moment(now.completed_at)
    return (
        now.state in ENDED
        and (state is None or now.state == state)
        and ended is not None
        and ended < cut_off
    )


def _remove_leftovers(home: pathlib.Path | None) -> int:
    """Delete what an interrupted prune left renamed aside; the bytes freed."""
    home = pathlib.Path(home) if home else background.jobs_home()
    freed = 0
    if home.is_dir():
        for aside in home.glob(f"{ASIDE}*"):
            freed += _size(aside)
            shutil.rmtree(aside, ignore_errors=True)
    return freed


def _size(path: pathlib.Path) -> int:
    """The bytes of the files under a folder (links not followed)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total
