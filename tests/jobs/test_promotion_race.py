"""Two lifecycles promote versions of one model at once; the better version ends as Champion.

Against the session's real MLflow server. The jobs are driven directly, step by step, so that
every order of the two lifecycles' evaluate and promote steps can be forced: each of the six
interleavings, and the two where both promotions read the alias before either writes it (the
window that no check-then-set closes, forced by holding each write at a barrier).

Three versions are trained once: v1 (Champion, weak), a worse candidate and a better one, both
better than v1. Each scenario copies them into a fresh registered model, so that every scenario
starts from the same registry state.
"""

from __future__ import annotations

import itertools
import pathlib
import threading
import time
import types
import typing as T

import pytest
from mlflow.tracking import MlflowClient

from components.io import aliases, datasets, history, registries
from components.jobs import evaluation, promotion, training
from tests.jobs.helpers import features, run, settings, unique, with_demand

pytestmark = pytest.mark.integration

ROWS = 3000
# Boosting iterations: more is better on this data, so the order of quality is known.
ITERATIONS = {"champion": 2, "worse": 8, "better": 60}


class Trained(T.NamedTuple):
    name: str
    versions: dict[str, int]
    holdout: pathlib.Path
    common: dict[str, T.Any]
    client: MlflowClient


@pytest.fixture(scope="module")
def trained(mlflow_server, bike, tmp_path_factory) -> Trained:
    """v1 (the weak Champion), v2 (worse candidate), v3 (better candidate) of one model."""
    folder = tmp_path_factory.mktemp("race")
    data = folder / "bike.parquet"
    with_demand(bike.head(ROWS)).to_parquet(data, index=False)
    holdout = folder / "holdout.parquet"
    common = settings(mlflow_server, unique("race"))
    name = unique("race-source")
    versions = {}
    for role, iterations in ITERATIONS.items():
        result = run(
            training.TrainingJob(
                inputs=datasets.ParquetReader(path=str(data)),
                target="cnt",
                model={"KIND": "HistGradientBoostingRegressor", "params": {"max_iter": iterations}},
                model_name=name,
                holdout=datasets.ParquetWriter(path=str(holdout)),
                **features("cnt"),
                **common,
            )
        )
        versions[role] = result.model_ref.version
    return Trained(name, versions, holdout, common, common["mlflow_service"].client())


def fresh_model(trained: Trained) -> str:
    """A registered model with the three versions, v1 as Champion, nothing evaluated yet."""
    name = unique("race")
    for role in ("champion", "worse", "better"):
        source = registries.uri_for(trained.name, trained.versions[role])
        trained.client.copy_model_version(source, name)
    trained.client.set_registered_model_alias(name, "Champion", "1")
    return name


CANDIDATES = {"worse": 2, "better": 3}


def evaluate(trained: Trained, name: str, version: int):
    job = evaluation.EvaluationJob(
        inputs=datasets.ParquetReader(path=str(trained.holdout)),
        target="cnt",
        model_name=name,
        alias_or_version=version,
        **trained.common,
    )
    return run(job)


def promote(trained: Trained, name: str, version: int, settle: float = 0.0):
    job = promotion.PromotionJob(
        model_name=name,
        version=version,
        inputs=datasets.ParquetReader(path=str(trained.holdout)),
        target="cnt",
        settle_seconds=settle,
        **trained.common,
    )
    return run(job)


def champion(trained: Trained, name: str) -> str:
    return trained.client.get_registered_model(name).aliases["Champion"]


def interleavings() -> list[tuple[str, ...]]:
    """Every order of (evaluate, promote) of both candidates, each evaluate before its promote."""
    steps = ["evaluate:worse", "promote:worse", "evaluate:better", "promote:better"]
    return [
        order
        for order in itertools.permutations(steps)
        if order.index("evaluate:worse") < order.index("promote:worse")
        and order.index("evaluate:better") < order.index("promote:better")
    ]


@pytest.mark.parametrize("order", interleavings(), ids=lambda order: ",".join(order))
def test_the_better_version_ends_as_champion_in_every_interleaving(trained, order):
    name = fresh_model(trained)
    passed: dict[str, bool] = {}
    served: dict[str, T.Any] = {}
    for step in order:
        action, role = step.split(":")
        version = CANDIDATES[role]
        if action == "evaluate":
            passed[role] = evaluate(trained, name, version).passed
        elif passed[role]:  # as the pipeline does: promote only a version that passed
            served[role] = promote(trained, name, version)
    assert champion(trained, name) == str(CANDIDATES["better"]), order
    # The better version always passes: it beats v1 and the worse one.
    assert passed["better"] is True
    assert served["better"].served_ref.version == CANDIDATES["better"]
    if "worse" in served and served["worse"].promoted is False:
        # It lost to the better version, promoted after its evaluation: served, and said why.
        assert served["worse"].served_ref.version == CANDIDATES["better"]
        assert "is worse than the Champion" in served["worse"].reason
        tags = trained.client.get_model_version(name, "2").tags
        assert tags[registries.CHAMPION_TAG] == "3"
    # The history holds one entry per move, chained, and ends at the Champion.
    moves = history.entries(trained.client, name)
    promoted = [outcome for outcome in served.values() if outcome.promoted]
    assert len(moves) == len(promoted)
    assert moves[-1].to_version == CANDIDATES["better"]
    assert all(a.to_version == b.from_version for a, b in zip(moves, moves[1:], strict=False))


