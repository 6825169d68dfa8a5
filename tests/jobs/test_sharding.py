"""A sharded prediction gives the rows and values of one pod, and publishes all or nothing.

The components' own functions run here as KFP runs them in pods (plan_shards, predict_shard
once per shard, publish_predictions; predict for the one-pod answer), against the session's
real MLflow server, with a model trained once for the module. The fan-out itself (ParallelFor
and Collected) runs under kfp.local in tests/pipelines/test_local_runs.py.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import typing as T

import numpy as np
import pandas as pd
import pytest
from kfp import dsl

from components.core import drift, schemas
from components.explanations import explain
from components.inference import predict
from components.io import datasets, shards
from components.jobs import training
from components.planning import plan_shards
from components.publication import publish_predictions
from components.sharded_inference import predict_shard
from tests.conftest import BIKE_SCHEMA
from tests.jobs.helpers import features, run, settings, unique, with_demand

pytestmark = pytest.mark.integration

PASSTHROUGH = ["instant", "dteday"]
ROW_GROUP_ROWS = 2500


@dataclasses.dataclass(frozen=True)
class Model:
    name: str
    experiment: str
    version: int


@pytest.fixture(scope="module")
def model(mlflow_server, bike, tmp_path_factory) -> Model:
    """One small regressor, registered as v1 and made Champion."""
    name, experiment = unique("sharding"), unique("sharding")
    common = settings(mlflow_server, experiment)
    folder = tmp_path_factory.mktemp("sharding-model")
    with_demand(bike.head(3000)).to_parquet(folder / "train.parquet", index=False)
    trained = run(
        training.TrainingJob(
            inputs=datasets.ParquetReader(path=str(folder / "train.parquet")),
            target="cnt",
            model={"KIND": "HistGradientBoostingRegressor", "params": {"max_iter": 20}},
            model_name=name,
            holdout=datasets.ParquetWriter(path=str(folder / "holdout.parquet")),
            **features("cnt"),
            **common,
        )
    )
    client = common["mlflow_service"].client()
    client.set_registered_model_alias(name, "Champion", str(trained.model_ref.version))
    return Model(name, experiment, trained.model_ref.version)


@pytest.fixture(scope="module")
def inputs(bike, tmp_path_factory) -> dict[str, pathlib.Path]:
    """The whole bike data as one Parquet file of several row groups, a Parquet folder of
    uneven files, and a CSV folder."""
    root = tmp_path_factory.mktemp("sharding-inputs")
    file = root / "hour.parquet"
    bike.to_parquet(file, index=False, row_group_size=ROW_GROUP_ROWS)
    cuts = [0, 3000, 9000, len(bike)]
    (root / "parquet").mkdir()
    (root / "csv").mkdir()
    for number, (start, end) in enumerate(zip(cuts, cuts[1:], strict=False)):
        part = bike.iloc[start:end]
        part.to_parquet(root / "parquet" / f"{number}.parquet", index=False, row_group_size=2000)
        part.to_csv(root / "csv" / f"{number}.csv", index=False)
    return {"parquet-file": file, "parquet-folder": root / "parquet", "csv-folder": root / "csv"}


@pytest.fixture
def steps(model, tracking, tmp_path):
    """Run the components' functions as their pods do; outputs go under tmp_path."""
    return Steps(model, tmp_path)


