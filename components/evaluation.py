"""Component `evaluate`: score a new version on held-out rows and against the Champion."""

from typing import Optional

from kfp import dsl
from kfp.dsl import HTML, ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def evaluate(
    holdout: Input[Dataset],
    model: Input[Model],
    metrics: Output[Metrics],
    classification_metrics: Output[ClassificationMetrics],
    report: Output[HTML],
    summary: Output[Markdown],
    target: str = "cnt",
    thresholds: Optional[dict] = None,
    tolerance: float = 0.0,
    champion_alias: str = "Champion",
    experiment: str = "bike-sharing",
    run_id: str = "",
) -> bool:
    """Evaluate the trained version; it passes when it meets every threshold and is at least as
    good as the Champion on the primary metric (rmse, or f1_macro for a classifier).

    Args:
        holdout: Held-out rows with the target column (from the train step).
        model: The trained model version (from the train step).
        target: Column the model predicts.
        thresholds: Metric limits in each metric's direction, e.g. {"rmse": 90, "r2": 0.8}.
        tolerance: How much worse than the Champion the new version may be, relative (0.02 = 2%).
        champion_alias: Alias of the model in production, compared against.
        experiment: MLflow experiment of the evaluation run.
        run_id: Pipeline run id, recorded on the MLflow run (set by the pipeline).

    Returns:
        metrics: Holdout metrics of the new version (and of the Champion, prefixed champion_).
        classification_metrics: Confusion matrix and ROC curve (classifiers only).
        report: Evaluation report with charts.
        summary: Run summary.
        Output: Whether the version passed and may be promoted.
    """
    from components.core import reports
    from components.io import artifacts, datasets
    from components.jobs import base
    from components.jobs.evaluation import EvaluationJob

    job = EvaluationJob(
        inputs=datasets.ParquetReader(path=holdout.path),
        target=target,
        model_name=model.metadata["name"],
        alias_or_version=int(model.metadata["version"]),
        champion_alias=champion_alias,
        thresholds={name: float(limit) for name, limit in (thresholds or {}).items()},
        tolerance=tolerance,
        **base.step_settings(experiment, run_id, "evaluate"),
    )
    with job:
        result = job.run()
    artifacts.log_metrics(metrics, result["scores"])
    artifacts.log_metrics(metrics, result["champion_scores"], prefix="champion_")
    curves = result["curves"]
    if curves:
        classification_metrics.log_confusion_matrix(curves["labels"], curves["confusion_matrix"])
        roc = curves["roc"]
        classification_metrics.log_roc_curve(roc["fpr"], roc["tpr"], roc["thresholds"])
        charts = [
            reports.confusion_chart(curves["labels"], curves["confusion_matrix"]),
            reports.roc_chart(roc, curves["roc_positive"]),
        ]
    else:
        charts = [reports.residuals_chart(result["targets"], result["predictions"]["prediction"])]
    name = result["candidate_ref"].describe()
    artifacts.write_text(
        report,
        reports.evaluation_page(
            name,
            result["passed"],
            result["reasons"],
            result["scores"],
            result["champion_scores"],
            charts,
        ),
    )
    facts = {
        "model": name,
        "passed": result["passed"],
        "champion": result["champion_ref"].describe() if result["champion_ref"] else "none",
        "rows": len(result["data"]),
        **{key: f"{value:.4g}" for key, value in result["scores"].items()},
        "reasons": "; ".join(result["reasons"]) or "-",
    }
    artifacts.write_text(summary, reports.markdown_summary("Evaluation", facts))
    return result["passed"]
