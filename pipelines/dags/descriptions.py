"""Each pipeline parameter's description, written once; `described` puts them in a docstring.

KFP takes a pipeline's parameter descriptions (the Kubeflow UI shows them beside each field,
`run NAME --help` lists them) from the Args of its function's docstring, which it reads when
`dsl.pipeline` decorates the function. `described`, applied under `dsl.pipeline`, writes those
Args first, from PIECES: one text per meaning of a parameter, found by the parameter's name
unless the pipeline names another piece (monitoring's `target` is the truth's column, not the
column a model learns). Kinds are listed from their registries, defaults from their models, so
a new kind or a changed default shows in every pipeline at the next `make compile`.
"""

from __future__ import annotations

import inspect
import json
import typing as T

from components.core import drift, explainers, models
from components.io import datasets, registries, retraining
from components.utils import factories

F = T.TypeVar("F", bound=T.Callable[..., T.Any])


def _fallback(factory: factories.Factory[T.Any]) -> str:
    """The KIND a registry chooses when no kind is chosen for the facts."""
    assert factory.fallback is not None, f"the {factory.role} registry has no fallback"
    return factories.kind_of(factory.fallback)


def _reader(of: str) -> str:
    return (
        f'How to read {of}: {{"KIND": KIND, ...its options}}, KIND {datasets.READERS.listing()};'
        ' e.g. {"KIND": "CSVReader", "delimiter": ";", "decimal_point": ",", '
        '"encoding": "latin-1"}. Without KIND, the file extension decides '
        f"({_fallback(datasets.READERS)} otherwise)."
    )


# What the retraining policy starts when it fires, with its defaults.
_POLICY = retraining.RetrainingPolicy()