class Steps:
    """The sharded and the one-pod predictions, through the components' own functions."""

    def __init__(self, model: Model, folder: pathlib.Path):
        self.model, self.folder = model, folder
        self.common = {"experiment": model.experiment, "run_id": "run-sharding"}

    def artifact(self, kind: T.Any, name: str) -> T.Any:
        return kind(uri=str(self.folder / name))

    def monitoring(self, prefix: str) -> dict[str, T.Any]:
        """The drift outputs of a predict or publish step (the last ones kept in `outputs`)."""
        self.outputs = {
            "drift_metrics": self.artifact(dsl.Metrics, f"{prefix}-drift-metrics"),
            "drift_table": self.artifact(dsl.Dataset, f"{prefix}-drift-table"),
            "drift_report": self.artifact(dsl.HTML, f"{prefix}-drift-report"),
        }
        return self.outputs

    def one_pod(self, data: pathlib.Path, **options: T.Any) -> pathlib.Path:
        predictions = self.artifact(dsl.Dataset, "one-pod")
        predict.python_func(
            predictions=predictions, summary=self.artifact(dsl.Markdown, "one-pod-summary"),
            data=str(data), model_name=self.model.name, passthrough=PASSTHROUGH,
            input_schema=str(BIKE_SCHEMA), **self.monitoring("one-pod"), **options,
            **self.common,
        )  # fmt: skip
        return pathlib.Path(predictions.path)

    def plan(
        self, data: pathlib.Path, count: int, reader: dict | None = None, challenger: str = ""
    ) -> tuple[T.Any, list[int]]:
        plan = self.artifact(dsl.Artifact, "plan")
        indices = plan_shards.python_func(
            plan=plan, data=str(data), model_name=self.model.name, shards=count, reader=reader,
            challenger=challenger, **self.common,
        )  # fmt: skip
        return plan, indices

    def shard(self, plan: T.Any, index: int, **options: T.Any) -> str:
        return predict_shard.python_func(
            plan=plan, shard=index, part=self.artifact(dsl.Dataset, f"part-{index}"),
            passthrough=PASSTHROUGH, input_schema=str(BIKE_SCHEMA), **options, **self.common,
        )  # fmt: skip

    def publish(
        self, plan: T.Any, reports: list[str], **options: T.Any
    ) -> tuple[int, pathlib.Path]:
        predictions = self.artifact(dsl.Dataset, "published")
        rows = publish_predictions.python_func(
            plan=plan, reports=reports, predictions=predictions,
            summary=self.artifact(dsl.Markdown, "published-summary"),
            **self.monitoring("published"), **options, **self.common,
        )  # fmt: skip
        return rows, pathlib.Path(predictions.path)

    def sharded(
        self, data: pathlib.Path, count: int, reader: dict | None = None, **options: T.Any
    ) -> pathlib.Path:
        plan, indices = self.plan(data, count, reader)
        reports = [self.shard(plan, index, **options) for index in indices]
        return self.publish(plan, reports)[1]


def read(path: pathlib.Path, kind: str = "ParquetReader") -> pd.DataFrame:
    """Read predictions with the project's reader (a file, or a published folder)."""
    frame = datasets.reader_for(str(path), KIND=kind).read()
    return frame.sort_values("instant", kind="stable").reset_index(drop=True)


@pytest.mark.parametrize("layout", ["parquet-file", "parquet-folder", "csv-folder"])
def test_sharded_predictions_are_those_of_one_pod(steps, inputs, layout, bike):
    csv = layout == "csv-folder"
    reader = {"KIND": "CSVReader"} if csv else None
    options = {"writer": {"KIND": "CSVWriter"}} if csv else {}
    kind = "CSVReader" if csv else "ParquetReader"
    one = read(steps.one_pod(inputs[layout], reader=reader, **options), kind)
    published = steps.sharded(inputs[layout], 3, reader, **options)
    sharded = read(published, kind)
    assert len(sharded) == len(bike) == len(one)
    assert sharded["instant"].is_unique
    pd.testing.assert_frame_equal(sharded, one)
    manifest = json.loads((published / shards.MANIFEST).read_text())
    assert manifest["rows"] == len(bike)
    assert manifest["model_version"] == steps.model.version
    assert manifest["run_id"] == "run-sharding"
    assert manifest["format"] == ("csv" if options else "parquet")
    assert len(manifest["files"]) == 3
    assert sum(part["rows"] for part in manifest["parts"]) == len(bike)


def test_shards_are_balanced_from_row_groups(steps, inputs, bike):
    plan, indices = steps.plan(inputs["parquet-file"], 3)
    assert indices == [0, 1, 2]
    rows = shards.ShardPlan.read(plan.path).weights()
    assert sum(rows) == len(bike)
    # Row groups of 2,500 rows: no split can differ by less than one row group.
    assert max(rows) - min(rows) <= ROW_GROUP_ROWS
    assert plan.metadata["shards"] == 3


def test_pyarrow_opens_the_published_parts_as_one_table(steps, inputs, bike):
    import pyarrow.dataset as pads

    published = steps.sharded(inputs["parquet-folder"], 2)
    manifest = json.loads((published / shards.MANIFEST).read_text())
    table = pads.dataset(manifest["files"], format=manifest["format"]).to_table()
    assert table.num_rows == len(bike)
    assert sorted(table.column("instant").to_pylist()) == sorted(bike["instant"])


