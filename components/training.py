"""Component `train`: fit the template model on a dataset and register a new version."""

from typing import NamedTuple, Optional

from kfp import dsl
from kfp.dsl import Dataset, Markdown, Metrics, Model, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train(
    data: str,
    holdout: Output[Dataset],
    model: Output[Model],
    metrics: Output[Metrics],
    summary: Output[Markdown],
    model_name: str = "bike-sharing",
    target: str = "cnt",
    model_kind: str = "HistGradientBoostingRegressor",
    model_params: Optional[dict] = None,
    numerical: Optional[list] = None,
    categorical: Optional[list] = None,
    test_size: float = 0.2,
    experiment: str = "bike-sharing",
    run_id: str = "",
) -> NamedTuple("TrainOutputs", version=int):
    """Train a model and register it in MLflow as a new version of `model_name`.

    Args:
        data: Training data: a Parquet file or folder, or a CSV file (local path, s3://, gs://).
        model_name: Registered model name in MLflow; each training adds a version.
        target: Column to predict.
        model_kind: HistGradientBoostingRegressor, HistGradientBoostingClassifier, Ridge or
            LogisticRegression.
        model_params: Estimator parameters, e.g. {"max_iter": 200, "learning_rate": 0.1}.
        numerical: Numeric feature columns (default: the bike sharing features).
        categorical: Categorical feature columns, one-hot encoded (default: season, weathersit).
        test_size: Fraction of rows held out for evaluation (the last rows: time order kept).
        experiment: MLflow experiment of the training run.
        run_id: Pipeline run id, recorded on the MLflow run (set by the pipeline).

    Returns:
        holdout: Held-out rows, for the evaluation step.
        model: The registered model: metadata holds its MLflow URI, name, version and run id.
        metrics: Holdout metrics of the new version.
        summary: Run summary.
        version: The version registered.
    """
    from components.core import models, reports
    from components.io import artifacts, datasets
    from components.jobs import base
    from components.jobs.training import TrainingJob
    from components.utils import splitters

    job = TrainingJob(
        inputs=datasets.reader_for(data),
        target=target,
        model={
            "KIND": model_kind,
            "numerical": models.BIKE_NUMERICAL if numerical is None else numerical,
            "categorical": models.BIKE_CATEGORICAL if categorical is None else categorical,
            "params": model_params or {},
        },
        model_name=model_name,
        splitter=splitters.TrainTestSplitter(test_size=test_size),
        holdout=datasets.ParquetWriter(path=holdout.path),
        **base.step_settings(experiment, run_id, "train"),
    )
    with job:
        result = job.run()
    artifacts.describe_model(model, result["model_ref"])
    artifacts.log_metrics(metrics, result["scores"])
    facts = {
        "model": result["model_ref"].describe(),
        "kind": model_kind,
        "rows in": len(result["data"]),
        "rows held out": len(result["test"]),
        **{name: f"{value:.4g}" for name, value in result["scores"].items()},
        "seconds": f"{result['seconds']:.1f}",
    }
    artifacts.write_text(summary, reports.markdown_summary("Training", facts))
    return (result["model_ref"].version,)
