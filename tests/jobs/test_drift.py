"""Drift and shadow scoring on every inference, against the session's real MLflow server.

One module fixture trains two regressors and two classifiers on the bike data (each with its
reference profile) and makes the first of each the Champion; the tests then predict batches
drawn from the training distribution, or shifted on purpose, with the real InferenceJob.
"""

from __future__ import annotations

import dataclasses
import pathlib
import typing as T

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from components.core import drift, estimation, models
from components.io import alerts, datasets, monitoring, references, registries
from components.jobs import base, promotion, training
from components.jobs.inference import InferenceJob
from components.jobs.notification import NotificationJob
from tests.io.slack_server import SlackWebhookServer
from tests.jobs.helpers import (
    BIKE_CATEGORICAL,
    BIKE_NUMERICAL,
    features,
    native_model,
    run,
    settings,
    unique,
    with_demand,
)

pytestmark = pytest.mark.integration

SHIFTED = {"temp", "hum", "weathersit"}


@dataclasses.dataclass
class Models:
    """The registered models: name -> (Champion version 1, challenger version 2)."""

    regressor: str
    classifier: str
    common: dict[str, T.Any]
    client: MlflowClient


@pytest.fixture(scope="module")
def trained(mlflow_server, bike, tmp_path_factory) -> Models:
    """v1 (Champion) and a different v2 of a regressor of `cnt` and a classifier of `demand`."""
    common = settings(mlflow_server, unique("drift"))
    data = tmp_path_factory.mktemp("training") / "bike.parquet"
    with_demand(bike).to_parquet(data, index=False)
    names = {"regressor": unique("drift-regressor"), "classifier": unique("drift-classifier")}
    kinds = {
        "regressor": ("cnt", models.HistGradientBoostingRegressorModel, models.RidgeModel),
        "classifier": (
            "demand",
            models.HistGradientBoostingClassifierModel,
            models.LogisticRegressionModel,
        ),
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
        for task, (target, champion, challenger) in kinds.items():
            for kind in (champion, challenger):
                run(
                    training.TrainingJob(
                        inputs=datasets.ParquetReader(path=str(data)),
                        target=target,
                        model=kind(),
                        model_name=names[task],
                        **features(target),
                        **common,
                    )
                )
            run(
                promotion.PromotionJob(
                    model_name=names[task], version=1, settle_seconds=0, **common
                )
            )
    client = common["mlflow_service"].client()
    return Models(names["regressor"], names["classifier"], common, client)


@pytest.fixture(scope="module")
def batches(bike, tmp_path_factory) -> dict[str, pathlib.Path]:
    """A batch drawn from the training rows, and the same batch shifted on three features."""
    folder = tmp_path_factory.mktemp("batches")
    same = with_demand(bike).sample(6000, random_state=7).reset_index(drop=True)
    shifted = same.copy()
    shifted["temp"] = shifted["temp"] + 0.35  # moved: beyond the training maximum for many
    shifted.loc[shifted.index % 3 == 0, "hum"] = np.nan  # a third missing, none in training
    shifted.loc[shifted.index % 8 == 0, "weathersit"] = 9  # a category never seen
    paths = {"same": folder / "same.parquet", "shifted": folder / "shifted.parquet"}
    same.to_parquet(paths["same"], index=False)
    shifted.to_parquet(paths["shifted"], index=False)
    return paths


def predict(trained: Models, data: pathlib.Path, output: pathlib.Path, **options: T.Any):
    name = options.pop("name", trained.regressor)
    return run(
        InferenceJob(
            inputs=datasets.ParquetReader(path=str(data)),
            outputs=datasets.ParquetWriter(path=str(output)),
            finder=registries.RegistryFinder(name=name, alias_or_version="Champion"),
            passthrough=["instant"],
            **options,
            **trained.common,
        )
    )


def test_the_reference_profile_is_stored_with_the_version_and_found_again(trained, bike):
    ref = registries.RegistryFinder(name=trained.regressor, alias_or_version=1).find(trained.client)
    profile = references.load_profile(trained.client, ref)
    assert profile is not None and profile.task == "regression"
    assert set(profile.features) == set(BIKE_NUMERICAL) | set(BIKE_CATEGORICAL)
    logged = trained.client.get_run(ref.run_id).data.params
    assert profile.rows == int(logged["train_rows"])
    temp = profile.features["temp"]
    assert isinstance(temp, drift.NumericProfile)
    assert sum(temp.counts) + temp.missing == profile.rows
    assert bike["temp"].min() <= temp.min <= temp.max <= bike["temp"].max()
    season = profile.features["season"]
    assert isinstance(season, drift.CategoricalProfile)
    assert sorted(season.values) == sorted(bike["season"].unique().tolist())
    # The predictions' distribution on the training rows and the holdout, all of them.
    assert profile.prediction is not None
    assert sum(profile.prediction.counts) == int(logged["train_rows"]) + int(logged["test_rows"])


def test_a_model_without_a_profile_is_predicted_with_a_note_or_refused_under_fail(
    trained, batches, tmp_path
):
    """A model logged by hand (no profile): `warn` goes on and says so; `fail` refuses."""
    ref = registries.RegistryFinder(name=trained.regressor, alias_or_version=1).find(trained.client)
    with mlflow.start_run(
        experiment_id=mlflow.get_experiment_by_name(
            trained.common["mlflow_service"].experiment_name
        ).experiment_id
    ) as bare:
        mlflow.sklearn.log_model(
            native_model(trained.regressor, 1),
            name="model",
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
            skops_trusted_types=list(registries.TRUSTED_TYPES),
            signature=mlflow.models.get_model_info(ref.uri).signature,
        )
    uri = f"runs:/{bare.info.run_id}/model"
    job = dict(
        inputs=datasets.ParquetReader(path=str(batches["same"])),
        finder=registries.UriFinder(uri=uri),
        **trained.common,
    )
    result = run(InferenceJob(outputs=datasets.ParquetWriter(path=str(tmp_path / "a")), **job))
    assert result.drift is None and result.rows == 6000
    assert "has no reference profile" in result.notes[0]
    with pytest.raises(drift.DriftError, match="no reference profile.*drift_policy=fail"):
        run(
            InferenceJob(
                outputs=datasets.ParquetWriter(path=str(tmp_path / "b")),
                drift_policy="fail",
                **job,
            )
        )
    assert not (tmp_path / "b").exists()


def test_a_batch_from_the_training_distribution_shows_no_drift(trained, batches, tmp_path):
    result = predict(trained, batches["same"], tmp_path / "out.parquet", drift_policy="fail")
    report = result.drift
    assert report is not None and report.rows == 6000
    assert report.drifted == [], report.headline()
    assert max(column.psi for column in report.columns) < 0.1
    assert report.prediction is not None and report.prediction.psi < 0.1
    assert (tmp_path / "out.parquet").exists()


def test_a_shifted_batch_is_flagged_with_the_right_features(trained, batches, tmp_path):
    result = predict(trained, batches["shifted"], tmp_path / "out.parquet")
    report = result.drift
    flagged = {column.column: column for column in report.drifted}
    assert set(flagged) == SHIFTED, report.headline()
    ref = registries.RegistryFinder(name=trained.regressor, alias_or_version=1).find(trained.client)
    highest = references.load_profile(trained.client, ref).features["temp"].max
    moved = pd.read_parquet(batches["shifted"])["temp"]
    assert flagged["temp"].out_of_range == pytest.approx((moved > highest).mean())
    assert flagged["temp"].out_of_range > 0.2 and flagged["temp"].psi > 0.25
    assert flagged["hum"].missing == pytest.approx(2000 / 6000)
    assert flagged["weathersit"].unseen == pytest.approx(750 / 6000)
    assert flagged["weathersit"].examples == [9]
    # `warn` publishes the predictions all the same, and keeps the report on the MLflow run.
    assert pd.read_parquet(tmp_path / "out.parquet").shape[0] == 6000
    run_id = result.lineage.mlflow_run_id
    tags = trained.client.get_run(run_id).data.tags
    assert tags[monitoring.DRIFT_TAG].startswith("3 of 12 features drifted over 6,000 rows")
    page = mlflow.artifacts.load_text(f"runs:/{run_id}/{monitoring.REPORT_PATH}")
    assert "3 of 12 features drifted" in page and "data:image/svg+xml;base64," in page
    metrics = trained.client.get_run(run_id).data.metrics
    assert metrics["drift_drifted_features"] == 3
    assert metrics["drift_psi.temp"] == pytest.approx(flagged["temp"].psi)


def test_drift_policy_fail_publishes_nothing_and_the_alert_names_the_features(
    trained, batches, tmp_path, monkeypatch
):
    run_id = unique("kfp-run")
    output = tmp_path / "out.parquet"
    tags = {base.PIPELINE_RUN_TAG: run_id, base.TASK_TAG: "predict"}
    with pytest.raises(drift.DriftError) as refused:
        predict(trained, batches["shifted"], output, drift_policy="fail", run_tags=tags)
    message = str(refused.value)
    assert message.startswith("3 feature(s) drifted beyond the thresholds: ")
    assert all(name in message for name in SHIFTED)
    assert "nothing was published" in message
    assert not output.exists() and list(tmp_path.iterdir()) == []
    with SlackWebhookServer() as slack:
        monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.url)
        alert = run(
            NotificationJob(
                pipeline="inference",
                run_id=run_id,
                state="FAILED",
                mlflow_service=trained.common["mlflow_service"],
                alerter=alerts.SlackAlerter(),
            )
        )
        [request] = slack.requests
    assert alert.delivered
    assert "Failed step predict: DriftError: 3 feature(s) drifted" in alert.message
    assert "Drift (predict): 3 of 12 features drifted" in alert.message
    assert "Performance (predict): estimated rmse " in alert.message
    posted = request.raw.decode()
    assert "temp (Wasserstein" in posted and "weathersit" in posted and "hum (missing" in posted


