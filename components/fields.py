"""Each step's inputs mapped to its job's fields, once: by its component, and before the run.

A component calls its step's function with its parameters and artifacts, then builds and runs the
job from what it returns (`components.steps`); `pipelines.checks.preflight` calls the same
function with the pipeline's parameters and stand-ins for the upstream artifacts, and builds the
same job, so that a value the step would refuse is refused before anything runs. KFP concerns
stop here: the jobs get plain fields (integers as integers, configs with their KIND).
"""

from __future__ import annotations

import typing as T

from components.io import datasets, registries, shards
from components.steps import integers_back


def train_fields(
    *,
    target: str,
    model_name: str,
    holdout: T.Any,
    data: str,
    dataset: T.Any | None,
    reader: dict[str, T.Any] | None,
    model_kind: str,
    model_params: dict[str, T.Any] | None,
    features: list[str] | None,
    categorical: list[str] | None,
    exclude: list[str] | None,
    time_column: str,
    test_size: float,
    trial: dict[str, T.Any] | None = None,
    register: bool = True,
    trusted_types: list[str] | None = None,
) -> dict[str, T.Any]:
    """The TrainingJob fields of a `train` step: its parameters and artifacts, mapped once.

    The arguments are the component's inputs, by name; `pipelines.checks.preflight` builds the job
    from them before the pipeline starts, with stand-ins for the artifacts. A tuning's trial
    (`{"number": n, "params": {...}}`) has its parameters merged over `model_params`.

    Raises:
        ValueError: the input is given both as data and as a dataset, or not at all; trusted
            types are given for a model kind that declares its own.
    """
    from components.io import artifacts

    location = artifacts.input_location(data, dataset)
    # Numbers in dict parameters may arrive as JSON floats (3.0); the jobs' fields are strict.
    params = {**integers_back(model_params or {}), **integers_back((trial or {}).get("params", {}))}
    model: dict[str, T.Any] = {"KIND": model_kind, "params": params}
    if trusted_types:
        model["trusted_types"] = model_trusted_types(model_kind, trusted_types)
    return {
        "inputs": datasets.reader_config(location, integers_back(reader or {})),
        "target": target,
        "model": model,
        "model_name": model_name,
        "features": features or None,
        "categorical": categorical or None,
        "exclude": exclude or [],
        "time_column": time_column or None,
        "splitter": {"KIND": "TrainTestSplitter", "test_size": float(test_size)},
        "holdout": {"KIND": "ParquetWriter", "path": holdout.path},
        "register_version": bool(register),
        "trial": int(trial["number"]) if trial else None,
    }


def train_task(trial: dict[str, T.Any] | None) -> str:
    """The task name a `train` step records its run under: `train`, or `trial-<n>` for a trial."""
    return f"trial-{int(trial['number'])}" if trial else "train"


def plan_trials_fields(
    *,
    search_space: dict[str, T.Any],
    model_kind: str,
    model_params: dict[str, T.Any] | None,
    search: str,
    trials: int,
    parallelism: int,
    compiled_parallelism: int,
    metric: str,
    seed: int,
) -> dict[str, T.Any]:
    """The TrialPlanningJob fields of a `plan_trials` step: its parameters, mapped once.

    The arguments are the component's inputs, by name; `pipelines.checks.preflight` builds the job
    from them before the pipeline starts.
    """
    return {
        "model": {"KIND": model_kind, "params": integers_back(model_params or {})},
        # A range's bounds stay numbers; choices given as 50.0 are the integers meant.
        "search_space": integers_back(dict(search_space or {})),
        "search": search,
        "trials": int(trials),  # integers may arrive as JSON floats (4.0)
        "parallelism": int(parallelism),
        "compiled_parallelism": int(compiled_parallelism),
        "metric": metric,
        "seed": int(seed),
    }


def select_trial_fields(*, model_name: str, metric: str, trial_runs: list[str]) -> dict[str, T.Any]:
    """The TrialSelectionJob fields of a `select_trial` step, mapped once.

    The arguments are the component's inputs, by name, with `trial_runs` read from its trials'
    models; `pipelines.checks.preflight` builds the job from them before the pipeline starts.
    """
    return {"model_name": model_name, "metric": metric, "trial_runs": list(trial_runs)}


