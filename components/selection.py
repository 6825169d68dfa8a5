"""Component `select_trial`: register the best trial of a tuning as a new version."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Model, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def select_trial(
    model_name: str,
    trial_models: Input[list[Model]],
    trial_holdouts: Input[list[Dataset]],
    model: Output[Model],
    holdout: Output[Dataset],
    summary: Output[Markdown],
    card: Output[Markdown],
    metric: str = "",
    experiment: str = "model-lifecycle",
    run_id: str = "",
) -> NamedTuple("SelectOutputs", version=int):
    """Rank the trials by their holdout metric and register the best one's model.

    Args:
        model_name: Registered model name in MLflow; the best trial becomes a new version.
        trial_models: The models the trials logged (from the trials' train steps).
        trial_holdouts: The trials' held-out rows (from the same steps).
        metric: Holdout metric that ranks the trials, in its own direction (lower rmse, higher
            r2 is better); empty: the task's primary one, as the trials logged it.
        experiment: MLflow experiment of the selection run.
        run_id: Pipeline run id, recorded on the MLflow run (set by the pipeline).

    Returns:
        model: The registered version: metadata holds its MLflow URI, name, version and run id.
        holdout: The best trial's held-out rows, for the evaluation step.
        summary: The trials ranked.
        card: Model card of the new version.
        version: The version registered.
    """
    from components import fields, steps
    from components.core import cards, reports
    from components.io import artifacts
    from components.jobs.selection import TrialSelectionJob

    # The trials' runs, as their train steps described their models.
    runs = [str(trial.metadata.get("run_id", "")) for trial in trial_models]
    # The one mapping of this step's inputs to its job, also the pre-run check's.
    result = steps.run_step(
        TrialSelectionJob, "select-trial", experiment, run_id, fields.select_trial_fields,
        model_name=model_name, metric=metric, trial_runs=runs,
    )  # fmt: skip
    best = result.best.run_id
    rows = next((h for h in trial_holdouts if h.metadata.get("run_id") == best), None)
    if rows is None:
        raise RuntimeError(f"no held-out rows of the best trial (run {best}) among the trials'")
    artifacts.copy_data(rows.path, holdout.path)
    holdout.metadata.update(rows.metadata)
    artifacts.describe_model(model, result.model_ref)
    artifacts.write_text(summary, reports.selection_summary(result))
    artifacts.write_text(card, result.card or cards.missing(result.model_ref))
    return (result.model_ref.version,)
