"""Pipeline `training`: data -> train -> evaluate -> (if passed) promote, then one alert."""

import typing as T

from kfp import dsl
from kfp.dsl import PipelineTask
from kfp.dsl.graph_component import GraphComponent

import components as c
from pipelines.dags.settings import Settings

DEFAULT_EXPERIMENT = "model-lifecycle"


def add_training(settings: Settings, **params) -> tuple[PipelineTask, PipelineTask]:
    """Add train and evaluate; return both (train outputs `version`, evaluate `passed`).

    Args:
        settings: the cluster settings of the steps.
        **params: the pipeline's training parameters, by name.
    """
    run_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER
    experiment = params["experiment"]
    train = c.train(
        data=params["data"],
        target=params["target"],
        model_name=params["model_name"],
        reader=params["reader"],
        model_kind=params["model_kind"],
        model_params=params["model_params"],
        features=params["features"],
        categorical=params["categorical"],
        exclude=params["exclude"],
        time_column=params["time_column"],
        test_size=params["test_size"],
        experiment=experiment,
        run_id=run_id,
    )
    settings.configure(train, "train", "Train and register")
    evaluate = c.evaluate(
        target=params["target"],
        holdout=train.outputs["holdout"],
        model=train.outputs["model"],
        thresholds=params["thresholds"],
        tolerance=params["tolerance"],
        experiment=experiment,
        run_id=run_id,
    )
    settings.configure(evaluate, "evaluate", "Evaluate against the Champion")
    return train, evaluate


def add_promotion(settings: Settings, train: PipelineTask, **params) -> PipelineTask:
    """Add promote of the trained version to Champion (call it inside `dsl.If(passed)`).

    Its output is the version served after it: the trained one, or a Champion promoted
    meanwhile (by another run) that the trained one does not beat on its held-out rows.

    Args:
        settings: the cluster settings of the step.
        train: the train task whose version is promoted.
        **params: the pipeline's `model_name`, `target`, `tolerance` and `experiment`.
    """
    experiment = params["experiment"]
    promote = c.promote(
        model_name=params["model_name"],
        version=train.outputs["version"],
        holdout=train.outputs["holdout"],
        target=params["target"],
        tolerance=params["tolerance"],
        alias="Champion",
        experiment=experiment,
        run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
    )
    return settings.configure(promote, "promote", "Promote to Champion")


def add_notify(
    settings: Settings, pipeline: str, experiment: str, ui_base_url: str, retraining: T.Any = None
):
    """The exit task: one alert when the pipeline ends, whatever its state.

    Args:
        settings: the cluster settings of the step.
        pipeline: the pipeline's name, shown in the alert.
        experiment: the MLflow experiment the steps record their runs in.
        ui_base_url: the Kubeflow UI's base URL, for a link to the run.
        retraining: the pipeline's retraining policy parameter (None: the pipeline has none).
    """
    policy = {} if retraining is None else {"retraining": retraining}
    notify = c.notify(
        pipeline=pipeline,
        run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        experiment=experiment,
        ui_base_url=ui_base_url,
        **policy,
    )
    return settings.configure(notify, "notify", "Notify Slack")


def build(settings: Settings) -> GraphComponent:
    """Build the training pipeline with the given cluster settings.

    Args:
        settings: the cluster settings of the steps.
    """

    @dsl.pipeline(
        name="training",
        description="Train a tabular model on any data set, evaluate it against thresholds and "
        "the Champion, and promote it to Champion when it passes. Alerts Slack at the end.",
    )
    def training(
        data: str,
        target: str,
        model_name: str,
        model_kind: str = "HistGradientBoostingRegressor",
        model_params: dict = {},  # noqa: B006 - a KFP parameter default, never mutated
        features: list = [],  # noqa: B006
        categorical: list = [],  # noqa: B006
        exclude: list = [],  # noqa: B006
        time_column: str = "",
        test_size: float = 0.2,
        reader: dict = {},  # noqa: B006
        thresholds: dict = {},  # noqa: B006
        tolerance: float = 0.0,
        experiment: str = DEFAULT_EXPERIMENT,
        ui_base_url: str = "",
    ):
        """Train, evaluate and promote a model.

        Args:
            data: Training data: Parquet file or folder, or CSV (local path, s3://, gs://,
                demo://bike-sharing/hour.parquet for the demo).
            target: Column to predict.
            model_name: Registered model name in MLflow; each training adds a version.
            model_kind: HistGradientBoostingRegressor, HistGradientBoostingClassifier, Ridge or
                LogisticRegression; the task follows from it.
            model_params: Estimator parameters, e.g. {"max_iter": 200}.
            features: Candidate feature columns; empty: every column but the target.
            categorical: Columns treated as categories even when numeric (codes).
            exclude: Columns never used as features (ids, timestamps, leaks of the target).
            time_column: Time column: the holdout is then the latest rows.
            test_size: Fraction of rows held out for evaluation.
            reader: Reader options, e.g. {"KIND": "CSVReader", "delimiter": ";"}.
            thresholds: Metric limits, e.g. {"r2": 0.7}; empty: the task's defaults.
            tolerance: How much worse than the Champion a new version may be (0.02 = 2%).
            experiment: MLflow experiment of the steps' runs.
            ui_base_url: Kubeflow UI base URL for a link in the alert (default: KFP_UI_BASE_URL).
        """
        exit_task = add_notify(settings, "training", experiment, ui_base_url)
        with dsl.ExitHandler(exit_task, name="training"):
            train, evaluate = add_training(
                settings, data=data, target=target, model_name=model_name, reader=reader,
                model_kind=model_kind, model_params=model_params, features=features,
                categorical=categorical, exclude=exclude, time_column=time_column,
                test_size=test_size, thresholds=thresholds, tolerance=tolerance,
                experiment=experiment,
            )  # fmt: skip
            # `passed` is evaluate's return value ("Output"): kfp.local (2.17) resolves no other
            # output name in a condition without an Else branch; a cluster resolves any.
            with dsl.If(evaluate.outputs["Output"] == True, name="passed"):  # noqa: E712
                add_promotion(
                    settings, train, model_name=model_name, target=target, tolerance=tolerance,
                    experiment=experiment,
                )  # fmt: skip

    return training