def test_every_shard_predicts_with_the_version_planned_while_the_alias_moves(
    steps, inputs, model, tracking
):
    import mlflow

    client = mlflow.MlflowClient(tracking)
    plan, indices = steps.plan(inputs["parquet-file"], 2)
    first = steps.shard(plan, 0)
    # Another run promotes a new version between the shards.
    source = client.get_model_version(model.name, str(model.version))
    moved = mlflow.register_model(source.source, model.name)
    client.set_registered_model_alias(model.name, "Champion", moved.version)
    try:
        second = steps.shard(plan, 1)
        reports = [shards.ShardReport.parse(text) for text in (first, second)]
        assert {report.model_version for report in reports} == {model.version}
        rows, published = steps.publish(plan, [first, second])
        manifest = json.loads((published / shards.MANIFEST).read_text())
        assert manifest["model_version"] == model.version
    finally:
        client.set_registered_model_alias(model.name, "Champion", str(model.version))


def test_a_retried_shard_replaces_its_own_part(steps, inputs, bike):
    plan, indices = steps.plan(inputs["parquet-file"], 3)
    reports = [steps.shard(plan, index) for index in indices]
    # Shard 1 runs again (a retry of its pod): same output, written anew.
    retried = steps.shard(plan, 1)
    part = steps.folder / "part-1"
    assert {**json.loads(retried), "seconds": 0} == {**json.loads(reports[1]), "seconds": 0}
    assert sorted(path.name for path in part.parent.glob("*part-1*")) == ["part-1"]
    reports[1] = retried
    rows, published = steps.publish(plan, reports)
    assert rows == len(bike)
    assert read(published)["instant"].is_unique


def test_reports_that_miss_or_repeat_a_shard_publish_nothing(steps, inputs):
    plan, indices = steps.plan(inputs["parquet-file"], 3)
    reports = [steps.shard(plan, index) for index in indices[:2]]
    with pytest.raises(ValueError, match=r"no report from shard\(s\) 2") as missing:
        steps.publish(plan, reports)
    assert "nothing was published" in str(missing.value)
    with pytest.raises(ValueError, match=r"shard\(s\) 1 reported more than once"):
        steps.publish(plan, [reports[0], reports[1], reports[1]])
    assert not (steps.folder / "published" / shards.MANIFEST).exists()


def test_rules_broken_in_several_shards_are_reported_with_their_totals(steps, bike, tmp_path):
    """As one pod reports them: the same rules, the same row counts, the same rows checked."""
    bad = tmp_path / "bad"
    bad.mkdir()
    frame = bike.copy()
    frame.loc[frame.index[:7], "temp"] = 5.0  # in the first shard: outside [0, 1]
    frame.loc[frame.index[-5:], "temp"] = -1.0  # in the last shard
    frame.loc[frame.index[-3:], "hum"] = 2.0
    for number, start in enumerate(range(0, len(frame), 6000)):
        frame.iloc[start : start + 6000].to_parquet(bad / f"{number}.parquet", index=False)
    with pytest.raises(schemas.ValidationError) as one_pod:
        steps.one_pod(bad)
    plan, indices = steps.plan(bad, 3)
    reports = [steps.shard(plan, index) for index in indices]
    broken = [shards.ShardReport.parse(text) for text in reports]
    assert [bool(report.violations) for report in broken] == [True, False, True]
    assert all(report.uri == "" and report.rows == 0 for report in broken if report.violations)
    with pytest.raises(schemas.ValidationError) as sharded:
        steps.publish(plan, reports)
    assert str(sharded.value) == str(one_pod.value)
    assert "column 'temp'" in str(sharded.value) and "(12 rows)" in str(sharded.value)
    assert "column 'hum'" in str(sharded.value) and "(3 rows)" in str(sharded.value)
    assert not (steps.folder / "published" / shards.MANIFEST).exists()


def test_a_shard_with_another_model_version_is_refused(steps, inputs):
    plan, indices = steps.plan(inputs["parquet-file"], 2)
    reports = [steps.shard(plan, index) for index in indices]
    other = shards.ShardReport.parse(reports[1]).model_copy(update={"model_version": 99})
    with pytest.raises(ValueError, match=r"shard\(s\) 1 predicted with another model"):
        steps.publish(plan, [reports[0], other.model_dump_json()])


