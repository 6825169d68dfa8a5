"""The pre-run check: every step of the real pipelines builds its job from the parameters with
the mapping its component runs, and a bad value is refused before anything runs, on every path
that starts pipelines (`run --local`, `submit`, `schedule sync`, the model manager's jobs).

The KFP API server of the submit and schedule tests is the in-memory fake of
tests/pipelines/kfp_api_server.py: it stands in for a Kubeflow Pipelines backend because none can
run on this machine; the checks must send it no request at all.
"""

import importlib
import inspect
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kfp import compiler, dsl

import components
from pipelines.__main__ import main
from pipelines.checks import params, preflight
from pipelines.dags import catalog
from pipelines.jobs import backends, management
from tests.pipelines.kfp_api_server import FakeKfpApiServer, isolate_kfp_client

DEMO = "demo://bike-sharing/hour.parquet"
GOOD = {
    "training": {"data": DEMO, "target": "cnt", "model_name": "bikes"},
    "inference": {"data": DEMO, "model_name": "bikes"},
    "lifecycle": {"data": DEMO, "inference_data": DEMO, "target": "cnt", "model_name": "bikes"},
    "monitoring": {
        "predictions_data": DEMO,
        "truth_data": DEMO,
        "keys": ["instant"],
        "target": "cnt",
        "model_name": "bikes",
    },
    "tuning": {
        "data": DEMO,
        "target": "cnt",
        "model_name": "bikes",
        "search_space": {"max_iter": [20, 40], "learning_rate": {"low": 0.05, "high": 0.2}},
    },
}


def checked(pipeline: str, **values: Any) -> preflight.Checked:
    parameters = params.of_pipeline(pipeline)
    given = params.validate(pipeline, {**GOOD[pipeline], **values}, parameters)
    return preflight.check(pipeline, given, parameters)


def refusal(pipeline: str, **values: Any) -> str:
    with pytest.raises(params.ParameterError) as error:
        checked(pipeline, **values)
    return str(error.value)


# -- one mapping per step ----------------------------------------------------------------------


@pytest.mark.parametrize("component", list(preflight.STEPS))
def test_each_component_runs_the_mapping_the_check_builds_its_job_with(component: str) -> None:
    module_name, job_name, fields_name = preflight.STEPS[component]
    function = getattr(importlib.import_module(components.COMPONENTS[component]), component)
    source = inspect.getsource(function.python_func)
    # The component maps its inputs with the same function, and runs the job it names.
    assert f"fields.{fields_name}" in source or f"import {fields_name}\n" in source
    assert f"import {job_name}\n" in source
    assert (
        f"steps.run_step(\n        {job_name}," in source
        or f"steps.run_job({job_name}, settings, **fields)" in source
    )
    mapping = getattr(importlib.import_module("components.fields"), fields_name)
    inputs = set(inspect.signature(function.python_func).parameters)
    # Every argument is an input or output of the component, or what it reads from its plan,
    # its shards' reports or its trials' models.
    read = {"the_plan", "shard_reports", "trial_runs"}
    assert set(inspect.signature(mapping).parameters) <= inputs | read


@pytest.mark.parametrize("pipeline", catalog.NAMES)
def test_every_step_of_the_project_builds_its_job(pipeline: str) -> None:
    found = checked(pipeline, **({"shards": 3} if pipeline == "inference" else {}))

    ours = [step.task for step in found.steps if step.component in preflight.STEPS]
    assert ours and sorted(found.jobs) == sorted(ours)
    assert [step.task for step in found.steps if step.task not in found.jobs] == ["notify"]
    assert found.steps[-1].final
    # Upstream artifacts are stand-ins: nothing the check builds points at a real output.
    for job in found.jobs.values():
        for _, value in job:
            if hasattr(value, "path") and value.path != DEMO:
                assert value.path.startswith(preflight.STAND_IN), value


