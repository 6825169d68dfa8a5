"""Component `predict_shard`: batch predictions of one shard of a plan, into a part of its own."""

from typing import Any, Optional

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def predict_shard(
    plan: Input[Artifact],
    shard: int,
    part: Output[Dataset],
    loader: Optional[dict] = None,  # type: ignore[type-arg]
    writer: Optional[dict] = None,
    batch_size: int = 131072,
    passthrough: Optional[list] = None,
    input_schema: str = "",
    probabilities: bool = True,
    allow_unsigned: bool = False,
    drift_policy: str = "warn",
    challenger_tolerance: float = 0.0,
    experiment: str = "model-lifecycle",
    run_id: str = "",
) -> str:
    """Predict the rows of one shard with the plan's model version, batch by batch.

    Rules broken by the shard's rows are reported, not raised: the publishing step reports them
    with their totals over every shard. So are the drift tallies and the challenger's
    comparison (the plan's challenger): the publishing step judges their totals.

    Args:
        plan: The plan made by plan_shards.
        shard: Which shard of the plan to predict.
        loader: How the plan's model is loaded (see predict), e.g. {"label_mapping": ["a",
            "b"]}; default: the model's richest flavour.
        writer: Output format: a writer KIND with its options, e.g. {"KIND": "CSVWriter"}, or
            a user's {"KIND": "package.module:Class"}; by default the path's extension picks
            it, else Parquet (the pipeline's description lists the kinds).
        batch_size: Rows per batch; bounds the step's memory.
        passthrough: Input columns copied beside the predictions (ids, timestamps) for joins.
        input_schema: Pandera schema with domain rules: a YAML file or module:NAME (optional).
        probabilities: Add one probability column per class (classifiers).
        allow_unsigned: Predict with a model that has no signature (its inputs go unchecked).
        drift_policy: Count the rows into the training profile's bins (warn, fail) or not (off).
        challenger_tolerance: A regressor's rows differ when the two predictions differ by more
            than this; 0: a tenth of the std of the Champion's holdout predictions.
        experiment: MLflow experiment of the shard's run.
        run_id: Pipeline run id, recorded on the MLflow run (set by the pipeline).

    Returns:
        part: The shard's predictions: pass-through columns, prediction, class probabilities.
        Output: The shard's report (JSON): its part's location, rows and rules broken.
    """
    from components import steps
    from components.fields import predict_shard_fields
    from components.io import shards
    from components.jobs.inference import InferenceJob

    shard = int(shard)  # integers may arrive as JSON floats (1.0)

    def mapping(**inputs: Any) -> dict:  # type: ignore[type-arg]
        # The plan, read first: it pins the model and lists this shard's pieces.
        return predict_shard_fields(the_plan=shards.ShardPlan.read(plan.path), **inputs)

    # The one mapping of this step's inputs to its job, also the pre-run check's.
    result = steps.run_step(
        InferenceJob, f"predict-shard-{shard}", experiment, run_id, mapping,
        shard=shard, part=part, loader=loader, writer=writer, batch_size=batch_size,
        passthrough=passthrough, input_schema=input_schema, probabilities=probabilities,
        allow_unsigned=allow_unsigned,
        drift_policy=drift_policy, challenger_tolerance=challenger_tolerance,
    )  # fmt: skip
    part.metadata.update({"shard": shard, "rows": result.rows})
    if result.lineage is not None:
        part.metadata.update(result.lineage.metadata())
    return str(result.shard_report.model_dump_json())