def model_trusted_types(model_kind: str, trusted_types: list[T.Any]) -> list[T.Any]:
    """The `trusted_types` of a train step, for the model config of its estimator.

    Only an estimator named by its import path (an `EstimatorModel`) takes them: a model kind
    declares the types it trusts itself (`TRUSTED_TYPES`, reviewed with the kind).

    Args:
        model_kind: the step's model kind.
        trusted_types: the types skops may load beyond its defaults, reviewed by the user.

    Raises:
        ValueError: a type is not named by text, or the model kind is not an estimator's
            import path.
    """
    from components.core import models

    # The names first: what is wrong with them does not depend on the model kind.
    named = [name for name in trusted_types if isinstance(name, str) and name.strip()]
    if len(named) != len(trusted_types):
        raise ValueError(
            f"trusted_types {list(trusted_types)!r}: each is a type's full name as skops "
            "lists it (skops.io.get_untrusted_types), e.g. 'sklearn.tree._tree.Tree'"
        )
    if not models.is_estimator_path(model_kind):
        raise ValueError(
            f"trusted_types {list(trusted_types)!r} are for a model_kind named by an "
            "estimator's import path (package.module:Class, e.g. "
            f"sklearn.ensemble:GradientBoostingRegressor); model_kind {model_kind!r} is not one "
            "(a model kind declares the types it trusts in its TRUSTED_TYPES)"
        )
    return list(trusted_types)


def evaluate_fields(
    *,
    target: str,
    holdout: T.Any,
    model: T.Any,
    thresholds: dict[str, T.Any] | None,
    tolerance: float,
    champion_alias: str,
) -> dict[str, T.Any]:
    """The EvaluationJob fields of an `evaluate` step: its parameters and artifacts, mapped once.

    The arguments are the component's inputs, by name; `pipelines.checks.preflight` builds the job
    from them before the pipeline starts, with stand-ins for the artifacts.

    Raises:
        ValueError: a threshold is not a number.
    """
    return {
        "inputs": {"KIND": "ParquetReader", "path": holdout.path},
        "target": target,
        "model_name": model.metadata["name"],
        "alias_or_version": int(model.metadata["version"]),
        "champion_alias": champion_alias,
        "thresholds": {name: float(limit) for name, limit in thresholds.items()}
        if thresholds
        else None,
        "tolerance": float(tolerance),
    }


def promote_fields(
    *,
    model_name: str,
    version: int,
    holdout: T.Any | None,
    target: str,
    tolerance: float,
    alias: str,
    promotion: str = "auto",
) -> dict[str, T.Any]:
    """The PromotionJob fields of a `promote` step: its parameters and artifacts, mapped once.

    The arguments are the component's inputs, by name; `pipelines.checks.preflight` builds the job
    from them before the pipeline starts, with stand-ins for the artifacts.
    """
    return {
        "model_name": model_name,
        "alias": alias,
        "version": int(version),
        "inputs": {"KIND": "ParquetReader", "path": holdout.path} if holdout else None,
        "target": target or None,
        "tolerance": float(tolerance),
        "promotion": promotion,
    }


def predict_shard_fields(
    *,
    the_plan: T.Any,
    shard: int,
    part: T.Any,
    writer: dict[str, T.Any] | None,
    batch_size: int,
    passthrough: list[str] | None,
    input_schema: str,
    probabilities: bool,
    allow_unsigned: bool,
    drift_policy: str,
    challenger_tolerance: float,
    loader: dict[str, T.Any] | None = None,
) -> dict[str, T.Any]:
    """The InferenceJob fields of a `predict_shard` step: its parameters and plan, mapped once.

    The arguments are the component's inputs, by name, with `the_plan` read from its `plan`;
    `pipelines.checks.preflight` builds the job from them before the pipeline starts, with
    stand-ins.

    Raises:
        ValueError: the plan has no such shard.
    """
    inputs = the_plan.reader_config(int(shard))  # integers may arrive as JSON floats (1.0)
    return {
        "inputs": {**inputs, "batch_size": int(batch_size)},
        "outputs": datasets.writer_config(part.path, integers_back(writer or {})),
        "finder": the_plan.finder,
        "loader": registries.loader_config(integers_back(loader or {})),
        "input_schema": input_schema or None,
        "passthrough": passthrough or [],
        "probabilities": probabilities,
        "allow_unsigned": allow_unsigned,
        "report_violations": True,
        "shard": int(shard),
        "part_uri": part.uri,
        "drift_policy": drift_policy,
        "challenger": the_plan.challenger,
        "challenger_tolerance": float(challenger_tolerance) or None,
    }


