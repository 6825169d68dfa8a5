"""Component `predict`: batch predictions from a registered model (Champion by default)."""

from typing import NamedTuple, Optional

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Markdown, Metrics, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def predict(
    predictions: Output[Dataset],
    summary: Output[Markdown],
    drift_metrics: Output[Metrics],
    drift_table: Output[Dataset],
    drift_report: Output[HTML],
    data: str = "",
    dataset: Optional[Input[Dataset]] = None,
    model_name: str = "",
    alias_or_version: str = "Champion",
    finder: Optional[dict] = None,
    loader: Optional[dict] = None,  # type: ignore[type-arg]
    reader: Optional[dict] = None,
    writer: Optional[dict] = None,
    batch_size: int = 131072,
    passthrough: Optional[list] = None,
    input_schema: str = "",
    probabilities: bool = True,
    allow_unsigned: bool = False,
    drift_policy: str = "warn",
    drift_thresholds: Optional[dict] = None,
    challenger: str = "",
    challenger_tolerance: float = 0.0,
    performance_tolerance: float = 0.1,
    experiment: str = "model-lifecycle",
    run_id: str = "",
) -> NamedTuple("PredictOutputs", rows=int, version=int):
    """Predict every row of a dataset with a model from MLflow, batch by batch.

    Args:
        data: Rows to predict: a Parquet file or folder, or a CSV file (local path, s3://, gs://,
            demo://), streamed from where it is; or leave empty and connect `dataset`.
        dataset: Rows to predict as a Dataset artifact from an upstream step.
        model_name: Registered model name in MLflow.
        alias_or_version: Alias (e.g. Champion) or version number of the model to use.
        finder: Another way to find the model, by KIND, e.g. {"KIND": "BestRunFinder",
            "metric": "test_rmse", "mode": "min"} (the best run of the experiment), or
            {"KIND": "UriFinder", "uri": "runs:/<id>/model"}, or a user's package.module:Class
            (the pipeline's description lists the kinds); default: model_name and
            alias_or_version.
        loader: How the model is loaded: {"label_mapping": ["a", "b"]} names the classes of a
            classifier trained on label-encoded ones (else the version's label_mapping tag;
            [] ignores the tag), or a loader KIND with its options, e.g. {"KIND":
            "XGBoostLoader", "label_mapping": ["a", "b"]} (the pipeline's description lists
            the kinds); default: the model's richest flavour.
        reader: Reader options, e.g. {"KIND": "CSVReader", "delimiter": ";", "encoding":
            "latin-1"}; the format follows the file extension when KIND is not given.
        writer: Output format: a writer KIND with its options, e.g. {"KIND": "CSVWriter"}, or
            a user's {"KIND": "package.module:Class"}; by default the path's extension picks
            it, else Parquet (the pipeline's description lists the kinds).
        batch_size: Rows per batch; bounds the step's memory.
        passthrough: Input columns copied beside the predictions (ids, timestamps) for joins.
        input_schema: Pandera schema with domain rules: a YAML file or module:NAME (optional).
        probabilities: Add one probability column per class (classifiers).
        allow_unsigned: Predict with a model that has no signature (its inputs go unchecked).
        drift_policy: Compare the rows with the model's training profile: warn (report only),
            fail (also publish nothing when a feature drifted), or off.
        drift_thresholds: When a feature counts as drifted; defaults {"p_value": 0.05, "test_rows":
            1000, "min_rows": 30, "wasserstein": 0.1, "jensen_shannon": 0.1, "psi_warn": 0.1, "psi":
            0.25, "missing": 0.1, "out_of_range": 0.05, "unseen": 0.05, "drift_share": 0.0}: up to
            test_rows values a column is tested (KS, chi-square; p_value for the whole batch), above
            it a distance decides (Wasserstein, Jensen-Shannon, PSI); missing, out_of_range and
            unseen are data-quality rules; drift_share: the share of features that must drift for
            the batch to drift (0: any).
        challenger: Alias or version of model_name (or a model URI) that scores the same rows
            for comparison; the predictions written stay the Champion's. Empty: none.
        challenger_tolerance: A regressor's rows differ when the two predictions differ by more
            than this; 0: a tenth of the std of the Champion's holdout predictions.
        performance_tolerance: How much worse than its holdout's the model's performance may
            be estimated (relative; the whole 95% band past it) before the batch counts as
            degraded: reported under drift_policy=warn, refused under fail.
        experiment: MLflow experiment of the inference run.
        run_id: Pipeline run id, recorded on the MLflow run (set by the pipeline).

    Returns:
        predictions: Pass-through columns, prediction, and class probabilities.
        summary: Run summary: rows in and out, model version used, timings.
        drift_metrics: Drift scores (PSI per feature, drifted features) and the challenger's.
        drift_table: One row per feature: status, PSI, missing rates, out of range, unseen.
        drift_report: The rows against the training data, the most drifted features charted,
            and the challenger's comparison.
        rows: Rows predicted.
        version: The registered version that predicted them (0 for an unregistered model).
    """
    from components import fields, steps
    from components.core import reports
    from components.io import artifacts
    from components.jobs.inference import InferenceJob

    # The one mapping of this step's inputs to its job, also the pre-run check's.
    result = steps.run_step(
        InferenceJob, "predict", experiment, run_id, fields.predict_fields,
        predictions=predictions, data=data, dataset=dataset, model_name=model_name,
        alias_or_version=alias_or_version, finder=finder, loader=loader, reader=reader,
        writer=writer,
        batch_size=batch_size, passthrough=passthrough, input_schema=input_schema,
        probabilities=probabilities, allow_unsigned=allow_unsigned,
        drift_policy=drift_policy, drift_thresholds=drift_thresholds, challenger=challenger,
        challenger_tolerance=challenger_tolerance,
        performance_tolerance=performance_tolerance,
    )  # fmt: skip
    predictions.metadata.update({"rows": result.rows, "model": result.model_ref.describe()})
    if result.lineage is not None:  # also shown in the Kubeflow UI beside the artifact
        predictions.metadata.update(result.lineage.metadata())
    artifacts.write_text(summary, reports.inference_summary(result))
    artifacts.write_monitoring(drift_metrics, drift_table, drift_report, result)
    return (result.rows, result.model_ref.version or 0)
