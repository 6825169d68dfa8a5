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
4. Each promotion marks itself in flight on the registered model (`io.aliases`), as a
   rollback or an approval does: only a writer that sees another's mark after its write waits.

Every move is recorded in the Champion history (`io.history`). With `promotion: manual` a passing
candidate is not promoted: it is marked awaiting approval, and `model approve NAME VERSION`
(which runs this job with `approved_by`) promotes it later, with the same compare-and-set.

Running the job again for the same version (a retry) leaves the registry as one run would.
"""

from __future__ import annotations

import logging
import typing as T

import mlflow
import pydantic as pdt
from mlflow.tracking import MlflowClient

from components.core import champions, metrics, results, schemas
from components.core.model_refs import ModelRef
from components.io import aliases, datasets, history, registries
from components.jobs import base

logger = logging.getLogger(__name__)


class PromotionError(RuntimeError):
    """The version may not be promoted."""


def check_awaiting(candidate: str, tags: T.Mapping[str, str]) -> None:
    """Refuse to approve a version that no manual promotion held (an approved one: a retry).

    Raises:
        PromotionError: naming the version and its approval state.
    """
    status = tags.get(champions.APPROVAL_TAG)
    if status not in (champions.AWAITING, champions.APPROVED):
        raise PromotionError(
            f"{candidate} is not awaiting approval ({champions.APPROVAL_TAG}: "
            f"{status or 'not set'}); only a candidate a manual promotion held can be approved"
        )


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
        promotion: "auto" moves the alias; "manual" marks a passing candidate awaiting approval
            and leaves the alias where it is.
        approved_by: who approved the candidate (`model approve`): the alias moves whatever
            the mode, and the history says it was approved.
        reason: why, recorded in the history (default: the evaluation's verdict).
    """

    KIND: T.Literal["PromotionJob"] = "PromotionJob"
    model_name: registries.ModelName
    alias: str = "Champion"
    version: int | None = None
    inputs: datasets.ReaderKind | None = None
    target: str | None = None
    tolerance: float = pdt.Field(default=0.0, ge=0.0)
    loader: registries.LoaderKind = pdt.Field(default_factory=registries.FlavorLoader)
    settle_seconds: float = pdt.Field(default=2.0, ge=0.0)
    max_rounds: int = pdt.Field(default=5, ge=1)
    promotion: T.Literal["auto", "manual"] = "auto"
    approved_by: str | None = None
    reason: str | None = None

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
        if self.approved_by is not None:
            check_awaiting(candidate.describe(), tags)
        if self.promotion == "manual" and self.approved_by is None:
            return self._hold_for_approval(client, candidate, tags)
        with aliases.in_flight(client, self.model_name) as mark:
            served, previous, reason = self._compare_and_set(client, candidate, beaten, mark)
        promoted = served.version == candidate.version
        retried = promoted and previous is None and tags.get(aliases.PREVIOUS_TAG, "").isdigit()
        if retried:
            previous = int(
                tags[aliases.PREVIOUS_TAG]
            )  # a retry: the earlier attempt moved the alias
        if promoted:
            self._record(client, candidate, previous, tags, retried)
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
            + (f" Approved by {self.approved_by}." if self.approved_by and promoted else "")
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

    def _record(
        self,
        client: MlflowClient,
        candidate: ModelRef,
        previous: int | None,
        tags: dict[str, str],
        retried: bool,
    ) -> None:
        """Record the move in the Champion history (once: a retry finds it recorded)."""
        last = history.last_move(client, self.model_name, self.alias, candidate.version)
        if retried and last is not None and last.from_version == previous:
            return
        approved = self.approved_by is not None
        if approved:
            registries.set_version_tags(
                client,
                self.model_name,
                int(str(candidate.version)),
                {
                    champions.APPROVAL_TAG: champions.APPROVED,
                    champions.APPROVAL_BY_TAG: str(self.approved_by),
                }
                | (
                    {champions.APPROVAL_REASON_TAG: self.reason[: champions.VALUE_LIMIT]}
                    if self.reason
                    else {}
                ),
            )
        entry = history.add(
            client,
            self.model_name,
            tags,
            alias=self.alias,
            action="approved" if approved else "promoted",
            from_version=previous,
            to_version=candidate.version,
            by=str(self.approved_by) if approved else self._actor(),
            reason=self.reason or history.verdict(tags),
        )
        history.publish(client, self.model_name, entry, candidate)

    def _hold_for_approval(
        self, client: MlflowClient, candidate: ModelRef, tags: dict[str, str]
    ) -> results.PromotionResult:
        """Mark a passing candidate awaiting approval; the alias stays where it is."""
        current = aliases.holder(client, self.model_name, self.alias)
        served = self._find(client, current) if current else None
        # A retry finds it marked, and recorded.
        if tags.get(champions.APPROVAL_TAG) != champions.AWAITING:
            held = {champions.APPROVAL_TAG: champions.AWAITING}
            path = getattr(self.inputs, "path", None)
            if path and self.target:
                held |= {
                    champions.APPROVAL_HOLDOUT_TAG: str(path),
                    champions.APPROVAL_TARGET_TAG: self.target,
                }
            registries.set_version_tags(client, self.model_name, int(str(candidate.version)), held)
            history.add(
                client,
                self.model_name,
                tags,
                alias=self.alias,
                action="awaiting_approval",
                from_version=int(current) if current else None,
                to_version=candidate.version,
                by=self._actor(),
                reason=self.reason or history.verdict(tags),
            )
        command = f"python -m pipelines model approve {self.model_name} {candidate.version}"
        serving = f"v{current} serves" if current else "nothing serves yet"
        reason = (
            f"v{candidate.version} passed its evaluation and awaits approval ({serving}): "
            f"`{command}` (or `model reject`)"
        )
        mlflow.set_tags(
            {
                "model_name": self.model_name,
                "model_version": current or "",
                "alias": self.alias,
                "promoted": False,
                "candidate_version": candidate.version,
                champions.APPROVAL_TAG: champions.AWAITING,
            }
        )
        self.warn([reason])
        logger.info("%s", reason)
        self.alerter.notify(
            title=f"{self.KIND}: approval needed",
            message=f"{self.model_name} {reason}.",
            fields={"candidate": candidate.version, "serving": current or "none"},
        )
        return results.PromotionResult(
            model_ref=candidate,
            alias=self.alias,
            previous=None,
            served_ref=served,
            reason=reason,
            awaiting_approval=True,
        )

    def _actor(self) -> str:
        return champions.pipeline_run(self.run_tags.get(base.PIPELINE_RUN_TAG, ""))

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
                self.model_name, mine, aliases.PREVIOUS_TAG, current or registries.NO_CHAMPION
            )
            holder = aliases.move(
                client, self.model_name, self.alias, mine, mark, self.settle_seconds
            )
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
        data, _ = schemas.labelled(self.inputs.read(), self.target)
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

    def _holder(self, client) -> str | None:
        return aliases.holder(client, self.model_name, self.alias)

    def _find(self, client, version: str) -> ModelRef:
        return registries.RegistryFinder(name=self.model_name, alias_or_version=version).find(
            client
        )
