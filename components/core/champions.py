"""Champion history entries: one move of a serving alias (or a decision on a candidate)."""

from __future__ import annotations

import datetime as dt
import getpass
import os
import typing as T

import pydantic as pdt

# The user a command acts for, when the environment names one (a CI job, a shared account).
USER_VARIABLE = "LIFECYCLE_USER"
# MLflow stores at most this many characters of a registry tag's value (database stores).
VALUE_LIMIT = 5000

# Tags on a version a manual promotion held for approval: its state, who decided, and why.
APPROVAL_TAG = "approval.status"
APPROVAL_BY_TAG = "approval.by"
APPROVAL_REASON_TAG = "approval.reason"
# Where the held candidate's held-out rows are, and its target: an approval given after another
# version became Champion compares the two on them, as the promotion would have.
APPROVAL_HOLDOUT_TAG = "approval.holdout"
APPROVAL_TARGET_TAG = "approval.target"
AWAITING, APPROVED, REJECTED = "awaiting", "approved", "rejected"

Action = T.Literal["promoted", "approved", "rolled_back", "awaiting_approval", "rejected"]
# The actions that move the alias; the others record a decision and leave it where it is.
MOVES: tuple[Action, ...] = ("promoted", "approved", "rolled_back")


class AliasMove(pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """What happened to a serving alias: from which version to which, when, by whom, why.

    Attributes:
        alias: the alias (Champion).
        action: promoted (by a pipeline's promotion), approved (a candidate awaiting approval,
            promoted by a person), rolled_back, awaiting_approval (a passing candidate held for
            approval) or rejected (such a candidate refused); the last two leave the alias.
        from_version: the version the alias pointed to before (None: unset).
        to_version: the version it points to after (for a decision: the candidate).
        at: when, UTC, ISO 8601.
        by: the pipeline run (`pipeline run <id>`) or the user (`user <name>`).
        reason: why: the evaluation's verdict, or the reason the person gave.
        metrics: the figures compared (the candidate's, and the Champion's as `champion.<name>`).
    """

    alias: str
    action: Action
    from_version: int | None
    to_version: int | None
    at: str
    by: str
    reason: str = ""
    metrics: dict[str, float] = pdt.Field(default_factory=dict)

    @property
    def moved(self) -> bool:
        """Whether this entry moved the alias."""
        return self.action in MOVES

    def line(self) -> str:
        """One line for a terminal or a description: when, what, by whom, why."""
        before = f"v{self.from_version}" if self.from_version else "none"
        after = f"v{self.to_version}" if self.to_version else "none"
        done = self.action.replace("_", " ")
        what = f"{done} {before} -> {after}" if self.moved else f"{after} {done}"
        why = f"; {self.reason}" if self.reason else ""
        when = self.at[:19].replace("T", " ") + "Z"  # stored to the microsecond, in UTC
        return f"{when} {self.alias} {what} by {self.by}{why}"

    def to_json(self) -> str:
        """The entry as a registry tag's value: within MLflow's limit (the reason is cut)."""
        text = self.model_dump_json()
        if len(text) <= VALUE_LIMIT:
            return text
        room = max(0, len(self.reason) - (len(text) - VALUE_LIMIT) - 1)
        return self.model_copy(update={"reason": self.reason[:room] + "…"}).model_dump_json()


def now() -> str:
    """The time now, UTC, ISO 8601 to the microsecond (entries sort by it)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def user(given: str | None = None) -> str:
    """Who a command acts for: the given name, else $LIFECYCLE_USER, else the login name."""
    name = given or os.environ.get(USER_VARIABLE)
    if not name:
        try:
            name = getpass.getuser()
        except (KeyError, OSError):  # a container's uid with no passwd entry
            name = "unknown"
    return f"user {name}"


def pipeline_run(run_id: str) -> str:
    """A pipeline run as an actor (`pipeline run <id>`); an unknown one as `a pipeline run`."""
    return f"pipeline run {run_id}" if run_id else "a pipeline run"
