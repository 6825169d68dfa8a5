"""Rejection job: refuse a candidate that a manual promotion held for approval."""

from __future__ import annotations

import logging
import typing as T

import pydantic as pdt

from components.core import champions, results
from components.io import aliases, history, registries
from components.jobs import base

logger = logging.getLogger(__name__)


class RejectionError(ValueError):
    """The version cannot be rejected (it awaits no approval); says why."""


class RejectionJob(base.Job, frozen=True):
    """Record that a candidate awaiting approval will not serve; the alias stays where it is.

    Args:
        model_name: the registered model name.
        version: the candidate awaiting approval.
        alias: the alias it was held for.
        reason: why, recorded on the version and in the history, and told in the alert.
        by: who rejects it (default: $LIFECYCLE_USER, else the login name).
    """

    KIND: T.Literal["RejectionJob"] = "RejectionJob"
    RECORDS_RUN: T.ClassVar[bool] = False  # recorded in the history, not as a run
    model_name: registries.ModelName
    version: int = pdt.Field(ge=1)
    alias: str = "Champion"
    reason: str = pdt.Field(min_length=1)
    by: str | None = None

    def run(self) -> results.RegistryDecision:
        """Check the version awaits approval, mark it rejected, record and alert."""
        client = self.mlflow_service.client()
        candidate = registries.RegistryFinder(
            name=self.model_name, alias_or_version=self.version
        ).find(client)
        tags = client.get_model_version(self.model_name, str(self.version)).tags or {}
        status = tags.get(champions.APPROVAL_TAG)
        if status != champions.AWAITING:
            raise RejectionError(
                f"{candidate.describe()} is not awaiting approval ({champions.APPROVAL_TAG}: "
                f"{status or 'not set'}); only a candidate a manual promotion held can be rejected"
            )
        by = champions.user(self.by)
        registries.set_version_tags(
            client,
            self.model_name,
            self.version,
            {
                champions.APPROVAL_TAG: champions.REJECTED,
                champions.APPROVAL_BY_TAG: by,
                champions.APPROVAL_REASON_TAG: self.reason[: champions.VALUE_LIMIT],
            },
        )
        current = aliases.holder(client, self.model_name, self.alias)
        entry = history.add(
            client,
            self.model_name,
            tags,
            alias=self.alias,
            action="rejected",
            from_version=int(current) if current else None,
            to_version=self.version,
            by=by,
            reason=self.reason,
        )
        serving = f"v{current} keeps serving" if current else "nothing serves yet"
        self.alerter.notify(
            title=f"{self.model_name}: v{self.version} rejected",
            message=f"{candidate.describe()} rejected by {by}: {self.reason}. {serving}.",
            fields={"candidate": self.version, "serving": current or "none", "by": by},
        )
        return results.RegistryDecision(model_name=self.model_name, entry=entry)