PIECES: dict[str, str] = {
    # Data and model.
    "data": "Training data: Parquet file or folder, or CSV (local path, s3://, gs://, "
    "demo://bike-sharing/hour.parquet for the demo).",
    "rows": "Rows to predict and explain: Parquet file or folder, or CSV (local path, s3://, "
    "gs://, demo://bike-sharing/hour.parquet for the demo), streamed from where it is.",
    "reader": _reader("the data"),
    "target": "Column to predict.",
    "model_name": "Registered model name in MLflow; each training adds a version.",
    "served_model_name": "Registered model name in MLflow.",
    "model_kind": f"The estimator: {models.MODELS.listing()}; the task (regression or "
    "classification) follows from it.",
    "model_params": "Estimator parameters, its own keyword arguments: e.g. "
    '{"max_iter": 200}, or {"n_estimators": 300, "max_depth": 6} for XGBoost.',
    "trusted_types": "Types of the fitted model that skops may load beyond its defaults, "
    "reviewed by you, for a model_kind given as an estimator's import path, e.g. "
    '["sklearn.tree._tree.Tree"] for sklearn.ensemble:GradientBoostingRegressor '
    "(skops.io.get_untrusted_types lists them; training refuses any other); a model kind "
    "declares its own (TRUSTED_TYPES).",
    "features": "Candidate feature columns; empty: every column but the target.",
    "categorical": "Columns treated as categories even when numeric (codes).",
    "exclude": "Columns never used as features (ids, timestamps, leaks of the target).",
    "time_column": "Time column: the holdout is then the latest rows.",
    "test_size": "Fraction of rows held out for evaluation.",
    # Evaluation and promotion.
    "thresholds": 'Metric limits, e.g. {"r2": 0.7}; empty: the task\'s defaults.',
    "tolerance": "How much worse than the Champion a new version may be (0.02 = 2%).",
    "promotion": "auto: a passing version becomes Champion; manual: it awaits approval "
    "(`model approve NAME VERSION` or `model reject`) and the Champion keeps serving.",
    # Tuning.
    "search_space": "Estimator parameters to search, by name: a list is a set of choices (a "
    'grid axis), e.g. {"max_iter": [50, 100]}; a range {"low": 0.01, "high": 0.3, "log": true, '
    '"type": "float"} (type int for whole numbers) is drawn by a random search. Checked against '
    "the estimator before any trial runs; each trial's values are merged over model_params.",
    "search": "grid (the product of the choices, its first `trials` points) or random "
    "(`trials` draws, seeded).",
    "trials": "How many trials (each trains in a pod of its own).",
    "parallelism": "How many trials run at once. A run here builds the loop with it; a compiled "
    "pipeline keeps the limit it was compiled with (a different value is reported).",
    "metric": "Holdout metric that ranks the trials, in its own direction: test_rmse, test_mae, "
    "test_r2 (regression); test_f1_macro, test_accuracy, test_roc_auc, test_log_loss "
    "(classification); empty: the task's primary one (test_rmse, test_f1_macro).",
    "seed": "Seed of the random search: the same seed, space and trials give the same trials.",
    # Inference.
    "alias_or_version": "Alias (Champion) or version number of the model.",
    "finder": "Another way to find the model than model_name and alias_or_version: "
    f'{{"KIND": KIND, ...its options}}, KIND {registries.FINDERS.listing()}; e.g. '
    '{"KIND": "BestRunFinder", "metric": "test_rmse", "mode": "min"} or {"KIND": "UriFinder", '
    '"uri": "..."}.',
    "loader": 'How the model is loaded: {"label_mapping": ["a", "b"]} names the classes of a '
    'classifier trained on label-encoded ones, in class order (or {"0": "a", ...}), instead of '
    "the version's label_mapping tag ([] ignores the tag); or "
    f'{{"KIND": KIND, ...its options}}, KIND {registries.LOADERS.listing()}, e.g. '
    '{"KIND": "XGBoostLoader", "label_mapping": ["a", "b"]}; empty: the model\'s richest '
    "flavour (native scikit-learn, XGBoost, LightGBM, CatBoost; else pyfunc), labels from the "
    "tag.",
    "writer": f'Predictions format: {{"KIND": KIND, ...its options}}, KIND '
    f"{datasets.WRITERS.listing()}; default {_fallback(datasets.WRITERS)}.",
    "batch_size": "Rows per batch; bounds the memory of predict.",
    "passthrough": "Input columns copied beside the predictions (ids, timestamps).",
    "input_schema": "Pandera schema with domain rules: a YAML file or module:NAME.",
    "probabilities": "Add one probability column per class (classifiers).",
    "allow_unsigned": "Use a model without a signature (inputs then go unchecked).",
    "explainer": f'How to explain: {{"KIND": KIND, ...its options}}, KIND '
    f"{explainers.EXPLAINERS.listing()}; empty: the one chosen for the model's estimator "
    f"(Tree SHAP for tree ensembles, else {_fallback(explainers.EXPLAINERS)}).",
    "max_samples": "Most rows explained with SHAP.",
    "shards": "Pods that share the prediction (1: one predict pod). More split the input by "
    "Parquet row groups (CSV by file), predict each shard in its own pod, and publish one "
    "dataset (a folder with a manifest of the parts) when all succeed.",
    "drift_policy": "Compare the rows with the model's training profile: warn (report only), "
    "fail (also publish nothing when a feature drifted), or off.",
    "drift_thresholds": "When a feature counts as drifted; defaults "
    f"{json.dumps(drift.Thresholds().model_dump())}: up to test_rows values a column is tested "
    "(KS, chi-square; p_value for the whole batch), above it a distance decides (Wasserstein, "
    "Jensen-Shannon, PSI); missing, out_of_range and unseen are data-quality rules; "
    "drift_share: the share of features that must drift for the batch to drift (0: any).",
    "challenger": "Alias or version of model_name (or a model URI) that scores the same rows for "
    "comparison (shadow scoring); the predictions stay the Champion's.",
    "challenger_tolerance": "A regressor's rows differ when the two predictions differ by more "
    "than this; 0: a tenth of the std of the Champion's holdout predictions.",
    "performance_tolerance": "How much worse than its holdout's the model's performance may be "
    "estimated (relative; the whole 95% band past it) before the batch counts as degraded: "
    "reported under drift_policy=warn, refused under fail.",
    # Monitoring.
    "predictions_data": "Predictions: an inference run's output (Parquet file or folder) or any "
    "table with the key columns and `prediction` (local path, s3://, gs://).",
    "truth_data": "Ground truth: the key columns and the target (Parquet or CSV).",
    "keys": 'Columns that identify a row on both sides, e.g. ["instant"].',
    "truth_target": "The truth's column with the true value.",
    "monitored_model_name": "Registered model name in MLflow that made the predictions.",
    "lineage_version": "Version compared with when the predictions' lineage names none.",
    "period_column": "Predictions' column placing a row in a period; empty: all rows only.",
    "period": "h (hours), D (days), W (weeks) or M (months).",
    "min_rows": "A period with fewer labelled rows is counted but not scored.",
    "holdout_tolerance": "How much worse than the holdout a metric may be (0.1 = 10%).",
    "policy": "warn (report a degradation) or fail (also fail the run).",
    "predictions_reader": _reader("the predictions"),
    "truth_reader": _reader("the truth"),
    # Every pipeline.
    "retraining": 'Retrain when it matters ({}: off), e.g. {"period_hours": 24, "parameters": '
    '{"data": "s3://bucket/labelled/", "target": "cnt"}}: when a step found what "on" names '
    f"({', '.join(_POLICY.on)} by default), the alert step starts the training pipeline with "
    f'"parameters" through "trainer" ({json.dumps(_POLICY.trainer)} by default: a background '
    "run on this machine; or another trainer backend of pipelines.jobs.backends by type), at "
    "most once per period_hours.",
    "experiment": "MLflow experiment of the steps' runs.",
    "ui_base_url": "Kubeflow UI base URL for a link in the alert (default: KFP_UI_BASE_URL).",
}


