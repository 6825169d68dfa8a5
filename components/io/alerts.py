"""Alerts service: tell people how a job or pipeline went."""

from __future__ import annotations

import abc
import logging
import typing as T

import pydantic as pdt

logger = logging.getLogger(__name__)

Status = T.Literal["SUCCEEDED", "FAILED", "RUNNING", "CANCELED"]


class Alerter(abc.ABC, pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """Send an alert made of a title, a message, key fields and a status.

    Implementations must never raise: an alert that cannot be delivered is logged, and the job or
    pipeline keeps the outcome it had.
    """

    KIND: str

    @abc.abstractmethod
    def notify(
        self,
        title: str,
        message: str,
        fields: T.Mapping[str, T.Any] | None = None,
        status: Status = "SUCCEEDED",
        link: str | None = None,
    ) -> bool:
        """Send one alert.

        Args:
            title: short headline, e.g. "InferenceJob succeeded".
            message: one or a few sentences for a human.
            fields: key facts shown beside the message (rows, metrics, model version).
            status: the state being reported.
            link: where to see more (a Kubeflow run page), when known.

        Returns:
            True when the alert was delivered.
        """


class ConsoleAlerter(Alerter, frozen=True):
    """Write alerts to the log (the default when no webhook is configured)."""

    KIND: T.Literal["ConsoleAlerter"] = "ConsoleAlerter"

    def notify(self, title, message, fields=None, status="SUCCEEDED", link=None) -> bool:
        facts = ", ".join(f"{key}={value}" for key, value in (fields or {}).items())
        level = logging.ERROR if status == "FAILED" else logging.INFO
        logger.log(level, "[%s] %s: %s%s%s", status, title, message,
                   f" ({facts})" if facts else "", f" <{link}>" if link else "")
        return True


AlerterKind = ConsoleAlerter