def predict_fields(
    *,
    predictions: T.Any,
    data: str,
    dataset: T.Any | None,
    model_name: str,
    alias_or_version: str,
    finder: dict[str, T.Any] | None,
    reader: dict[str, T.Any] | None,
    writer: dict[str, T.Any] | None,
    batch_size: int,
    passthrough: list[str] | None,
    input_schema: str,
    probabilities: bool,
    allow_unsigned: bool,
    drift_policy: str,
    drift_thresholds: dict[str, T.Any] | None,
    challenger: str,
    challenger_tolerance: float,
    performance_tolerance: float = 0.1,
    loader: dict[str, T.Any] | None = None,
) -> dict[str, T.Any]:
    """The InferenceJob fields of a `predict` step: its parameters and artifacts, mapped once.

    The arguments are the component's inputs, by name; `pipelines.checks.preflight` builds the job
    from them before the pipeline starts, with stand-ins for the artifacts.

    Raises:
        ValueError: the input is given twice or not at all, or a challenger by alias or
            version without a model name.
    """
    from components.io import artifacts

    location = artifacts.input_location(data, dataset)
    return {
        # Integers may arrive as JSON floats (131072.0); the jobs' fields are strict.
        "inputs": datasets.reader_config(
            location, integers_back(reader or {}), batch_size=int(batch_size)
        ),
        "outputs": datasets.writer_config(predictions.path, integers_back(writer or {})),
        "finder": registries.finder_config(
            integers_back(finder or {}), model_name, alias_or_version
        ),
        # Labels may arrive as JSON floats too (a mapping onto integer codes).
        "loader": registries.loader_config(integers_back(loader or {})),
        "input_schema": input_schema or None,
        "passthrough": passthrough or [],
        "probabilities": probabilities,
        "allow_unsigned": allow_unsigned,
        "drift_policy": drift_policy,
        "drift_thresholds": dict(drift_thresholds or {}),
        "challenger": registries.challenger_config(challenger, model_name),
        "challenger_tolerance": float(challenger_tolerance) or None,
        "performance_tolerance": float(performance_tolerance),
    }


def plan_shards_fields(
    *,
    plan: T.Any,
    data: str,
    dataset: T.Any | None,
    model_name: str,
    alias_or_version: str,
    finder: dict[str, T.Any] | None,
    reader: dict[str, T.Any] | None,
    shards: int,
    challenger: str,
) -> dict[str, T.Any]:
    """The PlanningJob fields of a `plan_shards` step: its parameters and artifacts, mapped once.

    The arguments are the component's inputs, by name; `pipelines.checks.preflight` builds the job
    from them before the pipeline starts, with stand-ins for the artifacts.

    Raises:
        ValueError: the input is given twice or not at all, or a challenger by alias or
            version without a model name.
    """
    from components.io import artifacts

    location = artifacts.input_location(data, dataset)
    return {
        "inputs": datasets.reader_config(location, integers_back(reader or {})),
        "finder": registries.finder_config(
            integers_back(finder or {}), model_name, alias_or_version
        ),
        "shards": int(shards),  # integers may arrive as JSON floats (2.0)
        "output": plan.path,
        "challenger": registries.challenger_config(challenger, model_name),
    }


