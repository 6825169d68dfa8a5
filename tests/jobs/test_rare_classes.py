"""Integration: a classifier whose holdout lacks a class, evaluated by the evaluate component
against the session's real MLflow server.

A user's table of 25 grades and one row of a 26th class ("zz", sorted last) leaves that class
out of the holdout. The ROC curve was drawn for the last class, so its recall was NaN, and KFP
cannot write a NaN into an artifact's metadata: the step's outputs failed to serialize and the
run ended in a protobuf traceback after the evaluation had succeeded. The component is called
as KFP calls it, with real artifacts whose metadata then goes through protobuf as kfp.local
and the launcher write it. The class of one row trains, the other classes are stratified, and
the performance estimator is fitted all the same.
"""

from __future__ import annotations

import math
import pathlib

import numpy as np
import pandas as pd
import pytest
from google.protobuf import json_format, struct_pb2
from kfp import dsl

from components.core import metrics
from components.io import datasets
from components.jobs import training
from tests.jobs.helpers import run, settings, unique

pytestmark = pytest.mark.integration


def grades(rows: int) -> pd.DataFrame:
    """25 grades that follow x1, and one row of a class 'zz' that sorts after them all."""
    rng = np.random.default_rng(0)
    x1 = rng.normal(size=rows)
    codes = np.clip(((x1 + 3) / 6 * 25).astype(int), 0, 24)
    frame = pd.DataFrame(
        {"x1": x1, "x2": rng.normal(size=rows), "grade": [f"g{code:02d}" for code in codes]}
    )
    frame.loc[0, "grade"] = "zz"
    return frame


def as_protobuf(metadata: dict) -> dict:
    """The metadata as KFP writes it: a protobuf Struct, read back as JSON (raises on NaN)."""
    struct = struct_pb2.Struct()
    struct.update(metadata)
    return json_format.MessageToDict(struct)


def test_a_holdout_without_the_last_class_is_evaluated_and_its_outputs_written(
    mlflow_server, tmp_path
):
    from components.evaluation import evaluate

    name = unique("grades")
    common = settings(mlflow_server, unique("grades"))
    grades(2000).to_parquet(tmp_path / "train.parquet", index=False)
    holdout = tmp_path / "holdout.parquet"
    trained = run(
        training.TrainingJob(
            inputs=datasets.ParquetReader(path=str(tmp_path / "train.parquet")),
            target="grade",
            model={"KIND": "HistGradientBoostingClassifier", "params": {"max_iter": 10}},
            model_name=name,
            holdout=datasets.ParquetWriter(path=str(holdout)),
            **common,
        )
    )
    assert "zz" not in set(pd.read_parquet(holdout)["grade"])
    told = " ".join(trained.warnings)
    assert "class(es) 'zz' of 'grade' have a single row: it trains, and the holdout is " in told
    assert "plain random" not in told  # the other classes stay stratified
    # A class the holdout lacks costs no class its performance estimate.
    assert "no performance estimator" not in told

    model = dsl.Model(uri=str(tmp_path / "model"))
    model.metadata.update({"name": name, "version": trained.model_ref.version})
    scores = dsl.Metrics(uri=str(tmp_path / "metrics"))
    curves = dsl.ClassificationMetrics(uri=str(tmp_path / "classification"))
    report = dsl.HTML(uri=str(tmp_path / "report"))
    evaluate.python_func(
        target="grade",
        holdout=dsl.Dataset(uri=str(holdout)),
        model=model,
        metrics=scores,
        classification_metrics=curves,
        report=report,
        summary=dsl.Markdown(uri=str(tmp_path / "summary")),
        card=dsl.Markdown(uri=str(tmp_path / "card")),
        champion=str(tmp_path / "champion"),
        experiment=common["mlflow_service"].experiment_name,
    )
    written = as_protobuf(curves.metadata)
    points = written["confidenceMetrics"]
    assert points and all(math.isfinite(point["recall"]) for point in points)
    assert points[-1]["recall"] == 1.0  # the curve of the last class the holdout has
    assert len(written["confusionMatrix"]["annotationSpecs"]) == 26
    assert set(as_protobuf(scores.metadata)) == {"accuracy", "f1_macro", "roc_auc", "log_loss"}
    assert pathlib.Path(report.path).read_text(encoding="utf-8").count("<img") == 2


def test_the_roc_curve_is_of_a_class_with_rows_on_both_sides():
    labels = ["a", "b", "c"]
    assert metrics.roc_class(pd.Series(["a", "b", "c"]), labels) == "c"
    assert metrics.roc_class(pd.Series(["a", "b", "a"]), labels) == "b"
    assert metrics.roc_class(pd.Series([0, 1, 0]), ["0", "1"]) == "1"
    assert metrics.roc_class(pd.Series(["a", "a"]), labels) is None


def test_a_metric_that_is_not_a_number_stays_off_the_artifact(tmp_path):
    from components.io import artifacts

    scores = dsl.Metrics(uri=str(tmp_path / "metrics"))
    artifacts.log_metrics(scores, {"r2": float("nan"), "rmse": 2.5, "mae": float("inf")})
    assert as_protobuf(scores.metadata) == {"rmse": 2.5}
