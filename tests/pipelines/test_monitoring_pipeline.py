"""The monitoring pipeline, for real under kfp.local, against a real MLflow server and fake Slack.

The model and its predictions come from the jobs' own fixture (tests/jobs/test_monitoring.py):
a version trained and registered on the first bike hours, and its predictions of later hours,
written with their lineage. One run scores them against the bike data's counts; another meets
truth that matches no prediction and fails in monitor, and its alert says why.
"""

from __future__ import annotations

import pandas as pd
import pytest

from pipelines.common import outcomes
from tests.jobs.test_monitoring import FIRST, trained  # noqa: F401 - a fixture
from tests.pipelines.test_local_runs import (  # noqa: F401 - fixtures
    environment,
    header,
    message,
    run,
    slack,
    unique,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:You may be attemping:RuntimeWarning"),
]


def params(trained: dict, truth: str) -> dict:  # noqa: F811 - the fixture's value
    return {
        "predictions_data": str(trained["predictions"]),
        "truth_data": truth,
        "keys": ["instant"],
        "target": "cnt",
        "time_column": "dteday",
        "min_rows": 12,
        "tolerance": 1.5,
    }


def test_monitoring_scores_the_predictions_and_the_alert_gives_the_headline(
    trained,  # noqa: F811
    slack,  # noqa: F811
    mlflow_server,
    tmp_path,
):
    # The predictions as a user finds them: latest/predictions.parquet of the last local run,
    # which this run reads before its own outputs replace latest/.
    latest = tmp_path / "latest"
    latest.mkdir()
    (latest / "predictions.parquet").symlink_to(trained["predictions"])
    given = {
        **params(trained, str(trained["truth"])),
        "predictions_data": str(latest / "predictions.parquet"),
    }
    done = run(
        slack, tmp_path, "monitoring", given, [],
        trained["name"], unique("local-monitoring"), mlflow_server,
    )  # fmt: skip

    assert done.succeeded
    headline = done.returned("monitor")["Output"]
    assert headline.startswith("rmse ") and "labelled rows" in headline
    table = pd.read_parquet(done.output("monitor", "performance_table"))
    assert {"period", "rows", "metric", "realized", "reference", "verdict"} <= set(table.columns)
    assert table[table["period"] == "all"]["rows"].iloc[0] == len(
        pd.read_parquet(trained["predictions"])
    )
    assert "<table" in done.output("monitor", "report").read_text()
    body = done.alert()
    assert header(body).startswith(":white_check_mark: monitoring: SUCCEEDED")
    assert f"Performance (monitor): realized {headline}" in message(body)
    # The closing line of `run --local` tells the same story.
    story = outcomes.from_local_run("monitoring", done.run_dir).story()
    assert story == f"{trained['name']} v{trained['version']} realized {headline}"


def test_truth_that_matches_no_prediction_fails_in_monitor_and_the_alert_says_why(
    trained,  # noqa: F811
    slack,  # noqa: F811
    mlflow_server,
    tmp_path,
):
    elsewhere = tmp_path / "elsewhere.parquet"
    trained["bike"][["instant", "dteday", "cnt"]].iloc[:FIRST].to_parquet(elsewhere, index=False)

    done = run(
        slack, tmp_path, "monitoring", params(trained, str(elsewhere)), [],
        trained["name"], unique("local-monitoring"), mlflow_server,
    )  # fmt: skip

    assert not done.succeeded
    assert not done.output("monitor", "performance_table").exists()
    body = done.alert()
    assert header(body).startswith(":x: monitoring: FAILED")
    assert (
        "Failed step monitor: LabelsError: no prediction matches a truth row on instant"
        in message(body)
    )
