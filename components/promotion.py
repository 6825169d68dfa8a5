"""Component `promote`: point the Champion alias at a version that passed its evaluation."""

from kfp import dsl
from kfp.dsl import Markdown, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def promote(
    model_name: str,
    version: int,
    summary: Output[Markdown],
    alias: str = "Champion",
    experiment: str = "model-lifecycle",
    run_id: str = "",
) -> str:
    """Set the alias (Champion) of a registered model to a version.

    A version that failed its evaluation is refused.

    Args:
        model_name: Registered model name in MLflow.
        version: Model version to promote (from the train step).
        alias: Alias to move.
        experiment: MLflow experiment of the promotion run.
        run_id: Pipeline run id, recorded on the MLflow run (set by the pipeline).

    Returns:
        summary: Run summary.
        Output: The alias URI now served, e.g. models:/bike-sharing@Champion.
    """
    from components.core import reports
    from components.io import artifacts
    from components.jobs import base
    from components.jobs.promotion import PromotionJob

    result = base.run_job(
        PromotionJob,
        base.step_settings(experiment, run_id, "promote"),
        model_name=model_name,
        alias=alias,
        version=int(version),
    )
    artifacts.write_text(summary, reports.promotion_summary(result))
    return f"models:/{model_name}@{alias}"