def test_shadow_scoring_with_the_champion_itself_agrees_fully(trained, batches, tmp_path):
    for name in (trained.regressor, trained.classifier):
        result = predict(
            trained,
            batches["same"],
            tmp_path / f"{name}.parquet",
            name=name,
            challenger=registries.RegistryFinder(name=name, alias_or_version=1),
        )
        scores = result.shadow.scores
        assert scores["rows"] == 6000
        if name == trained.regressor:
            assert scores["mean_absolute_difference"] == 0.0
            assert scores["correlation"] == pytest.approx(1.0)
            assert scores["share_beyond_tolerance"] == 0.0
        else:
            assert scores["agreement"] == 1.0
            confusion = result.shadow.confusion_table()
            assert (confusion.to_numpy() == np.diag(np.diag(confusion.to_numpy()))).all()


def test_shadow_scoring_with_another_version_reports_the_differences(trained, batches, tmp_path):
    """The comparison's figures equal those computed here from the two native models."""
    rows = pd.read_parquet(batches["same"])
    for name in (trained.regressor, trained.classifier):
        output = tmp_path / f"{name}.parquet"
        result = predict(
            trained,
            batches["same"],
            output,
            name=name,
            challenger=registries.RegistryFinder(name=name, alias_or_version=2),
            challenger_tolerance=20.0,
        )
        champion = native_model(name, 1).predict(rows)
        challenger = native_model(name, 2).predict(rows)
        published = pd.read_parquet(output)[models.PREDICTION].to_numpy()
        assert (published == champion).all()  # the published predictions stay the Champion's
        scores = result.shadow.scores
        if name == trained.regressor:
            difference = np.abs(challenger - champion)
            assert scores["mean_absolute_difference"] == pytest.approx(difference.mean())
            assert scores["correlation"] == pytest.approx(np.corrcoef(champion, challenger)[0, 1])
            assert scores["share_beyond_tolerance"] == pytest.approx((difference > 20).mean())
            assert 0 < scores["share_beyond_tolerance"] < 1
        else:
            assert scores["agreement"] == pytest.approx((champion == challenger).mean())
            assert scores["agreement"] < 1
            expected = pd.crosstab(champion, challenger)
            confusion = result.shadow.confusion_table()
            for a in expected.index:
                for b in expected.columns:
                    assert confusion.loc[a, b] == expected.loc[a, b]
        run_id = result.lineage.mlflow_run_id
        tag = trained.client.get_run(run_id).data.tags[monitoring.SHADOW_TAG]
        assert tag.startswith(f"challenger {name} v2 ")


