"""Pipeline `monitoring`: predictions meet their ground truth -> realized performance, one alert."""

import typing as T

from kfp import dsl
from kfp.dsl import PipelineTask
from kfp.dsl.graph_component import GraphComponent

import components as c
from pipelines.dags.settings import Settings
from pipelines.dags.training import DEFAULT_EXPERIMENT, add_notify


def add_monitoring(settings: Settings, **params: T.Any) -> PipelineTask:
    """Add monitor: the predictions matched with their ground truth and scored by period.

    Args:
        settings: the cluster settings of the step.
        **params: the pipeline's monitoring parameters, by name.
    """
    monitor = c.monitor(
        predictions_data=params["predictions_data"],
        truth_data=params["truth_data"],
        keys=params["keys"],
        target=params["target"],
        model_name=params["model_name"],
        alias_or_version=params["alias_or_version"],
        time_column=params["time_column"],
        period=params["period"],
        min_rows=params["min_rows"],
        tolerance=params["tolerance"],
        policy=params["policy"],
        predictions_reader=params["predictions_reader"],
        truth_reader=params["truth_reader"],
        experiment=params["experiment"],
        run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
    )
    return settings.configure(monitor, "monitor", "Realized performance")


def build(settings: Settings) -> GraphComponent:
    """Build the monitoring pipeline with the given cluster settings.

    Args:
        settings: the cluster settings of the steps.
    """

    @dsl.pipeline(  # type: ignore[untyped-decorator]
        name="monitoring",
        description="Match a model's predictions with their ground truth once it arrives, score "
        "them by period and compare with the version's holdout metrics (and the estimate made "
        "before the labels). Alerts Slack at the end with the headline.",
    )
    def monitoring(
        predictions_data: str,
        truth_data: str,
        keys: list,  # type: ignore[type-arg]
        target: str,
        model_name: str,
        alias_or_version: str = "Champion",
        time_column: str = "",
        period: str = "D",
        min_rows: int = 30,
        tolerance: float = 0.1,
        policy: str = "warn",
        predictions_reader: dict = {},  # type: ignore[type-arg]  # noqa: B006 - a KFP default
        truth_reader: dict = {},  # type: ignore[type-arg]  # noqa: B006
        retraining: dict = {},  # type: ignore[type-arg]  # noqa: B006
        experiment: str = DEFAULT_EXPERIMENT,
        ui_base_url: str = "",
    ) -> None:
        """Score predictions against their ground truth and the holdout.

        Args:
            predictions_data: Predictions: an inference run's output (Parquet file or folder)
                or any table with the key columns and `prediction` (local path, s3://, gs://).
            truth_data: Ground truth: the key columns and the target (Parquet or CSV).
            keys: Columns that identify a row on both sides, e.g. ["instant"].
            target: The truth's column with the true value.
            model_name: Registered model name in MLflow that made the predictions.
            alias_or_version: Version compared with when the predictions' lineage names none.
            time_column: Predictions' column placing a row in a period; empty: all rows only.
            period: h (hours), D (days), W (weeks) or M (months).
            min_rows: A period with fewer labelled rows is counted but not scored.
            tolerance: How much worse than the holdout a metric may be (0.1 = 10%).
            policy: warn (report a degradation) or fail (also fail the run).
            predictions_reader: Reader options of the predictions, e.g. {"KIND": "CSVReader"}.
            truth_reader: Reader options of the truth, e.g. {"KIND": "CSVReader"}.
            retraining: Retrain when it matters ({}: off), e.g. {"period_hours": 24,
                "parameters": {"data": "s3://bucket/labelled/", "target": "cnt"}}: when a step
                found what "on" names (drift, performance, labels; default all three), the alert
                step starts the training pipeline with "parameters" through "trainer"
                ({"type": "LocalTrainer"} by default, or KFPTrainer), at most once per period.
            experiment: MLflow experiment of the steps' runs.
            ui_base_url: Kubeflow UI base URL for a link in the alert (default: KFP_UI_BASE_URL).
        """
        exit_task = add_notify(settings, "monitoring", experiment, ui_base_url, retraining)
        with dsl.ExitHandler(exit_task, name="monitoring"):
            add_monitoring(
                settings, predictions_data=predictions_data, truth_data=truth_data, keys=keys,
                target=target, model_name=model_name, alias_or_version=alias_or_version,
                time_column=time_column, period=period, min_rows=min_rows, tolerance=tolerance,
                policy=policy, predictions_reader=predictions_reader, truth_reader=truth_reader,
                experiment=experiment,
            )  # fmt: skip

    return monitoring
