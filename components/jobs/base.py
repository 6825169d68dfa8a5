"""Base job: start the services, run the story, and tell people how it went."""

from __future__ import annotations

import abc
import logging
import types
import typing as T

import mlflow
import pydantic as pdt

from components.io import alerts, services

Locals = dict[str, T.Any]

# Tags of the MLflow run that each job records; the notify job reads them back to tell Slack
# which job failed and why, or what the pipeline produced.
JOB_TAG = "job.kind"
ERROR_TAG = "job.error"
PIPELINE_RUN_TAG = "kfp.run_id"

logger = logging.getLogger(__name__)


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
        alerter: where success and failure alerts go.
        run_tags: tags put on the job's MLflow run (the KFP run and task that ran it).
    """

    KIND: str
    RECORDS_RUN: T.ClassVar[bool] = True
    logger_service: services.LoggerService = services.LoggerService()
    mlflow_service: services.MlflowService = pdt.Field(default_factory=services.MlflowService)
    alerter: alerts.AlerterKind = pdt.Field(
        default_factory=alerts.default_alerter, discriminator="KIND"
    )
    run_tags: dict[str, str] = pdt.Field(default_factory=dict)

    def __enter__(self) -> T.Self:
        self.logger_service.start()
        logger.info("[START] %s", self.KIND)
        if self.RECORDS_RUN:
            self.mlflow_service.start()
            mlflow.start_run(run_name=self.KIND, tags={JOB_TAG: self.KIND, **self.run_tags})
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: types.TracebackType | None,
    ) -> T.Literal[False]:
        if self.RECORDS_RUN and mlflow.active_run() is not None:
            if exc_value is not None:
                mlflow.set_tag(ERROR_TAG, f"{type(exc_value).__name__}: {exc_value}"[:5000])
            mlflow.end_run("FAILED" if exc_value is not None else "FINISHED")
        if exc_value is not None:
            logger.error("[FAILED] %s: %s", self.KIND, exc_value)
            self.alerter.notify(
                title=f"{self.KIND} failed",
                message=f"{type(exc_value).__name__}: {exc_value}",
                status="FAILED",
            )
        else:
            logger.info("[END] %s", self.KIND)
        return False

    @abc.abstractmethod
    def run(self) -> Locals:
        """Run the job and return its local variables (for tests and the component's outputs)."""


def step_settings(experiment: str, run_id: str, task: str) -> dict[str, T.Any]:
    """The services of a job run as a pipeline step.

    Steps alert to the log only: the pipeline's exit step sends the one Slack message per run,
    and it finds each step's outcome through the run tags set here.
    """
    return {
        "mlflow_service": services.MlflowService(experiment_name=experiment),
        "alerter": alerts.ConsoleAlerter(),
        "run_tags": {PIPELINE_RUN_TAG: run_id, "kfp.task": task} if run_id else {"kfp.task": task},
    }