# Performance estimated before the labels (components.core.estimation)

# Limits no batch reaches: only the estimated performance can refuse one.
NO_DRIFT = {
    "p_value": 1e-12, "wasserstein": 100.0, "jensen_shannon": 1.0, "psi_warn": 100.0,
    "psi": 100.0, "missing": 1.0, "out_of_range": 1.0, "unseen": 1.0,
}  # fmt: skip


def test_the_performance_estimator_is_stored_with_the_version(trained):
    for name, task, metric in [
        (trained.regressor, "regression", "rmse"),
        (trained.classifier, "classification", "f1_macro"),
    ]:
        ref = registries.RegistryFinder(name=name, alias_or_version=1).find(trained.client)
        estimator = references.load_estimator(trained.client, ref)
        assert estimator is not None and estimator.task == task
        logged = trained.client.get_run(ref.run_id).data
        assert estimator.rows == int(logged.params["test_rows"])
        assert estimator.holdout[metric] == pytest.approx(logged.metrics[f"test_{metric}"])


def test_a_batch_gets_its_performance_estimated_in_mlflow_the_report_and_the_alert(
    trained, batches, tmp_path
):
    for name, metric in [(trained.regressor, "rmse"), (trained.classifier, "f1_macro")]:
        result = predict(trained, batches["same"], tmp_path / f"{metric}.parquet", name=name)
        estimate = result.estimate
        assert estimate is not None and estimate.rows == 6000
        figure = estimate.get(metric)
        assert figure.lower <= figure.value <= figure.upper and figure.holdout is not None
        run_id = result.lineage.mlflow_run_id
        logged = trained.client.get_run(run_id).data
        assert logged.tags[monitoring.PERFORMANCE_TAG].startswith(f"estimated {metric} ")
        assert logged.metrics[f"estimated_{metric}"] == pytest.approx(figure.value)
        assert logged.metrics["estimated_rows"] == 6000
        # The verdict under the run's tolerance, as a retraining policy reads it: a clean batch.
        assert logged.metrics["estimated_degraded"] == 0.0
        page = mlflow.artifacts.load_text(f"runs:/{run_id}/{monitoring.REPORT_PATH}")
        assert "Estimated performance (before the labels)" in page


