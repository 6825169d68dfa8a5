"""Champion history, rollback, approval and rejection, against the session's real MLflow server.

One registered model lives through the whole story, in order: promotions, a refused candidate,
rollbacks and their refusals, a manual promotion approved, another rejected; the commands run
through the CLI where a person would type them, and the alerts go to a local server that
answers as Slack's webhook does.
"""

from __future__ import annotations

import json
import threading

import pytest

from components.core import champions
from components.io import datasets, history
from components.jobs import evaluation, promotion, rollback, training
from pipelines.cli import main
from tests.io.slack_server import SlackWebhookServer
from tests.jobs.helpers import features, run, settings, unique, with_demand

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def data(bike, tmp_path_factory):
    path = tmp_path_factory.mktemp("history") / "bike.parquet"
    with_demand(bike.head(1500)).to_parquet(path, index=False)
    return path


def test_history_rollback_approval_and_rejection(tracking, data, tmp_path, monkeypatch, capsys):
    name, common = unique("history"), settings(tracking, unique("history"))
    client = common["mlflow_service"].client()
    monkeypatch.setenv(champions.USER_VARIABLE, "ops-alice")

    def train(version: int) -> str:
        holdout = tmp_path / f"holdout-{version}.parquet"
        trained = run(
            training.TrainingJob(
                inputs=datasets.ParquetReader(path=str(data)),
                target="cnt",
                model={"KIND": "HistGradientBoostingRegressor", "params": {"max_iter": 5}},
                model_name=name,
                holdout=datasets.ParquetWriter(path=str(holdout)),
                **features("cnt"),
                **common,
            )
        )
        assert trained.model_ref.version == version
        return str(holdout)

    def evaluate(version: int, holdout: str, **extra) -> bool:
        return run(
            evaluation.EvaluationJob(
                inputs=datasets.ParquetReader(path=holdout),
                target="cnt",
                model_name=name,
                alias_or_version=version,
                tolerance=0.5,
                **extra,
                **common,
            )
        ).passed

    def promote(version: int, holdout: str, mode: str = "auto"):
        return run(
            promotion.PromotionJob(
                model_name=name,
                version=version,
                inputs=datasets.ParquetReader(path=holdout),
                target="cnt",
                settle_seconds=0.2,
                promotion=mode,
                run_tags={"kfp.run_id": f"run-{version}"},
                **common,
            )
        )

    def command(*args: str) -> tuple[int, str, str]:
        status = main(["model", *args])
        out, err = capsys.readouterr()
        return status, out, err

    def champion() -> str:
        return client.get_registered_model(name).aliases["Champion"]

    # Two promotions: each move is recorded with its verdict and the figures compared.
    holdouts = {version: train(version) for version in (1, 2)}
    assert evaluate(1, holdouts[1]) and promote(1, holdouts[1]).promoted
    assert evaluate(2, holdouts[2]) and promote(2, holdouts[2]).promoted
    moves = history.entries(client, name)
    assert [(m.action, m.from_version, m.to_version) for m in moves] == [
        ("promoted", None, 1),
        ("promoted", 1, 2),
    ]
    assert moves[1].by == "pipeline run run-2"
    assert moves[1].reason == "passed its evaluation against v1"
    assert "rmse" in moves[1].metrics and "champion.rmse" in moves[1].metrics
    description = client.get_registered_model(name).description
    assert history.SECTION in description and moves[1].line() in description
    card = client.get_model_version(name, "2").description
    assert "Serving" in card and "promoted v1 -> v2" in card

    # A refused candidate moves nothing and adds nothing; its training kept the history shown.
    holdouts[3] = train(3)
    assert evaluate(3, holdouts[3], thresholds={"r2": 0.9999}) is False
    assert len(history.entries(client, name)) == 2
    description = client.get_registered_model(name).description
    assert "Latest version: 3" in description and moves[1].line() in description

    with SlackWebhookServer() as slack:
        monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.url)
        # Rollback to the previous Champion: recorded with who and why, and alerted.
        status, out, _ = command("rollback", name, "--reason", "v2 over-predicts weekends")
        assert status == 0 and champion() == "1"
        assert "rolled back v2 -> v1 by user ops-alice; v2 over-predicts weekends" in out
        [alert] = slack.requests
        assert "rolled back from v2 to v1" in json.dumps(alert.body)
        # Refusals: one line, exit 2, nothing moved, nothing recorded, nothing alerted.
        for args, expected in [
            (("--to", "9"), f"'{name}' has no version 9 (versions 1 to 3)"),
            (("--to", "1"), "already serves v1"),
            (("--to", "3"), "refusing to roll back to v3 failed its evaluation"),
        ]:
            status, _, err = command("rollback", name, *args, "--reason", "try")
            assert status == 2 and expected in err and err.count("\n") == 1, err
        assert champion() == "1" and len(history.entries(client, name)) == 3
        assert len(slack.requests) == 1
        # --force serves a version that failed, if the person insists.
        status, out, _ = command("rollback", name, "--to", "3", "--force", "--reason", "hotfix")
        assert status == 0 and champion() == "3"
        monkeypatch.delenv("SLACK_WEBHOOK_URL")

    # Manual promotion: v2 passes, waits for approval while v3 keeps serving.
    held = promote(2, holdouts[2], mode="manual")
    assert held.awaiting_approval and not held.promoted and champion() == "3"
    assert "model approve" in held.reason
    status, out, _ = command("approve", name, "2", "--by", "risk-bob", "--reason", "signed off")
    assert status == 0 and champion() == "2", out
    # Approving again, or a version that never waited, is refused.
    status, _, err = command("approve", name, "1")
    assert status == 2 and "is not awaiting approval" in err
    # Another candidate held, then rejected: recorded, the alias stays.
    promote(1, holdouts[1], mode="manual")
    status, out, _ = command("reject", name, "1", "--reason", "fails the fairness review")
    assert status == 0 and champion() == "2"
    status, _, err = command("reject", name, "1", "--reason", "again")
    assert status == 2 and "not awaiting approval (approval.status: rejected)" in err

    # The whole history, newest first, through the CLI.
    status, out, _ = command("history", name)
    lines = out.splitlines()
    assert status == 0 and lines[0] == f"{name}@Champion: v2"
    assert lines[1:] == [entry.line() for entry in history.entries(client, name)[::-1]]
    assert [(e.action, e.from_version, e.to_version) for e in history.entries(client, name)] == [
        ("promoted", None, 1),
        ("promoted", 1, 2),
        ("rolled_back", 2, 1),
        ("rolled_back", 1, 3),
        ("awaiting_approval", 3, 2),
        ("approved", 3, 2),
        ("awaiting_approval", 2, 1),
        ("rejected", 2, 1),
    ]
    assert lines[1].endswith("Champion v1 rejected by user ops-alice; fails the fairness review")
    assert lines[3].endswith("Champion approved v3 -> v2 by user risk-bob; signed off")
    status, out, _ = command("history", name, "--json", "--limit", "2")
    assert [entry["action"] for entry in json.loads(out)] == ["rejected", "awaiting_approval"]


def test_two_writers_at_once_lose_no_entry(tracking):
    """Entries written at the same moment by several writers are all kept."""
    name, common = unique("writers"), settings(tracking, unique("writers"))
    client = common["mlflow_service"].client()
    client.create_registered_model(name)
    barrier = threading.Barrier(6)

    def write(number: int) -> None:
        entry = champions.AliasMove(
            alias="Champion",
            action="promoted",
            from_version=number,
            to_version=number + 1,
            at=champions.now(),
            by=f"pipeline run {number}",
        )
        barrier.wait()
        history.record(client, name, entry)

    threads = [threading.Thread(target=write, args=(number,)) for number in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(e.from_version for e in history.entries(client, name)) == list(range(6))


def test_rollback_refuses_a_model_without_champion_or_record(tracking):
    name, common = unique("bare"), settings(tracking, unique("bare"))
    client = common["mlflow_service"].client()
    client.create_registered_model(name)
    job = rollback.RollbackJob(model_name=name, reason="x", **common)
    with pytest.raises(rollback.RollbackError, match="points at no version"):
        job.run()
