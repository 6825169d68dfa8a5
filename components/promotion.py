"""Component `promote`: point the Champion alias at a version that passed its evaluation."""

from kfp import dsl
from kfp.dsl import Markdown, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def promote(
    version: int,
    summary: Output[Markdown],
    model_name: str = "bike-sharing",
    alias: str = "Champion",
    experiment: str = "bike-sharing",
    run_id: str = "",
) -> str:
    """Set the alias (Champion) of a registered model to a version; a version that failed its
    evaluation is refused.

    Args:
        version: Model version to promote (from the evaluate step).
        model_name: Registered model name in MLflow.
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

    job = PromotionJob(
        model_name=model_name,
        alias=alias,
        version=int(version),
        **base.step_settings(experiment, run_id, "promote"),
    )
    with job:
        result = job.run()
    previous = result["previous"]
    facts = {
        "model": model_name,
        alias: f"v{version}",
        "previous": f"v{previous}" if previous else "none",
    }
    artifacts.write_text(summary, reports.markdown_summary("Promotion", facts))
    return f"models:/{model_name}@{alias}"
