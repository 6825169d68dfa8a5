"""Pipeline `lifecycle` (the demo): training, promotion when it passes, then inference."""

from kfp import dsl
from kfp.dsl.graph_component import GraphComponent

from pipelines.inference import DEFAULT_PASSTHROUGH, DEFAULT_SCHEMA, add_inference
from pipelines.settings import Settings
from pipelines.training import (
    DEFAULT_DATA,
    DEFAULT_THRESHOLDS,
    add_notify,
    add_promotion,
    add_training,
)


def build(settings: Settings) -> GraphComponent:
    """Build the lifecycle pipeline with the given cluster settings."""

    @dsl.pipeline(
        name="lifecycle",
        description="Train, evaluate, promote to Champion when the new version passes, then "
        "predict and explain with the Champion. Alerts Slack at the end.",
    )
    def lifecycle(
        data: str = DEFAULT_DATA,
        inference_data: str = DEFAULT_DATA,
        model_name: str = "bike-sharing",
        target: str = "cnt",
        model_kind: str = "HistGradientBoostingRegressor",
        model_params: dict = {},  # noqa: B006 - a KFP parameter default, never mutated
        test_size: float = 0.2,
        thresholds: dict = DEFAULT_THRESHOLDS,
        tolerance: float = 0.0,
        batch_size: int = 131072,
        passthrough: list = DEFAULT_PASSTHROUGH,
        input_schema: str = DEFAULT_SCHEMA,
        max_samples: int = 1000,
        experiment: str = "bike-sharing",
        ui_base_url: str = "",
    ):
        exit_task = add_notify(settings, "lifecycle", experiment, ui_base_url)
        with dsl.ExitHandler(exit_task, name="lifecycle"):
            train, evaluate = add_training(
                settings, data, model_name, target, model_kind, model_params, test_size,
                thresholds, tolerance, experiment,
            )  # fmt: skip
            inference = (
                settings, inference_data, model_name, "Champion", batch_size, passthrough,
                input_schema, max_samples, experiment,
            )  # fmt: skip
            # Predict after the promotion when the new version passed; with the standing
            # Champion otherwise.
            with dsl.If(evaluate.outputs["Output"] == True, name="passed"):  # noqa: E712
                promote = add_promotion(settings, train, model_name, experiment)
                predict, _ = add_inference(*inference)
                predict.after(promote)
            with dsl.Else(name="not-passed"):
                add_inference(*inference)

    return lifecycle
