"""Notification job: one alert per pipeline run, saying how it ended and what it produced."""

from __future__ import annotations

import logging
import typing as T

from components.core import results
from components.jobs import base

logger = logging.getLogger(__name__)

# Metrics worth a line in the alert, as logged by the jobs.
KEY_METRICS = (
    "rows_predicted",
    "samples_explained",
    "test_rmse",
    "test_r2",
    "test_f1_macro",
    "holdout_rmse",
    "holdout_r2",
    "holdout_f1_macro",
    "holdout_accuracy",
)


class NotificationJob(base.Job, frozen=True):
    """Alert how a pipeline run ended: the failed step and its error, or the key outputs.

    The facts come from the MLflow runs that the pipeline's steps recorded with the pipeline run
    id; when MLflow cannot be reached, the alert still goes out with what KFP reported.

    Args:
        pipeline: the pipeline's name.
        run_id: the KFP run id the steps tagged their MLflow runs with.
        state: the final state KFP reported (SUCCEEDED, FAILED, CANCELED...).
        error: the error KFP reported, if any.
        ui_base_url: the Kubeflow UI's base URL, for a link to the run.
    """

    KIND: T.Literal["NotificationJob"] = "NotificationJob"
    RECORDS_RUN: T.ClassVar[bool] = False
    pipeline: str
    run_id: str = ""
    state: str = "SUCCEEDED"
    error: str = ""
    ui_base_url: str = ""

    def run(self) -> results.NotificationResult:
        """Gather the steps' records, then send one alert."""
        # Gather what each step recorded.
        steps = self._steps()
        # A retried step records one run per attempt: report each step once, its last attempt.
        last = {step["task"]: step for step in steps}
        failed = [step for step in last.values() if step["status"] == "FAILED"]
        # Say which step failed and why, or what the run produced.
        fields: dict[str, T.Any] = {"run": self.run_id or "-"}
        if self.state == "SUCCEEDED":
            message = f"Pipeline {self.pipeline} succeeded."
        else:
            message = f"Pipeline {self.pipeline} ended {self.state}."
        for step in failed:
            fields["failed step"] = f"{step['task']} ({step['kind']})"
            message += f"\nFailed step {step['task']}: {step['error']}"
        if not failed and self.error:
            message += f"\n{self.error}"
        for step in last.values():
            if step["warning"]:
                message += f"\nWarning from {step['task']}: {step['warning']}"
        for step in steps:
            if step.get("model"):
                fields["model"] = step["model"]
            for name in KEY_METRICS:
                if name in step["metrics"]:
                    fields[name.replace("_", " ")] = _number(step["metrics"][name])
        link = None
        if self.ui_base_url and self.run_id:
            link = f"{self.ui_base_url.rstrip('/')}/#/runs/details/{self.run_id}"
        status = "SUCCEEDED" if self.state == "SUCCEEDED" else "FAILED"
        title = f"{self.pipeline}: {self.state}"
        delivered = self.alerter.notify(
            title=title,
            message=message,
            fields=fields,
            status=status if self.state != "CANCELED" else "CANCELED",
            link=link,
        )
        return results.NotificationResult(
            title=title, message=message, fields=fields, delivered=delivered
        )

    def _steps(self) -> list[dict[str, T.Any]]:
        """The steps' MLflow runs for this pipeline run, oldest first; [] when unreachable."""
        if not self.run_id:
            return []
        try:
            client = self.mlflow_service.client()
            experiment = client.get_experiment_by_name(self.mlflow_service.experiment_name)
            if experiment is None:
                return []
            runs = client.search_runs(
                [experiment.experiment_id],
                filter_string=f"tags.`{base.PIPELINE_RUN_TAG}` = '{self.run_id}'",
                order_by=["attributes.start_time ASC"],
            )
        except Exception as error:  # the alert matters more than its details
            logger.warning("cannot read the steps' runs from MLflow: %s", error)
            return []
        return [
            {
                "task": run.data.tags.get("kfp.task", "?"),
                "kind": run.data.tags.get(base.JOB_TAG, "?"),
                "status": run.info.status,
                "error": run.data.tags.get(base.ERROR_TAG, ""),
                "warning": run.data.tags.get(base.WARNING_TAG, ""),
                "model": _model(run.data.tags),
                "metrics": run.data.metrics,
            }
            for run in runs
        ]


def _model(tags: dict[str, str]) -> str | None:
    if tags.get("model_name") and tags.get("model_version"):
        return f"{tags['model_name']} v{tags['model_version']}"
    return None


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:.4g}"
