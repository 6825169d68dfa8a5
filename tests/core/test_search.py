"""Search spaces: parsed, checked and expanded into trials, and refused in one line when wrong."""

from __future__ import annotations

import math

import pytest

from components.core import search

SPACE = {
    "max_iter": [50, 100],
    "learning_rate": {"low": 0.01, "high": 0.3, "log": True},
    "max_depth": {"low": 3, "high": 8, "type": "int"},
}


def test_a_grid_is_the_product_of_the_choices_cut_at_trials():
    dimensions = search.parse({"b": ["x", "y", "z"], "a": [1, 2]})
    every = search.expand(dimensions, "grid", 10)
    # By name (a, then b), the last name varying fastest: however the mapping was ordered.
    assert [t.params for t in every] == [{"a": a, "b": b} for a in (1, 2) for b in ("x", "y", "z")]
    assert [t.number for t in every] == list(range(6))
    assert [t.params for t in search.expand(dimensions, "grid", 4)] == [t.params for t in every[:4]]


def test_a_random_search_draws_within_the_ranges_the_same_way_for_a_seed():
    dimensions = search.parse(SPACE)
    trials = search.expand(dimensions, "random", 50, seed=7)
    assert len(trials) == 50
    for trial in trials:
        assert trial.params["max_iter"] in (50, 100)
        assert 0.01 <= trial.params["learning_rate"] <= 0.3
        assert isinstance(trial.params["max_depth"], int) and 3 <= trial.params["max_depth"] <= 8
    assert {t.params["max_depth"] for t in trials} == set(range(3, 9))
    # Log scale: about as many draws below the geometric middle as above it.
    middle = math.sqrt(0.01 * 0.3)
    assert 15 <= sum(t.params["learning_rate"] < middle for t in trials) <= 35
    reordered = search.parse(dict(reversed(list(SPACE.items()))))
    assert search.expand(reordered, "random", 50, seed=7) == trials
    assert search.expand(dimensions, "random", 50, seed=8) != trials


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({}, "no parameter to search"),
        ({"max_iter": []}, "key 'max_iter': empty choices"),
        ({"max_iter": [[1, 2]]}, "key 'max_iter': choices must be numbers"),
        ({"max_iter": 50}, "key 'max_iter': 50 is neither a list of choices nor a range"),
        ({"lr": {"low": 0.3, "high": 0.01}}, "key 'lr': low must be < high (got low=0.3, "
                                             "high=0.01)"),
        ({"lr": {"low": 0.1, "high": 0.1}}, "key 'lr': low must be < high"),
        ({"lr": {"low": 0, "high": 1, "log": True}}, "key 'lr': a log range needs low > 0 "
                                                     "(got low=0)"),
        ({"lr": {"low": -1, "high": 1, "log": True}}, "a log range needs low > 0"),
        ({"lr": {"high": 1}}, "key 'lr': {'high': 1}: low and high are required"),
        ({"lr": {"low": 0, "high": 1, "step": 2}}, "unknown keys ['step']"),
        ({"lr": {"low": "a", "high": 1}}, "key 'lr': low must be a number (got 'a')"),
        ({"lr": {"low": 0, "high": 1, "log": "yes"}}, "log must be true or false"),
        ({"d": {"low": 1, "high": 2, "type": "str"}}, "type 'str' is not allowed; allowed: "
                                                      "float, int"),
        ({"d": {"low": 1.2, "high": 1.8, "type": "int"}}, "no whole number between"),
    ],
)  # fmt: skip
def test_a_bad_space_is_refused_naming_the_key_the_value_and_what_is_allowed(space, message):
    with pytest.raises(search.SearchSpaceError) as refused:
        search.parse(space)
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize(
    ("kind", "trials", "parallelism", "message"),
    [
        ("grid", 4, 1, "search: 'grid' takes lists of choices only, and search_space key "
                       "'learning_rate' is a range"),
        ("optimal", 4, 1, "search: 'optimal' is not allowed; allowed: grid, random"),
        ("random", 0, 1, "trials: must be 1 to 1000 (got 0)"),
        ("random", search.MAX_TRIALS + 1, 1, "trials: must be 1 to 1000 (got 1001)"),
        ("random", 4, 0, "parallelism: must be >= 1 (got 0)"),
    ],
)  # fmt: skip
def test_a_search_that_cannot_be_planned_is_refused(kind, trials, parallelism, message):
    with pytest.raises(search.SearchSpaceError, match="") as refused:
        search.check(search.parse(SPACE), kind, trials, parallelism)
    assert message in str(refused.value)


def test_the_checked_values_are_every_choice_and_both_ends_and_a_fraction_inside():
    checked = list(search.corners(search.parse(SPACE)))
    assert ("max_iter", 50) in checked and ("max_iter", 100) in checked
    assert ("max_depth", 3) in checked and ("max_depth", 8) in checked
    rates = [value for name, value in checked if name == "learning_rate"]
    assert rates[:2] == [0.01, 0.3] and 0.01 < rates[2] < 0.3
