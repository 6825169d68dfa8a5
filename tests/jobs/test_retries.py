"""A step retried for the same pipeline task leaves the registry as one attempt would.

Against the session's real MLflow server. Each step fails once after its side effect (the
version registered, the verdict recorded, the alias moved): its success alert raises, as a pod
killed at that point would stop. Then it runs again with the same KFP run id and task.
"""

from __future__ import annotations

import pytest

from components.io import alerts, datasets, registries, services
from components.jobs import base, evaluation, notification, promotion, training
from tests.jobs.helpers import features, run, settings, unique, with_demand

pytestmark = pytest.mark.integration


class Killed(RuntimeError):
    """The step stopped right after its side effect."""


@pytest.fixture
def fail_once_after(monkeypatch):
    """Make the next success alert of a job raise once (its side effect is done by then)."""

    def arm(kind: str) -> None:
        original = alerts.ConsoleAlerter.notify
        armed = {"on": True}

        def notify(self, title, *args, **kwargs):
            # "TrainingJob succeeded", "EvaluationJob passed": its outcome, not a failure.
            if armed["on"] and title.startswith(f"{kind} ") and not title.endswith("failed"):
                armed["on"] = False
                raise Killed(f"{kind} stopped after its side effect")
            return original(self, title, *args, **kwargs)

        monkeypatch.setattr(alerts.ConsoleAlerter, "notify", notify)

    return arm


@pytest.fixture(scope="module")
def data(bike, tmp_path_factory):
    path = tmp_path_factory.mktemp("retries") / "bike.parquet"
    with_demand(bike.head(2000)).to_parquet(path, index=False)
    return path


def train_job(data, name, common, holdout, task_tags) -> training.TrainingJob:
    return training.TrainingJob(
        inputs=datasets.ParquetReader(path=str(data)),
        target="cnt",
        model={"KIND": "HistGradientBoostingRegressor", "params": {"max_iter": 5}},
        model_name=name,
        holdout=datasets.ParquetWriter(path=str(holdout)),
        run_tags=task_tags,
        **features("cnt"),
        **common,
    )


def versions(client, name: str) -> list[int]:
    return sorted(int(v.version) for v in client.search_model_versions(f"name='{name}'"))


def test_train_evaluate_and_promote_retried_after_their_side_effects(
    mlflow_server, data, tmp_path, fail_once_after
):
    name, common = unique("retry"), settings(mlflow_server, unique("retry"))
    client = common["mlflow_service"].client()
    holdout = tmp_path / "holdout.parquet"
    tags = {base.PIPELINE_RUN_TAG: "run-retry", "kfp.task": "train"}
    # Train: the version is registered, then the attempt dies; the retry keeps that version.
    fail_once_after("TrainingJob")
    with pytest.raises(Killed):
        run(train_job(data, name, common, holdout, tags))
    assert versions(client, name) == [1]
    retried = run(train_job(data, name, common, holdout, tags))
    assert retried.model_ref.version == 1
    assert versions(client, name) == [1]
    version_tags = client.get_model_version(name, "1").tags
    assert version_tags["kfp.run_id"] == "run-retry" and version_tags["kfp.task"] == "train"
    # Another pipeline run (or a run outside a pipeline) registers its own version.
    other = run(train_job(data, name, common, holdout, {**tags, "kfp.run_id": "run-other"}))
    assert other.model_ref.version == 2
    assert versions(client, name) == [1, 2]

    # Evaluate: the verdict is recorded, then the attempt dies; the retry records the same.
    def evaluate():
        return run(
            evaluation.EvaluationJob(
                inputs=datasets.ParquetReader(path=str(holdout)),
                target="cnt",
                model_name=name,
                alias_or_version=1,
                **common,
            )
        )

    fail_once_after("EvaluationJob")
    with pytest.raises(Killed):
        evaluate()
    first = client.get_model_version(name, "1").tags
    assert first[registries.PASSED_TAG] == "true"
    assert first[registries.CHAMPION_TAG] == registries.NO_CHAMPION
    assert evaluate().passed is True
    assert client.get_model_version(name, "1").tags == first

    # Promote: the alias moves, then the attempt dies; the retry finds it moved and says so.
    def promote():
        return run(
            promotion.PromotionJob(
                model_name=name,
                version=1,
                inputs=datasets.ParquetReader(path=str(holdout)),
                target="cnt",
                settle_seconds=0.2,
                **common,
            )
        )

    fail_once_after("PromotionJob")
    with pytest.raises(Killed):
        promote()
    assert client.get_registered_model(name).aliases == {"Champion": "1"}
    again = promote()
    assert again.promoted is True and again.served_ref.version == 1
    assert client.get_registered_model(name).aliases == {"Champion": "1"}
    assert versions(client, name) == [1, 2]


def test_a_training_that_fails_before_registering_leaves_no_version(mlflow_server, data, tmp_path):
    name, common = unique("retry"), settings(mlflow_server, unique("retry"))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    tags = {base.PIPELINE_RUN_TAG: "run-x", "kfp.task": "train"}
    # The held-out rows cannot be written (their folder is a file): nothing is registered.
    with pytest.raises(Exception):  # noqa: B017 - the writer's own error; what matters is below
        run(train_job(data, name, common, blocker / "holdout.parquet", tags))
    client = common["mlflow_service"].client()
    assert client.search_model_versions(f"name='{name}'") == []


def test_promotion_on_a_local_store_moves_the_alias_once_and_the_alert_says_so(data, tmp_path):
    """The local sqlite store (the README's first command) answers alias versions as ints."""
    service = services.MlflowService(
        tracking_uri=services.local_tracking_uri(tmp_path / "store"), experiment_name="local"
    )
    common = {"mlflow_service": service, "alerter": alerts.ConsoleAlerter()}
    holdout = tmp_path / "holdout.parquet"
    name = unique("local")
    tags = {base.PIPELINE_RUN_TAG: "run-local"}
    run(train_job(data, name, common, holdout, {**tags, "kfp.task": "train"}))
    run(
        evaluation.EvaluationJob(
            inputs=datasets.ParquetReader(path=str(holdout)),
            target="cnt",
            model_name=name,
            alias_or_version=1,
            run_tags={**tags, "kfp.task": "evaluate"},
            **common,
        )
    )
    promote = promotion.PromotionJob(
        model_name=name,
        inputs=datasets.ParquetReader(path=str(holdout)),
        target="cnt",
        settle_seconds=0.1,
        run_tags={**tags, "kfp.task": "promote"},
        **common,
    )
    first = run(promote)
    assert (first.promoted, first.served_ref.version, first.previous) == (True, 1, None)
    again = run(promote)
    assert (again.promoted, again.served_ref.version) == (True, 1)
    assert service.client().get_registered_model(name).aliases == {"Champion": 1}
    # The alert reads the alias from the same store: the int 1 is the candidate's "1".
    alert = run(notification.NotificationJob(pipeline="lifecycle", run_id="run-local", **common))
    assert f"{name} v1 promoted: Champion is now v1." in alert.message
    assert (alert.fields["promoted"], alert.fields["serving"]) == ("yes", f"{name} v1")
