"""Pipeline parameters: read from the specs, converted by type, validated, and the `run` CLI.

The parameter lists are read from the real pipelines, never written down here: only a few that
exist today are asserted, so the pipelines may gain or lose others.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from pipelines.checks import params
from pipelines.checks.params import (
    BOOLEAN,
    LIST,
    NUMBER_DOUBLE,
    NUMBER_INTEGER,
    STRING,
    STRUCT,
    Config,
    Parameter,
    ParameterError,
)
from pipelines.cli import main
from pipelines.common.errors import UsageError
from pipelines.dags import catalog
from pipelines.local import runner as local


def param(kind: str, default: Any = None, name: str = "p") -> Parameter:
    return Parameter(name=name, type=kind, default=default, description="", optional=True)


# -- from_spec / of_file / of_pipeline --------------------------------------------------------


@pytest.fixture(scope="module")
def compiled() -> dict[str, dict[str, Parameter]]:
    return {name: params.of_file(catalog.COMPILED / f"{name}.yaml") for name in catalog.NAMES}


def test_of_file_reads_types_and_defaults_of_the_compiled_pipelines(
    compiled: dict[str, dict[str, Parameter]],
) -> None:
    for name in catalog.NAMES:
        assert compiled[name]["model_name"].type == STRING
    # Training needs a model name; inference may find its model another way (a finder).
    assert compiled["training"]["model_name"].required
    assert (
        compiled["inference"]["model_name"].optional,
        compiled["inference"]["model_name"].default,
    ) == (True, "")
    batch_size = compiled["inference"]["batch_size"]
    assert batch_size.type == NUMBER_INTEGER
    # Stored as a double in the spec; read back as the integer it is.
    assert isinstance(batch_size.default, int) and not isinstance(batch_size.default, bool)
    thresholds = compiled["training"]["thresholds"]
    assert thresholds.type == STRUCT
    assert isinstance(thresholds.default, dict)
    for parameters in compiled.values():
        for parameter in parameters.values():
            assert parameter.type in {STRING, NUMBER_INTEGER, NUMBER_DOUBLE, BOOLEAN, LIST, STRUCT}
            assert isinstance(parameter.description, str)


def test_from_spec_reads_descriptions_and_required_parameters() -> None:
    spec = {
        "root": {
            "inputDefinitions": {
                "parameters": {
                    "name": {"parameterType": "STRING", "description": "who to greet"},
                    "times": {
                        "parameterType": "NUMBER_INTEGER",
                        "defaultValue": 2.0,
                        "isOptional": True,
                        "description": "how often",
                    },
                    "tag": {"parameterType": "STRING", "isOptional": True},
                }
            }
        }
    }

    found = params.from_spec(spec)

    assert found["name"] == Parameter("name", STRING, None, "who to greet", False)
    assert found["times"] == Parameter("times", NUMBER_INTEGER, 2, "how often", True)
    assert [p.name for p in found.values() if p.required] == ["name"]
    assert params.from_spec({"root": {}}) == {}


def test_of_pipeline_reads_the_pipeline_built_in_memory() -> None:
    # Not compared with the compiled file: that one is only as new as the last `make compile`.
    in_memory = params.of_pipeline("inference")

    assert in_memory["model_name"].type == STRING
    assert in_memory["batch_size"].type == NUMBER_INTEGER
    assert isinstance(in_memory["batch_size"].default, int)


def test_of_pipeline_refuses_an_unknown_name() -> None:
    with pytest.raises(UsageError, match="unknown pipeline 'inferense'; did you mean: inference"):
        params.of_pipeline("inferense")


def test_of_file_refuses_what_is_no_pipeline(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("just: a mapping\n")

    with pytest.raises(ParameterError, match="not a compiled pipeline"):
        params.of_file(path)
    with pytest.raises(ParameterError, match="cannot read compiled pipeline"):
        params.of_file(tmp_path / "missing.yaml")


# -- coerce --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        (STRING, "1", "1"),
        (STRING, "Champion", "Champion"),
        (STRING, "", ""),
        (STRING, 3, "3"),
        (STRING, 0.5, "0.5"),
        (STRING, True, "True"),
        (NUMBER_INTEGER, 3, 3),
        (NUMBER_INTEGER, 3.0, 3),
        (NUMBER_INTEGER, "42", 42),
        (NUMBER_INTEGER, " -7 ", -7),
        (NUMBER_DOUBLE, 1, 1.0),
        (NUMBER_DOUBLE, 0.25, 0.25),
        (NUMBER_DOUBLE, "0.5", 0.5),
        (NUMBER_DOUBLE, "1e-3", 0.001),
        (BOOLEAN, True, True),
        (BOOLEAN, False, False),
        (BOOLEAN, "true", True),
        (BOOLEAN, "False", False),
        (BOOLEAN, "yes", True),
        (BOOLEAN, "no", False),
        (BOOLEAN, "1", True),
        (BOOLEAN, "0", False),
        (LIST, ["a", 1], ["a", 1]),
        (LIST, '["instant", "dteday"]', ["instant", "dteday"]),
        (LIST, "[]", []),
        (STRUCT, {"r2": 0.5}, {"r2": 0.5}),
        (STRUCT, '{"max_iter": 30}', {"max_iter": 30}),
    ],
)
def test_coerce_converts_to_the_declared_type(kind: str, value: Any, expected: Any) -> None:
    result = params.coerce(param(kind), value)

    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("kind", "value", "expects"),
    [
        (STRING, ["a"], "expects a string"),
        (STRING, {"a": 1}, "expects a string"),
        (NUMBER_INTEGER, "1.5", "expects an integer"),
        (NUMBER_INTEGER, 1.5, "expects an integer"),
        (NUMBER_INTEGER, True, "expects an integer"),
        (NUMBER_INTEGER, "many", "expects an integer"),
        (NUMBER_DOUBLE, "half", "expects a number"),
        (NUMBER_DOUBLE, "nan", "expects a number"),
        (NUMBER_DOUBLE, False, "expects a number"),
        (BOOLEAN, "maybe", "expects true or false"),
        (BOOLEAN, 2, "expects true or false"),
        (LIST, "a,b", "expects a list"),
        (LIST, '{"a": 1}', "expects a list"),
        (LIST, {"a": 1}, "expects a list"),
        (STRUCT, "[1]", "expects a mapping"),
        (STRUCT, "r2=0.5", "expects a mapping"),
        (STRING, None, "expects a string"),
    ],
)
def test_coerce_refuses_a_wrong_type_and_shows_a_valid_value(
    kind: str, value: Any, expects: str
) -> None:
    with pytest.raises(ParameterError) as error:
        params.coerce(Parameter("p", kind, None, "", optional=False), value)

    message = str(error.value)
    assert message.startswith(f"parameter 'p' is {kind} and {expects}")
    assert f"; got {value!r} (e.g. p=" in message
    assert isinstance(error.value, UsageError)


def test_the_example_in_an_error_is_the_default_when_there_is_one() -> None:
    thresholds = param(STRUCT, {"r2": 0.7}, name="thresholds")

    with pytest.raises(ParameterError, match=r'\(e\.g\. thresholds=\{"r2": 0\.7\}\)'):
        params.coerce(thresholds, "r2")
    # The example itself is valid.
    example = thresholds.example().partition("=")[2]
    assert params.coerce(thresholds, example) == {"r2": 0.7}


def test_none_is_accepted_only_by_a_parameter_declared_optional_without_default() -> None:
    assert params.coerce(Parameter("p", STRING, None, "", optional=True), None) is None
    with pytest.raises(ParameterError):
        params.coerce(param(STRING, "x"), None)


# -- validate ------------------------------------------------------------------------------


SPEC = {
    "model_name": param(STRING, "bike-sharing", "model_name"),
    "batch_size": param(NUMBER_INTEGER, 1024, "batch_size"),
    "thresholds": param(STRUCT, {"r2": 0.7}, "thresholds"),
}


def test_validate_converts_the_values_given() -> None:
    values = {"model_name": 5, "batch_size": "64", "thresholds": '{"r2": 0.5}'}

    assert params.validate("lifecycle", values, SPEC) == {
        "model_name": "5",
        "batch_size": 64,
        "thresholds": {"r2": 0.5},
    }
    assert params.validate("lifecycle", {}, SPEC) == {}


def test_validate_names_an_unknown_parameter_and_suggests_close_ones() -> None:
    with pytest.raises(ParameterError) as error:
        params.validate("lifecycle", {"modle_name": "x"}, SPEC)

    assert str(error.value) == (
        "unknown parameter 'modle_name' for pipeline lifecycle; did you mean: model_name? "
        "(parameters: model_name, batch_size, thresholds)"
    )


def test_validate_names_every_unknown_parameter() -> None:
    with pytest.raises(ParameterError, match="unknown parameters 'modle_name' \\(did you mean"):
        params.validate("lifecycle", {"modle_name": "x", "zzz": 1}, SPEC)


def test_validate_names_missing_required_parameters() -> None:
    spec = {**SPEC, "data": Parameter("data", STRING, None, "", optional=False)}

    with pytest.raises(ParameterError, match=r"pipeline p needs a value for: data \(STRING\)"):
        params.validate("p", {"batch_size": 3}, spec)
    assert params.validate("p", {"data": "d.parquet"}, spec) == {"data": "d.parquet"}


# -- config files --------------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_load_config_reads_pipeline_and_typed_parameters(tmp_path: Path) -> None:
    path = write(tmp_path, "pipeline: inference\nparameters:\n  batch_size: 64\n  x: [1]\n")

    assert params.load_config(path) == Config("inference", {"batch_size": 64, "x": [1]})
    assert params.load_config(write(tmp_path, "parameters: {}\n")) == Config(None, {})
    assert params.load_config(write(tmp_path, "pipeline: training\n")) == Config("training", {})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("pipeline: [unclosed\n", "cannot read config"),
        ("", "a config file is a YAML mapping with keys: pipeline, parameters"),
        ("- a\n- b\n", "a config file is a YAML mapping with keys: pipeline, parameters"),
        ("params: {a: 1}\n", "unknown key 'params' in config; allowed keys: pipeline, parameters"),
        ("pipeline: [a]\n", "'pipeline' must be a pipeline name"),
        ("parameters: [a, b]\n", "'parameters' must be a mapping"),
        ("parameters: {1: a}\n", "parameter names must be text"),
    ],
    ids=["not-yaml", "empty", "list", "extra-key", "pipeline", "parameters", "key"],
)
def test_load_config_errors_name_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)

    with pytest.raises(ParameterError) as error:
        params.load_config(path)

    assert str(error.value).startswith(f"{path}: ")
    assert message in str(error.value)


def test_load_config_of_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="missing.yaml: cannot read config"):
        params.load_config(tmp_path / "missing.yaml")


def test_merge_lets_the_command_line_win() -> None:
    assert params.merge({"a": 1, "b": 2}, {"b": "3", "c": "4"}) == {"a": 1, "b": "3", "c": "4"}


OTHER = {"inference_data": param(STRING, "", "inference_data")}


def test_a_config_serves_every_pipeline_each_taking_what_it_declares(tmp_path: Path) -> None:
    path = write(
        tmp_path, "pipeline: lifecycle\nparameters: {batch_size: 8, inference_data: rows.csv}\n"
    )
    pipelines = {"lifecycle": {**SPEC, **OTHER}, "training": SPEC}

    # Named `lifecycle`, run as `training`: training takes its own, leaves inference_data.
    assert params.resolve("training", SPEC, path, {}, pipelines) == {"batch_size": 8}
    assert params.resolve("training", SPEC, path, {"batch_size": "9"}, pipelines) == {
        "batch_size": 9
    }
    assert params.resolve("lifecycle", {**SPEC, **OTHER}, path, {}, pipelines) == {
        "batch_size": 8,
        "inference_data": "rows.csv",
    }


def test_a_pipeline_that_only_scores_takes_the_config_s_inference_data_as_its_data(
    tmp_path: Path,
) -> None:
    """A config that trains names its labelled rows `data` and the rows to score
    `inference_data`: the pipeline that only scores (no `target`) must score the latter."""
    scoring = {"data": param(STRING, "", "data"), "batch_size": SPEC["batch_size"]}
    training = {**SPEC, "data": param(STRING, "", "data"), "target": param(STRING, "", "target")}
    pipelines = {"lifecycle": {**training, **OTHER}, "training": training, "inference": scoring}
    both = write(
        tmp_path,
        "pipeline: lifecycle\nparameters: {data: labelled.csv, target: y, "
        "inference_data: to-score.csv}\n",
    )

    assert params.resolve("inference", scoring, both, {}, pipelines) == {"data": "to-score.csv"}
    assert params.resolve("training", training, both, {}, pipelines) == {
        "data": "labelled.csv",
        "target": "y",
    }
    # The command line still wins, and a config of the scoring pipeline keeps its own `data`.
    assert params.resolve("inference", scoring, both, {"data": "other.csv"}, pipelines) == {
        "data": "other.csv"
    }
    own = write(tmp_path, "pipeline: inference\nparameters: {data: to-score.csv}\n")
    assert params.resolve("inference", scoring, own, {}, pipelines) == {"data": "to-score.csv"}
    # On the command line the name is the pipeline's own, and the refusal says which it is.
    with pytest.raises(ParameterError, match=r"its `data`: --param data=\.\.\."):
        params.resolve("inference", scoring, None, {"inference_data": "x"}, pipelines)


def test_a_config_key_that_no_pipeline_declares_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "parameters: {batch_size: 8, inference_dta: rows.csv}\n")
    pipelines = {"lifecycle": {**SPEC, **OTHER}, "training": SPEC}

    with pytest.raises(ParameterError) as error:
        params.resolve("training", SPEC, path, {}, pipelines)

    assert str(error.value) == (
        f"{path}: unknown parameter 'inference_dta'; did you mean: inference_data? "
        "(no pipeline declares it; pipelines: lifecycle, training)"
    )


def test_a_config_for_a_pipeline_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "pipeline: trainig\nparameters: {batch_size: 8}\n")

    with pytest.raises(ParameterError, match="config is for pipeline 'trainig', not 'training'"):
        params.resolve("training", SPEC, path, {}, {"training": SPEC})


def test_a_command_line_parameter_is_the_named_pipeline_s_own() -> None:
    with pytest.raises(ParameterError, match="unknown parameter 'inference_data' for pipeline"):
        params.resolve("training", SPEC, None, {"inference_data": "x"}, {"lifecycle": OTHER})


# -- the run command -------------------------------------------------------------------------


# Values the steps accept for the parameters a pipeline may require (its inputs must exist).
VALID = {
    "data": "demo://bike-sharing/hour.parquet",
    "inference_data": "demo://bike-sharing/hour.parquet",
    "target": "cnt",
    "model_name": "bike-sharing",
}


def required(pipeline: str, *given: str) -> list[str]:
    """`--param` arguments for the parameters the pipeline requires today, but those given."""
    return [
        arg
        for parameter in params.of_pipeline(pipeline).values()
        if parameter.required and parameter.name not in given
        for arg in (
            "--param",
            f"{parameter.name}={VALID[parameter.name]}"
            if parameter.name in VALID
            else parameter.example(),
        )
    ]


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Record run_local calls instead of running a pipeline."""
    calls: list[tuple[Any, ...]] = []

    def fake_run_local(name: str, values: dict, root: Any = None, **_: Any) -> Any:
        calls.append((name, values, root))
        raise SystemExit("stop: run_local reached")

    monkeypatch.setattr(local, "run_local", fake_run_local)
    return calls


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["run", "inference", "--local", "--param", "modle_name=x"],
            "unknown parameter 'modle_name' for pipeline inference; did you mean: model_name?",
        ),
        (
            [
                "run",
                "inference",
                "--local",
                "--param",
                "batch_size=lots",
                *required("inference", "batch_size"),
            ],
            "parameter 'batch_size' is NUMBER_INTEGER and expects an integer; got 'lots'",
        ),
        (
            ["run", "inferense", "--local"],
            "unknown pipeline 'inferense'; did you mean: inference?",
        ),
    ],
    ids=["misspelt", "wrong-type", "unknown-pipeline"],
)
def test_run_refuses_bad_input_in_one_line_and_runs_nothing(
    runs: list, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(argv) == 2

    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("error: ")
    assert message in captured.err
    assert "Traceback" not in captured.err
    assert runs == []


def test_run_keeps_a_string_parameter_as_text(runs: list) -> None:
    with pytest.raises(SystemExit, match="run_local reached"):
        main(
            [
                "run",
                "inference",
                "--local",
                "--param",
                "alias_or_version=1",
                "--param",
                "model_name=m",
                *required("inference", "alias_or_version"),
            ]
        )

    [(name, values, _)] = runs
    assert name == "inference"
    assert values["alias_or_version"] == "1"


def test_run_merges_a_config_under_the_command_line(runs: list, tmp_path: Path) -> None:
    config = write(tmp_path, "pipeline: inference\nparameters: {batch_size: 64, max_samples: 9}\n")

    with pytest.raises(SystemExit, match="run_local reached"):
        main(
            ["run", "inference", "--local", "--config", str(config), "--param", "max_samples=5"]
            + ["--param", "model_name=m"]
            + required("inference", "batch_size", "max_samples")
        )

    [(_, values, _)] = runs
    assert (values["batch_size"], values["max_samples"]) == (64, 5)


DEMO_CONFIG = Path(__file__).resolve().parents[2] / "confs" / "bike-sharing.yaml"


def test_run_takes_from_a_lifecycle_config_the_parameters_training_declares(runs: list) -> None:
    config = params.load_config(DEMO_CONFIG)
    assert config.pipeline == "lifecycle"
    declared = params.of_pipeline("training")

    with pytest.raises(SystemExit, match="run_local reached"):
        main(["run", "training", "--local", "--config", str(DEMO_CONFIG)])

    [(name, values, _)] = runs
    assert name == "training"
    taken = {key: value for key, value in config.parameters.items() if key in declared}
    assert values == taken
    # The inference side of the lifecycle is left to the pipelines that declare it.
    assert {"inference_data", "passthrough", "input_schema", "max_samples"} <= set(
        config.parameters
    ) - set(values)


def test_run_inference_with_a_lifecycle_config_scores_its_inference_data(
    runs: list, tmp_path: Path
) -> None:
    text = DEMO_CONFIG.read_text().replace(
        "  inference_data: demo://bike-sharing/hour.parquet",
        "  inference_data: demo://wine/wine.csv",
    )
    assert text != DEMO_CONFIG.read_text()
    config = write(tmp_path, text)

    with pytest.raises(SystemExit, match="run_local reached"):
        main(["run", "inference", "--local", "--config", str(config)])

    [(name, values, _)] = runs
    assert name == "inference"
    assert values["data"] == "demo://wine/wine.csv"


def test_run_refuses_a_config_key_that_no_pipeline_declares(
    runs: list, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = DEMO_CONFIG.read_text().replace("  max_samples:", "  max_sample:")
    config = write(tmp_path, text)

    assert main(["run", "training", "--local", "--config", str(config)]) == 2

    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"{config}: unknown parameter 'max_sample'; did you mean: max_samples?" in err
    assert "no pipeline declares it; pipelines: training, inference, lifecycle" in err
    assert runs == []


def test_dry_run_prints_the_checked_values_and_the_steps_and_writes_nothing(
    runs: list,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("LIFECYCLE_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    argv = ["run", "lifecycle", "--local", "--config", str(DEMO_CONFIG), "--dry-run"]

    assert main([*argv, "--param", "tolerance=0.05"]) == 0

    out = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split(None, 1)[1] for line in out if line.startswith("  ")}
    config = params.load_config(DEMO_CONFIG).parameters
    for name in params.of_pipeline("lifecycle"):
        if name == "tolerance":
            assert rows[name] == "0.05"
        elif name in config:
            assert rows[name] == params.format_value(config[name])
        else:
            assert rows[name].endswith("(default)")
    steps = out[out.index("steps that would run, in order:") + 1 : -1]
    assert [line.split()[0] for line in steps] == [
        "train", "evaluate", "promote", "predict", "explain", "predict-2", "explain-2", "notify",
    ]  # fmt: skip
    assert "TrainingJob" in steps[0] and "in branch passed" in steps[2]
    assert "in branch not-passed" in steps[5] and "whatever happened" in steps[-1]
    assert out[-1] == "dry run: nothing was started, registered or written"
    assert runs == []
    assert not home.exists(), "a dry run writes nothing: no MLflow store, no output folder"


def test_run_help_lists_the_pipeline_parameters(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "inference", "--help"])

    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "parameters of pipeline inference" in out
    for parameter in params.of_pipeline("inference").values():
        [line] = [line for line in out.splitlines() if line.split()[:1] == [parameter.name]]
        assert parameter.type in line
        if parameter.required:
            assert line.endswith("required")
        elif parameter.default not in (None, ""):
            assert line.endswith(f"default: {params.format_value(parameter.default)}")
    assert "batch_size" in out and "NUMBER_INTEGER" in out


def test_run_help_without_a_name_says_how_to_list_parameters(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--help"])

    assert exit_info.value.code == 0
    assert "Name the pipeline before --help" in capsys.readouterr().out


def test_a_step_that_used_the_model_says_it_is_registered_without_opening_the_store(monkeypatch):
    """The closing lines skip the store (most of a second to open) when a step used the model."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////nonexistent/folder/mlflow.db")
    failed, used = (
        local.Step(task, Path("."), ok, 1.0, "")
        for task, ok in [("train", False), ("predict-2", True)]
    )
    assert local.registered("taxi-demand", [failed, used])


def test_run_prints_the_trained_model_and_the_venv_mlflow(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "runs" / "pipeline-root" / "run-1"
    run_dir.mkdir(parents=True)
    monkeypatch.setenv("LIFECYCLE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    def fake_run_local(name: str, values: dict, root: Any = None, **_: Any) -> tuple[bool, Path]:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////somewhere/mlflow.db")
        return True, run_dir

    monkeypatch.setattr(local, "run_local", fake_run_local)
    # The hint names a model only when registered: the fake run registered it.
    monkeypatch.setattr(local, "registered", lambda model, steps=(): model == "taxi-demand")

    argv = ["run", "training", "--local", "--param", "model_name=taxi-demand"]
    assert main(argv + required("training", "model_name")) == 0

    out = capsys.readouterr().out
    assert "Models > taxi-demand" in out
    assert "bike-sharing" not in out
    mlflow = Path(sys.executable).parent / "mlflow"
    assert f"{mlflow} ui --backend-store-uri sqlite:////somewhere/mlflow.db" in out


def test_param_without_equals_is_an_argparse_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "inference", "--local", "--param", "batch_size"])

    assert exit_info.value.code == 2
    assert "expected KEY=VALUE, got 'batch_size'" in capsys.readouterr().err


# -- where local runs keep their things --------------------------------------------------------


def test_lifecycle_home_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from components.io import services

    monkeypatch.delenv("LIFECYCLE_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert services.lifecycle_home() == tmp_path / "xdg" / "kfp-model-lifecycle"

    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert services.lifecycle_home() == tmp_path / "user/.local/share/kfp-model-lifecycle"

    monkeypatch.setenv("LIFECYCLE_HOME", str(tmp_path / "home"))
    assert services.lifecycle_home() == tmp_path / "home"
    assert services.local_store() == tmp_path / "home" / "mlflow"
    assert services.local_tracking_uri() == f"sqlite:///{tmp_path}/home/mlflow/mlflow.db"
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert services.default_tracking_uri() == services.local_tracking_uri()
    assert local.default_root() == tmp_path / "home" / "runs"


def test_the_local_store_does_not_depend_on_the_working_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from components.io import services

    monkeypatch.setenv("LIFECYCLE_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    first = services.local_tracking_uri()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")

    assert services.local_tracking_uri() == first
    assert json.dumps(services.local_tracking_uri(tmp_path / "s")).count("mlflow.db") == 1
