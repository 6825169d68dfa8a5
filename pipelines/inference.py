"""Pipeline `inference`: predict with the Champion, then explain it, then one alert."""

from kfp import dsl
from kfp.dsl import PipelineTask
from kfp.dsl.graph_component import GraphComponent

import components as c
from pipelines.settings import Settings
from pipelines.training import DEFAULT_DATA, add_notify

DEFAULT_SCHEMA = "data/bike-sharing/schema.yaml"
DEFAULT_PASSTHROUGH = ["instant", "dteday"]


def add_inference(
    settings: Settings,
    data: str,
    model_name: str,
    alias_or_version: str,
    batch_size: int,
    passthrough: list,
    input_schema: str,
    max_samples: int,
    experiment: str,
) -> tuple[PipelineTask, PipelineTask]:
    """Add predict, then explain on the same data and model; return both tasks."""
    run_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER
    predict = c.predict(
        data=data,
        model_name=model_name,
        alias_or_version=alias_or_version,
        batch_size=batch_size,
        passthrough=passthrough,
        input_schema=input_schema,
        experiment=experiment,
        run_id=run_id,
    )
    settings.configure(predict, "predict", "Batch predictions")
    explain = c.explain(
        data=data,
        model_name=model_name,
        alias_or_version=alias_or_version,
        max_samples=max_samples,
        passthrough=passthrough,
        input_schema=input_schema,
        experiment=experiment,
        run_id=run_id,
    ).after(predict)
    settings.configure(explain, "explain", "SHAP explanations")
    return predict, explain


def build(settings: Settings) -> GraphComponent:
    """Build the inference pipeline with the given cluster settings."""

    @dsl.pipeline(
        name="inference",
        description="Batch predictions and SHAP explanations from a registered model "
        "(the Champion by default). Alerts Slack at the end.",
    )
    def inference(
        data: str = DEFAULT_DATA,
        model_name: str = "bike-sharing",
        alias_or_version: str = "Champion",
        batch_size: int = 131072,
        passthrough: list = DEFAULT_PASSTHROUGH,
        input_schema: str = DEFAULT_SCHEMA,
        max_samples: int = 1000,
        experiment: str = "bike-sharing",
        ui_base_url: str = "",
    ):
        exit_task = add_notify(settings, "inference", experiment, ui_base_url)
        with dsl.ExitHandler(exit_task, name="inference"):
            add_inference(
                settings, data, model_name, alias_or_version, batch_size, passthrough,
                input_schema, max_samples, experiment,
            )  # fmt: skip

    return inference
