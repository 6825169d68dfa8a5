"""Base job: start the services, run the story, and tell people how it went."""

from __future__ import annotations

import abc
import logging
import types
import typing as T

import pydantic as pdt

from components.io import alerts, services

Locals = dict[str, T.Any]

logger = logging.getLogger(__name__)


class Job(abc.ABC, pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """A unit of work that a KFP component runs; it knows nothing of KFP.

    Use it as a context manager so that the services start first and a failure is alerted:

        with InferenceJob(...) as job:
            job.run()

    Args:
        logger_service: logging configuration.
        mlflow_service: the MLflow tracking server and registry.
        alerter: where success and failure alerts go.
    """

    KIND: str
    logger_service: services.LoggerService = services.LoggerService()
    mlflow_service: services.MlflowService = pdt.Field(default_factory=services.MlflowService)
    alerter: alerts.AlerterKind = pdt.Field(
        default_factory=alerts.default_alerter, discriminator="KIND"
    )

    def __enter__(self) -> T.Self:
        self.logger_service.start()
        logger.info("[START] %s", self.KIND)
        self.mlflow_service.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: types.TracebackType | None,
    ) -> T.Literal[False]:
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