def test_the_steps_are_in_the_order_they_run_with_the_branches_only_the_run_decides() -> None:
    found = checked("lifecycle")

    assert [(step.task, step.branches) for step in found.steps] == [
        ("train", ()),
        ("evaluate", ()),
        ("promote", ("passed",)),
        ("predict", ("passed",)),
        ("explain", ("passed",)),
        ("predict-2", ("not-passed",)),
        ("explain-2", ("not-passed",)),
        ("notify", ()),
    ]
    # Each input knows the pipeline parameter that sets it, or the step that produces it.
    predict = next(step for step in found.steps if step.task == "predict")
    assert predict.inputs["data"].parameter == "inference_data"
    assert predict.inputs["alias_or_version"].upstream == "promote"
    assert predict.artifacts == {"dataset": None}


def test_a_branch_the_parameters_rule_out_is_neither_listed_nor_checked() -> None:
    one_pod = checked("inference", shards=1)
    sharded = checked("inference", shards=3)

    assert [step.task for step in one_pod.steps] == ["predict", "explain", "notify"]
    assert [step.task for step in sharded.steps] == [
        "plan-shards", "predict-shard", "publish-predictions", "explain-2", "notify",
    ]  # fmt: skip
    [shard] = [step for step in sharded.steps if step.component == "predict_shard"]
    assert shard.loop == "shards" and shard.branches == ()
    # A shard's own settings are checked too, with a stand-in for the plan it will read.
    text = refusal("inference", shards=3, drift_policy="fial")
    assert "refused by step predict-shard: drift_policy: Input should be" in text
    # With one pod the shard steps do not run, so their checks do not apply either.
    assert "refused by step predict:" in refusal("inference", shards=1, drift_policy="fial")


@pytest.mark.parametrize(
    ("condition", "values", "expected"),
    [
        ("int(inputs.parameter_values['n']) == 1", {"n": 1}, True),
        ("!(int(inputs.parameter_values['n']) == 1)", {"n": 1}, False),
        ("!(int(inputs.parameter_values['n']) == 1)", {"n": 3}, True),
        ("inputs.parameter_values['flag'] == true", {"flag": False}, False),
        ("inputs.parameter_values['kind'] != 'csv'", {"kind": "csv"}, False),
        ("double(inputs.parameter_values['n']) > 0.5", {"n": 1}, True),
        (
            "int(inputs.parameter_values['n']) >= 2 && inputs.parameter_values['flag'] == true",
            {"n": 2, "flag": True},
            True,
        ),
        ("inputs.parameter_values['upstream'] == true", {}, None),
        ("inputs.parameter_values['n'].size() > 1", {"n": [1]}, None),
    ],
)
def test_a_branch_condition_is_decided_when_the_parameters_tell(
    condition: str, values: dict[str, Any], expected: bool | None
) -> None:
    bound = {name: preflight.Bound(value, parameter=name) for name, value in values.items()}
    bound["upstream"] = preflight.Bound(True, upstream="evaluate")

    assert preflight._decide(condition, bound) is expected


