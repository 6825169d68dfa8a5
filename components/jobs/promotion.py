"""Promotion job: point an alias (Champion) at a registered version that passed evaluation.

Several pipelines may promote versions of one model at once (a schedule, a manual run, a
colleague). MLflow's registry has no conditional alias update, so the job compares and sets:

1. The evaluation recorded on the candidate which Champion it beat (`CHAMPION_TAG`).
2. The alias is moved only while it still points there. When it has moved since (another
   version was promoted in between), the candidate is scored again against the new Champion on
   its held-out rows, and either wins (the alias moves) or loses (the alias stays; the step
   succeeds and says which version is served and why).
3. After moving the alias, the job waits `settle_seconds` and reads it again: a concurrent
   promotion that had read the alias before this write, and written after it, shows up here
   and is challenged the same way. Re-evaluating, rather than refusing, is what keeps the
   better version as Champion whichever promotion writes last.
4. Each promotion marks itself in flight on the registered model (a tag written before its
   first read of the alias, removed at its end). Only a promotion that sees another's mark
   after its write waits: one that sees none knows that every other promotion read the alias
   after this write, and so compares itself with this version (step 2). A lone promotion, the
   common case, moves the alias without waiting.

Running the job again for the same version (a retry) leaves the registry as one run would.
"""

from __future__ import annotations

import logging
import time
import typing as T
import uuid

import mlflow
import pydantic as pdt
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from components.core import metrics, results, schemas
from components.core.model_refs import ModelRef
from components.io import datasets, registries
from components.jobs import base

logger = logging.getLogger(__name__)

# Tag on a promoted version: the version the alias pointed to before (for a retry's report).
PREVIOUS_TAG = "promotion.previous"
# Tags on the registered model, one per promotion in flight: the key holds the promotion's
# id, the value the time it started (seconds since the epoch).
IN_FLIGHT_PREFIX = "promotion.in_flight."
# A mark older than this belongs to a promotion that died without removing it: ignored, and
# removed by the next promotion.
IN_FLIGHT_STALE_SECONDS = 3600.0


class PromotionError(RuntimeError):
    """The version may not be promoted."""


