"""Keep KFP recurring runs in step with a schedules file: create, replace, delete or keep."""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import kfp
import yaml
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, field_validator

from pipelines.checks import params, preflight
from pipelines.cluster.client import content_hash, display_name_filter, paginate
from pipelines.cluster.submit import PipelineVersion, ensure_pipeline_version
from pipelines.common.errors import UsageError

DEFAULT_FILE = Path("manifests/schedules/schedules.yaml")
CRON_FIELDS = ("second", "minute", "hour", "day-of-month", "month", "day-of-week")
_MARK = re.compile(r"managed-by: (?P<owner>[^;]+); spec-hash: (?P<spec_hash>[0-9a-f]{12})")


class ScheduleFileError(UsageError):
    """The schedules file cannot be read or breaks a rule; the message says where."""


class Schedule(BaseModel):
    """One recurring run as the file declares it.

    `config` names a run config file (params.load_config), relative to the schedules file: the
    schedule's pipeline takes the parameters of it that it declares (one run config serves
    every pipeline of a model), merged under the inline `parameters`, which win.
    """

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    pipeline: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    cron: str
    enabled: bool = True
    max_concurrency: int = Field(default=1, ge=1, le=10)  # the range KFP accepts
    catchup: bool = False
    parameters: dict[str, JsonValue] = Field(default_factory=dict)
    config: str | None = Field(default=None, min_length=1)

    @field_validator("cron")
    @classmethod
    def _six_fields(cls, cron: str) -> str:
        fields = cron.split()
        if len(fields) != len(CRON_FIELDS):
            raise ValueError(
                f"cron {cron!r} has {len(fields)} fields; KFP cron needs {len(CRON_FIELDS)}: "
                f"{' '.join(CRON_FIELDS)} (e.g. '0 0 2 * * *')"
            )
        # Spacing is not meaning: normalise it so it never reads as a change.
        return " ".join(fields)


class ScheduleFile(BaseModel):
    """The whole file: who owns the recurring runs, where they live, and what they are."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")

    owner: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
    experiment: str = Field(min_length=1)
    schedules: list[Schedule]

    @field_validator("schedules")
    @classmethod
    def _unique_names(cls, schedules: list[Schedule]) -> list[Schedule]:
        names = [schedule.name for schedule in schedules]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"schedule names must be unique; repeated: {', '.join(repeated)}")
        return schedules


@dataclass(frozen=True)
class Action:
    """One step of a sync plan.

    Attributes:
        kind: create, replace, delete or keep.
        name: the recurring run's display name.
        schedule: the declared schedule (create, replace, keep).
        spec_hash: hash of the declared spec (create, replace, keep).
        recurring_run_ids: existing recurring runs kept (keep) or retired (replace, delete).
    """

    kind: Literal["create", "replace", "delete", "keep"]
    name: str
    schedule: Schedule | None = None
    spec_hash: str = ""
    recurring_run_ids: tuple[str, ...] = ()

    def describe(self) -> str:
        """One plan line, e.g. `delete   weekly-training  id 1f2e...`."""
        ids = ",".join(self.recurring_run_ids)
        match self.kind:
            case "create":
                detail = self._spec()
            case "replace":
                detail = f"{self._spec()}; replaces {ids}"
            case "delete":
                detail = f"id {ids}"
            case "keep":
                detail = f"id {ids}, spec-hash {self.spec_hash}"
        return f"{self.kind:<8} {self.name}  {detail}"

    def _spec(self) -> str:
        assert self.schedule is not None
        state = "enabled" if self.schedule.enabled else "disabled"
        return (
            f"pipeline {self.schedule.pipeline}, cron '{self.schedule.cron}', {state}, "
            f"spec-hash {self.spec_hash}"
        )


def load_schedule_file(path: Path) -> ScheduleFile:
    """Read and validate a schedules file.

    Raises:
        ScheduleFileError: unreadable, not YAML, or a rule broken; names the entry and field.
    """
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ScheduleFileError(f"{path}: cannot read schedules: {error}") from error
    if not isinstance(data, dict):
        raise ScheduleFileError(f"{path}: expected a mapping with owner, experiment, schedules")
    try:
        schedules = ScheduleFile.model_validate(data)
    except ValidationError as error:
        problems = "\n".join(f"  - {_describe(e, data)}" for e in error.errors())
        raise ScheduleFileError(f"{path}: invalid schedules file:\n{problems}") from error
    # Config paths are relative to the schedules file, not to the working directory.
    folder = Path(path).parent
    return schedules.model_copy(
        update={
            "schedules": [
                s.model_copy(update={"config": str(folder / s.config)}) if s.config else s
                for s in schedules.schedules
            ]
        }
    )


def resolve_parameters(
    config: ScheduleFile,
    pipeline_files: dict[str, Path],
    pipelines: dict[str, params.PipelineParameters] | None = None,
) -> ScheduleFile:
    """Merge each schedule's config file under its inline parameters and validate the result.

    Every schedule is checked against the parameters of its compiled pipeline, by the steps
    that take them (preflight.validate), before anything changes on KFP; the values come back
    converted to the declared types.

    Args:
        config: the schedules file as load_schedule_file read it.
        pipeline_files: compiled YAML of each pipeline the file names.
        pipelines: every compiled pipeline a schedule's config file may serve, by name (a key
            none of them declares is refused); default: those of pipeline_files.

    Returns:
        The schedules file with each schedule's merged, validated parameters.

    Raises:
        ScheduleFileError: a config file or a parameter is wrong; names every schedule at fault.
    """
    declared = {name: params.of_file(path) for name, path in pipeline_files.items()}
    every = {**(pipelines or {}), **declared}
    problems, schedules = [], []
    for schedule in config.schedules:
        try:
            values = dict(schedule.parameters)
            if schedule.config:
                found = params.load_config(Path(schedule.config))
                taken = params.config_values(
                    found, schedule.pipeline, declared[schedule.pipeline], every, schedule.config
                )
                values = params.merge(taken, values)
            values = preflight.validate(schedule.pipeline, values, declared[schedule.pipeline])
        except params.ParameterError as error:
            problems.append(f"  - schedule {schedule.name!r}: {error}")
            continue
        schedules.append(schedule.model_copy(update={"parameters": values}))
    if problems:
        raise ScheduleFileError("invalid schedule parameters:\n" + "\n".join(problems))
    return config.model_copy(update={"schedules": schedules})


def _describe(error: Any, data: dict[str, Any]) -> str:
    """Say where a validation error is, naming the schedule entry when there is one."""
    loc = list(error["loc"])
    where = ".".join(str(part) for part in loc) or "file"
    if len(loc) >= 2 and loc[0] == "schedules" and isinstance(loc[1], int):
        entries = data.get("schedules") or []
        entry = entries[loc[1]] if loc[1] < len(entries) else None
        name = entry.get("name") if isinstance(entry, dict) else None
        label = f"schedules[{loc[1]}]" + (f" ({name})" if name else "")
        where = ".".join([label, *(str(part) for part in loc[2:])])
    return f"{where}: {error['msg']}"


def spec_hash(schedule: Schedule, pipeline_hash: str) -> str:
    """Hash everything that makes a recurring run what it is; any change means replace."""
    spec = {
        "pipeline": schedule.pipeline,
        "pipeline_hash": pipeline_hash,
        "cron": schedule.cron,
        "parameters": schedule.parameters,
        "enabled": schedule.enabled,
        "max_concurrency": schedule.max_concurrency,
        "catchup": schedule.catchup,
    }
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def ownership_mark(owner: str, digest: str) -> str:
    """The description that marks a recurring run as ours and records its spec."""
    return f"managed-by: {owner}; spec-hash: {digest}"


def read_mark(description: str | None) -> tuple[str, str] | None:
    """Return (owner, spec hash) from a recurring run's description, or None if unmarked."""
    match = _MARK.search(description or "")
    return (match["owner"].strip(), match["spec_hash"]) if match else None


