"""The chaining example runs for real under kfp.local: a user's own Dataset feeds the project's
components, and the compiled `inference` pipeline runs nested in a user's pipeline.

Against the session's real MLflow server; every step is a subprocess, as in a pod.
"""

from __future__ import annotations

import importlib.util
import json
import pathlib
import uuid

import pandas as pd
import pytest
from kfp import local
from mlflow import MlflowClient

from tests.conftest import ROOT

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:You may be attemping:RuntimeWarning"),
]


def load_example():
    spec = importlib.util.spec_from_file_location("chaining", ROOT / "examples" / "chaining.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def runs(mlflow_server, tmp_path_factory):
    """Both example pipelines, run once: (model name, pipeline root)."""
    example = load_example()
    name = f"chained-{uuid.uuid4().hex[:8]}"
    root = tmp_path_factory.mktemp("pipeline-root")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
        patch.delenv("SLACK_WEBHOOK_URL", raising=False)
        local.init(
            runner=local.SubprocessRunner(use_venv=False),
            pipeline_root=str(root),
            raise_on_error=True,
        )
        prepared = example.prepared(model_name=name, rows=2000)
        example.nested(model_name=name)
    return name, root, prepared


def task_dir(root: pathlib.Path, pipeline: str, task: str) -> pathlib.Path:
    [run] = sorted(root.glob(f"{pipeline}-*"))
    return run / task


def test_a_user_dataset_feeds_train_predict_and_explain(runs, mlflow_server):
    name, root, prepared = runs
    assert prepared.output == 2000  # the user's step read predict's Dataset back
    client = MlflowClient(mlflow_server, registry_uri=mlflow_server)
    assert client.get_model_version_by_alias(name, "Champion").version == "1"
    signature = client.get_model_version(name, "1")
    assert signature.run_id
    predictions = pd.read_parquet(task_dir(root, "prepared", "predict") / "predictions")
    assert list(predictions.columns) == ["instant", "prediction"] and len(predictions) == 2000
    explanations = pd.read_parquet(task_dir(root, "prepared", "explain") / "models_explanations")
    assert "temp" in set(explanations["feature"])  # the user's column, without "num__"
    samples = pd.read_parquet(task_dir(root, "prepared", "explain") / "samples_explanations")
    assert len(samples) == 50


def test_the_compiled_inference_pipeline_runs_nested(runs):
    name, root, _ = runs
    [run] = sorted(root.glob("nested-*"))
    predicted = sorted(run.rglob("predict*/predictions"))
    assert predicted, sorted(str(p.relative_to(run)) for p in run.rglob("*"))[:40]
    assert len(pd.read_parquet(predicted[0])) == 17_379
    notified = sorted(run.rglob("notify*/executor_output.json"))
    assert notified, "the nested pipeline's exit handler ran"
    assert json.loads(notified[0].read_text())["parameterValues"]["Output"] is True
