"""Pipeline `lifecycle` (the demo): training, promotion when it passes, then inference."""

from kfp import dsl
from kfp.dsl.graph_component import GraphComponent

from pipelines.dags.inference import add_inference
from pipelines.dags.settings import Settings
from pipelines.dags.training import DEFAULT_EXPERIMENT, add_notify, add_promotion, add_training


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
    def lifecycle(
        data: str,
        inference_data: str,
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
        finder: dict = {},  # noqa: B006
        writer: dict = {},  # noqa: B006
        batch_size: int = 131072,
        passthrough: list = [],  # noqa: B006
        input_schema: str = "",
        probabilities: bool = True,
        allow_unsigned: bool = False,
        max_samples: int = 1000,
        drift_policy: str = "warn",
        drift_thresholds: dict = {},  # noqa: B006
        performance_tolerance: float = 0.1,
        experiment: str = DEFAULT_EXPERIMENT,
        ui_base_url: str = "",
    ):
        """Train, evaluate, promote, predict and explain.

        Args:
            data: Training data: Parquet file or folder, or CSV (local path, s3://, gs://,
                demo://bike-sharing/hour.parquet for the demo).
            inference_data: Rows to predict and explain (same formats), streamed.
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
            reader: Reader options for both inputs, e.g. {"KIND": "CSVReader", "delimiter": ";"}.
            thresholds: Metric limits, e.g. {"r2": 0.7}; empty: the task's defaults.
            tolerance: How much worse than the Champion a new version may be (0.02 = 2%).
            finder: Predict and explain with another model than the Champion, by KIND, e.g.
                {"KIND": "BestRunFinder", "metric": "test_rmse", "mode": "min"}.
            writer: Predictions format: {"KIND": "ParquetWriter"} (default) or CSVWriter.
            batch_size: Rows per batch; bounds the memory of predict.
            passthrough: Input columns copied beside the predictions (ids, timestamps).
            input_schema: Pandera schema with domain rules: a YAML file or module:NAME.
            probabilities: Add one probability column per class (classifiers).
            allow_unsigned: Use a model without a signature (inputs then go unchecked).
            max_samples: Most rows explained with SHAP.
            drift_policy: Compare the rows predicted with the training data: warn (report
                only), fail (also publish nothing when a feature drifted), or off.
            drift_thresholds: When a feature counts as drifted; defaults {"p_value": 0.05,
                "test_rows": 1000, "min_rows": 30, "wasserstein": 0.1, "jensen_shannon": 0.1,
                "psi_warn": 0.1, "psi": 0.25, "missing": 0.1, "out_of_range": 0.05, "unseen": 0.05,
                "drift_share": 0.0}: up to test_rows values a column is tested (KS, chi-square;
                p_value for the whole batch), above it a distance decides (Wasserstein,
                Jensen-Shannon, PSI); missing, out_of_range and unseen are data-quality rules;
                drift_share: the share of features that must drift for the batch to drift (0: any).
            performance_tolerance: How much worse than its holdout's the model's performance
                may be estimated (relative; the whole 95% band past it) before the batch counts
                as degraded: reported under drift_policy=warn, refused under fail.
            experiment: MLflow experiment of the steps' runs.
            ui_base_url: Kubeflow UI base URL for a link in the alert (default: KFP_UI_BASE_URL).
        """
        exit_task = add_notify(settings, "lifecycle", experiment, ui_base_url)
        with dsl.ExitHandler(exit_task, name="lifecycle"):
            train, evaluate = add_training(
                settings, data=data, target=target, model_name=model_name, reader=reader,
                model_kind=model_kind, model_params=model_params, features=features,
                categorical=categorical, exclude=exclude, time_column=time_column,
                test_size=test_size, thresholds=thresholds, tolerance=tolerance,
                experiment=experiment,
            )  # fmt: skip
            inference = dict(
                data=inference_data, model_name=model_name, finder=finder, reader=reader,
                writer=writer, batch_size=batch_size,
                passthrough=passthrough, input_schema=input_schema, probabilities=probabilities,
                allow_unsigned=allow_unsigned, max_samples=max_samples, experiment=experiment,
                drift_policy=drift_policy, drift_thresholds=drift_thresholds,
                performance_tolerance=performance_tolerance,
            )  # fmt: skip
            # Predict with the version the promotion serves (the new one, or a Champion
            # promoted meanwhile that beat it) when the new version passed; with the Champion
            # the evaluation read otherwise. Never with whatever the alias points to later.
            with dsl.If(evaluate.outputs["Output"] == True, name="passed"):  # noqa: E712
                promote = add_promotion(
                    settings, train, model_name=model_name, target=target, tolerance=tolerance,
                    experiment=experiment,
                )  # fmt: skip
                add_inference(settings, alias_or_version=promote.outputs["Output"], **inference)
            with dsl.Else(name="not-passed"):
                add_inference(settings, alias_or_version=evaluate.outputs["champion"], **inference)

    return lifecycle
