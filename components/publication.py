"""Component `publish_predictions`: publish the shards' parts as one dataset, all or nothing."""

from typing import Any, Optional

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def publish_predictions(
    plan: Input[Artifact],
    reports: list,
    predictions: Output[Dataset],
    summary: Output[Markdown],
    drift_metrics: Output[Metrics],
    drift_table: Output[Dataset],
    drift_report: Output[HTML],
    drift_policy: str = "warn",
    drift_thresholds: Optional[dict] = None,
    performance_tolerance: float = 0.1,
    experiment: str = "model-lifecycle",
    run_id: str = "",
) -> int:
    """Publish the predictions of every shard as one dataset, once all of them succeeded.

    The parts stay where the shards wrote them: `predictions` is a folder with a manifest,
    `_manifest.json`, that lists them (with rows, model version and run id). The project's
    readers open the folder as one table; pyarrow opens the manifest's `files`.

    Args:
        plan: The plan made by plan_shards.
        reports: Each shard's report (collected from predict_shard).
        drift_policy: Judge the drift summed over the shards: warn (report only), fail (also
            publish nothing when a feature drifted), or off.
        drift_thresholds: When a feature counts as drifted (see predict).
        performance_tolerance: How much worse than the holdout's the performance estimated
            over every shard may be before the batch counts as degraded (see predict).
        experiment: MLflow experiment of the publishing run.
        run_id: Pipeline run id, recorded on the MLflow run (set by the pipeline).

    Returns:
        predictions: The published predictions: a folder holding the manifest of the parts.
        summary: Run summary: rows, shards, model version.
        drift_metrics: Drift scores over every shard, and the challenger's.
        drift_table: One row per feature: status, PSI, missing rates, out of range, unseen.
        drift_report: The rows against the training data, and the challenger's comparison.
        Output: Rows predicted.
    """
    from components import steps
    from components.core import reports as summaries
    from components.fields import publish_predictions_fields
    from components.io import artifacts, shards
    from components.jobs.publication import PublicationJob

    def mapping(**inputs: Any) -> dict:  # type: ignore[type-arg]
        # Each shard's report, as its step returned it (JSON), read first.
        parsed = [shards.ShardReport.parse(text) for text in reports]
        return publish_predictions_fields(shard_reports=parsed, **inputs)

    # The one mapping of this step's inputs to its job, also the pre-run check's.
    result = steps.run_step(
        PublicationJob, "publish-predictions", experiment, run_id, mapping,
        plan=plan, predictions=predictions, drift_policy=drift_policy,
        drift_thresholds=drift_thresholds, performance_tolerance=performance_tolerance,
    )  # fmt: skip
    predictions.metadata.update(
        {"rows": result.rows, "shards": result.shards, "model": result.model_ref.describe()}
    )
    if result.lineage is not None:  # also shown in the Kubeflow UI beside the artifact
        predictions.metadata.update(result.lineage.metadata())
    artifacts.write_text(summary, summaries.inference_summary(result))
    artifacts.write_monitoring(drift_metrics, drift_table, drift_report, result)
    return result.rows
