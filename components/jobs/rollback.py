"""Rollback job: point a serving alias back at an earlier version, recorded and alerted.

A person's decision, taken from the command line (`model rollback NAME --reason TEXT`). The
alias moves only while it still points at the version the rollback read, with the in-flight
marks promotions use (`io.aliases`): a promotion or another rollback at the same moment is
never silently overwritten, and the command says so instead.
"""

from __future__ import annotations

import logging
import typing as T

import pydantic as pdt
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from components.core import champions, results
from components.io import aliases, history, registries
from components.jobs import base

logger = logging.getLogger(__name__)


class RollbackError(ValueError):
    """The alias cannot be rolled back as asked; says why and what to do."""


class RollbackJob(base.Job, frozen=True):
    """Move an alias back, by default to the version it served before the current one.

    Args:
        model_name: the registered model name.
        alias: the alias to move back.
        to_version: the version to serve; None: the previous Champion, from the history.
        reason: why, recorded in the history and told in the alert.
        force: roll back to a version that failed its evaluation or was rejected, too.
        by: who rolls back (default: $LIFECYCLE_USER, else the login name).
        settle_seconds: how long to wait, when another writer of the alias is in flight,
            before checking that it did not overwrite the rollback.
    """

    KIND: T.Literal["RollbackJob"] = "RollbackJob"
    RECORDS_RUN: T.ClassVar[bool] = False  # recorded in the history, not as a run
    model_name: registries.ModelName
    alias: str = "Champion"
    to_version: int | None = pdt.Field(default=None, ge=1)
    reason: str = pdt.Field(min_length=1)
    force: bool = False
    by: str | None = None
    settle_seconds: float = pdt.Field(default=2.0, ge=0.0)

    def run(self) -> results.RegistryDecision:
        """Check the target, move the alias while it holds still, record and alert."""
        client = self.mlflow_service.client()
        with aliases.in_flight(client, self.model_name) as mark:
            # Read who serves now, and choose the version to serve.
            current = aliases.holder(client, self.model_name, self.alias)
            if current is None:
                raise RollbackError(
                    f"'{self.alias}' of '{self.model_name}' points at no version: "
                    "there is nothing to roll back"
                )
            target = self.to_version or self._previous(client, int(current))
            if str(target) == current:
                raise RollbackError(
                    f"'{self.alias}' of '{self.model_name}' already serves v{target}"
                )
            tags = self._checked(client, target)
            # Move it only while it still points where it did: else someone else just moved it.
            if aliases.holder(client, self.model_name, self.alias) != current:
                raise self._moved(current, target)
            after = aliases.move(
                client, self.model_name, self.alias, str(target), mark, self.settle_seconds
            )
            if after != str(target):
                raise self._moved(current, target, after)
        # Record it, show it, and tell people.
        entry = history.add(
            client,
            self.model_name,
            tags,
            alias=self.alias,
            action="rolled_back",
            from_version=int(current),
            to_version=target,
            by=champions.user(self.by),
            reason=self.reason,
        )
        served = registries.RegistryFinder(name=self.model_name, alias_or_version=target).find(
            client
        )
        history.publish(client, self.model_name, entry, served)
        self.alerter.notify(
            title=f"{self.model_name}: {self.alias} rolled back",
            message=f"{self.model_name}@{self.alias} rolled back from v{current} to v{target} "
            f"by {entry.by}: {self.reason}",
            fields={"previous": f"v{current}", "version": target, "by": entry.by},
        )
        return results.RegistryDecision(model_name=self.model_name, entry=entry)

    def _previous(self, client: MlflowClient, current: int) -> int:
        """The version the alias served before the current one: the history's, else a tag's."""
        last = history.last_move(client, self.model_name, self.alias, to_version=current)
        if last is not None and last.from_version:
            return last.from_version
        recorded = client.get_model_version(self.model_name, str(current)).tags.get(
            aliases.PREVIOUS_TAG
        )
        if recorded and recorded.isdigit():
            return int(recorded)
        raise RollbackError(
            f"no version served as '{self.alias}' of '{self.model_name}' before v{current} "
            "is recorded; give the version to serve with --to VERSION"
        )

    def _checked(self, client: MlflowClient, version: int) -> dict[str, str]:
        """The version's tags, once it is known to exist and to be fit to serve (or forced)."""
        try:
            tags = client.get_model_version(self.model_name, str(version)).tags or {}
        except MlflowException as error:
            if getattr(error, "error_code", "") != "RESOURCE_DOES_NOT_EXIST":
                raise
            newest = registries.latest_version(client, self.model_name)
            raise RollbackError(
                f"'{self.model_name}' has no version {version} (versions 1 to {newest})"
            ) from None
        refusal = None
        if tags.get(registries.PASSED_TAG) == "false":
            refusal = f"v{version} failed its evaluation ({history.verdict(tags)})"
        elif tags.get(champions.APPROVAL_TAG) == champions.REJECTED:
            why = tags.get(champions.APPROVAL_REASON_TAG, "no reason given")
            refusal = f"v{version} was rejected ({why})"
        if refusal and not self.force:
            raise RollbackError(
                f"refusing to roll back to {refusal}; add --force to serve it anyway"
            )
        if refusal:
            logger.warning("rolling back to %s, as forced", refusal)
        return tags

    def _moved(self, read: str, target: int, now: str | None = None) -> RollbackError:
        where = f"v{now}" if now else "another version"
        return RollbackError(
            f"'{self.alias}' of '{self.model_name}' moved to {where} while rolling back from "
            f"v{read} to v{target}: see `model history {self.model_name}` and run again"
        )
