"""Search spaces: the estimator parameters a tuning tries, checked, and expanded into trials.

A space maps a parameter name to what it may take: a list is a set of choices (an axis of the
grid), a mapping `{low, high, log, type}` a range (drawn by a random search only). A grid search
tries the product of the choices, its first `trials` points when it has more; a random search
draws `trials` points, seeded, so that the same space, seed and count give the same trials.
More than `MAX_TRIALS` trials are refused: a tuning that would run for days is a mistake.
"""

from __future__ import annotations

import itertools
import math
import random
import typing as T

import pydantic as pdt

Search = T.Literal["grid", "random"]
SEARCHES: tuple[str, ...] = T.get_args(Search)
# The most trials one tuning plans (a grid is cut there): more would run for days.
MAX_TRIALS = 1000
# The keys of a range, and the types a range draws.
RANGE_KEYS = ("low", "high", "log", "type")
RANGE_TYPES = ("float", "int")
# Where inside a float range its check tries a value (a fraction of the way up, irrational).
INSIDE = (math.sqrt(5) - 1) / 2 - 0.25
# The tag of a trial's training run: its number in the tuning.
TRIAL_TAG = "tuning.trial"
# What a choice may be: one value that an estimator parameter and MLflow's params take.
Scalar = str | int | float | bool | None


