"""Pipeline `inference`: predict with the Champion (in one pod or sharded), explain, one alert."""

from kfp import dsl
from kfp.dsl import PipelineTask
from kfp.dsl.graph_component import GraphComponent

import components as c
from pipelines.dags.settings import Settings
from pipelines.dags.training import DEFAULT_EXPERIMENT, add_notify


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
        challenger=params.get("challenger", ""),
        challenger_tolerance=params.get("challenger_tolerance", 0.0),
        performance_tolerance=params.get("performance_tolerance", 0.1),
    )
    settings.configure(predict, "predict", "Batch predictions")
    explain = c.explain(**common, max_samples=params["max_samples"]).after(predict)
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
        performance_tolerance=params.get("performance_tolerance", 0.1),
        **common,
    )
    settings.configure(publish, "publish", "Publish the predictions")
    explain = c.explain(
        plan=plan.outputs["plan"], max_samples=params["max_samples"], **checks, **common
    ).after(publish)
    settings.configure(explain, "explain", "SHAP explanations")
    return publish, explain


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
    def inference(
        data: str,
        model_name: str = "",
        alias_or_version: str = "Champion",
        finder: dict = {},  # noqa: B006 - a KFP parameter default, never mutated
        reader: dict = {},  # noqa: B006
        writer: dict = {},  # noqa: B006
        batch_size: int = 131072,
        passthrough: list = [],  # noqa: B006
        input_schema: str = "",
        probabilities: bool = True,
        allow_unsigned: bool = False,
        max_samples: int = 1000,
        shards: int = 1,
        drift_policy: str = "warn",
        drift_thresholds: dict = {},  # noqa: B006
        challenger: str = "",
        challenger_tolerance: float = 0.0,
        performance_tolerance: float = 0.1,
        retraining: dict = {},  # type: ignore[type-arg]  # noqa: B006
        experiment: str = DEFAULT_EXPERIMENT,
        ui_base_url: str = "",
    ):
        """Predict and explain.

        Args:
            data: Rows to predict: Parquet file or folder, or CSV (local path, s3://, gs://,
                demo://bike-sharing/hour.parquet for the demo), streamed from where it is.
            model_name: Registered model name in MLflow.
            alias_or_version: Alias (Champion) or version number of the model.
            finder: Another way to find the model, by KIND, e.g. {"KIND": "BestRunFinder",
                "metric": "test_rmse", "mode": "min"} or {"KIND": "UriFinder", "uri": "..."}.
            reader: Reader options, e.g. {"KIND": "CSVReader", "delimiter": ";", "encoding":
                "latin-1"}; the format follows the extension when KIND is not given.
            writer: Predictions format: {"KIND": "ParquetWriter"} (default) or CSVWriter.
            batch_size: Rows per batch; bounds the memory of predict.
            passthrough: Input columns copied beside the predictions (ids, timestamps).
            input_schema: Pandera schema with domain rules: a YAML file or module:NAME.
            probabilities: Add one probability column per class (classifiers).
            allow_unsigned: Use a model without a signature (inputs then go unchecked).
            max_samples: Most rows explained with SHAP.
            shards: Pods that share the prediction (1: one predict pod). More split the input
                by Parquet row groups (CSV by file), predict each shard in its own pod, and
                publish one dataset (a folder with a manifest of the parts) when all succeed.
            drift_policy: Compare the rows with the model's training profile: warn (report
                only), fail (also publish nothing when a feature drifted), or off.
            drift_thresholds: When a feature counts as drifted; defaults {"p_value": 0.05,
                "test_rows": 1000, "min_rows": 30, "wasserstein": 0.1, "jensen_shannon": 0.1,
                "psi_warn": 0.1, "psi": 0.25, "missing": 0.1, "out_of_range": 0.05, "unseen": 0.05,
                "drift_share": 0.0}: up to test_rows values a column is tested (KS, chi-square;
                p_value for the whole batch), above it a distance decides (Wasserstein,
                Jensen-Shannon, PSI); missing, out_of_range and unseen are data-quality rules;
                drift_share: the share of features that must drift for the batch to drift (0: any).
            challenger: Alias or version of model_name (or a model URI) that scores the same
                rows for comparison (shadow scoring); the predictions stay the Champion's.
            challenger_tolerance: A regressor's rows differ when the two predictions differ by
                more than this; 0: a tenth of the std of the Champion's holdout predictions.
            performance_tolerance: How much worse than its holdout's the model's performance
                may be estimated (relative; the whole 95% band past it) before the batch counts
                as degraded: reported under drift_policy=warn, refused under fail.
            retraining: Retrain when it matters ({}: off), e.g. {"period_hours": 24,
                "parameters": {"data": "s3://bucket/labelled/", "target": "cnt"}}: when a step
                found what "on" names (drift, performance, labels; default all three), the alert
                step starts the training pipeline with "parameters" through "trainer"
                ({"type": "LocalTrainer"} by default, or KFPTrainer), at most once per period.
            experiment: MLflow experiment of the steps' runs.
            ui_base_url: Kubeflow UI base URL for a link in the alert (default: KFP_UI_BASE_URL).
        """
        exit_task = add_notify(settings, "inference", experiment, ui_base_url, retraining)
        with dsl.ExitHandler(exit_task, name="inference"):
            inference = dict(
                data=data, model_name=model_name, alias_or_version=alias_or_version,
                finder=finder, reader=reader, writer=writer, batch_size=batch_size,
                passthrough=passthrough, input_schema=input_schema, probabilities=probabilities,
                allow_unsigned=allow_unsigned, max_samples=max_samples, experiment=experiment,
                drift_policy=drift_policy, drift_thresholds=drift_thresholds,
                challenger=challenger, challenger_tolerance=challenger_tolerance,
                performance_tolerance=performance_tolerance,
            )  # fmt: skip
            with dsl.If(shards == 1, name="one-pod"):
                add_inference(settings, **inference)
            with dsl.Else(name="sharded"):
                add_sharded_inference(settings, shards=shards, **inference)

    return inference
