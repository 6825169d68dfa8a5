"""Retraining: start the training pipeline when a run found drift or degradation, once per period.

An opt-in policy, read by the pipeline's exit step once every other step has ended:

    {"period_hours": 24, "on": ["drift", "performance", "labels"],
     "trainer": {"type": "LocalTrainer"},
     "parameters": {"data": "s3://bucket/labelled/", "target": "cnt"}}

- **Triggers**, read from what the run's steps recorded in MLflow: `drift` (the batch drifted as a
  whole: `drift_dataset_drift`), `performance` (the estimate is confidently worse than the holdout:
  `estimated_degraded`), `labels` (the realized performance degraded: `realized_degraded`, from the
  `monitoring` pipeline).
- **At most once per period and model**, also when several runs fire at once: each run that fires
  writes a claim (a tag of the registered model, `retraining.claim.<run>`), waits `SETTLE_SECONDS`,
  and starts training only if its claim is the oldest of the period. A claim stays as the record
  of the start (which run, when, why, which job) until the period is over; a claim whose start
  failed is removed, so that a later run may try again. (As with the parent runs, this holds while
  an MLflow call and the skew between the steps' clocks stay under `SETTLE_SECONDS`.)
- **The trainer** is one of the trainer backends (`pipelines.jobs.backends.TRAINERS`:
  `LocalTrainer`, a background kfp.local run on this machine; `KFPTrainer`, a run on the
  cluster), or a user's subclass by import path. A step loads it by name only when the policy
  fires, as any strategy given by import path is loaded. The training pipeline gets
  `parameters`, with the served model's name and the run's experiment unless they are given.

Nothing here fails the step: every outcome, a refusal to start included, is one line of the alert.
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib
import json
import logging
import os
import re
import subprocess
import sys
import time
import typing as T

import pydantic as pdt

from components.utils import secrets

logger = logging.getLogger(__name__)

Trigger = T.Literal["drift", "performance", "labels"]
TRIGGERS: tuple[Trigger, ...] = T.get_args(Trigger)
# The step metric (1.0: fired) that each trigger reads, and how the alert names it.
SIGNALS: dict[Trigger, tuple[str, str]] = {
    "drift": ("drift_dataset_drift", "the batch drifted"),
    "performance": ("estimated_degraded", "the estimated performance degraded"),
    "labels": ("realized_degraded", "the realized performance degraded"),
}
CLAIM_PREFIX = "retraining.claim."
# How the policy's line in the alert begins (a local run's terminal shows it with the step's).
LINE_PREFIX = "Retraining: "
SETTLE_SECONDS = 2.0
# Where the trainer backends are registered (loaded only when the policy fires).
TRAINERS_MODULE = "pipelines.jobs.backends"
# Set by KFP for a step's interpreter: kfp then imports its runtime only, not its compiler.
KFP_RUNTIME_VARIABLE = "_KFP_RUNTIME"
# A trainer starts a background run, or creates one through the KFP API: seconds, not minutes.
START_TIMEOUT_S = 300.0
# A claim's tag key holds the run id; MLflow keys allow letters, digits and `_-./ `.
_UNSAFE_KEY = re.compile(r"[^A-Za-z0-9_\-.]")


class RetrainingPolicy(pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """When and how a pipeline run starts training a new version of the model it served.

    Args:
        on: the triggers that start it: drift (the batch drifted), performance (the estimate
            is worse than the holdout beyond the tolerance), labels (the realized performance
            degraded).
        period_hours: at most one start per model within this many hours.
        trainer: the trainer backend, as its KIND alone, `{type, config}` or a config with a
            KIND: LocalTrainer (default), KFPTrainer, or a user's `package.module:Class`.
        parameters: the training pipeline's parameters (data and target at least);
            model_name defaults to the served model's, experiment to the run's.
    """

    on: list[Trigger] = pdt.Field(default_factory=lambda: list(TRIGGERS), min_length=1)
    period_hours: float = pdt.Field(default=24.0, gt=0)
    trainer: dict[str, T.Any] = pdt.Field(default_factory=lambda: {"type": "LocalTrainer"})
    parameters: dict[str, T.Any] = pdt.Field(default_factory=dict)

    @pdt.field_validator("trainer", mode="before")
    @classmethod
    def _kind_alone(cls, trainer: T.Any) -> T.Any:
        return {"type": trainer} if isinstance(trainer, str) else trainer  # "KFPTrainer"

    @pdt.field_validator("trainer")
    @classmethod
    def _names_a_kind(cls, trainer: dict[str, T.Any]) -> dict[str, T.Any]:
        if not isinstance(trainer.get("type", trainer.get("KIND")), str):
            raise ValueError(
                "give the trainer as {type: LocalTrainer | KFPTrainer | package.module:Class, "
                f"config: {{...}}}}, got {trainer!r}"
            )
        return trainer

    @property
    def period_seconds(self) -> float:
        """The period, in seconds."""
        return self.period_hours * 3600.0

    def training_values(self, model_name: str, experiment: str) -> dict[str, T.Any]:
        """The training pipeline's parameters for a new version of `model_name`."""
        return {"model_name": model_name, "experiment": experiment, **self.parameters}

    def build_trainer(self) -> T.Any:
        """The trainer backend (raises `FactoryError` naming what is wrong).

        Outside a pipeline step only (the run's check before it starts): a step starts the
        training with `start_training`.
        """
        return importlib.import_module(TRAINERS_MODULE).TRAINERS.build(self.trainer)


