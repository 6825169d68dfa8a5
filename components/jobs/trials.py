"""Trial planning job: check a tuning's search space against the estimator, plan its trials."""

from __future__ import annotations

import json
import logging
import typing as T

import mlflow
import pydantic as pdt

from components.core import metrics, models, results
from components.core import search as spaces  # the field `search` hides the module in the class
from components.jobs import base

logger = logging.getLogger(__name__)


class TrialPlanningJob(base.Job, frozen=True):
    """Plan the trials of a tuning: each one the estimator parameters a training tries.

    Everything is checked when the job is built, so that a pipeline's pre-run check refuses
    what the step would: the space's shape (`core.search`), every key and value of it against
    the estimator as `model_params` are checked (a name it does not take is named with the
    closest ones it does), the search, the counts and the metric for the model's task.

    Args:
        model: the model kind and the `model_params` every trial starts from (a trial's
            parameters are merged over them).
        search_space: parameter name -> a list of choices, or a range `{low, high, log, type}`.
        search: grid (the product of the choices, its first `trials` points) or random
            (`trials` seeded draws).
        trials: how many trials.
        parallelism: how many trials run at once.
        compiled_parallelism: how many the pipeline's loop lets run at once (KFP sets it when
            the pipeline is compiled; 0: not known).
        metric: the holdout metric the trials are ranked by (`test_rmse`, or `rmse`); empty:
            the task's primary one (`metrics.PRIMARY`).
        seed: the random search's seed.
    """

    KIND: T.Literal["TrialPlanningJob"] = "TrialPlanningJob"
    model: models.ModelKind = pdt.Field(default_factory=models.HistGradientBoostingRegressorModel)
    search_space: dict[str, T.Any]
    search: str = "random"
    trials: int = pdt.Field(default=10, ge=1, le=spaces.MAX_TRIALS)
    parallelism: int = pdt.Field(default=2, ge=1)
    compiled_parallelism: int = pdt.Field(default=0, ge=0)
    metric: str = pdt.Field(default="", validate_default=True)
    seed: int = 0

    @pdt.field_validator("search_space")
    @classmethod
    def _space_suits_the_estimator(
        cls, space: dict[str, T.Any], info: pdt.ValidationInfo
    ) -> dict[str, T.Any]:
        """Refuse a space of the wrong shape, or a key or value the estimator refuses."""
        dimensions = spaces.parse(space)
        model = info.data.get("model")
        if model is None:  # the model was refused: its own error says why
            return space
        for name, value in spaces.corners(dimensions):
            try:
                type(model).model_validate({**dict(model), "params": {**model.params, name: value}})
            except pdt.ValidationError as error:
                reason = str(error.errors()[0]["msg"]).removeprefix("Value error, ")
                raise ValueError(f"key {name!r} = {value!r}: {reason}") from None
        return space

    @pdt.field_validator("search")
    @classmethod
    def _search_suits_the_space(cls, kind: str, info: pdt.ValidationInfo) -> str:
        if kind not in spaces.SEARCHES:
            raise ValueError(f"{kind!r} is not allowed; allowed: {', '.join(spaces.SEARCHES)}")
        space = info.data.get("search_space")
        why = spaces.grid_ranges(spaces.parse(space)) if kind == "grid" and space else ""
        if why:
            raise ValueError(f"a grid search {why}")
        return kind

    @pdt.field_validator("metric")
    @classmethod
    def _metric_of_the_task(cls, metric: str, info: pdt.ValidationInfo) -> str:
        model = info.data.get("model")
        if model is None:
            return metric
        return metrics.holdout_metric(model.TASK, metric)

    def run(self) -> results.TrialPlan:
        """Expand the space into trials, record the plan on the job's run, return it."""
        dimensions = spaces.parse(self.search_space)
        # Expand: the grid's first points, or seeded draws.
        planned = spaces.expand(dimensions, self.search, self.trials, self.seed)
        grid_points = spaces.grid_size(dimensions)
        warnings = []
        if (
            self.search == "grid"
            and grid_points > len(planned)
            and not spaces.grid_ranges(dimensions)
        ):
            warnings.append(f"the grid has {grid_points} points: trying the first {len(planned)}")
        if self.compiled_parallelism and self.compiled_parallelism != self.parallelism:
            # KFP fixes a loop's limit when it compiles the pipeline: a cluster's run keeps it.
            warnings.append(
                f"parallelism {self.parallelism} asked, but the pipeline was compiled with "
                f"{self.compiled_parallelism}: at most {self.compiled_parallelism} trials run at "
                "once (compile it with another value to change that)"
            )
        for warning in warnings:
            logger.warning(warning)
        self.warn(warnings)
        # Record the plan where people look for the tuning: its run, nested in the pipeline's.
        mlflow.log_params(
            {
                "search": self.search,
                "trials": len(planned),
                "metric": self.metric,
                "seed": self.seed,
                "parallelism": self.parallelism,
            }
        )
        trials = [trial.model_dump() for trial in planned]
        mlflow.log_text(
            json.dumps({"search_space": self.search_space, "trials": trials}, indent=2),
            "tuning/trials.json",
        )
        logger.info("%d %s trials of %s", len(trials), self.search, ", ".join(sorted(dimensions)))
        names = ", ".join(sorted(dimensions))
        self.alerter.notify(
            title=f"{self.KIND} succeeded",
            message=f"Planned {len(trials)} {self.search} trials of {names}.",
        )
        return results.TrialPlan(
            search=self.search,
            trials=trials,
            grid_points=grid_points,
            metric=self.metric,
            mode=metrics.direction(self.metric),
            parallelism=self.parallelism,
            warnings=warnings,
        )