# -- what is refused, and how ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pipeline", "values", "expected"),
    [
        (
            "training",
            {"model_params": {"learning_rate": -0.1}},
            "parameter 'model_params' of pipeline training: {\"learning_rate\": -0.1} refused "
            "by step train: model.params: The 'learning_rate' parameter of "
            "HistGradientBoostingRegressor must be a float in the range (0.0, inf).",
        ),
        (
            "training",
            {"model_kind": "HistGradientBoostingClassifier", "thresholds": {"r2": 0.5}},
            "parameter 'thresholds' of pipeline training: {\"r2\": 0.5} refused by step "
            "evaluate: threshold on 'r2' does not apply to a classification model; its metrics: "
            "accuracy, f1_macro, roc_auc, log_loss (model_kind HistGradientBoostingClassifier)",
        ),
        (
            "lifecycle",
            {"tolerance": -1},
            "parameter 'tolerance' of pipeline lifecycle: -1.0 refused by step evaluate: "
            "tolerance: Input should be greater than or equal to 0",
        ),
        (
            "inference",
            {
                "challenger": "Challenger",
                "model_name": "",
                "finder": {"KIND": "UriFinder", "uri": "runs:/r/model"},
            },
            "parameter 'challenger' of pipeline inference: 'Challenger' refused by step "
            "predict: challenger 'Challenger' is an alias or version of model_name, which is "
            "empty",
        ),
        (
            "inference",
            {"performance_tolerance": -0.5},
            "parameter 'performance_tolerance' of pipeline inference: -0.5 refused by step "
            "predict: performance_tolerance: Input should be greater than or equal to 0",
        ),
        (
            "lifecycle",
            {"promotion": "manul"},
            "parameter 'promotion' of pipeline lifecycle: 'manul' refused by step promote: "
            "promotion: Input should be 'auto' or 'manual'",
        ),
        (
            "lifecycle",
            {"loader": {"KIND": "NoSuchLoader", "label_mapping": ["a", "b"]}},
            'parameter \'loader\' of pipeline lifecycle: {"KIND": "NoSuchLoader", '
            '"label_mapping": ["a", "b"]} refused by step predict: loader: unknown '
            "loader type 'NoSuchLoader'; allowed: 'FlavorLoader', 'SklearnLoader', ",
        ),
        (
            "training",
            {"trusted_types": ["sklearn.tree._tree.Tree"]},
            "parameter 'trusted_types' of pipeline training: [\"sklearn.tree._tree.Tree\"] "
            "refused by step train: trusted_types ['sklearn.tree._tree.Tree'] are for a "
            "model_kind named by an estimator's import path (package.module:Class, ",
        ),
        (
            "lifecycle",
            {"model_kind": "sklearn.ensemble:GradientBoostingRegressor", "trusted_types": [3]},
            "parameter 'trusted_types' of pipeline lifecycle: [3] refused by step train: "
            "trusted_types [3]: each is a type's full name as skops lists it",
        ),
        (
            "lifecycle",
            {"passthrough": ["instant", "prediction"]},
            'parameter \'passthrough\' of pipeline lifecycle: ["instant", "prediction"] refused '
            "by step predict: passthrough: passthrough column(s) 'prediction' would clash with "
            "the output's own columns ('prediction', probability_<class>): rename them",
        ),
        (
            "inference",
            {"passthrough": ["instant", "instant"]},
            'parameter \'passthrough\' of pipeline inference: ["instant", "instant"] refused '
            "by step predict: passthrough: passthrough lists 'instant' more than once",
        ),
        (
            "training",
            {"model_name": "team/churn"},
            "parameter 'model_name' of pipeline training: 'team/churn' refused by step train: "
            "model_name: 'team/churn' cannot name a registered model: MLflow refuses '/' in one "
            "(use '-' or '_')",
        ),
        (
            "inference",
            {"model_name": "team:churn"},
            "parameter 'model_name' of pipeline inference: 'team:churn' refused by step predict: "
            "finder.name: 'team:churn' cannot name a registered model: MLflow refuses ':' in one",
        ),
    ],
    ids=[
        "model-param-range",
        "threshold-of-the-other-task",
        "tolerance",
        "challenger",
        "performance-tolerance",
        "promotion",
        "loader",
        "trusted-types-of-a-model-kind",
        "trusted-types-not-text",
        "passthrough-named-as-an-output",
        "passthrough-twice",
        "model-name-with-a-slash",
        "model-name-with-a-colon-blamed-not-the-finder",
    ],  # fmt: skip
)
def test_the_refusal_names_the_parameter_its_value_and_the_rule(
    pipeline: str, values: dict[str, Any], expected: str
) -> None:
    text = refusal(pipeline, **values)

    assert text.startswith(expected), text
    assert "\n" not in text


TRAINING = {"data": DEMO, "target": "cnt"}


