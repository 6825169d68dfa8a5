"""Component `evaluate`: score a new version on held-out rows and against the Champion."""

from typing import Optional

from kfp import dsl
from kfp.dsl import HTML, ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def evaluate(
    target: str,
    holdout: Input[Dataset],
    model: Input[Model],
    metrics: Output[Metrics],
    classification_metrics: Output[ClassificationMetrics],
    report: Output[HTML],
    summary: Output[Markdown],
    card: Output[Markdown],
    champion: dsl.OutputPath(str),
    thresholds: Optional[dict] = None,
    tolerance: float = 0.0,
    champion_alias: str = "Champion",
    experiment: str = "model-lifecycle",
    run_id: str = "",
) -> bool:
    """Evaluate the trained version against thresholds and the Champion.

    The version passes when it meets every threshold and is at least as good as the Champion on
    the primary metric (rmse, or f1_macro for a classifier).

    Args:
        target: Column the model predicts.
        holdout: Held-out rows with the target column (from the train step).
        model: The trained model version (from the train step).
        thresholds: Metric limits in each metric's direction, e.g. {"rmse": 90, "r2": 0.8};
            empty for the task's defaults (r2 >= 0 for a regressor, none for a classifier).
        tolerance: How much worse than the Champion the new version may be, relative (0.02 = 2%).
        champion_alias: Alias of the model in production, compared against.
        experiment: MLflow experiment of the evaluation run.
        run_id: Pipeline run id, recorded on the MLflow run (set by the pipeline).

    Returns:
        metrics: Holdout metrics of the new version (and of the Champion, prefixed champion_).
        classification_metrics: Confusion matrix and ROC curve (classifiers only).
        report: Evaluation report with charts.
        summary: Run summary.
        card: Model card of the version, now with the verdict and the Champion compared with
            (or why there is none).
        champion: The Champion version it was compared with ("3"), or the alias when there was
            none; the lifecycle predicts with it when this version does not pass.
        Output: Whether the version passed and may be promoted.
    """
    from components import fields, steps
    from components.core import cards, reports
    from components.io import artifacts
    from components.jobs.evaluation import EvaluationJob

    # The one mapping of this step's inputs to its job, also the pre-run check's.
    result = steps.run_step(
        EvaluationJob, "evaluate", experiment, run_id, fields.evaluate_fields,
        target=target, holdout=holdout, model=model, thresholds=thresholds,
        tolerance=tolerance, champion_alias=champion_alias,
    )  # fmt: skip
    artifacts.log_metrics(metrics, result.scores)
    artifacts.log_metrics(metrics, result.champion_scores, prefix="champion_")
    if result.curves is not None:
        curves = result.curves
        classification_metrics.log_confusion_matrix(curves.labels, curves.confusion_matrix)
        if curves.roc is not None:
            roc = curves.roc
            classification_metrics.log_roc_curve(roc["fpr"], roc["tpr"], roc["thresholds"])
    artifacts.write_text(report, result.report or reports.evaluation_page(result))
    artifacts.write_text(summary, reports.evaluation_summary(result))
    artifacts.write_text(card, result.card or cards.missing(result.candidate_ref))
    with open(champion, "w", encoding="utf-8") as file:
        file.write(str(result.champion_ref.version) if result.champion_ref else champion_alias)
    return result.passed