class HeldWrites:
    """Hold each alias write until both promotions have read the alias, then let them write in
    a given order: the interleaving read, read, write, write, forced."""

    def __init__(self, name: str, order: list[str]):
        self.name, self.order = name, order
        self.barrier = threading.Barrier(2, timeout=60)
        self.turn = threading.Condition()
        self.written: list[str] = []
        self.original = MlflowClient.set_registered_model_alias

    def __call__(self, client, name, alias, version):
        if name != self.name or version in self.written or len(self.written) >= 2:
            return self.original(client, name, alias, version)
        self.barrier.wait()  # both have read the alias (and found v1)
        with self.turn:
            self.turn.wait_for(lambda: self.order[len(self.written)] == version, timeout=60)
            self.original(client, name, alias, version)
            self.written.append(version)
            self.turn.notify_all()
        return None


@pytest.mark.parametrize("last", ["worse", "better"])
def test_concurrent_promotions_that_both_read_v1_leave_the_better_as_champion(
    trained, monkeypatch, last
):
    name = fresh_model(trained)
    for role in CANDIDATES:
        assert evaluate(trained, name, CANDIDATES[role]).passed, role
    first = "better" if last == "worse" else "worse"
    held = HeldWrites(name, [str(CANDIDATES[first]), str(CANDIDATES[last])])
    # A function, so that it binds to each client as the method does.
    monkeypatch.setattr(
        MlflowClient, "set_registered_model_alias", lambda client, *args: held(client, *args)
    )
    outcomes: dict[str, T.Any] = {}

    def promote_in_thread(role: str) -> None:
        try:
            outcomes[role] = promote(trained, name, CANDIDATES[role], settle=1.0)
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            outcomes[role] = error

    threads = [threading.Thread(target=promote_in_thread, args=(role,)) for role in CANDIDATES]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert held.written[:2] == held.order, "the writes were not forced in order"
    assert not [o for o in outcomes.values() if isinstance(o, BaseException)], outcomes
    assert champion(trained, name) == str(CANDIDATES["better"])
    # Each promotion that kept the alias recorded its move: none was lost to the other.
    recorded = {move.to_version for move in history.entries(trained.client, name)}
    kept = {o.model_ref.version for o in outcomes.values() if o.promoted}
    assert CANDIDATES["better"] in recorded and kept <= recorded
    if last == "worse":
        # The worse one wrote last, over the better one: the better one saw it and took back
        # the alias after comparing the two again.
        assert outcomes["better"].promoted is True
        assert trained.client.get_model_version(name, "3").tags[registries.CHAMPION_TAG] == "2"
    else:
        # The worse one wrote first and was overwritten: it saw that after the settle, compared
        # itself with the better one, and says it is not served.
        assert outcomes["worse"].promoted is False
        assert outcomes["worse"].served_ref.version == CANDIDATES["better"]
        assert "is worse than the Champion" in outcomes["worse"].reason


def test_without_held_out_rows_a_moved_champion_is_refused_naming_both_versions(trained):
    name = fresh_model(trained)
    assert evaluate(trained, name, CANDIDATES["worse"]).passed
    trained.client.set_registered_model_alias(name, "Champion", "3")  # promoted meanwhile
    job = promotion.PromotionJob(model_name=name, version=2, settle_seconds=0, **trained.common)
    with pytest.raises(promotion.PromotionError) as caught:
        run(job)
    message = str(caught.value)
    assert "evaluated against v1" in message and f"{name} v3" in message, message
    assert champion(trained, name) == "3"


def in_flight_marks(trained: Trained, name: str) -> dict[str, str]:
    tags = trained.client.get_registered_model(name).tags
    return {k: v for k, v in tags.items() if k.startswith(aliases.IN_FLIGHT_PREFIX)}


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    """The promotion's waits, recorded instead of slept."""
    waited: list[float] = []
    clock = types.SimpleNamespace(time=time.time, sleep=waited.append)
    monkeypatch.setattr(aliases, "time", clock)  # the module's, not everyone's
    return waited


def test_a_lone_promotion_moves_the_alias_without_waiting_and_leaves_no_mark(trained, sleeps):
    name = fresh_model(trained)
    assert evaluate(trained, name, CANDIDATES["better"]).passed
    outcome = promote(trained, name, CANDIDATES["better"], settle=30.0)
    assert outcome.promoted is True and champion(trained, name) == "3"
    assert sleeps == []
    assert in_flight_marks(trained, name) == {}


def test_a_promotion_waits_only_for_another_in_flight_and_clears_dead_marks(trained, sleeps):
    name = fresh_model(trained)
    assert evaluate(trained, name, CANDIDATES["better"]).passed
    alive, dead = f"{aliases.IN_FLIGHT_PREFIX}alive", f"{aliases.IN_FLIGHT_PREFIX}dead"
    trained.client.set_registered_model_tag(name, alive, f"{time.time():.3f}")
    stale = time.time() - aliases.IN_FLIGHT_STALE_SECONDS - 60
    trained.client.set_registered_model_tag(name, dead, f"{stale:.3f}")
    outcome = promote(trained, name, CANDIDATES["better"], settle=30.0)
    assert outcome.promoted is True and champion(trained, name) == "3"
    assert sleeps == [30.0]  # for the live one
    # The dead promotion's mark is gone, the live one's is its own to remove, this one's gone.
    assert list(in_flight_marks(trained, name)) == [alive]
