"""Notification job: one alert per pipeline run, saying how it ended and what it produced."""

from __future__ import annotations

import logging
import re
import typing as T

import pydantic as pdt

from components.core import champions, results
from components.io import alerts, monitoring, parents, runs
from components.io import retraining as retrain
from components.jobs import base
from components.utils import secrets

logger = logging.getLogger(__name__)

# The suffix an orchestrator gives the second and later tasks of one component: `predict-2`.
_REPEATED = re.compile(r"-\d+$")
# The alias the pipelines promote to, and why evaluation refused a version (its version tags).
CHAMPION = "Champion"
REASONS_TAG = "evaluation.reasons"
# Metrics worth a line in the alert, as logged by the jobs.
KEY_METRICS = (
    "rows_predicted",
    "samples_explained",
    "test_rmse",
    "test_r2",
    "test_f1_macro",
    "test_accuracy",
    "drift_drifted_features",
    "challenger_agreement",
    "challenger_mean_absolute_difference",
)


class NotificationJob(base.Job, frozen=True):
    """Alert how a pipeline run ended: the failed step and its error, or the key outputs.

    The facts come from the MLflow runs that the pipeline's steps recorded with the pipeline run
    id. A step that died before it could record its outcome (killed, out of memory, MLflow
    unreachable) is found by `tasks`, with the cause the orchestrator kept (its log, its pod's
    status); its MLflow run, left RUNNING, is ended FAILED. When nothing can be read, the alert
    still goes out with what KFP reported.

    Args:
        pipeline: the pipeline's name.
        run_id: the KFP run id the steps tagged their MLflow runs with.
        state: the final state KFP reported (SUCCEEDED, FAILED, CANCELED...).
        error: the error KFP reported, if any.
        ui_base_url: the Kubeflow UI's base URL, for a link to the run.
        tasks: where to read which tasks failed and why, besides MLflow.
        retraining: the retraining policy ({}: off): when a step found drift or degradation,
            start the training pipeline, at most once per period (`components.io.retraining`).
            Checked when applied: a policy that cannot be is a line of the alert, which still
            goes out (the run's check refuses it before the run starts).
    """

    KIND: T.Literal["NotificationJob"] = "NotificationJob"
    RECORDS_RUN: T.ClassVar[bool] = False
    pipeline: str
    run_id: str = ""
    state: str = "SUCCEEDED"
    error: str = ""
    ui_base_url: str = ""
    tasks: runs.TaskReaderKind = pdt.Field(default_factory=runs.NoTaskReader, discriminator="KIND")
    retraining: dict[str, T.Any] = pdt.Field(default_factory=dict)

    def run(self) -> results.NotificationResult:
        """Gather the steps' records, then send one alert."""
        # Gather what each step recorded.
        steps = self._steps()
        # Ask the orchestrator which tasks failed: some died before they could record it.
        died = {}
        if self.state != "SUCCEEDED":
            died = {failure.task: failure.cause for failure in self.tasks.failures()}
        # The pipeline is over: a run still RUNNING belongs to a step that died. End it FAILED.
        closed = self._close_abandoned(steps, died)
        # The pipeline run's parent run ends with the pipeline, in its state.
        self._end_parent()
        # A retried step records one run per attempt: report each step once, its last attempt.
        last = {step["task"]: step for step in steps}
        failed = [step for step in last.values() if step["status"] == "FAILED"]
        for task, cause in died.items():
            # A component used twice in a pipeline (the lifecycle's predict when the candidate
            # passed, and when it did not) records its runs under its own name, `predict`,
            # where the orchestrator names the second task `predict-2`: one failure, told once,
            # under the name the run's graph shows.
            recorded = last.get(task) or last.get(_REPEATED.sub("", task))
            if recorded is not None and recorded["status"] == "FAILED":
                recorded["task"] = task
                continue
            # A task that failed with no FAILED record of its own: its cause is the orchestrator's.
            failed.append({"task": task, "kind": "", "error": cause})
        # Say which step failed and why, or what the run produced.
        fields: dict[str, T.Any] = {"run": self.run_id or "-"}
        if self.state == "SUCCEEDED":
            message = f"Pipeline {self.pipeline} succeeded."
        else:
            message = f"Pipeline {self.pipeline} ended {self.state}."
        for step in failed:
            kind = f" ({step['kind']})" if step["kind"] else ""
            fields["failed step"] = f"{step['task']}{kind}"
            message += f"\nFailed step {step['task']}: {step['error']}"
        if not failed and self.error:
            message += f"\n{self.error}"
        for step in last.values():
            if step["drift"]:
                message += f"\nDrift ({step['task']}): {step['drift']}"
            if step["performance"]:
                message += f"\nPerformance ({step['task']}): {step['performance']}"
            if step["trend"]:
                message += f"\nTrend ({step['task']}): {step['trend']}"
            if step["shadow"]:
                message += f"\nChallenger ({step['task']}): {step['shadow']}"
            if step["warning"]:
                message += f"\nWarning from {step['task']}: {step['warning']}"
        # Whether the candidate was promoted, and which version serves.
        verdict, facts = self._promotion(list(last.values()))
        message += f"\n{verdict}" if verdict else ""
        fields.update(facts)
        # Whether the run called for a new version, and whether one is being trained.
        retrained = self._retrain(list(last.values()))
        if retrained is not None:
            message += f"\n{retrained.line}"
            fields["retraining"] = f"started {retrained.job}" if retrained.job else "not started"
        # Each figure says its version when the run used two (a candidate refused, a Champion
        # that predicted); `model` is the version the last step used.
        used = {step["model"] for step in steps if step.get("model")}
        for step in steps:
            if step.get("model"):
                fields["model"] = step["model"]
            of = f" (v{step['model_version']})" if len(used) > 1 and step.get("model") else ""
            for name in KEY_METRICS:
                if name in step["metrics"]:
                    fields[name.replace("_", " ") + of] = _number(step["metrics"][name])
        link = None
        if self.ui_base_url and self.run_id:
            link = f"{self.ui_base_url.rstrip('/')}/#/runs/details/{self.run_id}"
        status: alerts.Status = (
            "CANCELED" if self.state == "CANCELED" else
            "SUCCEEDED" if self.state == "SUCCEEDED" else "FAILED"
        )  # fmt: skip
        title = f"{self.pipeline}: {self.state}"
        with base.warnings_logged(alerts.logger) as troubles:
            delivered = self.alerter.notify(
                title=title,
                message=message,
                fields=fields,
                status=status,
                link=link,
            )
        # Whoever watches the run (the local console's notify line) learns where it went.
        sender = type(self.alerter).__name__
        if delivered:
            logger.info("%sdelivered by %s", alerts.DELIVERY_MARK, sender)
        else:
            cause = troubles[-1].split(" not delivered: ", 1)[-1] if troubles else "see the log"
            logger.warning("%sNOT delivered by %s: %s", alerts.DELIVERY_MARK, sender, cause)
        return results.NotificationResult(
            title=title,
            message=message,
            fields=fields,
            delivered=delivered,
            closed=closed,
            retraining=retrained.job if retrained is not None else "",
        )

    def _retrain(self, steps: list[dict[str, T.Any]]) -> retrain.Outcome | None:
        """Apply the retraining policy to what the steps found (None: off, or nothing fired)."""
        if not self.retraining or self.state == "CANCELED" or not self.run_id:
            return None  # a canceled run was stopped on purpose: nothing it found counts
        try:
            policy = retrain.RetrainingPolicy.model_validate(self.retraining)
        except pdt.ValidationError as error:
            invalid = base.describe_errors("retraining policy", error)
            return retrain.Outcome(f"{retrain.LINE_PREFIX}not started: {invalid}")
        try:
            client = self.mlflow_service.client()
            return retrain.apply(
                policy, client, steps, self.run_id, self.mlflow_service.experiment_name
            )
        except Exception as error:  # the alert matters more than the retraining
            logger.warning("retraining policy: %s", secrets.redact(str(error)))
            return retrain.Outcome(
                f"{retrain.LINE_PREFIX}not started: {secrets.redact(str(error))}"
            )

    def _steps(self) -> list[dict[str, T.Any]]:
        """The steps' MLflow runs for this pipeline run, oldest first; [] when unreachable."""
        if not self.run_id:
            return []
        try:
            client = self.mlflow_service.client()
            # The steps' experiment: KFP's MLflow plugin's when it is on, else the pipeline's.
            experiment = self.mlflow_service.experiment_id(client, create=False)
            if experiment is None:
                return []
            runs = client.search_runs(
                [experiment],
                filter_string=f"tags.`{base.PIPELINE_RUN_TAG}` = '{self.run_id}'",
                order_by=["attributes.start_time ASC"],
            )
        except Exception as error:  # the alert matters more than its details
            logger.warning("cannot read the steps' runs from MLflow: %s", error)
            return []
        return [
            {
                "run_id": run.info.run_id,
                "task": run.data.tags.get(base.TASK_TAG, "?"),
                "kind": run.data.tags.get(base.JOB_TAG, "?"),
                "status": run.info.status,
                "error": run.data.tags.get(base.ERROR_TAG, ""),
                "warning": run.data.tags.get(base.WARNING_TAG, ""),
                "drift": run.data.tags.get(monitoring.DRIFT_TAG, ""),
                "performance": run.data.tags.get(monitoring.PERFORMANCE_TAG, ""),
                "trend": run.data.tags.get(monitoring.TREND_TAG, ""),
                "shadow": run.data.tags.get(monitoring.SHADOW_TAG, ""),
                "model": _model(run.data.tags),
                "model_name": run.data.tags.get("model_name", ""),
                "model_version": run.data.tags.get("model_version", ""),
                "passed": run.data.tags.get("passed"),  # an evaluation's verdict
                "metrics": run.data.metrics,
            }
            for run in runs
            if run.data.tags.get(parents.PARENT_TAG) != "true"  # the pipeline run's own
        ]

    def _end_parent(self) -> None:
        """End the parent run of the pipeline run's steps (none with KFP's MLflow plugin)."""
        if not self.run_id:
            return
        try:
            client = self.mlflow_service.client()
            experiment = self.mlflow_service.experiment_id(client, create=False)
            if experiment is not None:
                parents.end(client, experiment, self.run_id, self.state)
        except Exception as error:  # the alert matters more than the parent's status
            logger.warning("cannot end the parent run: %s", secrets.redact(str(error)))

    def _promotion(self, steps: list[dict[str, T.Any]]) -> tuple[str, dict[str, str]]:
        """What became of the version evaluated: promoted, or why not and which version serves.

        Returns:
            A sentence for the message, and the alert's `candidate`, `promoted` and `serving`
            fields; nothing when no step evaluated a version.
        """
        evaluated = [step for step in steps if step["passed"] is not None and step["model"]]
        if not evaluated:
            return "", {}
        name, version = evaluated[-1]["model_name"], evaluated[-1]["model_version"]
        reasons, serving, tags = "", None, {}
        try:  # the registry, read now that every step has ended, says what serves
            client = self.mlflow_service.client()
            tags = client.get_model_version(name, version).tags or {}
            reasons = tags.get(REASONS_TAG, "")
            aliases = client.get_registered_model(name).aliases or {}
            # A local sqlite store answers versions as ints, a tracking server as text.
            serving = None if aliases.get(CHAMPION) is None else str(aliases[CHAMPION])
        except Exception as error:  # the alert matters more than this detail
            logger.warning("cannot read the registry: %s", secrets.redact(str(error)))
        candidate = f"{name} v{version}"
        served = f"{name} v{serving}" if serving else "none"
        facts = {"candidate": candidate, "promoted": "yes" if serving == version else "no"}
        facts["serving"] = served
        if serving == version:
            return f"{candidate} promoted: {CHAMPION} is now v{version}.", facts
        serves = f"{CHAMPION} v{serving} serves" if serving else f"No {CHAMPION} serves"
        if tags.get(champions.APPROVAL_TAG) == champions.AWAITING:
            facts["promoted"] = "awaiting approval"
            command = f"python -m pipelines model approve {name} {version}"
            return (
                f"{candidate} passed and awaits approval: `{command}` (or `model reject`). "
                f"{serves}.",
                facts,
            )
        why = reasons if evaluated[-1]["passed"] == "False" and reasons else "see the steps"
        if evaluated[-1]["passed"] == "False" and not reasons:
            why = "it did not pass its evaluation"
        return f"{candidate} not promoted: {why}. {serves}.", facts

    def _close_abandoned(self, steps: list[dict[str, T.Any]], died: dict[str, str]) -> list[str]:
        """End FAILED the runs left RUNNING, with why when known; return their run ids.

        The exit step runs once every other step has ended, so a RUNNING run is one whose step
        was killed, or lost its pod, before it could end it. Each closed step is updated in
        place, so that the alert reports it as failed.
        """
        abandoned = [step for step in steps if step["status"] == "RUNNING"]
        if not abandoned:
            return []
        closed = []
        try:
            client = self.mlflow_service.client()
            for step in abandoned:
                cause = died.get(step["task"], "killed, or its pod lost, with no cause left")
                cause = secrets.redact(cause)
                tag = f"step {step['task']} ended without recording its outcome: {cause}"
                client.set_tag(step["run_id"], base.ERROR_TAG, tag[:5000])
                client.set_terminated(step["run_id"], status="FAILED")
                step.update(status="FAILED", error=cause)
                closed.append(step["run_id"])
        except Exception as error:  # the alert matters more than the cleanup
            logger.warning("cannot end the abandoned MLflow runs: %s", secrets.redact(str(error)))
        return closed


def _model(tags: dict[str, str]) -> str | None:
    if tags.get("model_name") and tags.get("model_version"):
        return f"{tags['model_name']} v{tags['model_version']}"
    return None


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:.4g}"