@pytest.mark.parametrize(
    ("pipeline", "policy", "expected"),
    [
        (
            "inference",
            {"period_hours": 0, "parameters": TRAINING},
            "refused by step notify: invalid retraining settings: period_hours: Input should be "
            "greater than 0 (got 0)",
        ),
        (
            "monitoring",
            {"on": ["drfit"], "parameters": TRAINING},
            "refused by step notify: invalid retraining settings: on.0: Input should be 'drift', "
            "'performance' or 'labels' (got 'drfit')",
        ),
        (
            "inference",
            {"trainer": "LocalTrainr", "parameters": TRAINING},
            "refused by step notify: trainer: unknown trainer type 'LocalTrainr' (did you mean: "
            "LocalTrainer?)",
        ),
        (
            "inference",
            {"parameters": {"target": "cnt"}},
            "refused by step notify: parameters (of the training it starts): pipeline training "
            "needs a value for: data (STRING)",
        ),
        (
            "inference",
            {"parameters": {**TRAINING, "model_kind": "Ridg"}},
            "refused by step notify: parameters (of the training it starts): parameter "
            "'model_kind' of pipeline training: 'Ridg' refused by step train: model: ",
        ),
    ],
    ids=["period", "trigger", "trainer", "no-data", "model-kind"],
)
def test_a_retraining_policy_is_checked_with_the_training_it_would_start(
    pipeline: str, policy: dict[str, Any], expected: str
) -> None:
    """The policy acts at the end of a run: what would stop it from starting is found first."""
    text = refusal(pipeline, retraining=policy)

    assert text.startswith(f"parameter 'retraining' of pipeline {pipeline}: "), text
    assert expected in text, text


def test_a_valid_retraining_policy_passes_the_check() -> None:
    found = checked("inference", retraining={"period_hours": 6, "parameters": TRAINING})

    [notify] = [step for step in found.steps if step.component == "notify"]
    assert notify.inputs["retraining"].value == {"period_hours": 6, "parameters": TRAINING}


def test_a_refusal_no_given_value_explains_names_the_step_setting() -> None:
    # No model_name and no finder: the step's own finder has no model to find.
    text = refusal("inference", model_name="")

    assert text.startswith("parameter 'finder' of pipeline inference: {} refused by step ")
    assert "no model named: set model_name to the registered model, or give a finder" in text


def test_a_users_component_of_a_project_name_is_left_to_its_own_checks(tmp_path: Path) -> None:
    @dsl.component(base_image="python:3.11-slim")
    def train(message: str) -> str:
        return message

    @dsl.pipeline(name="theirs")
    def theirs(message: str = "hi") -> None:
        train(message=message)

    path = tmp_path / "theirs.yaml"
    compiler.Compiler().compile(theirs, str(path))
    parameters = params.of_file(path)

    found = preflight.check("theirs", {"message": "x"}, parameters)

    assert [step.component for step in found.steps] == ["train"]
    assert found.jobs == {}


def test_on_a_cluster_only_bundled_inputs_are_checked_from_here() -> None:
    compiled = params.of_file(catalog.COMPILED / "training.yaml")
    assert not compiled.here
    values = {**GOOD["training"], "data": "/mnt/data/rows.parquet"}

    # A path in the pod's filesystem cannot be looked at from here: left to the step.
    assert preflight.validate("training", values, compiled)["data"] == "/mnt/data/rows.parquet"
    with pytest.raises(params.ParameterError, match="no bundled demo file demo://bike/x.csv"):
        preflight.validate("training", {**values, "data": "demo://bike/x.csv"}, compiled)
    with pytest.raises(params.ParameterError, match="input not found: /mnt/data/rows.parquet"):
        preflight.validate("training", values, params.of_pipeline("training"))


def test_values_with_credentials_are_never_printed(tmp_path: Path) -> None:
    parameters = params.of_pipeline("inference")
    secret = "s3://user:hunter2@bucket/rows.parquet"

    text = preflight.describe("inference", {"data": secret, "model_name": "m"}, parameters)
    refused = refusal("inference", data=secret, drift_policy="fial")

    assert "hunter2" not in text and "s3://" in text
    assert "hunter2" not in refused


# -- every path that starts a pipeline checks first --------------------------------------------


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeKfpApiServer]:
    isolate_kfp_client(monkeypatch, tmp_path)
    with FakeKfpApiServer() as fake:
        yield fake