def publish_predictions_fields(
    *,
    plan: T.Any,
    shard_reports: list[shards.ShardReport],
    predictions: T.Any,
    drift_policy: str,
    drift_thresholds: dict[str, T.Any] | None,
    performance_tolerance: float = 0.1,
) -> dict[str, T.Any]:
    """The PublicationJob fields of a `publish_predictions` step, mapped once.

    The arguments are the component's inputs, by name, with `shard_reports` parsed from its
    `reports`; `pipelines.checks.preflight` builds the job from them before the pipeline starts.
    """
    return {
        "plan": plan.path,
        "reports": shard_reports,
        "output": predictions.path,
        "drift_policy": drift_policy,
        "drift_thresholds": dict(drift_thresholds or {}),
        "performance_tolerance": float(performance_tolerance),
    }


def explain_fields(
    *,
    models_explanations: T.Any,
    samples_explanations: T.Any,
    data: str,
    dataset: T.Any | None,
    the_plan: T.Any | None,
    model_name: str,
    alias_or_version: str,
    finder: dict[str, T.Any] | None,
    reader: dict[str, T.Any] | None,
    explainer: dict[str, T.Any] | None,
    max_samples: int,
    passthrough: list[str] | None,
    input_schema: str,
    allow_unsigned: bool,
    loader: dict[str, T.Any] | None = None,
) -> dict[str, T.Any]:
    """The ExplanationsJob fields of an `explain` step: its parameters and artifacts, mapped once.

    The arguments are the component's inputs, by name, with `the_plan` read from its `plan`
    (None without one); `pipelines.checks.preflight` builds the job from them before the pipeline
    starts, with stand-ins.

    Raises:
        ValueError: the input is given twice or not at all.
    """
    from components.io import artifacts

    if the_plan is not None:  # the rows are drawn across the plan's shards, its model explained
        inputs, found = the_plan.sample_reader_config(), the_plan.finder
    else:
        location = artifacts.input_location(data, dataset)
        inputs = datasets.reader_config(location, integers_back(reader or {}))
        found = registries.finder_config(integers_back(finder or {}), model_name, alias_or_version)
    return {
        "inputs_samples": inputs,
        "models_explanations": {"KIND": "ParquetWriter", "path": models_explanations.path},
        "samples_explanations": {"KIND": "ParquetWriter", "path": samples_explanations.path},
        "finder": found,
        "loader": registries.loader_config(integers_back(loader or {})),
        "explainer": integers_back(explainer) if explainer else None,  # None: chosen for it
        "input_schema": input_schema or None,
        "passthrough": passthrough or [],
        "max_samples": int(max_samples),  # integers may arrive as JSON floats (1000.0)
        "allow_unsigned": allow_unsigned,
        "spread": the_plan is not None,
    }


def monitor_fields(
    *,
    predictions_data: str,
    predictions: T.Any | None,
    truth_data: str,
    keys: list[T.Any] | None,
    target: str,
    model_name: str,
    alias_or_version: str,
    time_column: str,
    period: str,
    min_rows: int,
    tolerance: float,
    policy: str,
    predictions_reader: dict[str, T.Any] | None = None,
    truth_reader: dict[str, T.Any] | None = None,
) -> dict[str, T.Any]:
    """The MonitoringJob fields of a `monitor` step: its parameters and artifacts, mapped once.

    The arguments are the component's inputs, by name; `pipelines.checks.preflight` builds the job
    from them before the pipeline starts, with stand-ins for the artifacts.

    Raises:
        ValueError: the predictions are given twice or not at all; no truth; a key not text.
    """
    from components.io import artifacts

    location = artifacts.input_location(predictions_data, predictions)
    if not truth_data:
        raise ValueError("no ground truth: set truth_data (a path or URI)")
    names = list(keys or [])
    if not all(isinstance(name, str) for name in names):
        raise ValueError(f"keys must be column names (text), got {names!r}")
    version: str | int = alias_or_version
    if registries.is_version(alias_or_version):
        version = int(alias_or_version)
    return {
        "predictions": datasets.reader_config(location, integers_back(predictions_reader)),
        "truth": datasets.reader_config(truth_data, integers_back(truth_reader)),
        "keys": names,
        "target": target,
        "model_name": model_name,
        "alias_or_version": version,
        "time_column": time_column or None,
        "period": period,
        "min_rows": int(min_rows),
        "tolerance": float(tolerance),
        "policy": policy,
    }