def plan_sync(
    config: ScheduleFile, existing: Iterable[Any], pipeline_hashes: dict[str, str]
) -> list[Action]:
    """Compare the file with the recurring runs on KFP and list the steps to match it.

    Recurring runs without this file's ownership mark are foreign: they never enter the plan.

    Args:
        config: the validated schedules file.
        existing: recurring runs in the experiment (V2beta1RecurringRun-like objects).
        pipeline_hashes: content hash of each pipeline's compiled file, by pipeline name.

    Returns:
        Actions in file order, then deletions of owned runs the file no longer names.
    """
    owned: dict[str, list[tuple[Any, str]]] = defaultdict(list)
    for recurring_run in existing:
        mark = read_mark(recurring_run.description)
        if mark is not None and mark[0] == config.owner:
            owned[recurring_run.display_name].append((recurring_run, mark[1]))
    actions: list[Action] = []
    for schedule in config.schedules:
        digest = spec_hash(schedule, pipeline_hashes[schedule.pipeline])
        actions.extend(_plan_one(schedule, digest, owned.pop(schedule.name, [])))
    for name in sorted(owned):
        ids = tuple(run.recurring_run_id for run, _ in owned[name])
        actions.append(Action("delete", name, recurring_run_ids=ids))
    return actions


def _plan_one(schedule: Schedule, digest: str, current: list[tuple[Any, str]]) -> list[Action]:
    """Plan one declared schedule against the owned recurring runs of the same name."""
    if not current:
        return [Action("create", schedule.name, schedule, digest)]
    matching = [run for run, found in current if found == digest and _mode_is(run, schedule)]
    if not matching:
        ids = tuple(run.recurring_run_id for run, _ in current)
        return [Action("replace", schedule.name, schedule, digest, ids)]
    keeper = matching[0].recurring_run_id
    actions = [Action("keep", schedule.name, schedule, digest, (keeper,))]
    # Leftovers of an interrupted replace: same name, not the one kept.
    extra = tuple(run.recurring_run_id for run, _ in current if run.recurring_run_id != keeper)
    if extra:
        actions.append(Action("delete", schedule.name, recurring_run_ids=extra))
    return actions


