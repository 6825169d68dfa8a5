"""Pipeline `training`: data -> train -> evaluate -> (if passed) promote, then one alert."""

from kfp import dsl
from kfp.dsl import PipelineTask
from kfp.dsl.graph_component import GraphComponent

import components as c
from pipelines.settings import Settings

DEFAULT_DATA = "data/bike-sharing/hour.parquet"
DEFAULT_THRESHOLDS = {"r2": 0.7}


def add_training(
    settings: Settings,
    data: str,
    model_name: str,
    target: str,
    model_kind: str,
    model_params: dict,
    test_size: float,
    thresholds: dict,
    tolerance: float,
    experiment: str,
) -> tuple[PipelineTask, PipelineTask]:
    """Add train and evaluate; return both (train outputs `version`, evaluate `passed`)."""
    run_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER
    train = c.train(
        data=data,
        model_name=model_name,
        target=target,
        model_kind=model_kind,
        model_params=model_params,
        test_size=test_size,
        experiment=experiment,
        run_id=run_id,
    )
    settings.configure(train, "train", "Train and register")
    evaluate = c.evaluate(
        holdout=train.outputs["holdout"],
        model=train.outputs["model"],
        target=target,
        thresholds=thresholds,
        tolerance=tolerance,
        experiment=experiment,
        run_id=run_id,
    )
    settings.configure(evaluate, "evaluate", "Evaluate against the Champion")
    return train, evaluate


def add_promotion(
    settings: Settings, train: PipelineTask, model_name: str, experiment: str
) -> PipelineTask:
    """Add promote of the trained version to Champion (call it inside `dsl.If(passed)`)."""
    promote = c.promote(
        version=train.outputs["version"],
        model_name=model_name,
        alias="Champion",
        experiment=experiment,
        run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
    )
    return settings.configure(promote, "promote", "Promote to Champion")


def add_notify(settings: Settings, pipeline: str, experiment: str, ui_base_url: str):
    """The exit task: one alert when the pipeline ends, whatever its state."""
    notify = c.notify(
        pipeline=pipeline,
        run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        experiment=experiment,
        ui_base_url=ui_base_url,
    )
    return settings.configure(notify, "notify", "Notify Slack")


def build(settings: Settings) -> GraphComponent:
    """Build the training pipeline with the given cluster settings."""

    @dsl.pipeline(
        name="training",
        description="Train a tabular model, evaluate it against thresholds and the Champion, "
        "and promote it to Champion when it passes. Alerts Slack at the end.",
    )
    def training(
        data: str = DEFAULT_DATA,
        model_name: str = "bike-sharing",
        target: str = "cnt",
        model_kind: str = "HistGradientBoostingRegressor",
        model_params: dict = {},  # noqa: B006 - a KFP parameter default, never mutated
        test_size: float = 0.2,
        thresholds: dict = DEFAULT_THRESHOLDS,
        tolerance: float = 0.0,
        experiment: str = "bike-sharing",
        ui_base_url: str = "",
    ):
        exit_task = add_notify(settings, "training", experiment, ui_base_url)
        with dsl.ExitHandler(exit_task, name="training"):
            train, evaluate = add_training(
                settings, data, model_name, target, model_kind, model_params, test_size,
                thresholds, tolerance, experiment,
            )  # fmt: skip
            # `passed` is evaluate's return value ("Output"): kfp.local (2.17) resolves no other
            # output name in a condition without an Else branch; a cluster resolves any.
            with dsl.If(evaluate.outputs["Output"] == True, name="passed"):  # noqa: E712
                add_promotion(settings, train, model_name, experiment)

    return training
