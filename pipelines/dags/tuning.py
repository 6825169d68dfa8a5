"""Pipeline `tuning`: trials in parallel -> the best registered -> evaluate -> promote, an alert."""

import typing as T

from kfp import dsl
from kfp.dsl import PipelineTask
from kfp.dsl.graph_component import GraphComponent

import components as c
from pipelines.dags import defaults
from pipelines.dags.descriptions import described
from pipelines.dags.settings import Settings
from pipelines.dags.training import add_notify, add_promotion, train_inputs


def add_tuning(settings: Settings, **params: T.Any) -> tuple[PipelineTask, PipelineTask]:
    """Add plan, one training per trial (ParallelFor), select; return plan and select.

    The plan checks the search space and lists the trials; each trial is the train step with
    the trial's parameters merged over `model_params`, registering nothing (it logs its model
    on its own MLflow run); select ranks the trials once every one has ended (`dsl.Collected`),
    registers the best trial's model as a new version and outputs what evaluate and promote
    take from a train step (`model`, `holdout`, `version`).

    Args:
        settings: the cluster settings of the steps (`trial_parallelism`: trial pods at once).
        **params: the pipeline's tuning parameters, by name.
    """
    run_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER
    experiment = params["experiment"]
    plan = c.plan_trials(
        search_space=params["search_space"],
        model_kind=params["model_kind"],
        model_params=params["model_params"],
        search=params["search"],
        trials=params["trials"],
        parallelism=params["parallelism"],
        compiled_parallelism=settings.trial_parallelism,
        metric=params["metric"],
        seed=params["seed"],
        experiment=experiment,
        run_id=run_id,
    )
    settings.configure(plan, "plan", "Plan the trials")
    # KFP takes a loop's limit when it compiles: a pipeline parameter cannot set it.
    with dsl.ParallelFor(
        plan.outputs["Output"], name="trials", parallelism=settings.trial_parallelism
    ) as trial:
        train = c.train(
            **train_inputs(params),
            experiment=experiment,
            run_id=run_id,
            trial=trial,
            register=False,
        )
        settings.configure(train, "train", "Train a trial")
    select = c.select_trial(
        model_name=params["model_name"],
        trial_models=dsl.Collected(train.outputs["model"]),
        trial_holdouts=dsl.Collected(train.outputs["holdout"]),
        metric=params["metric"],
        experiment=experiment,
        run_id=run_id,
    )
    settings.configure(select, "select", "Register the best trial")
    return plan, select


def add_tuning_and_promotion(settings: Settings, **params: T.Any) -> PipelineTask:
    """Add the tuning, evaluate the best trial's version, and promote it when it passed.

    Args:
        settings: the cluster settings of the steps.
        **params: the pipeline's parameters, by name.

    Returns:
        The evaluate task.
    """
    _, select = add_tuning(settings, **params)
    evaluate = c.evaluate(
        target=params["target"],
        holdout=select.outputs["holdout"],
        model=select.outputs["model"],
        thresholds=params["thresholds"],
        tolerance=params["tolerance"],
        experiment=params["experiment"],
        run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
    )
    settings.configure(evaluate, "evaluate", "Evaluate against the Champion")
    # `passed` is evaluate's return value ("Output"): kfp.local (2.17) resolves no other
    # output name in a condition without an Else branch; a cluster resolves any.
    with dsl.If(evaluate.outputs["Output"] == True, name="passed"):  # noqa: E712
        add_promotion(settings, select, **params)
    return evaluate


def build(settings: Settings) -> GraphComponent:
    """Build the tuning pipeline with the given cluster settings.

    Args:
        settings: the cluster settings of the steps.
    """

    @dsl.pipeline(  # type: ignore[untyped-decorator]
        name="tuning",
        description="Search estimator parameters: train one trial per point of a search space "
        "(grid or random) in parallel, register the best trial by a holdout metric, evaluate "
        "it against thresholds and the Champion, and promote it when it passes. Alerts Slack "
        "at the end.",
    )
    @described()
    def tuning(
        data: str,
        target: str,
        model_name: str,
        search_space: dict,  # type: ignore[type-arg]
        search: str = defaults.SEARCH,
        trials: int = defaults.TRIALS,
        parallelism: int = defaults.TRIAL_PARALLELISM,
        metric: str = defaults.TUNING_METRIC,
        seed: int = defaults.SEED,
        model_kind: str = defaults.MODEL_KIND,
        model_params: dict = {},  # type: ignore[type-arg]  # noqa: B006 - a KFP default
        trusted_types: list = [],  # type: ignore[type-arg]  # noqa: B006
        features: list = [],  # type: ignore[type-arg]  # noqa: B006
        categorical: list = [],  # type: ignore[type-arg]  # noqa: B006
        exclude: list = [],  # type: ignore[type-arg]  # noqa: B006
        time_column: str = "",
        test_size: float = defaults.TEST_SIZE,
        reader: dict = {},  # type: ignore[type-arg]  # noqa: B006
        thresholds: dict = {},  # type: ignore[type-arg]  # noqa: B006
        tolerance: float = defaults.TOLERANCE,
        promotion: str = defaults.PROMOTION,
        experiment: str = defaults.EXPERIMENT,
        ui_base_url: str = "",
    ) -> None:
        """Tune, evaluate and promote a model."""
        exit_task = add_notify(settings, "tuning", experiment, ui_base_url)
        with dsl.ExitHandler(exit_task, name="tuning"):
            add_tuning_and_promotion(
                settings, data=data, target=target, model_name=model_name,
                search_space=search_space, search=search, trials=trials,
                parallelism=parallelism, metric=metric, seed=seed, reader=reader,
                model_kind=model_kind, model_params=model_params, features=features,
                categorical=categorical, exclude=exclude, time_column=time_column,
                test_size=test_size, thresholds=thresholds, tolerance=tolerance,
                promotion=promotion, experiment=experiment, trusted_types=trusted_types,
            )  # fmt: skip

    return tuning
