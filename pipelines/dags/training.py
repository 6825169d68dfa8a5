"""Pipeline `training`: data -> train -> evaluate -> (if passed) promote, then one alert."""

import typing as T

from kfp import dsl
from kfp.dsl import PipelineTask
from kfp.dsl.graph_component import GraphComponent

import components as c
from pipelines.dags import defaults
from pipelines.dags.descriptions import described
from pipelines.dags.settings import Settings

# What runs with the version a training leaves served: given its version (a placeholder).
Serve = T.Callable[[T.Any], T.Any]


def train_inputs(params: dict[str, T.Any]) -> dict[str, T.Any]:
    """The train step's inputs that come from the pipeline's training parameters, by name.

    Args:
        params: the pipeline's training parameters (a training's, a lifecycle's, a tuning's).
    """
    names = ("data", "target", "model_name", "reader", "model_kind", "model_params", "features",
             "categorical", "exclude", "time_column", "test_size")  # fmt: skip
    # A pipeline that trains the project's kinds only may leave trusted_types out.
    return {name: params[name] for name in names} | {
        "trusted_types": params.get("trusted_types", [])
    }


def add_training(settings: Settings, **params) -> tuple[PipelineTask, PipelineTask]:
    """Add train and evaluate; return both (train outputs `version`, evaluate `passed`).

    Args:
        settings: the cluster settings of the steps.
        **params: the pipeline's training parameters, by name.
    """
    run_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER
    experiment = params["experiment"]
    train = c.train(**train_inputs(params), experiment=experiment, run_id=run_id)
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
        **params: the pipeline's `model_name`, `target`, `tolerance`, `experiment` and
            (optional) `promotion`.
    """
    experiment = params["experiment"]
    promote = c.promote(
        model_name=params["model_name"],
        version=train.outputs["version"],
        holdout=train.outputs["holdout"],
        target=params["target"],
        tolerance=params["tolerance"],
        alias=defaults.ALIAS,
        promotion=params.get("promotion", defaults.PROMOTION),
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


def add_training_and_promotion(
    settings: Settings, serve: Serve | None = None, **params: T.Any
) -> tuple[PipelineTask, PipelineTask]:
    """Add train and evaluate, then promote when the new version passed; return train, evaluate.

    With `serve`, what serves the model comes after: given the version the promotion serves
    (the new one, or a Champion promoted meanwhile that beat it) when the new version passed,
    the Champion the evaluation read otherwise; never whatever the alias points to later.

    Args:
        settings: the cluster settings of the steps.
        serve: adds the steps that use the served version (the lifecycle's inference); None:
            the training ends with the promotion.
        **params: the pipeline's training parameters, by name.
    """
    train, evaluate = add_training(settings, **params)
    # `passed` is evaluate's return value ("Output"): kfp.local (2.17) resolves no other
    # output name in a condition without an Else branch; a cluster resolves any.
    with dsl.If(evaluate.outputs["Output"] == True, name="passed"):  # noqa: E712
        promote = add_promotion(settings, train, **params)
        if serve is not None:
            serve(promote.outputs["Output"])
    if serve is not None:
        with dsl.Else(name="not-passed"):
            serve(evaluate.outputs["champion"])
    return train, evaluate


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
    @described()
    def training(
        data: str,
        target: str,
        model_name: str,
        model_kind: str = defaults.MODEL_KIND,
        model_params: dict = {},  # noqa: B006 - a KFP parameter default, never mutated
        trusted_types: list = [],  # type: ignore[type-arg]  # noqa: B006
        features: list = [],  # noqa: B006
        categorical: list = [],  # noqa: B006
        exclude: list = [],  # noqa: B006
        time_column: str = "",
        test_size: float = defaults.TEST_SIZE,
        reader: dict = {},  # noqa: B006
        thresholds: dict = {},  # noqa: B006
        tolerance: float = defaults.TOLERANCE,
        promotion: str = defaults.PROMOTION,
        experiment: str = defaults.EXPERIMENT,
        ui_base_url: str = "",
    ):
        """Train, evaluate and promote a model."""
        exit_task = add_notify(settings, "training", experiment, ui_base_url)
        with dsl.ExitHandler(exit_task, name="training"):
            add_training_and_promotion(
                settings, data=data, target=target, model_name=model_name, reader=reader,
                model_kind=model_kind, model_params=model_params, trusted_types=trusted_types,
                features=features, categorical=categorical, exclude=exclude,
                time_column=time_column, test_size=test_size, thresholds=thresholds,
                tolerance=tolerance, promotion=promotion, experiment=experiment,
            )  # fmt: skip

    return training