class TrainingNotStarted(RuntimeError):
    """The trainer refused to start the training, or could not be reached."""


def start_training(trainer: T.Mapping[str, T.Any], values: T.Mapping[str, T.Any]) -> str:
    """Start the training pipeline through a trainer backend; return the job's id.

    The backends run in an interpreter of their own (`python -m pipelines.jobs.backends`): a step's
    interpreter runs KFP's executor, which leaves the kfp compiler they need unimported.

    Raises:
        TrainingNotStarted: the trainer's reason, in one line.
    """
    environment = {k: v for k, v in os.environ.items() if k != KFP_RUNTIME_VARIABLE}
    request = json.dumps({"trainer": dict(trainer), "values": dict(values)})
    try:
        done = subprocess.run(
            [sys.executable, "-m", TRAINERS_MODULE, request],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=environment,
            timeout=START_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise TrainingNotStarted(
            f"the trainer did not answer within {START_TIMEOUT_S:g} s"
        ) from None
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        raise TrainingNotStarted(lines[-1] if lines else f"exit status {done.returncode}")
    return str(json.loads(done.stdout.strip().splitlines()[-1])["job"])


@dataclasses.dataclass(frozen=True)
class Claim:
    """A run's claim to the period's retraining: who, when, why, and the job it started."""

    run: str
    at: float
    reason: str = ""
    job: str = ""

    @property
    def when(self) -> str:
        """Its time, in UTC, to the minute."""
        moment = datetime.datetime.fromtimestamp(self.at, datetime.UTC)
        return f"{moment:%Y-%m-%d %H:%M} UTC"

    def to_tag(self) -> str:
        """The claim as its tag's value."""
        return json.dumps(dataclasses.asdict(self))[:5000]


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What the policy did: its line in the alert, and the job started, if any."""

    line: str
    job: str = ""


def fired(policy: RetrainingPolicy, steps: T.Sequence[T.Mapping[str, T.Any]]) -> list[str]:
    """Why this run calls for retraining: one reason per trigger and step that fired it.

    Args:
        policy: the policy, whose triggers are read.
        steps: the run's steps (`task` and `metrics`, as the exit step reads them from MLflow).
    """
    reasons = []
    for trigger in policy.on:
        metric, said = SIGNALS[trigger]
        for step in steps:
            if float(step.get("metrics", {}).get(metric, 0.0)) >= 1.0:
                reasons.append(f"{said} ({step.get('task', '?')})")
    return reasons


def claims(client: T.Any, model_name: str) -> list[Claim]:
    """The model's retraining claims, oldest first."""
    tags = client.get_registered_model(model_name).tags or {}
    found = []
    for key, value in tags.items():
        if not key.startswith(CLAIM_PREFIX):
            continue
        try:
            data = json.loads(value)
            found.append(
                Claim(
                    run=str(data["run"]),
                    at=float(data["at"]),
                    reason=str(data.get("reason", "")),
                    job=str(data.get("job", "")),
                )
            )
        except (ValueError, KeyError, TypeError):  # not ours, or damaged: it holds nothing
            logger.warning("ignoring the unreadable retraining claim %s=%r", key, value)
    return sorted(found, key=lambda claim: (claim.at, claim.run))


def claim_key(run: str) -> str:
    """The tag key of a run's claim."""
    return CLAIM_PREFIX + _UNSAFE_KEY.sub("_", run)[:200]


def claim(
    client: T.Any,
    model_name: str,
    run: str,
    reason: str,
    period_seconds: float,
    settle_seconds: float = SETTLE_SECONDS,
) -> tuple[bool, Claim]:
    """Claim the period's retraining of a model for this run.

    Returns:
        (True, this run's claim) when this run may start training; (False, the claim that
        holds the period) when another run started one within it, or claimed it first.
    """
    now = time.time()
    held = _live(client, model_name, period_seconds, now)
    if held:
        return False, held[0]
    mine = Claim(run=run, at=now, reason=reason)
    client.set_registered_model_tag(model_name, claim_key(run), mine.to_tag())
    time.sleep(settle_seconds)  # every claim written before this one is seen by now
    held = _live(client, model_name, period_seconds, time.time())
    first = held[0] if held else mine
    if first.run != run:
        release(client, model_name, run)
        return False, first
    return True, mine


def record_job(client: T.Any, model_name: str, mine: Claim, job: str) -> None:
    """Add the started job's id to this run's claim."""
    done = dataclasses.replace(mine, job=job)
    client.set_registered_model_tag(model_name, claim_key(mine.run), done.to_tag())


def release(client: T.Any, model_name: str, run: str) -> None:
    """Remove a run's claim (its start failed, or another run holds the period)."""
    try:
        client.delete_registered_model_tag(model_name, claim_key(run))
    except Exception as error:  # a claim left behind only delays the next start
        logger.warning("cannot remove the retraining claim of %s: %s", run, error)


def _live(client: T.Any, model_name: str, period_seconds: float, now: float) -> list[Claim]:
    """The claims within the period; those past it are removed."""
    live = []
    for found in claims(client, model_name):
        if now - found.at < period_seconds:
            live.append(found)
        else:
            release(client, model_name, found.run)
    return live


def apply(
    policy: RetrainingPolicy,
    client: T.Any,
    steps: T.Sequence[T.Mapping[str, T.Any]],
    run: str,
    experiment: str,
    settle_seconds: float = SETTLE_SECONDS,
) -> Outcome | None:
    """Start training when a trigger fired and the period allows; say what was done.

    Args:
        policy: the retraining policy.
        client: an MLflow client of the registry.
        steps: the run's steps as the exit step read them (task, kind, status, model_name,
            metrics).
        run: the pipeline run's id (the claim's owner).
        experiment: the run's MLflow experiment, the training's default.
        settle_seconds: how long a claim waits for the others written at the same time.

    Returns:
        The alert's line and the job started; None when no trigger fired.
    """
    reasons = fired(policy, steps)
    if not reasons:
        return None
    why = "; ".join(dict.fromkeys(reasons))
    names = sorted({str(s["model_name"]) for s in steps if s.get("model_name")})
    if len(names) != 1:
        found = ", ".join(names) or "none"
        return Outcome(
            f"{LINE_PREFIX}not started ({why}): the run served no one registered model "
            f"(found: {found})"
        )
    name = names[0]
    trained = [s for s in steps if s.get("kind") == "TrainingJob" and s.get("status") == "FINISHED"]
    if trained:
        return Outcome(f"{LINE_PREFIX}not started ({why}): this run trained {name} itself")
    try:
        won, holder = claim(client, name, run, why, policy.period_seconds, settle_seconds)
    except Exception as error:
        return Outcome(f"{LINE_PREFIX}not started ({why}): {_one_line(error)}")
    if not won:
        by = f"job {holder.job}" if holder.job else f"run {holder.run}"
        return Outcome(
            f"{LINE_PREFIX}due ({why}), not started: {by} started one at {holder.when}, within "
            f"the {policy.period_hours:g} h period"
        )
    values = policy.training_values(name, experiment)
    try:
        job = start_training(policy.trainer, values)
    except Exception as error:
        release(client, name, run)
        return Outcome(f"{LINE_PREFIX}could not start ({why}): {_one_line(error)}")
    try:
        record_job(client, name, holder, job)
    except Exception as error:  # the job runs; only its id is missing from the claim
        logger.warning("cannot record the retraining job on %s: %s", name, error)
    after = Claim(run=run, at=holder.at + policy.period_seconds).when
    return Outcome(
        f"{LINE_PREFIX}started job {job}, training {values['model_name']} ({why}); the next no "
        f"sooner than {after}. Follow it: python -m pipelines job status {job}",
        job=job,
    )


def _one_line(error: Exception) -> str:
    said = (
        str(error) if isinstance(error, TrainingNotStarted) else f"{type(error).__name__}: {error}"
    )
    text = secrets.redact(said)
    return " ".join(text.split())[:1000]