class Choices(pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """A parameter's choices: the grid takes each, a random search draws one per trial.

    Args:
        values: the values, at least one.
    """

    values: list[Scalar] = pdt.Field(min_length=1)

    def corners(self) -> list[Scalar]:
        """The values that a check of the estimator's rules tries: every one."""
        return list(self.values)


class Range(pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """A parameter's range, from `low` to `high` (both included), drawn by a random search.

    Args:
        low: the lowest value.
        high: the highest value, above `low`.
        log: draw on a log scale (learning rates, regularisation): `low` must be > 0.
        type: "float", or "int" for whole numbers (tree depths, iteration counts).
    """

    low: float
    high: float
    log: bool = False
    type: T.Literal["float", "int"] = "float"

    @pdt.model_validator(mode="after")
    def _ordered(self) -> Range:
        if not self.low < self.high:
            raise ValueError(f"low must be < high (got low={self.low:g}, high={self.high:g})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0 (got low={self.low:g})")
        if self.type == "int" and int(math.floor(self.high)) < int(math.ceil(self.low)):
            raise ValueError(f"no whole number between low={self.low:g} and high={self.high:g}")
        return self

    def draw(self, rng: random.Random) -> float | int:
        """One value, uniform on the range's scale (whole numbers for an int range)."""
        if self.type == "int":
            low, high = int(math.ceil(self.low)), int(math.floor(self.high))
            if self.log:
                value = math.exp(rng.uniform(math.log(low), math.log(high + 1)))
                return min(high, max(low, int(math.floor(value))))
            return rng.randint(low, high)
        if self.log:
            return math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        return rng.uniform(self.low, self.high)

    def corners(self) -> list[float | int]:
        """The values that a check of the estimator's rules tries: both ends, and inside.

        A float range gets a point inside that is no whole number too: a float range of an
        int parameter is refused before a trial draws 73.4 iterations.
        """
        if self.type == "int":
            return [int(math.ceil(self.low)), int(math.floor(self.high))]
        inside = self.low + (self.high - self.low) * INSIDE
        return [self.low, self.high] if inside.is_integer() else [self.low, self.high, inside]


Dimension = Choices | Range


class Trial(pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """One trial of a tuning: its number and the estimator parameters it tries.

    Args:
        number: 0, 1, 2... in the order planned.
        params: the parameters of the space, with the values this trial takes.
    """

    number: int = pdt.Field(ge=0)
    params: dict[str, Scalar]


class SearchSpaceError(ValueError):
    """A search space, search or trial count that cannot be planned; names the key and why."""


def parse(space: T.Mapping[str, T.Any]) -> dict[str, Dimension]:
    """The dimensions of a space as a config gives it: lists are choices, mappings ranges.

    Args:
        space: parameter name -> a list of choices, or `{low, high, log, type}`.

    Raises:
        SearchSpaceError: an empty space, or a key whose value is neither, in one line that
            names the key, its value and what is allowed.
    """
    if not isinstance(space, T.Mapping) or not space:
        raise SearchSpaceError(
            f"no parameter to search (got {space!r}); give at least one, e.g. "
            '{"max_iter": [50, 100]} or {"learning_rate": {"low": 0.01, "high": 0.3, "log": true}}'
        )
    dimensions: dict[str, Dimension] = {}
    for name, given in space.items():
        where = f"key {name!r}"
        if isinstance(given, list | tuple):
            if not given:
                raise SearchSpaceError(f"{where}: empty choices (got []); give at least one value")
            bad = [value for value in given if not isinstance(value, Scalar)]
            if bad:
                raise SearchSpaceError(
                    f"{where}: choices must be numbers, text, booleans or null (got {bad[0]!r})"
                )
            dimensions[str(name)] = Choices(values=list(given))
        elif isinstance(given, T.Mapping):
            dimensions[str(name)] = _range(where, given)
        else:
            raise SearchSpaceError(
                f"{where}: {given!r} is neither a list of choices nor a range; allowed: "
                "[a, b, ...] or {low: L, high: H, log: true|false, type: float|int}"
            )
    return dimensions


def _range(where: str, given: T.Mapping[str, T.Any]) -> Range:
    unknown = sorted(set(map(str, given)) - set(RANGE_KEYS))
    if unknown or "low" not in given or "high" not in given:
        problem = f"unknown keys {unknown}" if unknown else "low and high are required"
        raise SearchSpaceError(
            f"{where}: {dict(given)!r}: {problem}; a range takes {', '.join(RANGE_KEYS)} "
            "(low and high required)"
        )
    values = dict(given)
    for bound in ("low", "high"):
        value = values[bound]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SearchSpaceError(f"{where}: {bound} must be a number (got {value!r})")
        values[bound] = float(value)
    if "log" in values and not isinstance(values["log"], bool):
        raise SearchSpaceError(f"{where}: log must be true or false (got {values['log']!r})")
    if "type" in values and values["type"] not in RANGE_TYPES:
        raise SearchSpaceError(
            f"{where}: type {values['type']!r} is not allowed; allowed: {', '.join(RANGE_TYPES)}"
        )
    try:
        return Range(**values)
    except pdt.ValidationError as error:
        message = str(error.errors()[0]["msg"]).removeprefix("Value error, ")
        raise SearchSpaceError(f"{where}: {message}") from None


def check(
    dimensions: T.Mapping[str, Dimension], search: str, trials: int, parallelism: int = 1
) -> None:
    """Refuse a search that cannot be planned: its kind, the trial count, a grid with a range.

    Args:
        dimensions: the parsed space (`parse`).
        search: grid or random.
        trials: how many trials (a grid: its first points, at most this many).
        parallelism: how many trials run at once.

    Raises:
        SearchSpaceError: one line naming the key, its value and what is allowed.
    """
    if search not in SEARCHES:
        raise SearchSpaceError(f"search: {search!r} is not allowed; allowed: {', '.join(SEARCHES)}")
    if not 1 <= trials <= MAX_TRIALS:
        raise SearchSpaceError(f"trials: must be 1 to {MAX_TRIALS} (got {trials})")
    if parallelism < 1:
        raise SearchSpaceError(f"parallelism: must be >= 1 (got {parallelism})")
    if search == "grid" and (ranges := grid_ranges(dimensions)):
        raise SearchSpaceError(f"search: 'grid' {ranges}")


def grid_ranges(dimensions: T.Mapping[str, Dimension]) -> str:
    """Why a grid cannot search this space ("" when it can): a range has no grid points."""
    ranges = [name for name, dimension in dimensions.items() if isinstance(dimension, Range)]
    if not ranges:
        return ""
    return (
        f"takes lists of choices only, and search_space key {ranges[0]!r} is a range (give a "
        "list of choices, or use search: random)"
    )


def grid_size(dimensions: T.Mapping[str, Dimension]) -> int:
    """How many points the grid of the choices has."""
    return math.prod(len(d.values) for d in dimensions.values() if isinstance(d, Choices))


def expand(
    dimensions: T.Mapping[str, Dimension], search: str, trials: int, seed: int = 0
) -> list[Trial]:
    """The trials of a search, in order: the grid's first `trials` points, or seeded draws.

    The parameters are taken in the order of their names (the grid's last name varies fastest).

    Args:
        dimensions: the parsed space (`parse`).
        search: grid or random.
        trials: how many (a grid: its first points, at most this many).
        seed: the random search's seed.

    Raises:
        SearchSpaceError: the search cannot be planned (see `check`).
    """
    check(dimensions, search, trials)
    # By name: a mapping that went through KFP (a protobuf Struct) keeps no order, and the
    # same space must give the same trials however it arrived.
    names = sorted(dimensions)
    if search == "grid":
        axes = [T.cast(Choices, dimensions[name]).values for name in names]
        points = itertools.product(*axes)
        chosen = list(itertools.islice(points, trials))
        return [
            Trial(number=i, params=dict(zip(names, point, strict=True)))
            for i, point in enumerate(chosen)
        ]
    rng = random.Random(seed)
    drawn = []
    for number in range(trials):
        params: dict[str, Scalar] = {}
        for name in names:
            dimension = dimensions[name]
            if isinstance(dimension, Range):
                params[name] = dimension.draw(rng)
            else:
                params[name] = rng.choice(dimension.values)
        drawn.append(Trial(number=number, params=params))
    return drawn


def corners(dimensions: T.Mapping[str, Dimension]) -> T.Iterator[tuple[str, Scalar]]:
    """Every (name, value) that a check of the estimator's rules tries: choices and range ends."""
    for name, dimension in dimensions.items():
        for value in dimension.corners():
            yield name, value
