"""The tuning pipeline for real under kfp.local: trials in parallel, the best one registered.

One run (4 trials, 2 at a time, on a small slice of the demo data) against the session's MLflow
server; the pre-run check's refusals and the compiled YAML are checked without running a step.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from components.core import search
from components.io import parents
from pipelines.cli import main
from pipelines.common import outcomes
from pipelines.dags import catalog
from pipelines.local.runner import run_local
from tests.conftest import BIKE_PARQUET

pytestmark = pytest.mark.filterwarnings("ignore:You may be attemping:RuntimeWarning")

ROWS = 2_000  # a small slice: four quick trials that still pass r2 >= 0.5
BIKE = {
    "target": "cnt",
    "exclude": ["instant", "dteday", "casual", "registered"],
    "categorical": ["season", "weathersit"],
    "time_column": "instant",
}
SPACE = {
    "max_iter": [20, 40],
    "learning_rate": {"low": 0.03, "high": 0.3, "log": True},
    "max_depth": {"low": 3, "high": 6, "type": "int"},
}


@pytest.fixture(scope="module")
def tuned(mlflow_server, tmp_path_factory):
    """One tuning run: 4 random trials, 2 at a time, ranked by test_rmse: no metric is given,
    and a regressor's primary metric is the default."""
    folder = tmp_path_factory.mktemp("tuning")
    small = folder / "small.parquet"
    pd.read_parquet(BIKE_PARQUET).head(ROWS).to_parquet(small)
    params = {
        **BIKE,
        "data": str(small),
        "model_name": "tuned-bikes",
        "experiment": "tuning-test",
        "search_space": SPACE,
        "search": "random",
        "trials": 4,
        "parallelism": 2,
        "seed": 0,
        "thresholds": {"r2": 0.5},
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
        patch.delenv("SLACK_WEBHOOK_URL", raising=False)
        succeeded, run_dir = run_local(
            "tuning", params, root=folder / "runs", tracking_uri=mlflow_server
        )
    return succeeded, run_dir, params


def test_tuning_nests_four_trials_and_registers_the_best_one(tuned, mlflow_server):
    succeeded, run_dir, params = tuned
    assert succeeded
    client = MlflowClient(mlflow_server, registry_uri=mlflow_server)
    experiment = client.get_experiment_by_name(params["experiment"])
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    [parent] = [r for r in runs if r.data.tags.get(parents.PARENT_TAG) == "true"]
    trials = [r for r in runs if search.TRIAL_TAG in r.data.tags]
    # Four trials, each nested under the one parent, tagged with its number, with its params.
    assert sorted(int(r.data.tags[search.TRIAL_TAG]) for r in trials) == [0, 1, 2, 3]
    assert {r.data.tags.get("mlflow.parentRunId") for r in trials} == {parent.info.run_id}
    planned = search.expand(search.parse(SPACE), "random", 4, seed=0)
    for run in trials:
        trial = planned[int(run.data.tags[search.TRIAL_TAG])]
        assert run.data.params["max_iter"] == str(trial.params["max_iter"])
        assert run.data.params["max_depth"] == str(trial.params["max_depth"])
        assert float(run.data.params["learning_rate"]) == pytest.approx(
            trial.params["learning_rate"]
        )
        assert "test_rmse" in run.data.metrics
    # Exactly one new version, logged by the trial with the lowest test_rmse.
    best = min(trials, key=lambda r: r.data.metrics["test_rmse"])
    versions = client.search_model_versions(f"name = '{params['model_name']}'")
    assert [(v.version, v.run_id) for v in versions] == [("1", best.info.run_id)]
    [selection] = [r for r in runs if "best_test_rmse" in r.data.metrics]
    assert selection.data.metrics["best_test_rmse"] == best.data.metrics["test_rmse"]
    version = versions[0]
    assert version.tags["kfp.task"] == "select-trial"  # a retry of the step keeps it
    # The card a training writes, from the facts the trial kept: its version, its params.
    assert f"{params['model_name']} v1" in version.description
    assert "max_depth" in version.description
    assert client.get_run(best.info.run_id).data.tags["model_version"] == "1"
    # Evaluated and promoted as a training's version is.
    assert version.tags["evaluation.passed"] == "true"
    assert client.get_model_version_by_alias(params["model_name"], "Champion").version == "1"
    returned = json.loads((run_dir / "promote" / "executor_output.json").read_text())
    assert returned["parameterValues"] == {"Output": "1"}
    # The selection's summary ranks the trials, best first, each with its point of the space.
    summary = (run_dir / "select-trial" / "summary").read_text()
    rows = [line for line in summary.splitlines() if line.startswith("| trial ")]
    assert len(rows) == 4 and f"| trial {best.data.tags[search.TRIAL_TAG]} |" in rows[0]
    assert f"max_depth={best.data.params['max_depth']}" in rows[0]
    # The run's last line tells the same story (read from the store the steps used).
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
        story = outcomes.from_local_run("tuning", run_dir).story()
    assert story.startswith("tuned-bikes v1 registered (test rmse")
    assert story.endswith("promoted: Champion is now v1")


def test_a_bad_search_space_exits_2_before_anything_runs(mlflow_server, tmp_path, capsys):
    """`run tuning --local` refuses a misspelled key before any step: no run, no version."""
    config = tmp_path / "tuning.yaml"
    space = {"max_dpth": [3, 5]}
    values = {**BIKE, "data": str(BIKE_PARQUET), "model_name": "never-tuned",
              "experiment": "never-tuned", "search_space": space}  # fmt: skip
    config.write_text(yaml.safe_dump({"pipeline": "tuning", "parameters": values}))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
        code = main(["run", "tuning", "--local", "--config", str(config), "--root",
                     str(tmp_path / "runs")])  # fmt: skip
    error = capsys.readouterr().err
    assert code == 2
    lines = [line for line in error.splitlines() if line.strip()]
    assert len(lines) == 1, error
    assert "'search_space'" in lines[0] and "max_dpth" in lines[0]
    assert "did you mean: max_depth" in lines[0]
    client = MlflowClient(mlflow_server, registry_uri=mlflow_server)
    assert client.get_experiment_by_name("never-tuned") is None
    assert client.search_model_versions("name = 'never-tuned'") == []
    assert not (tmp_path / "runs").exists()


def test_the_compiled_tuning_fans_out_with_its_parallelism():
    spec = next(yaml.safe_load_all((catalog.COMPILED / "tuning.yaml").read_text()))
    loops = [
        task
        for component in spec["components"].values()
        for task in (component.get("dag") or {}).get("tasks", {}).values()
        if "parameterIterator" in task
    ]
    [loop] = loops
    assert loop["iteratorPolicy"]["parallelismLimit"] == 2
    assert loop["parameterIterator"]["items"]["inputParameter"].endswith("plan-trials-Output")
    assert "parallelism" in spec["root"]["inputDefinitions"]["parameters"]


def test_a_run_builds_the_loop_with_its_parallelism(tmp_path):
    """`parallelism` is the loop's limit when a run builds the pipeline (kfp takes an int)."""
    from kfp import compiler

    pipeline = catalog.build("tuning", gpu=False, retries=False, shape={"parallelism": 3})
    out = tmp_path / "tuning.yaml"
    compiler.Compiler().compile(pipeline, str(out))
    [limit] = [line.strip() for line in out.read_text().splitlines() if "parallelismLimit" in line]
    assert limit == "parallelismLimit: 3"


def test_this_process_prints_without_indent_after_a_parallel_run(tuned, capsys):
    """kfp.local's ParallelFor threads can leave an indenting `print` behind; the runner
    restores the one it found."""
    print("after the run")
    assert capsys.readouterr().out == "after the run\n"
