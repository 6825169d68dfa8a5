"""Component `notify`: the exit step; one Slack alert per pipeline run, on success and failure."""

from kfp import dsl

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def notify(
    status: dsl.PipelineTaskFinalStatus,
    pipeline: str,
    run_id: str = "",
    experiment: str = "model-lifecycle",
    ui_base_url: str = "",
    retraining: dict = {},  # type: ignore[type-arg]  # noqa: B006 - a KFP default
) -> bool:
    """Send the pipeline's final alert through the alerter the environment chooses.

    LIFECYCLE_ALERTER names it (a KIND, package.module:Class or {"type", "config"} JSON); else
    Slack when SLACK_WEBHOOK_URL is set; else the step's log.

    A step that died before recording its outcome in MLflow (killed, out of memory, MLflow
    unreachable) is named with the cause found in its log or its pod's status, and its MLflow
    run, left RUNNING, is ended FAILED.

    Args:
        status: Final status of the pipeline's steps (set by KFP).
        pipeline: Pipeline name shown in the alert.
        run_id: Pipeline run id, used to find what each step recorded in MLflow.
        experiment: MLflow experiment the steps recorded their runs in.
        ui_base_url: Kubeflow UI base URL for a link to the run (default: KFP_UI_BASE_URL).
        retraining: Retraining policy ({}: off): when a step found drift or degradation, start
            the training pipeline at most once per period, and say so in the alert.

    Returns:
        Output: Whether the alert was delivered; a failed delivery never fails the pipeline.
    """
    import os

    from components import steps
    from components.io import alerts, runs, services
    from components.jobs.notification import NotificationJob
    from components.utils import exits

    exits.exit_quickly()
    # The log first: an alerter LIFECYCLE_ALERTER names that cannot be built is said there,
    # and the alert goes to the log instead.
    services.LoggerService().start()
    alerter = alerts.default_alerter()
    job = NotificationJob(
        pipeline=pipeline,
        run_id=run_id,
        state=status.state,
        error=status.error_message or "",
        ui_base_url=ui_base_url or os.environ.get("KFP_UI_BASE_URL", ""),
        retraining=steps.integers_back(retraining),  # numbers come back from KFP as floats
        mlflow_service=services.MlflowService(experiment_name=experiment),
        alerter=alerter,
        # The run's folder under kfp.local, the KFP and Kubernetes APIs on a cluster.
        tasks=runs.default_reader(status.pipeline_job_resource_name, run_id),
    )
    with job:
        result = job.run()
    return result.delivered
