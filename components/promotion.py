"""Component `promote`: point the Champion alias at a version that passed its evaluation."""

from typing import Optional

from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def promote(
    model_name: str,
    version: int,
    summary: Output[Markdown],
    holdout: Optional[Input[Dataset]] = None,
    target: str = "",
    tolerance: float = 0.0,
    alias: str = "Champion",
    promotion: str = "auto",
    experiment: str = "model-lifecycle",
    run_id: str = "",
) -> str:
    """Set the alias (Champion) of a registered model to a version, if it beats the Champion.

    A version that failed its evaluation is refused. The alias moves only while it points at the
    Champion the version was evaluated against; when another version was promoted meanwhile, the
    two are compared again on the held-out rows, and the better one stays Champion.

    Args:
        model_name: Registered model name in MLflow.
        version: Model version to promote (from the train step).
        holdout: Held-out rows with the target column (from the train step), to compare the
            version with a Champion promoted since its evaluation.
        target: Column the model predicts (with holdout).
        tolerance: How much worse than the Champion the version may be, relative (0.02 = 2%).
        alias: Alias to move.
        promotion: "auto" moves the alias; "manual" marks a passing version awaiting approval
            (the alert gives the `model approve` command) and the Champion keeps serving.
        experiment: MLflow experiment of the promotion run.
        run_id: Pipeline run id, recorded on the MLflow run (set by the pipeline).

    Returns:
        summary: Run summary.
        Output: The version the alias serves now ("3"): this version, or the Champion that
            beat it or that keeps serving while this one awaits approval (the alias when none
            does); the lifecycle predicts with it.
    """
    from components import fields, steps
    from components.core import reports
    from components.io import artifacts
    from components.jobs.promotion import PromotionJob

    # The one mapping of this step's inputs to its job, also the pre-run check's.
    result = steps.run_step(
        PromotionJob, "promote", experiment, run_id, fields.promote_fields,
        model_name=model_name, version=version, holdout=holdout, target=target,
        tolerance=tolerance, alias=alias, promotion=promotion,
    )  # fmt: skip
    artifacts.write_text(summary, reports.promotion_summary(result))
    # None serves (the first version awaits approval): the alias, as evaluate answers then.
    return str(result.served_ref.version) if result.served_ref else alias
