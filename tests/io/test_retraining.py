"""The retraining policy against a real MLflow server: triggers, one start per period, races.

The trainer here is a user's trainer class (by import path), started as any trainer is, in an
interpreter of its own; it records what it was asked to start in a file instead of starting a
pipeline: the ledger and the decision are what is tested. The real `LocalTrainer`, starting a
real training run from an inference run's alert step, is tested in
tests/pipelines/test_local_runs.py.
"""

from __future__ import annotations

import json
import pathlib
import threading
import time
import typing as T
import uuid

import pytest
from mlflow import MlflowClient

from components.io import retraining
from pipelines.checks import params
from pipelines.jobs import backends
from tests.pipelines.kfp_api_server import FakeKfpApiServer, isolate_kfp_client

DRIFTED = {"task": "predict", "kind": "InferenceJob", "status": "FINISHED", "model_name": ""}


class Started:
    """What a trainer returns: a handle with the job's id."""

    def __init__(self, id: str):
        self.id = id


class RecordingTrainer(backends.Trainer, frozen=True):
    """Records each training it is asked to start, one JSON line in `record`; fails when
    `fail` is set."""

    KIND: T.Literal["RecordingTrainer"] = "RecordingTrainer"
    record: str
    fail: bool = False

    def declared(self, pipeline: str) -> dict[str, params.Parameter]:
        return params.of_pipeline(pipeline)

    def _start(self, pipeline: str, values: dict[str, T.Any]) -> T.Any:
        if self.fail:
            raise RuntimeError("the cluster said no")
        with open(self.record, "a") as record:
            record.write(json.dumps({"pipeline": pipeline, **values}) + "\n")
        return Started(f"recorded:{len(started(self.record))}")

    def get_future(self, job_id: str) -> T.Any:
        raise NotImplementedError


def started(record: str | pathlib.Path) -> list[dict[str, T.Any]]:
    """What the recording trainer was asked to start."""
    path = pathlib.Path(record)
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


TRAINING = {"data": "demo://bike-sharing/hour.parquet", "target": "cnt"}


@pytest.fixture
def record(tmp_path) -> pathlib.Path:
    """Where this test's recording trainer writes what it started."""
    return tmp_path / "started.jsonl"


@pytest.fixture
def model(mlflow_server) -> tuple[MlflowClient, str]:
    client = MlflowClient(mlflow_server, registry_uri=mlflow_server)
    name = f"retrained-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name)
    return client, name


def steps(name: str, **metrics: float) -> list[dict[str, T.Any]]:
    return [{**DRIFTED, "model_name": name, "metrics": metrics}]


def policy(record: pathlib.Path = pathlib.Path("unused"), **fields: T.Any) -> T.Any:
    trainer = {"type": f"{__name__}:RecordingTrainer", "config": {"record": str(record)}}
    return retraining.RetrainingPolicy(**{"trainer": trainer, "parameters": TRAINING, **fields})


def test_the_triggers_are_read_from_what_the_steps_recorded():
    found = [
        {"task": "predict", "metrics": {"drift_dataset_drift": 1.0, "estimated_degraded": 1.0}},
        {"task": "monitor", "metrics": {"realized_degraded": 1.0, "drift_dataset_drift": 0.0}},
    ]
    assert retraining.fired(policy(), found) == [
        "the batch drifted (predict)",
        "the estimated performance degraded (predict)",
        "the realized performance degraded (monitor)",
    ]
    assert retraining.fired(policy(on=["labels"]), found) == [
        "the realized performance degraded (monitor)"
    ]
    quiet = [{"task": "predict", "metrics": {"drift_dataset_drift": 0.0}}]
    assert retraining.fired(policy(), quiet) == []
    assert retraining.apply(policy(), None, quiet, "run-1", "exp") is None


def test_one_training_starts_per_period_and_the_claim_records_it(model, record):
    client, name = model
    drifted = steps(name, drift_dataset_drift=1.0)
    first = retraining.apply(policy(record), client, drifted, "run-1", "exp", settle_seconds=0.1)
    assert first is not None and first.job == "recorded:1"
    assert first.line.startswith(
        f"Retraining: started job recorded:1, training {name} (the batch drifted (predict)); "
        "the next no sooner than "
    )
    expected = {"pipeline": "training", "model_name": name, "experiment": "exp", **TRAINING}
    assert started(record) == [expected]
    # The claim stays on the registered model as the record of the start.
    tags = client.get_registered_model(name).tags
    claimed = json.loads(tags[retraining.claim_key("run-1")])
    assert claimed["run"] == "run-1" and claimed["job"] == "recorded:1"
    assert claimed["reason"] == "the batch drifted (predict)"
    # Another run within the period: due, not started, and says which job holds the period.
    degraded = steps(name, estimated_degraded=1.0)
    second = retraining.apply(policy(record), client, degraded, "run-2", "exp", settle_seconds=0.1)
    assert second is not None and second.job == ""
    assert second.line.startswith(
        "Retraining: due (the estimated performance degraded (predict)), not started: "
        "job recorded:1 started one at "
    )
    assert second.line.endswith("UTC, within the 24 h period")
    assert len(started(record)) == 1
    assert set(client.get_registered_model(name).tags) == {retraining.claim_key("run-1")}