def args_section(function: T.Callable[..., T.Any], pieces: T.Mapping[str, str]) -> str:
    """The Args section of a docstring for every parameter of the function, in order.

    Args:
        function: the pipeline function.
        pieces: the piece of PIECES a parameter takes, by parameter name, where it is not the
            parameter's own name.

    Returns:
        "Args:" and one indented `name: description` line per parameter.

    Raises:
        KeyError: a parameter has no piece, or a piece is given for no parameter; the message
            names them and lists the pieces there are.
    """
    names = list(inspect.signature(function).parameters)
    unknown = sorted(set(pieces) - set(names))
    missing = [name for name in names if pieces.get(name, name) not in PIECES]
    if unknown or missing:
        problems = [f"no description for {', '.join(missing)}"] if missing else []
        problems += [f"pieces given for no parameter: {', '.join(unknown)}"] if unknown else []
        raise KeyError(
            f"{function.__name__}: {'; '.join(problems)} (pieces: {', '.join(sorted(PIECES))})"
        )
    lines = [f"    {name}: {PIECES[pieces.get(name, name)]}" for name in names]
    return "Args:\n" + "\n".join(lines)


def described(**pieces: str) -> T.Callable[[F], F]:
    """Append the Args of the function's parameters to its docstring, for `dsl.pipeline`.

    Apply it under `@dsl.pipeline`, which reads the docstring as it decorates the function.

    Args:
        **pieces: the piece of PIECES a parameter takes, where it is not its own name, e.g.
            `target="truth_target"`.

    Returns:
        A decorator that returns the function itself, its docstring completed.
    """

    def decorate(function: F) -> F:
        summary = inspect.cleandoc(function.__doc__ or "")
        function.__doc__ = f"{summary}\n\n{args_section(function, pieces)}\n"
        return function

    return decorate
