"""Component `predict`: batch predictions from the registered model (Champion by default)."""

from typing import NamedTuple, Optional

from kfp import dsl
from kfp.dsl import Dataset, Markdown, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def predict(
    data: str,
    predictions: Output[Dataset],
    summary: Output[Markdown],
    model_name: str = "bike-sharing",
    alias_or_version: str = "Champion",
    batch_size: int = 131072,
    passthrough: Optional[list] = None,
    input_schema: str = "",
    probabilities: bool = False,
    experiment: str = "bike-sharing",
    run_id: str = "",
) -> NamedTuple("PredictOutputs", rows=int, version=int):
    """Predict every row of a dataset with a registered model, batch by batch.

    Args:
        data: Rows to predict: a Parquet file or folder, or a CSV file (local path, s3://, gs://).
        model_name: Registered model name in MLflow.
        alias_or_version: Alias (e.g. Champion) or version number of the model to use.
        batch_size: Rows per batch; bounds the step's memory.
        passthrough: Input columns copied beside the predictions (ids, timestamps) for joins.
        input_schema: Pandera schema with domain rules: a YAML file or module:NAME (optional).
        probabilities: Add one probability column per class (classifiers; native sklearn load).
        experiment: MLflow experiment of the inference run.
        run_id: Pipeline run id, recorded on the MLflow run (set by the pipeline).

    Returns:
        predictions: Pass-through columns, prediction, and class probabilities when asked.
        summary: Run summary: rows in and out, model version used, timings.
        rows: Rows predicted.
        version: The version that predicted them.
    """
    from components.core import reports
    from components.io import artifacts, datasets, registries
    from components.jobs import base
    from components.jobs.inference import InferenceJob

    loader = registries.SklearnLoader() if probabilities else registries.PyfuncLoader()
    job = InferenceJob(
        # Integers may arrive as JSON floats (131072.0); the jobs' fields are strict.
        inputs=datasets.reader_for(data, batch_size=int(batch_size)),
        outputs=datasets.ParquetWriter(path=predictions.path),
        finder=registries.RegistryFinder(name=model_name, alias_or_version=alias_or_version),
        loader=loader,
        input_schema=input_schema or None,
        passthrough=passthrough or [],
        **base.step_settings(experiment, run_id, "predict"),
    )
    with job:
        result = job.run()
    model_ref = result["model_ref"]
    predictions.metadata.update({"rows": result["rows"], "model": model_ref.describe()})
    facts = {
        "model": f"{model_ref.describe()} (asked for {alias_or_version})",
        "rows in": result["validator"].rows,
        "rows out": result["rows"],
        "columns out": result["columns"],
        "seconds": f"{result['seconds']:.1f}",
        "rows per second": f"{result['rows'] / max(result['seconds'], 1e-9):,.0f}",
    }
    artifacts.write_text(summary, reports.markdown_summary("Predictions", facts))
    return (result["rows"], model_ref.version)
