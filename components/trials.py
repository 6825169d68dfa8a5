"""Component `plan_trials`: check a tuning's search space and plan the trials to fan out over."""

from typing import Optional

from kfp import dsl

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def plan_trials(
    search_space: dict,
    model_kind: str = "HistGradientBoostingRegressor",
    model_params: Optional[dict] = None,
    search: str = "random",
    trials: int = 10,
    parallelism: int = 2,
    compiled_parallelism: int = 0,
    metric: str = "",
    seed: int = 0,
    experiment: str = "model-lifecycle",
    run_id: str = "",
) -> list:
    """Check the search space against the estimator and plan the trials of a tuning.

    Args:
        search_space: Estimator parameters to search: a list of choices (a grid axis), or a
            range {"low": 0.01, "high": 0.3, "log": true, "type": "float"} (random search only).
        model_kind: The estimator, as for train; its task decides which metrics rank trials.
        model_params: Estimator parameters every trial starts from; a trial's are merged over.
        search: grid (the product of the choices, its first `trials` points) or random
            (`trials` seeded draws).
        trials: How many trials.
        parallelism: How many trials run at once.
        compiled_parallelism: How many the pipeline's loop lets run at once (set when the
            pipeline is compiled); a different `parallelism` is reported.
        metric: Holdout metric that ranks the trials (test_rmse, test_r2, test_f1_macro...);
            empty: the task's primary one.
        seed: Seed of the random search.
        experiment: MLflow experiment of the planning run.
        run_id: Pipeline run id, recorded on the MLflow run (set by the pipeline).

    Returns:
        Output: The trials, each {"number": n, "params": {...}}, to fan out over.
    """
    from components import fields, steps
    from components.jobs.trials import TrialPlanningJob

    # The one mapping of this step's inputs to its job, also the pre-run check's.
    result = steps.run_step(
        TrialPlanningJob, "plan-trials", experiment, run_id, fields.plan_trials_fields,
        search_space=search_space, model_kind=model_kind, model_params=model_params,
        search=search, trials=trials, parallelism=parallelism,
        compiled_parallelism=compiled_parallelism, metric=metric, seed=seed,
    )  # fmt: skip
    return list(result.trials)