def _mode_is(recurring_run: Any, schedule: Schedule) -> bool:
    """Whether the run is enabled or disabled as declared (someone may have paused it in the UI)."""
    mode = str(recurring_run.mode or "").upper()
    if mode not in ("ENABLE", "DISABLE"):
        return True
    return (mode == "ENABLE") == schedule.enabled


def find_experiment_id(client: kfp.Client, name: str, namespace: str | None = None) -> str | None:
    """Return the id of the experiment with this name, or None; creates nothing."""
    experiments = paginate(
        client.list_experiments,
        "experiments",
        filter=display_name_filter(name),
        namespace=namespace,
    )
    return next((e.experiment_id for e in experiments if e.display_name == name), None)


def list_recurring_runs(client: kfp.Client, experiment_id: str) -> list[Any]:
    """Every recurring run in the experiment, across all pages."""
    return list(paginate(client.list_recurring_runs, "recurring_runs", experiment_id=experiment_id))


def apply_plan(
    client: kfp.Client,
    config: ScheduleFile,
    actions: list[Action],
    experiment_id: str,
    version_of: Callable[[str], PipelineVersion],
) -> None:
    """Carry out a plan; a replacement is created before the run it replaces is retired.

    Args:
        client: connected KFP client.
        config: the schedules file (for the owner mark).
        actions: the plan from plan_sync.
        experiment_id: where new recurring runs go.
        version_of: pipeline name -> its KFP version, uploaded if needed.
    """
    for action in actions:
        if action.kind in ("create", "replace"):
            created = create_recurring_run(client, config, action, experiment_id, version_of)
            print(f"created  {action.name}  id {created}")
        if action.kind in ("replace", "delete"):
            for recurring_run_id in action.recurring_run_ids:
                # Disable first so a deletion that fails half-way leaves nothing firing twice.
                client.disable_recurring_run(recurring_run_id)
                client.delete_recurring_run(recurring_run_id)
                print(f"deleted  {action.name}  id {recurring_run_id}")


def create_recurring_run(
    client: kfp.Client,
    config: ScheduleFile,
    action: Action,
    experiment_id: str,
    version_of: Callable[[str], PipelineVersion],
) -> str:
    """Create the recurring run an action declares, marked as owned; return its id."""
    schedule = action.schedule
    assert schedule is not None
    version = version_of(schedule.pipeline)
    recurring_run = client.create_recurring_run(
        experiment_id=experiment_id,
        job_name=schedule.name,
        description=ownership_mark(config.owner, action.spec_hash),
        cron_expression=schedule.cron,
        max_concurrency=schedule.max_concurrency,
        no_catchup=not schedule.catchup,
        params=dict(schedule.parameters),
        pipeline_id=version.pipeline_id,
        version_id=version.version_id,
        enabled=schedule.enabled,
    )
    return recurring_run.recurring_run_id


def sync(
    client: kfp.Client,
    config: ScheduleFile,
    pipeline_files: dict[str, Path],
    dry_run: bool = False,
    namespace: str | None = None,
) -> list[Action]:
    """Make the experiment's owned recurring runs match the file; print the plan.

    Args:
        client: connected KFP client.
        config: the validated schedules file, its parameters resolved (resolve_parameters).
        pipeline_files: compiled YAML of each pipeline the file names.
        dry_run: print the plan and change nothing (no experiment, upload or run created).
        namespace: namespace on multi-user KFP.

    Returns:
        The plan that was printed (and carried out unless dry_run).
    """
    hashes = {name: content_hash(path) for name, path in pipeline_files.items()}
    experiment_id = find_experiment_id(client, config.experiment, namespace)
    existing = list_recurring_runs(client, experiment_id) if experiment_id else []
    actions = plan_sync(config, existing, hashes)
    _print_plan(config, actions, foreign=_count_foreign(config, existing), dry_run=dry_run)
    if dry_run or all(action.kind == "keep" for action in actions):
        return actions
    if experiment_id is None:
        experiment_id = client.create_experiment(
            config.experiment, namespace=namespace
        ).experiment_id
    versions: dict[str, PipelineVersion] = {}

    def version_of(pipeline: str) -> PipelineVersion:
        if pipeline not in versions:
            versions[pipeline] = ensure_pipeline_version(
                client, pipeline, pipeline_files[pipeline], namespace
            )
        return versions[pipeline]

    apply_plan(client, config, actions, experiment_id, version_of)
    return actions


def _count_foreign(config: ScheduleFile, existing: list[Any]) -> int:
    marks = [read_mark(recurring_run.description) for recurring_run in existing]
    return sum(1 for mark in marks if mark is None or mark[0] != config.owner)


def _print_plan(config: ScheduleFile, actions: list[Action], foreign: int, dry_run: bool) -> None:
    heading = "plan (dry run, nothing will change)" if dry_run else "plan"
    print(f"{heading} for experiment {config.experiment}, owner {config.owner}:")
    for action in actions:
        print(f"  {action.describe()}")
    totals = ", ".join(
        f"{sum(a.kind == kind for a in actions)} {kind}"
        for kind in ("create", "replace", "delete", "keep")
    )
    print(f"  summary: {totals}; {foreign} recurring run(s) not owned by {config.owner} left alone")
