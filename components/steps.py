"""How a component runs its job as a pipeline step: the KFP side of the jobs.

`run_step` is every component's opening: the step's services (`step_settings`: MLflow tagged with
the pipeline run and task, alerts to the log), its inputs mapped to fields (`components.fields`),
its job built and run (`run_job`). A setting that a mapping or the job refuses fails the step as
any job failure does, recorded where the pipeline's alert reads it. The jobs know nothing of KFP.
"""

from __future__ import annotations

import logging
import typing as T

import pydantic as pdt

from components.io import alerts, services
from components.jobs import base
from components.utils import exits, secrets

logger = logging.getLogger(__name__)


def step_settings(experiment: str, run_id: str, task: str) -> dict[str, T.Any]:
    """The services of a job run as a pipeline step.

    Steps alert to the log only: the pipeline's exit step sends the one Slack message per run,
    and it finds each step's outcome through the run tags set here.
    """
    tags = {base.PIPELINE_RUN_TAG: run_id, base.TASK_TAG: task} if run_id else {base.TASK_TAG: task}
    return {
        "mlflow_service": services.MlflowService(experiment_name=experiment),
        "alerter": alerts.ConsoleAlerter(),
        "run_tags": tags,
    }


def run_step(
    job_class: type[base.Job],
    task: str,
    experiment: str,
    run_id: str,
    mapping: T.Callable[..., dict[str, T.Any]],
    /,
    **inputs: T.Any,
) -> T.Any:
    """Run a step's job: its services, its inputs mapped to fields (`components.fields`), the job.

    The opening every component shares. A mapping that refuses an input (ValueError) fails as a
    bad setting does: logged, recorded as a FAILED MLflow run, alerted, raised as SettingsError.

    Args:
        job_class: the step's job.
        task: the step's name in the pipeline (its MLflow run's name).
        experiment: the MLflow experiment of the step's run.
        run_id: the pipeline run id the step's run is tagged with.
        mapping: the step's function of `components.fields`.
        **inputs: the component's inputs, by name, as the mapping takes them.

    Returns:
        The job's result.
    """
    settings = step_settings(experiment, run_id, task)
    fields = guard(job_class, settings, lambda: mapping(**inputs))
    return run_job(job_class, settings, **fields)


def guard(
    job_class: type[base.Job], settings: T.Mapping[str, T.Any], check: T.Callable[[], T.Any]
) -> T.Any:
    """Run a component's own check of its parameters; a ValueError fails like a bad setting.

    Args:
        job_class: the job the parameters are for.
        settings: its services (`step_settings`).
        check: returns the checked value, or raises ValueError saying what is wrong.
    """
    try:
        return check()
    except ValueError as error:
        failure = base.SettingsError(f"invalid {_kind(job_class)} settings: {error}")
        _record_failure(job_class, settings, failure)
        raise failure from None


def run_job(job_class: type[base.Job], settings: T.Mapping[str, T.Any], **fields: T.Any) -> T.Any:
    """Build a job from its fields, run it, and return its result; how every component runs.

    Settings are validated before any work. An invalid setting fails like any job failure: it
    is logged, recorded as a FAILED MLflow run (where the pipeline's alert reads it) and
    alerted, then raised as a SettingsError naming each field and rule.

    Args:
        job_class: the job to run.
        settings: its services (`step_settings`).
        fields: the job's own fields, nested strategies as dicts with a KIND.
    """
    exits.exit_quickly()  # a step is a process of its own: its end need not take a second
    base.stop_on_sigterm()  # a stopped step ends its MLflow run FAILED, not left RUNNING
    try:
        job = job_class(**settings, **fields)
    except pdt.ValidationError as error:
        failure = base.SettingsError(base.describe_errors(_kind(job_class), error))
        _record_failure(job_class, settings, failure)
        raise failure from None
    with job:
        return job.run()


def _record_failure(
    job_class: type[base.Job], settings: T.Mapping[str, T.Any], failure: Exception
) -> None:
    """Report a job that could not even be built, as `Job.__exit__` reports one that failed."""
    kind = _kind(job_class)
    services.LoggerService().start()
    text = secrets.redact(str(failure))
    logger.error("[FAILED] %s: %s", kind, text)
    alerter = settings.get("alerter") or alerts.ConsoleAlerter()
    alerter.notify(title=f"{kind} failed", message=text, status="FAILED")
    if not job_class.RECORDS_RUN:
        return
    try:  # the error is what matters: an unreachable MLflow must not hide it
        service = settings.get("mlflow_service") or services.MlflowService()
        service.start()
        tags = {base.JOB_TAG: kind, base.ERROR_TAG: f"SettingsError: {text}"[:5000]}
        run_tags = settings.get("run_tags", {})
        service.start_run(run_tags.get(base.TASK_TAG, kind), {**tags, **run_tags})
        service.end_run("FAILED")
    except Exception as error:
        logger.warning("cannot record the failure in MLflow: %s", error)


def _kind(job_class: type[base.Job]) -> str:
    return str(job_class.model_fields["KIND"].default)


def integers_back(value: T.Any) -> T.Any:
    """Turn integral floats back into ints, deep inside dicts and lists.

    KFP hands dict and list parameters over as protobuf Structs, where every number is a float:
    a version 3 arrives as 3.0, which the jobs' strict fields refuse.
    """
    if isinstance(value, dict):
        return {key: integers_back(item) for key, item in value.items()}
    if isinstance(value, list):
        return [integers_back(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
