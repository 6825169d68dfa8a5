"""MonitoringJob: predictions meet their ground truth, against the session's real MLflow server.

A small model is trained on the first bike hours and registered; InferenceJob predicts a later
slice to Parquet (with its lineage and estimate); the truth is the bike rows' own counts.
"""

from __future__ import annotations

import html
import pathlib

import pandas as pd
import pytest
from sklearn import metrics as skm

from components.core import labels
from components.io import datasets, registries
from components.jobs import monitoring, training
from components.jobs.inference import InferenceJob
from tests.components.test_drift_report_browser import rendered_text
from tests.jobs.helpers import features, run, settings, unique, with_demand

pytestmark = pytest.mark.integration

TRAIN_ROWS = 3000
# A later slice of the hours than the model learnt from: spring into summer 2011.
FIRST, LAST = 3000, 4300
KEYS = ["instant"]
# A day has up to 24 hours: periods of fewer labelled rows are counted, not scored.
MIN_ROWS = 12


@pytest.fixture(scope="module")
def trained(mlflow_server, bike, tmp_path_factory) -> dict:
    """A registered version, its predictions of a later slice, and that slice's truth."""
    folder = tmp_path_factory.mktemp("monitoring")
    data = folder / "train.parquet"
    with_demand(bike.head(TRAIN_ROWS)).to_parquet(data, index=False)
    name, common = unique("monitor"), settings(mlflow_server, unique("monitor"))
    trained = run(
        training.TrainingJob(
            inputs=datasets.ParquetReader(path=str(data)),
            target="cnt",
            model={"KIND": "HistGradientBoostingRegressor", "params": {"max_iter": 30}},
            model_name=name,
            **features("cnt"),
            **common,
        )
    )
    later = folder / "later.parquet"
    bike.iloc[FIRST:LAST].to_parquet(later, index=False)
    predictions = folder / "predictions.parquet"
    run(
        InferenceJob(
            inputs=datasets.ParquetReader(path=str(later)),
            outputs=datasets.ParquetWriter(path=str(predictions)),
            finder=registries.RegistryFinder(name=name, alias_or_version=trained.model_ref.version),
            passthrough=["instant", "dteday"],
            **common,
        )
    )
    truth = folder / "truth.parquet"
    bike[["instant", "dteday", "cnt"]].to_parquet(truth, index=False)
    return {
        "name": name,
        "common": common,
        "version": trained.model_ref.version,
        "run_id": trained.model_ref.run_id,
        "predictions": predictions,
        "truth": truth,
        "bike": bike,
        "folder": folder,
    }


def job(trained: dict, predictions: pathlib.Path, truth: pathlib.Path, **fields):
    return monitoring.MonitoringJob(
        predictions=datasets.ParquetReader(path=str(predictions)),
        truth=datasets.ParquetReader(path=str(truth)),
        keys=fields.pop("keys", KEYS),
        target="cnt",
        model_name=trained["name"],
        **{**trained["common"], **fields},
    )


def by_hand(rows: pd.DataFrame) -> dict[str, float]:
    return {
        "rmse": skm.root_mean_squared_error(rows["cnt"], rows["prediction"]),
        "mae": skm.mean_absolute_error(rows["cnt"], rows["prediction"]),
        "r2": skm.r2_score(rows["cnt"], rows["prediction"]),
    }


def the_run(trained: dict, result_or_kind: str = "MonitoringJob"):
    client = trained["common"]["mlflow_service"].client()
    experiment = client.get_experiment_by_name(trained["common"]["mlflow_service"].experiment_name)
    [latest, *_] = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`job.kind` = '{result_or_kind}'",
        order_by=["attributes.start_time DESC"],
    )
    return client, latest


