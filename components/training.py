"""Component `train`: fit a model on any tabular dataset and register a new version."""

from typing import NamedTuple, Optional

from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Metrics, Model, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train(
    target: str,
    model_name: str,
    holdout: Output[Dataset],
    model: Output[Model],
    metrics: Output[Metrics],
    summary: Output[Markdown],
    card: Output[Markdown],
    data: str = "",
    dataset: Optional[Input[Dataset]] = None,
    reader: Optional[dict] = None,
    model_kind: str = "HistGradientBoostingRegressor",
    model_params: Optional[dict] = None,
    trusted_types: Optional[list] = None,  # type: ignore[type-arg]
    features: Optional[list] = None,
    categorical: Optional[list] = None,
    exclude: Optional[list] = None,
    time_column: str = "",
    test_size: float = 0.2,
    experiment: str = "model-lifecycle",
    run_id: str = "",
    trial: Optional[dict] = None,
    register: bool = True,
) -> NamedTuple("TrainOutputs", version=int):
    """Train a model and register it in MLflow as a new version of `model_name`.

    Args:
        target: Column to predict.
        model_name: Registered model name in MLflow; each training adds a version.
        data: Training data: a Parquet file or folder, or a CSV file (local path, s3://, gs://,
            demo://); or leave empty and connect `dataset`.
        dataset: Training data as a Dataset artifact from an upstream step.
        reader: Reader options, e.g. {"KIND": "CSVReader", "delimiter": ";", "encoding":
            "latin-1"}; the format follows the file extension when KIND is not given.
        model_kind: A model KIND registered in components.core.models.MODELS (the pipeline's
            description lists them), the import path package.module:Class of a subclass of
            components.core.models:Model, or that of any estimator with the scikit-learn API
            (e.g. sklearn.ensemble:RandomForestRegressor, xgboost:XGBClassifier); the task
            (regression or classification) follows from it.
        model_params: Estimator parameters, e.g. {"max_iter": 200, "learning_rate": 0.1}.
        trusted_types: Types of the fitted model that skops may load, reviewed by you, for a
            model_kind given as an estimator's import path, e.g. ["sklearn.tree._tree.Tree"]
            (skops.io.get_untrusted_types lists them); a model kind declares its own.
        features: Candidate feature columns (default: every column but the target).
        categorical: Columns treated as categories even when numeric (codes).
        exclude: Columns never used as features: ids, timestamps, leaks of the target.
        time_column: A time column: the holdout is then the latest rows instead of a random,
            stratified draw.
        test_size: Fraction of rows held out for evaluation.
        experiment: MLflow experiment of the training run.
        run_id: Pipeline run id, recorded on the MLflow run (set by the pipeline).
        trial: A tuning's trial, {"number": n, "params": {...}}: its parameters are merged
            over model_params and its number tagged on the run (set by the tuning pipeline).
        register: Register the model as a new version; off for a tuning's trial, which logs
            its model on its run only (the tuning registers the best trial's).

    Returns:
        holdout: Held-out rows, for the evaluation step.
        model: The registered model: metadata holds its MLflow URI, name, version and run id.
        metrics: Holdout metrics of the new version.
        summary: Run summary.
        card: Model card of the new version: data, features, model, holdout metrics and
            reference profile; evaluation and explanation complete it in MLflow.
        version: The version registered (0 for a trial, which registers none).
    """
    from components import fields, steps
    from components.core import cards, reports
    from components.io import artifacts
    from components.jobs.training import TrainingJob

    # The one mapping of this step's inputs to its job, also the pre-run check's.
    result = steps.run_step(
        TrainingJob, fields.train_task(trial), experiment, run_id, fields.train_fields,
        target=target, model_name=model_name, holdout=holdout, data=data, dataset=dataset,
        reader=reader, model_kind=model_kind, model_params=model_params,
        trusted_types=trusted_types, features=features,
        categorical=categorical, exclude=exclude, time_column=time_column,
        test_size=test_size, trial=trial, register=register,
    )  # fmt: skip
    artifacts.describe_model(model, result.model_ref)
    if trial:  # the tuning's selection takes the best trial's rows by its run
        holdout.metadata.update({"run_id": result.model_ref.run_id, "trial": int(trial["number"])})
    artifacts.log_metrics(metrics, result.scores)
    artifacts.write_text(summary, reports.training_summary(result))
    artifacts.write_text(card, result.card or cards.missing(result.model_ref))
    return (result.model_ref.version or 0,)
