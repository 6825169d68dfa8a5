"""Component `plan_shards`: split the rows to predict into balanced shards, one model version."""

from typing import Optional

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def plan_shards(
    plan: Output[Artifact],
    data: str = "",
    dataset: Optional[Input[Dataset]] = None,
    model_name: str = "",
    alias_or_version: str = "Champion",
    finder: Optional[dict] = None,
    reader: Optional[dict] = None,
    shards: int = 2,
    challenger: str = "",
    experiment: str = "model-lifecycle",
    run_id: str = "",
) -> list:
    """Plan a sharded prediction from the input's metadata (no row is read) and find the model.

    Args:
        data: Rows to predict: a folder of Parquet files, a Parquet file with several row
            groups, or CSV files (local path, s3://, gs://, demo://); or connect `dataset`.
        dataset: Rows to predict as a Dataset artifact from an upstream step.
        model_name: Registered model name in MLflow.
        alias_or_version: Alias (e.g. Champion) or version number; resolved once, here, so that
            every shard predicts with the same version.
        finder: Another way to find the model, by KIND (see predict).
        reader: Reader options, e.g. {"KIND": "CSVReader", "delimiter": ";"}.
        shards: How many shards (pods) to split the input into; fewer when it has fewer pieces
            (Parquet row groups, CSV files).
        challenger: Alias or version of model_name (or a model URI) that every shard also
            scores with, for comparison; resolved once, here. Empty: none.
        experiment: MLflow experiment of the planning run.
        run_id: Pipeline run id, recorded on the MLflow run (set by the pipeline).

    Returns:
        plan: Which pieces each shard reads, and the model version they all use (JSON).
        Output: The shards' indices, to fan out over.
    """
    from components import fields, steps
    from components.jobs.planning import PlanningJob

    # The one mapping of this step's inputs to its job, also the pre-run check's.
    result = steps.run_step(
        PlanningJob, "plan-shards", experiment, run_id, fields.plan_shards_fields,
        plan=plan, data=data, dataset=dataset, model_name=model_name,
        alias_or_version=alias_or_version, finder=finder, reader=reader, shards=shards,
        challenger=challenger,
    )  # fmt: skip
    plan.metadata.update(
        {"shards": result.shards, "pieces": result.pieces, "model": result.model_ref.describe()}
    )
    return list(range(result.shards))