class PromotionJob(base.Job, frozen=True):
    """Set an alias to a model version, by default the newest one, if it beats the Champion.

    A version whose evaluation failed is refused; a version never evaluated is promoted with a
    warning (a first model, or one promoted by hand).

    Args:
        model_name: the registered model name.
        alias: the alias to move.
        version: the version to promote; the newest when None.
        inputs: the candidate's held-out rows, to compare it again with a Champion promoted
            since its evaluation; without them such a promotion is refused.
        target: the column the model predicts (with `inputs`).
        tolerance: how much worse than the Champion the candidate may be, relative.
        loader: how the models are loaded for that comparison (by default in their richest
            flavour, as the evaluation loads them).
        settle_seconds: how long to wait, when another promotion of the model is in flight,
            before checking that it did not overwrite the alias (longer than the read-to-write
            gap of any promotion).
        max_rounds: how many times the candidate may be compared again before giving up.
    """

    KIND: T.Literal["PromotionJob"] = "PromotionJob"
    model_name: str = pdt.Field(min_length=1)
    alias: str = "Champion"
    version: int | None = None
    inputs: datasets.ReaderKind | None = None
    target: str | None = None
    tolerance: float = pdt.Field(default=0.0, ge=0.0)
    loader: registries.LoaderKind = pdt.Field(default_factory=registries.FlavorLoader)
    settle_seconds: float = pdt.Field(default=2.0, ge=0.0)
    max_rounds: int = pdt.Field(default=5, ge=1)

    @pdt.model_validator(mode="after")
    def _target_with_inputs(self) -> T.Self:
        if self.inputs is not None and not self.target:
            raise ValueError("target: required with inputs, to score the held-out rows")
        return self

    def run(self) -> results.PromotionResult:
        """Check the verdict, then compare and set the alias until it holds or the version loses."""
        client = self.mlflow_service.client()
        # Pick the version: the given one, or the newest.
        version = self.version or registries.latest_version(client, self.model_name)
        candidate = registries.RegistryFinder(name=self.model_name, alias_or_version=version).find(
            client
        )
        # Refuse a version that failed its evaluation.
        tags = client.get_model_version(self.model_name, str(version)).tags
        verdict = tags.get(registries.PASSED_TAG)
        if verdict == "false":
            scores = {k: v for k, v in tags.items() if k.startswith("evaluation.")}
            raise PromotionError(
                f"refusing to set '{self.alias}' to {candidate.describe()}: it failed its "
                f"evaluation ({scores})"
            )
        # The Champion it beat; a version never evaluated beats whatever is there.
        beaten = tags.get(registries.CHAMPION_TAG)
        if verdict is None:
            logger.warning("%s was never evaluated; promoting it anyway", candidate.describe())
        mark = self._mark_in_flight(client)
        try:
            served, previous, reason = self._compare_and_set(client, candidate, beaten, mark)
        finally:
            self._unmark(client, mark)
        promoted = served.version == candidate.version
        if promoted and previous is None and tags.get(PREVIOUS_TAG, "").isdigit():
            previous = int(tags[PREVIOUS_TAG])  # a retry: the earlier attempt moved the alias
        # Record which version is served, and why.
        mlflow.set_tags(
            {
                "model_name": self.model_name,
                "model_version": served.version,
                "alias": self.alias,
                "promoted": promoted,
                "candidate_version": candidate.version,
            }
        )
        if reason:
            self.warn([reason])
        before = f"v{previous}" if previous else "none"
        logger.info("%s: %s -> v%s", self.alias, before, served.version)
        # Tell people.
        self.alerter.notify(
            title=f"{self.KIND} succeeded",
            message=f"{self.model_name}@{self.alias} is now v{served.version}."
            + (f"\n{reason}" if reason else ""),
            fields={"previous": before, "version": served.version, "promoted": promoted},
        )
        return results.PromotionResult(
            model_ref=candidate,
            alias=self.alias,
            previous=previous,
            served_ref=served,
            reason=reason,
        )

    def _compare_and_set(
        self, client, candidate: ModelRef, beaten: str | None, mark: str
    ) -> tuple[ModelRef, int | None, str | None]:
        """Move the alias to the candidate while it points at the version it beat.

        Returns:
            The version served, the one the alias pointed to before the move (None when not
            moved by this call), and why the candidate is not served (None when it is).
        """
        mine = str(candidate.version)
        for _ in range(self.max_rounds):
            current = self._holder(client)
            if current == mine:  # an earlier attempt (a retry) already moved it
                return candidate, None, None
            if beaten is not None and (current or registries.NO_CHAMPION) != beaten:
                # The alias moved since the evaluation: compare with the new Champion.
                if current is None:
                    beaten = registries.NO_CHAMPION
                    continue
                champion = self._find(client, current)
                reason = self._challenge(client, candidate, champion, beaten)
                if reason:
                    return champion, None, reason
                beaten = current
                continue
            client.set_model_version_tag(
                self.model_name, mine, PREVIOUS_TAG, current or registries.NO_CHAMPION
            )
            client.set_registered_model_alias(self.model_name, self.alias, mine)
            # A promotion that read the alias before this write may write after it: one in
            # flight now, wait longer than its read-to-write gap, then check who holds it.
            others = self._others_in_flight(client, mark)
            if others:
                logger.info(
                    "%d other promotion(s) of %s in flight: checking %s again in %.1f s",
                    len(others),
                    self.model_name,
                    self.alias,
                    self.settle_seconds,
                )
                time.sleep(self.settle_seconds)
            holder = self._holder(client)
            if holder == mine:
                return candidate, int(current) if current else None, None
            logger.warning(
                "%s moved to v%s while v%s was promoted; comparing again",
                self.alias,
                holder,
                mine,
            )
            beaten = mine  # the alias is no longer where this call left it
        raise PromotionError(
            f"'{self.alias}' of '{self.model_name}' kept moving while v{mine} was promoted "
            f"({self.max_rounds} rounds); run the promotion again"
        )

    def _challenge(
        self,
        client,
        candidate: ModelRef,
        champion: ModelRef,
        beaten: str,
    ) -> str | None:
        """Score the candidate against a Champion promoted since its evaluation.

        Returns:
            Why the candidate loses (None when it wins). The new comparison is recorded on the
            candidate version, as the evaluation records its own.
        """
        was = f"v{beaten}" if beaten.isdigit() else "no Champion"
        if self.inputs is None or self.target is None:
            raise PromotionError(
                f"refusing to set '{self.alias}' to {candidate.describe()}: it was evaluated "
                f"against {was}, but '{self.alias}' is now {champion.describe()}; evaluate "
                f"v{candidate.version} again (or give the promotion its held-out rows)"
            )
        logger.info(
            "%s was evaluated against %s; %s is now %s: comparing them",
            candidate.describe(),
            was,
            self.alias,
            champion.describe(),
        )
        data = schemas.normalize(self.inputs.read())
        candidate_model = self.loader.load(candidate.uri)
        task = candidate_model.task
        scores = metrics.score(task, data[self.target], candidate_model.predict(data))
        champion_model = self.loader.load(champion.uri)
        champion_scores = metrics.score(task, data[self.target], champion_model.predict(data))
        reason = metrics.worse_than_champion(
            task, scores, champion_scores, champion.describe(), self.tolerance
        )
        recorded = registries.comparison_tags(champion.version, champion_scores)
        registries.set_version_tags(client, self.model_name, candidate.version, recorded)
        if reason:
            return (
                f"v{candidate.version} is not promoted: {reason}, promoted after "
                f"v{candidate.version} was evaluated against {was}"
            )
        return None

    def _mark_in_flight(self, client: MlflowClient) -> str:
        """Mark this promotion in flight on the registered model; return the mark's tag key."""
        mark = IN_FLIGHT_PREFIX + uuid.uuid4().hex[:16]
        client.set_registered_model_tag(self.model_name, mark, f"{time.time():.3f}")
        return mark

    def _others_in_flight(self, client: MlflowClient, mark: str) -> list[str]:
        """The marks of the other promotions in flight (stale ones removed, not counted)."""
        tags = client.get_registered_model(self.model_name).tags or {}
        others = []
        for key, value in tags.items():
            if not key.startswith(IN_FLIGHT_PREFIX) or key == mark:
                continue
            try:
                age = time.time() - float(value)
            except ValueError:  # not ours to read: count it, to be safe
                age = 0.0
            if age > IN_FLIGHT_STALE_SECONDS:
                self._unmark(client, key)
            else:
                others.append(key)
        return others

    def _unmark(self, client: MlflowClient, mark: str) -> None:
        """Remove a mark; one already gone (a concurrent clean-up) is fine."""
        try:
            client.delete_registered_model_tag(self.model_name, mark)
        except MlflowException as error:
            logger.debug("in-flight mark %s not removed: %s", mark, error)

    def _holder(self, client) -> str | None:
        """The version the alias points to, as text (a local store answers an int)."""
        version = client.get_registered_model(self.model_name).aliases.get(self.alias)
        return None if version is None else str(version)

    def _find(self, client, version: str) -> ModelRef:
        return registries.RegistryFinder(name=self.model_name, alias_or_version=version).find(
            client
        )
