"""Pipeline `inference`: predict with the Champion (in one pod or sharded), explain, one alert."""

import typing as T

from kfp import dsl
from kfp.dsl import PipelineTask
from kfp.dsl.graph_component import GraphComponent

import components as c
from pipelines.dags import defaults
from pipelines.dags.descriptions import described
from pipelines.dags.settings import Settings
from pipelines.dags.training import add_notify


def add_inference(settings: Settings, **params) -> tuple[PipelineTask, PipelineTask]:
    """Add predict, then explain on the same data and model; return both tasks.

    Args:
        settings: the cluster settings of the steps.
        **params: the pipeline's inference parameters, by name.
    """
    run_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER
    common = {
        "data": params["data"],
        "model_name": params["model_name"],
        "alias_or_version": params["alias_or_version"],
        "finder": params["finder"],
        "loader": params["loader"],
        "reader": params["reader"],
        "passthrough": params["passthrough"],
        "input_schema": params["input_schema"],
        "allow_unsigned": params["allow_unsigned"],
        "experiment": params["experiment"],
        "run_id": run_id,
    }
    predict = c.predict(
        **common,
        writer=params["writer"],
        batch_size=params["batch_size"],
        probabilities=params["probabilities"],
        drift_policy=params["drift_policy"],
        drift_thresholds=params["drift_thresholds"],
        # The lifecycle has no shadow scoring: these take the pipelines' defaults there.
        challenger=params.get("challenger", defaults.CHALLENGER),
        challenger_tolerance=params.get("challenger_tolerance", defaults.CHALLENGER_TOLERANCE),
        performance_tolerance=params.get("performance_tolerance", defaults.PERFORMANCE_TOLERANCE),
    )
    settings.configure(predict, "predict", "Batch predictions")
    explain = c.explain(
        **common, explainer=params["explainer"], max_samples=params["max_samples"]
    ).after(predict)
    settings.configure(explain, "explain", "SHAP explanations")
    return predict, explain


def add_sharded_inference(settings: Settings, **params) -> tuple[PipelineTask, PipelineTask]:
    """Add plan, predict per shard (ParallelFor), publish, then explain; return publish, explain.

    The plan lists the input's pieces and pins the model version; each shard's pod predicts
    its pieces into a part of its own, with the predict step's resources (and GPU); the parts
    are published as one dataset only when every shard succeeded (`dsl.Collected`).

    Args:
        settings: the cluster settings of the steps (`parallelism`: shard pods at once).
        **params: the pipeline's inference parameters, by name, and `shards`.
    """
    run_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER
    common = {"experiment": params["experiment"], "run_id": run_id}
    plan = c.plan_shards(
        data=params["data"],
        model_name=params["model_name"],
        alias_or_version=params["alias_or_version"],
        finder=params["finder"],
        reader=params["reader"],
        shards=params["shards"],
        challenger=params["challenger"],
        **common,
    )
    settings.configure(plan, "plan", "Plan the shards")
    checks = {
        "loader": params["loader"],
        "passthrough": params["passthrough"],
        "input_schema": params["input_schema"],
        "allow_unsigned": params["allow_unsigned"],
    }
    with dsl.ParallelFor(
        plan.outputs["Output"], name="shards", parallelism=settings.parallelism
    ) as shard:
        part = c.predict_shard(
            plan=plan.outputs["plan"],
            shard=shard,
            writer=params["writer"],
            batch_size=params["batch_size"],
            probabilities=params["probabilities"],
            drift_policy=params["drift_policy"],
            challenger_tolerance=params["challenger_tolerance"],
            **checks,
            **common,
        )
        settings.configure(part, "predict", "Batch predictions of a shard")
    publish = c.publish_predictions(
        plan=plan.outputs["plan"],
        reports=dsl.Collected(part.outputs["Output"]),
        drift_policy=params["drift_policy"],
        drift_thresholds=params["drift_thresholds"],
        performance_tolerance=params["performance_tolerance"],
        **common,
    )
    settings.configure(publish, "publish", "Publish the predictions")
    explain = c.explain(
        plan=plan.outputs["plan"], explainer=params["explainer"],
        max_samples=params["max_samples"], **checks, **common,
    ).after(publish)  # fmt: skip
    settings.configure(explain, "explain", "SHAP explanations")
    return publish, explain


def add_one_pod_or_sharded_inference(settings: Settings, **params: T.Any) -> None:
    """Add the inference in one pod when `shards` is 1, else sharded over `shards` pods.

    Args:
        settings: the cluster settings of the steps.
        **params: the pipeline's inference parameters, by name, and `shards`.
    """
    with dsl.If(params["shards"] == 1, name="one-pod"):
        add_inference(settings, **params)
    with dsl.Else(name="sharded"):
        add_sharded_inference(settings, **params)


def build(settings: Settings) -> GraphComponent:
    """Build the inference pipeline with the given cluster settings.

    Args:
        settings: the cluster settings of the steps.
    """

    @dsl.pipeline(
        name="inference",
        description="Batch predictions and SHAP explanations from a model in MLflow "
        "(a registered model's Champion by default). Alerts Slack at the end.",
    )
    @described(data="rows", model_name="served_model_name")
    def inference(
        data: str,
        model_name: str = "",
        alias_or_version: str = defaults.ALIAS,
        finder: dict = {},  # noqa: B006 - a KFP parameter default, never mutated
        loader: dict = {},  # type: ignore[type-arg]  # noqa: B006
        reader: dict = {},  # noqa: B006
        writer: dict = {},  # noqa: B006
        batch_size: int = defaults.BATCH_SIZE,
        passthrough: list = [],  # noqa: B006
        input_schema: str = "",
        probabilities: bool = True,
        allow_unsigned: bool = False,
        explainer: dict = {},  # type: ignore[type-arg]  # noqa: B006
        max_samples: int = defaults.MAX_SAMPLES,
        shards: int = defaults.SHARDS,
        drift_policy: str = defaults.DRIFT_POLICY,
        drift_thresholds: dict = {},  # noqa: B006
        challenger: str = defaults.CHALLENGER,
        challenger_tolerance: float = defaults.CHALLENGER_TOLERANCE,
        performance_tolerance: float = defaults.PERFORMANCE_TOLERANCE,
        retraining: dict = {},  # type: ignore[type-arg]  # noqa: B006
        experiment: str = defaults.EXPERIMENT,
        ui_base_url: str = "",
    ):
        """Predict and explain."""
        exit_task = add_notify(settings, "inference", experiment, ui_base_url, retraining)
        with dsl.ExitHandler(exit_task, name="inference"):
            add_one_pod_or_sharded_inference(
                settings, data=data, model_name=model_name, alias_or_version=alias_or_version,
                finder=finder, loader=loader, reader=reader, writer=writer,
                batch_size=batch_size, passthrough=passthrough, input_schema=input_schema,
                probabilities=probabilities, allow_unsigned=allow_unsigned, explainer=explainer,
                max_samples=max_samples, shards=shards,
                drift_policy=drift_policy, drift_thresholds=drift_thresholds,
                challenger=challenger, challenger_tolerance=challenger_tolerance,
                performance_tolerance=performance_tolerance, experiment=experiment,
            )  # fmt: skip

    return inference