def test_realized_metrics_by_day_match_sklearn_and_are_recorded_on_the_run(trained):
    # No Champion exists: the predictions' lineage names the version, which is preferred.
    result = run(
        job(trained, trained["predictions"], trained["truth"], time_column="dteday",
            min_rows=MIN_ROWS)
    )  # fmt: skip

    predicted = pd.read_parquet(trained["predictions"])
    rows = predicted.merge(trained["bike"][["instant", "cnt"]], on="instant")
    assert len(rows) == LAST - FIRST == result.join.labelled
    expected = by_hand(rows)
    for name, value in expected.items():
        assert result.metrics[f"realized_{name}"] == pytest.approx(value, rel=1e-9)
    assert result.metrics["realized_rows"] == LAST - FIRST
    assert result.model_ref.version == trained["version"]
    assert "lineage" in result.version_source
    # One row per day, then "all"; each scored day matches sklearn on that day's rows.
    table = result.by_period
    days = sorted(rows["dteday"].astype(str).str[:10].unique())
    assert list(table["period"]) == [*days, "all"]
    for day, group in rows.groupby(rows["dteday"].astype(str).str[:10]):
        row = table[table["period"] == day].iloc[0]
        assert row["rows"] == len(group)
        if len(group) >= MIN_ROWS:
            assert row["status"] == labels.SCORED
            assert row["rmse"] == pytest.approx(by_hand(group)["rmse"], rel=1e-9)
    # The holdout compared with is the training run's test_* metrics.
    client, latest = the_run(trained)
    holdout = client.get_run(trained["run_id"]).data.metrics
    assert result.report.reference["rmse"] == pytest.approx(holdout["test_rmse"])
    # The headline, the figures and the report on the job's own run.
    assert latest.data.tags[monitoring.REALIZED_TAG] == result.headline
    assert latest.data.tags["model_version"] == str(trained["version"])
    assert latest.data.metrics["realized_rmse"] == pytest.approx(expected["rmse"])
    assert latest.data.metrics["periods"] == len(days)
    artifacts = [a.path for a in client.list_artifacts(latest.info.run_id, "reports")]
    assert artifacts == [monitoring.REPORT_PATH]
    assert result.headline.startswith(f"rmse {expected['rmse']:.3g} over {LAST - FIRST:,}")
    assert "<table" in result.page and html.escape(result.headline) in result.page
    # The prediction run estimated its performance before the labels: compared with, too.
    assert result.report.estimated is not None and "the estimated" in result.headline
    # The report as a browser shows it: headline, verdict, the days.
    page = trained["folder"] / "performance.html"
    page.write_text(result.page)
    text = rendered_text(page, trained["folder"])
    assert result.headline in text
    assert f"Performance: {trained['name']} v{trained['version']}" in text
    verdict = "degraded" if result.degraded else "not degraded"
    assert f"): {verdict} beyond a tolerance of 10% on rmse" in text and "By day" in text


def test_perturbed_predictions_are_flagged_degraded(trained, tmp_path):
    predicted = pd.read_parquet(trained["predictions"])
    worse = tmp_path / "worse.parquet"
    # Written by hand: no lineage, so the version given is the one compared with.
    predicted.assign(prediction=predicted["prediction"] * 2 + 150).to_parquet(worse, index=False)

    # The model learnt winter: May is harder for it, but within a 150% tolerance of the holdout.
    tolerance = 1.5
    honest = run(job(trained, trained["predictions"], trained["truth"], tolerance=tolerance))
    assert not honest.degraded and "not degraded" not in honest.headline
    assert honest.metrics["realized_degraded"] == 0.0  # what a retraining policy reads
    result = run(
        job(trained, worse, trained["truth"], alias_or_version=trained["version"],
            time_column="dteday", min_rows=MIN_ROWS, tolerance=tolerance)
    )  # fmt: skip

    assert result.degraded
    assert result.report.overall.verdict == "degraded"
    assert result.version_source == f"{trained['version']} given"
    assert "worse than the holdout's" in result.headline
    assert "degraded beyond 150% in" in result.headline
    assert result.metrics["change_rmse"] > tolerance
    assert result.metrics["realized_degraded"] == 1.0


def test_policy_fail_raises_after_recording(trained, tmp_path):
    predicted = pd.read_parquet(trained["predictions"])
    worse = tmp_path / "worse.parquet"
    predicted.assign(prediction=predicted["prediction"] + 300).to_parquet(worse, index=False)

    with pytest.raises(monitoring.PerformanceDegradedError, match="realized performance degraded"):
        run(job(trained, worse, trained["truth"], alias_or_version=trained["version"],
                policy="fail"))  # fmt: skip

    _, latest = the_run(trained)
    assert latest.info.status == "FAILED"
    assert "worse than the holdout's" in latest.data.tags[monitoring.REALIZED_TAG]
    assert "PerformanceDegradedError" in latest.data.tags["job.error"]
    assert latest.data.metrics["realized_rmse"] > 0


def refusal(trained, predictions, truth, **fields) -> str:
    with pytest.raises(labels.LabelsError) as error:
        run(job(trained, predictions, truth, **fields))
    return str(error.value)


def test_refusals_name_the_cause(trained, tmp_path):
    truth = trained["bike"][["instant", "dteday", "cnt"]]
    twice = tmp_path / "twice.parquet"
    pd.concat([truth, truth.iloc[FIRST : FIRST + 3]]).to_parquet(twice, index=False)
    text = refusal(trained, trained["predictions"], twice)
    assert "6 rows of the truth share 3 keys on instant" in text
    assert "keep one truth row per key" in text

    elsewhere = tmp_path / "elsewhere.parquet"
    truth.iloc[:FIRST].to_parquet(elsewhere, index=False)
    text = refusal(trained, trained["predictions"], elsewhere)
    assert text.startswith("no prediction matches a truth row on instant")
    assert f"'instant' runs {FIRST + 1} .. {LAST} in the predictions" in text

    text = refusal(trained, trained["predictions"], trained["truth"], keys=["ride_id"])
    assert "key 'ride_id' is not in the predictions" in text
    assert "key 'ride_id' is not in the truth" in text