def test_submit_refuses_a_bad_value_before_any_request(
    server: FakeKfpApiServer, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["submit", "inference", "--host", server.url, "--param", f"data={DEMO}"]

    assert main([*argv, "--param", "model_name=m", "--param", "drift_policy=fial"]) == 2

    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "parameter 'drift_policy' of pipeline inference: 'fial' refused by step predict" in err
    assert server.requests == []


def test_submit_dry_run_prints_the_steps_and_sends_nothing(
    server: FakeKfpApiServer, capsys: pytest.CaptureFixture[str]
) -> None:
    config = Path(__file__).resolve().parents[2] / "confs" / "bike-sharing.yaml"
    argv = ["submit", "training", "--host", server.url, "--config", str(config), "--dry-run"]

    assert main(argv) == 0

    out = capsys.readouterr().out
    assert re.search(r'^  thresholds +\{"r2": 0\.7\}$', out, flags=re.MULTILINE), out
    assert "  train     Train and register             TrainingJob" in out
    assert out.endswith("dry run: nothing was started, registered or written\n")
    assert server.requests == []


def write_schedules(path: Path, schedule: dict[str, Any]) -> Path:
    document = {"owner": "me", "experiment": "nightly", "schedules": [schedule]}
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def test_a_schedule_is_checked_by_its_steps_before_any_change(
    server: FakeKfpApiServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    schedule = {
        "name": "nightly",
        "pipeline": "training",
        "cron": "0 0 2 * * *",
        "parameters": {**GOOD["training"], "model_params": {"max_depht": 3}},
    }
    path = write_schedules(tmp_path / "schedules.yaml", schedule)

    assert main(["schedule", "sync", "--file", str(path), "--host", server.url]) == 2

    err = capsys.readouterr().err
    assert "schedule 'nightly': parameter 'model_params' of pipeline training" in err
    assert "unknown parameter 'max_depht' (did you mean: max_depth?)" in err
    assert server.requests == []


def test_a_schedule_takes_from_a_lifecycle_config_what_its_pipeline_declares(
    server: FakeKfpApiServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    demo = Path(__file__).resolve().parents[2] / "confs" / "bike-sharing.yaml"
    (tmp_path / "bikes.yaml").write_text(demo.read_text())
    schedule = {"name": "weekly", "pipeline": "training", "cron": "0 0 3 * * 1"}
    path = write_schedules(tmp_path / "schedules.yaml", {**schedule, "config": "bikes.yaml"})

    argv = ["schedule", "sync", "--file", str(path), "--host", server.url, "--dry-run"]
    assert main(argv) == 0

    assert "create   weekly  pipeline training" in capsys.readouterr().out
    # A key that no pipeline declares is still refused.
    (tmp_path / "bikes.yaml").write_text(demo.read_text() + "  max_depth: 3\n")
    assert main(argv) == 2
    assert "unknown parameter 'max_depth'" in capsys.readouterr().err


def test_the_model_manager_refuses_a_key_no_pipeline_declares(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(
        textwrap.dedent("""\
        pipeline: lifecycle
        parameters: {data: rows.parquet, target: y, model_name: m, batch_sise: 10}
    """)
    )

    with pytest.raises(management.ManagementError) as error:
        management.ModelManager.from_file(path)

    assert str(error.value).startswith(f"{path}: parameters: unknown parameter 'batch_sise'")
    assert "did you mean: batch_size?" in str(error.value)


def test_a_model_manager_job_with_a_bad_value_starts_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIFECYCLE_HOME", str(tmp_path / "home"))
    predictor = backends.LocalJobPredictor(parameters={"model_name": "bikes"})

    with pytest.raises(params.ParameterError, match="'fial' refused by step predict"):
        predictor.predict(data=DEMO, drift_policy="fial")
    with pytest.raises(params.ParameterError, match="input not found: .*missing.parquet"):
        predictor.predict(data=str(tmp_path / "missing.parquet"))

    assert not (tmp_path / "home").exists(), "no job folder, no store"
