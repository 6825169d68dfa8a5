"""Pipeline `monitoring`: predictions meet their ground truth -> realized performance, one alert."""

import typing as T

from kfp import dsl
from kfp.dsl import PipelineTask
from kfp.dsl.graph_component import GraphComponent

import components as c
from pipelines.dags import defaults
from pipelines.dags.descriptions import described
from pipelines.dags.settings import Settings
from pipelines.dags.training import add_notify


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
    @described(
        target="truth_target",
        model_name="monitored_model_name",
        alias_or_version="lineage_version",
        time_column="period_column",
        tolerance="holdout_tolerance",
    )
    def monitoring(
        predictions_data: str,
        truth_data: str,
        keys: list,  # type: ignore[type-arg]
        target: str,
        model_name: str,
        alias_or_version: str = defaults.ALIAS,
        time_column: str = "",
        period: str = defaults.PERIOD,
        min_rows: int = defaults.MIN_ROWS,
        tolerance: float = defaults.MONITORING_TOLERANCE,
        policy: str = defaults.MONITORING_POLICY,
        predictions_reader: dict = {},  # type: ignore[type-arg]  # noqa: B006 - a KFP default
        truth_reader: dict = {},  # type: ignore[type-arg]  # noqa: B006
        retraining: dict = {},  # type: ignore[type-arg]  # noqa: B006
        experiment: str = defaults.EXPERIMENT,
        ui_base_url: str = "",
    ) -> None:
        """Score predictions against their ground truth and the holdout."""
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
