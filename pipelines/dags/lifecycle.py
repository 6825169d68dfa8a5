"""Pipeline `lifecycle` (the demo): the training steps, then inference on the version served."""

import typing as T

from kfp import dsl
from kfp.dsl.graph_component import GraphComponent

from pipelines.dags import defaults
from pipelines.dags.descriptions import described
from pipelines.dags.inference import add_inference
from pipelines.dags.settings import Settings
from pipelines.dags.training import add_notify, add_training_and_promotion


def build(settings: Settings) -> GraphComponent:
    """Build the lifecycle pipeline with the given cluster settings.

    Args:
        settings: the cluster settings of the steps.
    """

    @dsl.pipeline(
        name="lifecycle",
        description="Train, evaluate, promote to Champion when the new version passes, then "
        "predict and explain with the Champion. Alerts Slack at the end.",
    )
    @described(inference_data="rows")
    def lifecycle(
        data: str,
        inference_data: str,
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
        finder: dict = {},  # noqa: B006
        loader: dict = {},  # type: ignore[type-arg]  # noqa: B006
        writer: dict = {},  # noqa: B006
        batch_size: int = defaults.BATCH_SIZE,
        passthrough: list = [],  # noqa: B006
        input_schema: str = "",
        probabilities: bool = True,
        allow_unsigned: bool = False,
        explainer: dict = {},  # type: ignore[type-arg]  # noqa: B006
        max_samples: int = defaults.MAX_SAMPLES,
        drift_policy: str = defaults.DRIFT_POLICY,
        drift_thresholds: dict = {},  # noqa: B006
        performance_tolerance: float = defaults.PERFORMANCE_TOLERANCE,
        experiment: str = defaults.EXPERIMENT,
        ui_base_url: str = "",
    ):
        """Train, evaluate, promote, predict and explain."""

        def serve(version: T.Any) -> None:
            # The inference pipeline's one-pod steps, on the version the training left served.
            add_inference(
                settings, data=inference_data, model_name=model_name, alias_or_version=version,
                finder=finder, loader=loader, reader=reader, writer=writer, batch_size=batch_size,
                passthrough=passthrough, input_schema=input_schema, probabilities=probabilities,
                allow_unsigned=allow_unsigned, explainer=explainer, max_samples=max_samples,
                experiment=experiment,
                drift_policy=drift_policy, drift_thresholds=drift_thresholds,
                performance_tolerance=performance_tolerance,
            )  # fmt: skip

        exit_task = add_notify(settings, "lifecycle", experiment, ui_base_url)
        with dsl.ExitHandler(exit_task, name="lifecycle"):
            add_training_and_promotion(
                settings, serve, data=data, target=target, model_name=model_name, reader=reader,
                model_kind=model_kind, model_params=model_params, trusted_types=trusted_types,
                features=features,
                categorical=categorical, exclude=exclude, time_column=time_column,
                test_size=test_size, thresholds=thresholds, tolerance=tolerance,
                promotion=promotion, experiment=experiment,
            )  # fmt: skip

    return lifecycle