def test_explanations_of_a_sharded_input_are_drawn_across_its_shards(steps, inputs, bike):
    plan, _ = steps.plan(inputs["parquet-folder"], 3)
    samples = steps.artifact(dsl.Dataset, "samples")
    version = explain.python_func(
        plan=plan, models_explanations=steps.artifact(dsl.Dataset, "models"),
        samples_explanations=samples, report=steps.artifact(dsl.HTML, "report"),
        summary=steps.artifact(dsl.Markdown, "summary"),
        card=steps.artifact(dsl.Markdown, "card"), max_samples=60,
        passthrough=["instant"], **steps.common,
    )  # fmt: skip
    assert version == steps.model.version
    explained = pd.read_parquet(samples.path)["instant"]
    assert len(explained) == 60 and explained.is_unique
    # Drawn from every file of the input, not only the first rows of the first one.
    positions = bike.set_index("instant").index.get_indexer(explained)
    files = np.searchsorted([3000, 9000], positions, side="right")
    assert set(files) == {0, 1, 2}


@pytest.fixture
def drifted(bike, tmp_path) -> pathlib.Path:
    """The bike rows in three files, temp moved up in the last (within the schema's range).

    The model learnt from the first 3,000 rows (winter): the whole year drifts already.
    """
    folder = tmp_path / "drifted"
    folder.mkdir()
    frame = bike.copy()
    last = frame.index[12000:]
    frame.loc[last, "temp"] = (frame.loc[last, "temp"] + 0.5).clip(upper=1.0)
    for number, start in enumerate(range(0, len(frame), 6000)):
        frame.iloc[start : start + 6000].to_parquet(folder / f"{number}.parquet", index=False)
    return folder


def test_drift_summed_over_the_shards_is_that_of_one_pod(steps, drifted):
    """The shards count, the publish step judges the total: the one pod's table, to the digit,
    and the one pod's estimated performance."""
    steps.one_pod(drifted)
    one_pod = pd.read_parquet(steps.folder / "one-pod-drift-table")
    one_pod_scores = dict(steps.outputs["drift_metrics"].metadata)
    plan, indices = steps.plan(drifted, 3)
    reports = [shards.ShardReport.parse(steps.shard(plan, index)) for index in indices]
    assert all(report.tally is not None for report in reports)
    assert all(report.estimate_tally is not None for report in reports)
    steps.publish(plan, [report.model_dump_json() for report in reports])
    sharded = pd.read_parquet(steps.folder / "published-drift-table")
    pd.testing.assert_frame_equal(sharded, one_pod)
    scores = steps.outputs["drift_metrics"].metadata
    estimated = {k: v for k, v in one_pod_scores.items() if k.startswith("estimated_")}
    assert estimated and "estimated_rmse" in estimated
    assert {k: scores[k] for k in estimated} == pytest.approx(estimated, rel=1e-9)
    features = sharded[sharded["column"] != "(prediction)"]
    drifted_features = features.loc[features["status"] == "drift", "column"].tolist()
    assert "temp" in drifted_features
    page = (steps.folder / "published-drift-report").read_text(encoding="utf-8")
    assert f"{len(drifted_features)} of 12 features drifted" in page


def test_drift_policy_fail_over_shards_publishes_nothing(steps, drifted):
    plan, indices = steps.plan(drifted, 3)
    reports = [steps.shard(plan, index, drift_policy="fail") for index in indices]
    with pytest.raises(drift.DriftError, match=r"drifted beyond the thresholds over the 3 shards"):
        steps.publish(plan, reports, drift_policy="fail")
    assert not (steps.folder / "published" / shards.MANIFEST).exists()


def test_the_plan_pins_the_challenger_and_the_shards_compare_with_it(steps, inputs, bike):
    plan, indices = steps.plan(inputs["parquet-file"], 3, challenger="Champion")
    pinned = shards.ShardPlan.read(plan.path).challenger
    assert pinned == {
        "KIND": "RegistryFinder",
        "name": steps.model.name,
        "alias_or_version": steps.model.version,
    }
    reports = [steps.shard(plan, index) for index in indices]
    steps.publish(plan, reports)
    scores = steps.outputs["drift_metrics"].metadata
    assert scores["challenger_rows"] == len(bike)
    assert scores["challenger_mean_absolute_difference"] == 0.0
    summary = (steps.folder / "published-summary").read_text(encoding="utf-8")
    assert f"challenger {steps.model.name} v{steps.model.version} vs" in summary