def test_a_claim_past_its_period_is_removed_and_a_new_training_may_start(model, record):
    client, name = model
    old = retraining.Claim(run="run-0", at=time.time() - 3 * 3600, job="recorded:0")
    client.set_registered_model_tag(name, retraining.claim_key("run-0"), old.to_tag())
    drifted = steps(name, drift_dataset_drift=1.0)
    two_hours = policy(record, period_hours=2)
    outcome = retraining.apply(two_hours, client, drifted, "run-1", "exp", settle_seconds=0.1)
    assert outcome is not None and outcome.job == "recorded:1"
    assert set(client.get_registered_model(name).tags) == {retraining.claim_key("run-1")}


def test_two_runs_that_fire_at_once_start_one_training(model, record):
    client, name = model
    outcomes: dict[str, retraining.Outcome | None] = {}

    def fire(run: str) -> None:
        drifted = steps(name, drift_dataset_drift=1.0)
        outcomes[run] = retraining.apply(
            policy(record), client, drifted, run, "exp", settle_seconds=1.0
        )

    threads = [threading.Thread(target=fire, args=(f"run-{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    begun = [o for o in outcomes.values() if o is not None and o.job]
    assert len(begun) == 1 and len(started(record)) == 1
    held = [o for o in outcomes.values() if o is not None and not o.job]
    assert len(held) == 2 and all("not started" in o.line for o in held)
    assert len(client.get_registered_model(name).tags) == 1  # the others removed their claims


def test_a_start_that_fails_says_why_and_leaves_the_period_free(model, record):
    client, name = model
    drifted = steps(name, drift_dataset_drift=1.0)
    failing = policy(record)
    failing = failing.model_copy(
        update={"trainer": {**failing.trainer, "config": {"record": str(record), "fail": True}}}
    )
    outcome = retraining.apply(failing, client, drifted, "run-1", "exp", settle_seconds=0.1)
    assert outcome is not None and outcome.job == ""
    assert outcome.line == (
        "Retraining: could not start (the batch drifted (predict)): "
        "RuntimeError: the cluster said no"
    )
    assert client.get_registered_model(name).tags == {}
    again = retraining.apply(policy(record), client, drifted, "run-2", "exp", settle_seconds=0.1)
    assert again is not None and again.job == "recorded:1"


def test_a_trainer_that_cannot_be_built_says_so(model):
    client, name = model
    unknown = policy(trainer={"type": "LocalTrainr"})
    drifted = steps(name, drift_dataset_drift=1.0)
    outcome = retraining.apply(unknown, client, drifted, "run-1", "exp", settle_seconds=0.1)
    assert outcome is not None and outcome.line.startswith(
        "Retraining: could not start (the batch drifted (predict)): FactoryError: unknown "
        "trainer type 'LocalTrainr' (did you mean: LocalTrainer?)"
    )
    assert client.get_registered_model(name).tags == {}


def test_no_training_when_the_run_trained_itself_or_served_no_registered_model(model, record):
    client, name = model
    trained = [
        {"task": "train", "kind": "TrainingJob", "status": "FINISHED", "model_name": name},
        *steps(name, drift_dataset_drift=1.0),
    ]
    outcome = retraining.apply(policy(record), client, trained, "run-1", "exp")
    assert outcome is not None
    assert outcome.line == (
        f"Retraining: not started (the batch drifted (predict)): this run trained {name} itself"
    )
    by_uri = steps("", drift_dataset_drift=1.0)
    outcome = retraining.apply(policy(record), client, by_uri, "run-1", "exp")
    assert outcome is not None and "served no one registered model (found: none)" in outcome.line
    assert started(record) == [] and client.get_registered_model(name).tags == {}


def test_a_policy_is_checked_field_by_field():
    assert policy(trainer="LocalTrainer").trainer == {"type": "LocalTrainer"}
    with pytest.raises(ValueError, match="period_hours"):
        policy(period_hours=0)
    with pytest.raises(ValueError, match="on.0"):
        policy(on=["drfit"])
    with pytest.raises(ValueError, match="give the trainer as"):
        policy(trainer={"config": {}})


def test_a_kfp_trainer_creates_the_training_run_through_the_kfp_api(model, tmp_path, monkeypatch):
    """On a cluster the alert step's trainer is KFPTrainer. The KFP API server is the fake of
    tests/pipelines/kfp_api_server.py, over real HTTP: no Kubeflow Pipelines runs here."""
    client, name = model
    isolate_kfp_client(monkeypatch, tmp_path)
    with FakeKfpApiServer() as kfp:
        on_the_cluster = policy(
            trainer={"type": "KFPTrainer", "config": {"host": kfp.url, "experiment": "retrain"}}
        )
        drifted = steps(name, drift_dataset_drift=1.0)
        outcome = retraining.apply(
            on_the_cluster, client, drifted, "run-1", "exp", settle_seconds=0.1
        )
        [run] = kfp.runs.values()
    assert outcome is not None and outcome.job == f"kfp:{run['run_id']}", outcome
    sent = run["runtime_config"]["parameters"]
    assert (sent["data"], sent["target"], sent["model_name"]) == (TRAINING["data"], "cnt", name)
    claimed = json.loads(client.get_registered_model(name).tags[retraining.claim_key("run-1")])
    assert claimed["job"] == outcome.job
