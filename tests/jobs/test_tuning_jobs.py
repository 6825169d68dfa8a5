"""The tuning's planning job: the search space checked against the estimator when it is built."""

from __future__ import annotations

import pydantic as pdt
import pytest

from components.io import alerts
from components.jobs.trials import TrialPlanningJob

BASE = {"model": {"KIND": "HistGradientBoostingRegressor"}, "alerter": alerts.ConsoleAlerter()}
SPACE = {"max_iter": [50, 100], "learning_rate": {"low": 0.01, "high": 0.3, "log": True}}


@pytest.mark.parametrize(
    ("fields", "where", "message"),
    [
        ({"search_space": {"max_dpth": [3]}}, "search_space",
         "key 'max_dpth' = 3: unknown parameter 'max_dpth' (did you mean: max_depth"),
        ({"search_space": {"max_depth": {"low": 0, "high": 4, "type": "int"}}}, "search_space",
         "key 'max_depth' = 0: The 'max_depth' parameter of HistGradientBoostingRegressor must be"),
        ({"search_space": {"max_iter": {"low": 10, "high": 100}}}, "search_space",
         "key 'max_iter' = "),  # a float range of an int parameter: 10 + 90 * 0.368 iterations
        ({"search_space": {"loss": ["squared_error", "cubic"]}}, "search_space",
         "key 'loss' = 'cubic'"),
        ({"search_space": {"max_iter": []}}, "search_space", "key 'max_iter': empty choices"),
        ({"search_space": SPACE, "search": "grid"}, "search",
         "a grid search takes lists of choices only, and search_space key 'learning_rate'"),
        ({"search_space": SPACE, "search": "bayes"}, "search", "'bayes' is not allowed"),
        ({"search_space": SPACE, "trials": 0}, "trials", "greater than or equal to 1"),
        ({"search_space": SPACE, "parallelism": 0}, "parallelism", "greater than or equal to 1"),
        ({"search_space": SPACE, "metric": "test_f1_macro"}, "metric",
         "'test_f1_macro' is not a metric of a regression model; allowed: test_rmse, test_mae"),
        ({"search_space": SPACE, "metric": "test_rsme"}, "metric", "allowed: test_rmse"),
    ],
)  # fmt: skip
def test_the_plan_refuses_what_a_trial_would_fail_on(fields, where, message):
    with pytest.raises(pdt.ValidationError) as refused:
        TrialPlanningJob(**BASE, **fields)
    first = refused.value.errors()[0]
    assert first["loc"] == (where,)
    assert message in first["msg"]


def test_the_metric_defaults_to_the_tasks_primary_one():
    assert TrialPlanningJob(**BASE, search_space=SPACE).metric == "test_rmse"
    classifier = {**BASE, "model": {"KIND": "LGBMClassifier"}}
    assert TrialPlanningJob(**classifier, search_space={"num_leaves": [8]}).metric == (
        "test_f1_macro"
    )


def test_the_metric_is_taken_by_either_name():
    job = TrialPlanningJob(**BASE, search_space=SPACE, metric="r2", trials=4)
    assert job.metric == "test_r2"
    classifier = {**BASE, "model": {"KIND": "HistGradientBoostingClassifier"}}
    assert TrialPlanningJob(**classifier, search_space=SPACE, metric="f1_macro").metric == (
        "test_f1_macro"
    )


def test_a_choice_the_estimator_refuses_is_named_beside_the_model_params():
    # The model_params given are kept; the choice the estimator refuses is the one named.
    with pytest.raises(pdt.ValidationError) as refused:
        TrialPlanningJob(
            **{**BASE, "model": {"KIND": "HistGradientBoostingRegressor",
                                 "params": {"early_stopping": True}}},
            search_space={"validation_fraction": [0.1, 0.0]},
        )  # fmt: skip
    assert "key 'validation_fraction' = 0.0" in refused.value.errors()[0]["msg"]
