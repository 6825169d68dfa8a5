"""Component `monitor`: a registered model's realized performance once the ground truth arrives."""

from typing import Optional

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)  # type: ignore[untyped-decorator]
def monitor(
    truth_data: str,
    keys: list,  # type: ignore[type-arg]
    target: str,
    model_name: str,
    metrics: Output[Metrics],
    performance_table: Output[Dataset],
    report: Output[HTML],
    predictions_data: str = "",
    predictions: Optional[Input[Dataset]] = None,
    alias_or_version: str = "Champion",
    time_column: str = "",
    period: str = "D",
    min_rows: int = 30,
    tolerance: float = 0.1,
    policy: str = "warn",
    predictions_reader: Optional[dict] = None,  # type: ignore[type-arg]
    truth_reader: Optional[dict] = None,  # type: ignore[type-arg]
    experiment: str = "model-lifecycle",
    run_id: str = "",
) -> str:
    """Match predictions with their ground truth and score them against the holdout.

    Args:
        truth_data: Ground truth: a Parquet file or folder, or a CSV file (local path, s3://,
            gs://) with the key columns and the target.
        keys: Columns that identify a row in both the predictions and the truth, e.g.
            ["instant"].
        target: The truth's column with the true value.
        model_name: Registered model name in MLflow that made the predictions.
        predictions_data: Predictions: a prediction run's output (file or folder) or any table
            with the key columns and `prediction`; or leave empty and connect `predictions`.
        predictions: Predictions as a Dataset artifact from an upstream predict step.
        alias_or_version: Alias or version whose holdout metrics are compared with, when the
            predictions' lineage does not name the version that made them.
        time_column: Column of the predictions that places a row in a period (e.g. a
            pass-through date); empty: all rows at once only.
        period: Period of the time column: h (hours), D (days), W (weeks), M (months).
        min_rows: A period with fewer labelled rows is counted but not scored.
        tolerance: How much worse than the holdout a metric may be, relative (0.1 = 10%).
        policy: warn (report a degradation) or fail (report it, then fail the step).
        predictions_reader: Reader options of the predictions, e.g. {"KIND": "CSVReader"}.
        truth_reader: Reader options of the truth, e.g. {"KIND": "CSVReader", "delimiter": ";"}.
        experiment: MLflow experiment of the monitoring run.
        run_id: Pipeline run id, recorded on the MLflow run (set by the pipeline).

    Returns:
        metrics: Realized metrics over all labelled rows (realized_*), their change against
            the holdout (change_*), and the periods scored and degraded.
        performance_table: One row per period and metric: realized, holdout, change, verdict.
        report: The realized performance against the holdout's, period by period.
        Output: The headline, e.g. "rmse 81.3 over 2,412 labelled rows, 27% worse than the
            holdout's 64.2; degraded in 3 of 7 days".
    """
    import pathlib

    from components import fields, steps
    from components.io import artifacts
    from components.jobs.monitoring import MonitoringJob

    # The one mapping of this step's inputs to its job, also the pre-run check's.
    result = steps.run_step(
        MonitoringJob, "monitor", experiment, run_id, fields.monitor_fields,
        predictions_data=predictions_data, predictions=predictions, truth_data=truth_data,
        keys=keys, target=target, model_name=model_name, alias_or_version=alias_or_version,
        time_column=time_column, period=period, min_rows=min_rows, tolerance=tolerance,
        policy=policy, predictions_reader=predictions_reader, truth_reader=truth_reader,
    )  # fmt: skip
    artifacts.log_metrics(metrics, result.metrics)
    pathlib.Path(performance_table.path).parent.mkdir(parents=True, exist_ok=True)
    result.table.to_parquet(performance_table.path, index=False)
    performance_table.metadata.update({"model": result.model_ref.describe()})
    artifacts.write_text(report, result.page)
    return str(result.headline)