def test_a_batch_estimated_worse_than_the_holdout_is_refused_under_fail(trained, bike, tmp_path):
    """The busiest hours: the model's errors there (on its holdout) are far above its average."""
    busy = with_demand(bike).nlargest(2000, "cnt").reset_index(drop=True)
    data = tmp_path / "busy.parquet"
    busy.to_parquet(data, index=False)
    output = tmp_path / "out" / "predictions.parquet"
    warned = predict(trained, data, output, drift_thresholds=NO_DRIFT)
    worse = warned.estimate.degraded(0.1)
    assert [m.metric for m in worse] and all(m.lower > m.holdout * 1.1 for m in worse)
    logged = trained.client.get_run(warned.lineage.mlflow_run_id).data
    assert "worse than the holdout beyond 10%" in logged.tags[monitoring.PERFORMANCE_TAG]
    assert logged.metrics["estimated_degraded"] == 1.0  # a retraining policy's trigger
    output.unlink()
    with pytest.raises(estimation.PerformanceError) as refused:
        predict(trained, data, output, drift_policy="fail", drift_thresholds=NO_DRIFT)
    message = str(refused.value)
    assert message.startswith(f"the estimated performance of {trained.regressor} v1 degraded: ")
    assert "nothing was published" in message and not output.exists()
    # A looser tolerance lets the same batch through.
    kept = predict(
        trained, data, output, drift_policy="fail", drift_thresholds=NO_DRIFT,
        performance_tolerance=10.0,
    )  # fmt: skip
    assert kept.rows == 2000 and output.exists()


def test_the_trend_shows_the_model_s_last_runs_in_the_report_and_the_alert(
    trained, bike, tmp_path, monkeypatch
):
    """Three batches, each drifting more: the third run's trend reads them back from MLflow."""
    name = unique("trend")
    common = settings(trained.common["mlflow_service"].tracking_uri, name)
    source = registries.uri_for(trained.regressor, 1)
    trained.client.copy_model_version(source, name)
    trained.client.set_registered_model_alias(name, "Champion", "1")
    frame = with_demand(bike).sample(3000, random_state=5).reset_index(drop=True)
    run_id = unique("kfp-run")
    tags = {base.PIPELINE_RUN_TAG: run_id, base.TASK_TAG: "predict"}
    results = []
    for step, shift in enumerate((0.0, 0.15, 0.3)):
        batch = frame.assign(temp=frame["temp"] + shift, atemp=frame["atemp"] + shift)
        data = tmp_path / f"batch-{step}.parquet"
        batch.to_parquet(data, index=False)
        results.append(
            run(
                InferenceJob(
                    inputs=datasets.ParquetReader(path=str(data)),
                    outputs=datasets.ParquetWriter(path=str(tmp_path / f"out-{step}.parquet")),
                    finder=registries.RegistryFinder(name=name, alias_or_version="Champion"),
                    run_tags=tags if step == 2 else {},
                    **common,
                )
            )
        )
    last = trained.client.get_run(results[-1].lineage.mlflow_run_id).data.tags
    trend = last[monitoring.TREND_TAG]
    print(f"\n{trend}")
    shares = [f"{r.drift.share:.0%}" for r in results]
    assert trend.startswith(f"last 3 runs of {name}: drift share {' -> '.join(shares)} (rising")
    assert "estimated rmse " in trend and last[monitoring.WORST_TAG] in {"temp", "atemp"}
    first = trained.client.get_run(results[0].lineage.mlflow_run_id).data.tags
    assert first[monitoring.TREND_TAG] == f"first checked run of {name}: no trend yet"
    page = mlflow.artifacts.load_text(
        f"runs:/{results[-1].lineage.mlflow_run_id}/{monitoring.REPORT_PATH}"
    )
    assert "<h2>Trend</h2>" in page and page.count("data:image/svg+xml;base64,") >= 2
    with SlackWebhookServer() as slack:
        monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.url)
        alert = run(
            NotificationJob(
                pipeline="inference",
                run_id=run_id,
                mlflow_service=common["mlflow_service"],
                alerter=alerts.SlackAlerter(),
            )
        )
    assert f"Trend (predict): last 3 runs of {name}: drift share" in alert.message
