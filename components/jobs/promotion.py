"""Promotion job: point an alias (Champion) at a registered version that passed evaluation."""

from __future__ import annotations

import logging
import typing as T

import mlflow
import pydantic as pdt

from components.core import results
from components.io import registries
from components.jobs import base

logger = logging.getLogger(__name__)


class PromotionError(RuntimeError):
    """The version may not be promoted."""


class PromotionJob(base.Job, frozen=True):
    """Set an alias to a model version, by default the newest one.

    A version whose evaluation failed is refused; a version never evaluated is promoted with a
    warning (a first model, or one promoted by hand).

    Args:
        model_name: the registered model name.
        alias: the alias to move.
        version: the version to promote; the newest when None.
    """

    KIND: T.Literal["PromotionJob"] = "PromotionJob"
    model_name: str = pdt.Field(min_length=1)
    alias: str = "Champion"
    version: int | None = None

    def run(self) -> results.PromotionResult:
        """Check the version's verdict, then move the alias to it."""
        client = self.mlflow_service.client()
        # Pick the version: the given one, or the newest.
        version = self.version or registries.latest_version(client, self.model_name)
        model_ref = registries.RegistryFinder(name=self.model_name, alias_or_version=version).find(
            client
        )
        # Refuse a version that failed its evaluation.
        tags = client.get_model_version(self.model_name, str(version)).tags
        verdict = tags.get(registries.PASSED_TAG)
        if verdict == "false":
            scores = {k: v for k, v in tags.items() if k.startswith("evaluation.")}
            raise PromotionError(
                f"refusing to set '{self.alias}' to {model_ref.describe()}: it failed its "
                f"evaluation ({scores})"
            )
        if verdict is None:
            logger.warning("%s was never evaluated; promoting it anyway", model_ref.describe())
        # Move the alias, remembering where it pointed before.
        aliases = client.get_registered_model(self.model_name).aliases
        previous = aliases.get(self.alias)
        client.set_registered_model_alias(self.model_name, self.alias, str(version))
        mlflow.set_tags(
            {"model_name": self.model_name, "model_version": version, "alias": self.alias}
        )
        logger.info("%s: %s -> v%s", self.alias, f"v{previous}" if previous else "none", version)
        # Tell people.
        self.alerter.notify(
            title=f"{self.KIND} succeeded",
            message=f"{self.model_name}@{self.alias} is now v{version}.",
            fields={"previous": f"v{previous}" if previous else "none", "version": version},
        )
        return results.PromotionResult(
            model_ref=model_ref, alias=self.alias, previous=int(previous) if previous else None
        )
