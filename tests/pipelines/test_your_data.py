"""A team's own data, end to end: the CLI with a config file, under kfp.local, on data sets that
are not the demo's; the bad inputs a team meets every week, refused with the cause in the alert.

Every pipeline runs for real (each step a subprocess, as in a pod) against the session's real
MLflow server, and alerts go over HTTP to a local server that answers as Slack's webhook does.
The command line runs in this process from another working directory, with LIFECYCLE_HOME set,
exactly as a user types it: `python -m pipelines run NAME --local --config FILE --param K=V`.

Data sets: scikit-learn's bundled diabetes (regression) and wine (classification, integer class
labels) tables, with columns renamed to awkward names (spaces, dots, non-ASCII), a string
categorical column with missing values, and missing numeric values added.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import pathlib
import re
import typing as T
import uuid

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from sklearn import datasets as toy

from components.core import explainers, schemas
from pipelines.__main__ import main
from tests.io.slack_server import SlackWebhookServer
from tests.pipelines.test_latest import dump_dom
from tests.pipelines.test_local_runs import PROXIES, fields, header, message

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:You may be attemping:RuntimeWarning"),
]

SAMPLES = 30


def unique(prefix: str) -> str:
    """A name no other test uses on the shared MLflow server."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclasses.dataclass(frozen=True)
class CliRun:
    """One `python -m pipelines run` as a user types it: exit status, output, alert."""

    status: int
    stdout: str
    stderr: str
    alerts: list[dict]

    @property
    def run_dir(self) -> pathlib.Path:
        return pathlib.Path(re.findall(r"^Outputs in (/\S+);", self.stdout, flags=re.M)[-1])

    def printed(self, name: str) -> pathlib.Path:
        """The path the command printed for an output, e.g. `evaluate/report`."""
        pattern = rf"^  {re.escape(name)} +(/\S+)(?:  \(.*\))?$"  # then whose version it is
        lines = re.findall(pattern, self.stdout, flags=re.MULTILINE)
        return pathlib.Path(lines[-1])

    def output(self, task: str, artifact: str) -> pathlib.Path:
        return self.run_dir / task / artifact

    def returned(self, task: str) -> dict[str, T.Any]:
        output = json.loads(self.output(task, "executor_output.json").read_text())
        return output.get("parameterValues", {})

    def alert(self) -> dict:
        [body] = self.alerts
        return body


@pytest.fixture(scope="module")
def env(mlflow_server, tmp_path_factory):
    """The user's shell: MLflow server, a Slack webhook, a home folder, another directory."""
    with pytest.MonkeyPatch.context() as patch, SlackWebhookServer() as slack:
        for name in PROXIES:
            patch.delenv(name, raising=False)
        patch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
        patch.setenv("SLACK_WEBHOOK_URL", slack.url)
        home = tmp_path_factory.mktemp("home")
        patch.setenv("LIFECYCLE_HOME", str(home))
        elsewhere = tmp_path_factory.mktemp("elsewhere")
        patch.chdir(elsewhere)  # nothing may depend on the repository being the cwd
        yield {"slack": slack, "home": home, "dir": elsewhere, "tracking": mlflow_server}


def cli(env, *args: str) -> CliRun:
    """Run the command line in this process and collect what a user would see."""
    env["slack"].reset()
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(args))
    bodies = [request.body for request in env["slack"].requests]
    return CliRun(status, out.getvalue(), err.getvalue(), bodies)


def write_config(folder: pathlib.Path, pipeline: str, parameters: dict[str, T.Any]) -> str:
    path = folder / f"{unique(pipeline)}.yaml"
    path.write_text(yaml.safe_dump({"pipeline": pipeline, "parameters": parameters}))
    return str(path)


# %% DATA SETS THAT ARE NOT THE DEMO'S


def regression_table() -> pd.DataFrame:
    """Diabetes progression, with awkward names, a text category and missing values."""
    frame = toy.load_diabetes(as_frame=True, scaled=False).frame
    frame = frame.rename(
        columns={"age": "âge", "bmi": "body mass.index", "bp": "blood pressure", "target": "y"}
    )
    rng = np.random.default_rng(0)
    frame.loc[rng.random(len(frame)) < 0.05, "blood pressure"] = np.nan
    region = rng.choice(["Nord", "Süd", "Île", None], size=len(frame))
    frame.insert(0, "région", pd.Series(region, dtype=object))
    frame.insert(0, "patient id", np.arange(1, len(frame) + 1))
    return frame


def classification_table() -> pd.DataFrame:
    """Wine cultivars (0, 1, 2), with awkward names, a text category and missing values."""
    frame = toy.load_wine(as_frame=True).frame.rename(
        columns={"alcohol": "alcohol %", "malic_acid": "malic.acid", "hue": "teinte café"}
    )
    rng = np.random.default_rng(1)
    frame.loc[rng.random(len(frame)) < 0.05, "malic.acid"] = np.nan
    vineyard = rng.choice(["Château Lumière", "Domaine Noël", None], size=len(frame))
    frame.insert(0, "vignoble", pd.Series(vineyard, dtype=object))
    frame.insert(0, "sample id", np.arange(1, len(frame) + 1))
    return frame.rename(columns={"target": "cultivar"})


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> dict[str, pathlib.Path]:
    """The regression table as Parquet; the classification table as a Latin-1 `;` CSV."""
    folder = tmp_path_factory.mktemp("tables")
    paths = {"regression": folder / "diabetes.parquet", "classification": folder / "wine.csv"}
    regression_table().to_parquet(paths["regression"], index=False)
    classification_table().to_csv(paths["classification"], index=False, sep=";", encoding="latin-1")
    return paths


def native(name: str, version: int):
    """The registered sklearn pipeline and its signature, loaded without the jobs' code."""
    uri = f"models:/{name}/{version}"
    return mlflow.sklearn.load_model(uri), mlflow.models.get_model_info(uri).signature


def assert_additive(samples: pd.DataFrame, expected: np.ndarray, key: str, rows: pd.Series):
    """base_value + the row's SHAP values = the model's raw output, for every sample and output."""
    shap_columns = [c for c in samples.columns if c.startswith("shap_")]
    totals = samples["base_value"].to_numpy() + samples[shap_columns].to_numpy().sum(axis=1)
    position = {value: i for i, value in enumerate(rows)}
    k = expected.shape[1]
    wanted = [expected[position[v], i % k] for i, v in enumerate(samples[key])]
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(totals, wanted, rtol=1e-6, atol=1e-6 * scale)


def training_metrics(tracking: str, experiment: str) -> dict[str, float]:
    client = MlflowClient(tracking)
    found = client.get_experiment_by_name(experiment)
    [run] = client.search_runs([found.experiment_id], "tags.`job.kind` = 'TrainingJob'")
    return run.data.metrics


# %% REGRESSION: CLI + CONFIG, FROM ANOTHER DIRECTORY, BEST-RUN FINDER


@pytest.fixture(scope="module")
def regression(env, tables) -> tuple[CliRun, str]:
    name = unique("diabetes")
    config = write_config(
        env["dir"],
        "lifecycle",
        {
            "data": str(tables["regression"]),
            "inference_data": str(tables["regression"]),
            "target": "y",
            "model_name": name,
            "experiment": name,
            "exclude": ["patient id"],
            "model_params": {"max_iter": 40},
            "passthrough": ["patient id"],
            "max_samples": SAMPLES,
            # Predict with the best run of the experiment, by the metric training logs.
            "finder": {"KIND": "BestRunFinder", "metric": "test_rmse", "mode": "min"},
        },
    )
    return cli(env, "run", "lifecycle", "--local", "--config", config), name


def test_regression_on_a_new_data_set_registers_promotes_and_predicts(regression, env, tables):
    run, name = regression
    assert run.status == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert f"Outputs in {env['home']}" in run.stdout
    assert run.stdout.splitlines()[-1].startswith("Pipeline lifecycle SUCCEEDED in ")
    client = MlflowClient(env["tracking"])
    assert [v.version for v in client.search_model_versions(f"name = '{name}'")] == ["1"]
    assert client.get_model_version_by_alias(name, "Champion").version == "1"
    source = pd.read_parquet(tables["regression"])
    predictions = pd.read_parquet(run.printed("predict/predictions"))
    assert list(predictions.columns) == ["patient id", "prediction"]
    assert len(predictions) == len(source)
    assert np.isfinite(predictions["prediction"]).all()
    # The best-run finder, a pipeline parameter, found the version training registered.
    assert run.returned("predict") == {"rows": len(source), "version": 1}
    scores = training_metrics(env["tracking"], name)
    assert {"test_rmse", "test_mae", "test_r2"} <= set(scores)
    assert all(math.isfinite(value) for value in scores.values())
    # The model used the text category and the awkward names, and says so in its signature.
    model, signature = native(name, 1)
    assert {"région", "âge", "body mass.index", "blood pressure"} <= set(
        signature.inputs.input_names()
    )
    assert "patient id" not in signature.inputs.input_names()
    # SHAP additivity on the explained rows.
    samples = pd.read_parquet(run.printed("explain/samples_explanations"))
    assert len(samples) == SAMPLES
    # One value per input column, named as the user named it (the one-hot columns summed).
    assert "shap_région" in samples.columns
    assert not any(column.startswith("shap_cat__") for column in samples.columns)
    rows = source.head(SAMPLES)
    expected = explainers.raw_output(model, schemas.conform(rows, signature))
    assert_additive(samples, expected.reshape(len(rows), -1), "patient id", rows["patient id"])


def test_regression_reports_open_as_pages_from_the_printed_paths(regression, tmp_path):
    run, name = regression
    page = run.printed("evaluate/report")
    assert page.suffix == ".html" and page.is_absolute()
    dom = dump_dom(page, tmp_path / "profile-evaluation")
    assert f"<h1>Evaluation: {name} v1</h1>" in dom
    assert "No Champion yet" in dom and "rmse" in dom
    dom = dump_dom(run.printed("explain/report"), tmp_path / "profile-explanations")
    assert f"<h1>Explanations: {name} v1</h1>" in dom
    assert "Model explanations" in dom and "<pre" not in dom


def test_regression_alert_and_closing_hints_name_the_model_trained(regression):
    run, name = regression
    body = run.alert()
    assert header(body).startswith(":white_check_mark: lifecycle: SUCCEEDED")
    assert fields(body)["model"] == f"{name} v1"
    assert f"Models > {name}" in run.stdout


# %% CLASSIFICATION: A LATIN-1, `;`-SEPARATED CSV WITH INTEGER LABELS


@pytest.fixture(scope="module")
def classification(env, tables) -> tuple[CliRun, str]:
    name = unique("wine")
    config = write_config(
        env["dir"],
        "lifecycle",
        {
            "data": str(tables["classification"]),
            "inference_data": str(tables["classification"]),
            "reader": {"KIND": "CSVReader", "delimiter": ";", "encoding": "latin-1"},
            "target": "cultivar",
            "model_name": name,
            "experiment": name,
            "model_kind": "HistGradientBoostingClassifier",
            "model_params": {"max_iter": 30},
            "exclude": ["sample id"],
            "passthrough": ["sample id"],
            "max_samples": SAMPLES,
        },
    )
    return cli(env, "run", "lifecycle", "--local", "--config", config), name


def test_classification_with_integer_labels_end_to_end(classification, env, tables):
    run, name = classification
    assert run.status == 0, run.stdout[-3000:] + run.stderr[-3000:]
    source = pd.read_csv(tables["classification"], sep=";", encoding="latin-1")
    predictions = pd.read_parquet(run.printed("predict/predictions"))
    assert len(predictions) == len(source)
    assert list(predictions.columns) == [
        "sample id", "prediction", "probability_0", "probability_1", "probability_2",
    ]  # fmt: skip
    assert pd.api.types.is_integer_dtype(predictions["prediction"])
    assert set(predictions["prediction"]) <= {0, 1, 2}
    probabilities = predictions.filter(like="probability_").to_numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-9)
    # Integer labels keep every metric, all finite.
    scores = training_metrics(env["tracking"], name)
    assert {"test_accuracy", "test_f1_macro", "test_roc_auc", "test_log_loss"} <= set(scores)
    assert all(math.isfinite(value) for value in scores.values())
    client = MlflowClient(env["tracking"])
    assert client.get_model_version_by_alias(name, "Champion").version == "1"
    # Text decoded from Latin-1, categories one-hot encoded under their real names.
    model, signature = native(name, 1)
    assert {"vignoble", "teinte café", "malic.acid"} <= set(signature.inputs.input_names())
    samples = pd.read_parquet(run.printed("explain/samples_explanations"))
    assert "shap_vignoble" in samples.columns and "shap_teinte café" in samples.columns
    assert not any(column.startswith(("shap_cat__", "shap_num__")) for column in samples.columns)
    assert len(samples) == SAMPLES * 3  # one row per sample and class
    rows = source.head(SAMPLES)
    inputs = schemas.conform(rows, signature)
    expected = explainers.raw_output(model, inputs)
    assert_additive(samples, expected, "sample id", rows["sample id"])


# %% REFUSED BEFORE ANYTHING RUNS


def test_a_bad_config_key_or_kind_is_refused_and_nothing_runs(env, tables):
    before = set((env["home"] / "runs").rglob("*")) if (env["home"] / "runs").exists() else set()
    config = write_config(
        env["dir"], "inference", {"data": str(tables["regression"]), "modle_name": "x"}
    )
    run = cli(env, "run", "inference", "--local", "--config", config)
    assert run.status == 2
    assert f"{config}: unknown parameter 'modle_name'; did you mean: model_name" in run.stderr
    assert "no pipeline declares it" in run.stderr
    run = cli(
        env, "run", "inference", "--local", "--param", f"data={tables['regression']}",
        "--param", 'finder={"KIND": "BestRunFindr"}',
    )  # fmt: skip
    assert run.status == 2
    assert "unknown finder type 'BestRunFindr' (did you mean: BestRunFinder?)" in run.stderr
    assert "allowed: 'RegistryFinder', 'BestRunFinder', 'UriFinder', 'FolderFinder'" in run.stderr
    run = cli(
        env, "run", "inference", "--local", "--param", f"data={tables['regression']}",
        "--param", "model_name=any", "--param", 'reader={"KIND": "ExcelReader"}',
    )  # fmt: skip
    assert run.status == 2
    assert "unknown reader type 'ExcelReader'; allowed: 'ParquetReader', 'CSVReader'" in run.stderr
    run = cli(env, "run", "inference", "--local", "--param", f"data={tables['regression']}")
    assert run.status == 2
    assert "set model_name to the registered model, or give a finder" in run.stderr
    assert "Traceback" not in run.stderr and run.alerts == []
    after = set((env["home"] / "runs").rglob("*")) if (env["home"] / "runs").exists() else set()
    assert after == before, "nothing may run"


def refused_values(folder: pathlib.Path) -> dict[str, tuple[str, dict[str, T.Any], str, list[str]]]:
    """Case -> (pipeline, parameters, the key named, what the one line must also say).

    Every enum setting, a misspelt model parameter and one out of its range, a threshold on a
    metric the task lacks, settings out of range, missing local files.
    """
    missing = folder / "no-such-rows.parquet"
    regressor = "HistGradientBoostingRegressor"
    return {
        "drift_policy": (
            "inference", {"drift_policy": "fial"}, "drift_policy",
            ["'fial'", "Input should be 'off', 'warn' or 'fail'"],
        ),
        "model_kind": (
            "training", {"model_kind": "SVM"}, "model_kind",
            ["'SVM'", f"unknown model type 'SVM'; allowed: '{regressor}', "
             "'HistGradientBoostingClassifier', 'Ridge', 'LogisticRegression', "
             "'RandomForestRegressor'", "or the import path package.module:Class of a subclass "
             "of components.core.models:Model, or of an estimator class"],
        ),
        "reader": (
            "training", {"reader": {"KIND": "ExcelReader"}}, "reader",
            ['{"KIND": "ExcelReader"}',
             "unknown reader type 'ExcelReader'; allowed: 'ParquetReader', 'CSVReader'"],
        ),
        "reader_option": (
            "inference", {"reader": {"KIND": "CSVReader", "delimeter": ";"}}, "reader",
            ['"delimeter": ";"',
             "inputs.delimeter: unknown option (did you mean: delimiter?); its options: path,"],
        ),
        "writer": (
            "inference", {"writer": {"KIND": "JSONWriter"}}, "writer",
            ['{"KIND": "JSONWriter"}',
             "unknown writer type 'JSONWriter'; allowed: 'ParquetWriter', 'CSVWriter'"],
        ),
        "finder": (
            "inference", {"finder": {"KIND": "BestRunFindr"}}, "finder",
            ["'BestRunFindr' (did you mean: BestRunFinder?)",
             "allowed: 'RegistryFinder', 'BestRunFinder', 'UriFinder', 'FolderFinder'"],
        ),
        "finder_mode": (
            "inference", {"finder": {"KIND": "BestRunFinder", "metric": "test_rmse",
                                     "mode": "lowest"}}, "finder",
            ['"mode": "lowest"', "finder.mode: Input should be 'min' or 'max'"],
        ),
        "model_params": (
            "training", {"model_params": {"max_iterr": 40}}, "model_params",
            ['{"max_iterr": 40}', f"unknown parameter 'max_iterr' (did you mean: max_iter?) of "
             f"{regressor}; its parameters: ", "learning_rate"],
        ),
        "model_params_range": (
            "training", {"model_params": {"max_iter": 0}}, "model_params",
            ['{"max_iter": 0}', "must be an int in the range [1, inf). Got 0 instead."],
        ),
        "thresholds": (
            "training", {"thresholds": {"accuracy": 0.9}}, "thresholds",
            ['{"accuracy": 0.9}', "threshold on 'accuracy' does not apply to a regression "
             "model; its metrics: rmse, mae, r2"],
        ),
        "batch_size": (
            "inference", {"batch_size": 0}, "batch_size",
            ["0 refused by step predict", "inputs.batch_size: Input should be greater than 0"],
        ),
        "test_size": (
            "training", {"test_size": 1.5}, "test_size",
            ["1.5", "splitter.test_size: Input should be less than 1"],
        ),
        "missing_data": (
            "training", {"data": str(missing)}, "data", [f"input not found: {missing}"],
        ),
        "data_pattern": (
            "training", {"data": str(folder / "part-*.csv")}, "data",
            [f"input not found: {folder / 'part-*.csv'}; patterns are not expanded: give the "
             "folder that holds the files"],
        ),
        "missing_inference_data": (
            "lifecycle", {"inference_data": str(missing)}, "inference_data",
            [f"input not found: {missing}", "step predict reads it"],
        ),
        "missing_schema": (
            "inference", {"input_schema": str(folder / "rules.yaml")}, "input_schema",
            [f"pandera schema file not found: {folder / 'rules.yaml'}"],
        ),
    }  # fmt: skip


REFUSED = list(refused_values(pathlib.Path("/x")))


@pytest.mark.parametrize("case", REFUSED)
def test_a_bad_value_is_refused_in_one_line_and_nothing_is_run_or_written(
    case, env, tables, tmp_path
):
    pipeline, parameters, key, says = refused_values(tmp_path)[case]
    name = unique("refused")
    given = {"data": str(tables["regression"]), "model_name": name, "experiment": name}
    if pipeline != "inference":
        given["target"] = "y"
    if pipeline == "lifecycle":
        given["inference_data"] = str(tables["regression"])
    config = write_config(env["dir"], pipeline, {**given, **parameters})
    runs = env["home"] / "runs"
    before = set(runs.rglob("*")) if runs.exists() else set()

    run = cli(env, "run", pipeline, "--local", "--config", config)

    assert run.status == 2
    [line] = run.stderr.splitlines()  # one line, no traceback
    assert line.startswith(f"error: parameter '{key}' of pipeline {pipeline}: "), line
    for text in says:
        assert text in line, line
    assert run.stdout == "" and run.alerts == []
    client = MlflowClient(env["tracking"])
    assert client.get_experiment_by_name(name) is None, "no MLflow run"
    assert client.search_model_versions(f"name = '{name}'") == [], "no registered version"
    assert (set(runs.rglob("*")) if runs.exists() else set()) == before, "no output folder"


# %% BAD INPUTS: REFUSED IN THE STEP, THE CAUSE IN THE ALERT, NOTHING PUBLISHED


def bad_inputs(folder: pathlib.Path, source: pd.DataFrame) -> dict[str, tuple[str, dict, str]]:
    """Case -> (data path, extra parameters, a pattern of what the alert must say)."""
    columns = [c for c in source.columns if c != "y"]
    mixed = folder / "mixed"
    mixed.mkdir()
    source.head(100)[columns].to_parquet(mixed / "part-0.parquet", index=False)
    source.iloc[100:200][columns].drop(columns=["blood pressure"]).to_parquet(
        mixed / "part-1.parquet", index=False
    )
    latin = folder / "latin.csv"
    # ASCII names, Latin-1 values: the column with the bad bytes is named.
    latin_rows = source.head(50)[columns].rename(columns={"région": "region", "âge": "age"})
    latin_rows.to_csv(latin, index=False, encoding="latin-1")
    semicolon = folder / "semicolon.csv"
    source.head(50)[columns].to_csv(semicolon, index=False, sep=";")
    duplicated = folder / "duplicated.csv"
    text = source.head(20)[columns].to_csv(index=False).splitlines()
    text[0] = text[0].replace("s1", "s2")  # two columns named s2
    duplicated.write_text("\n".join(text) + "\n", encoding="utf-8")
    return {
        "folder": (
            str(mixed), {},
            r"mixed/part-1\.parquet differs from \S+/mixed/part-0\.parquet: "
            r"missing column\(s\) 'blood pressure'",
        ),
        "encoding": (
            str(latin), {}, r"column 'region' is not valid utf-8 text at data row \d+; set the "
            r"encoding option",
        ),
        "delimiter": (str(semicolon), {}, r"it looks separated by ';': set delimiter=';'"),
        "duplicates": (str(duplicated), {}, r"duplicated column name\(s\) 's2'"),
    }  # fmt: skip


# A bad setting (batch_size=0) no longer gets this far: see the refusals before anything runs.
BAD_CASES = ["folder", "encoding", "delimiter", "duplicates"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_is_refused_with_its_cause_in_the_alert(case, regression, env, tmp_path):
    _, name = regression
    data, extra, cause = bad_inputs(tmp_path, regression_table())[case]
    params = [f"data={data}", f"model_name={name}", f"experiment={name}"]
    params += [f"{key}={value}" for key, value in extra.items()]
    run = cli(env, "run", "inference", "--local", *sum((["--param", p] for p in params), []))
    assert run.status == 1
    assert "Pipeline inference FAILED" in run.stdout
    body = run.alert()
    assert header(body).startswith(":x: inference: FAILED")
    assert fields(body)["failed step"] == "predict (InferenceJob)"
    assert re.search(cause, message(body)), message(body)
    assert not run.output("predict", "predictions").exists()
    assert not (run.run_dir / "explain").exists()


@pytest.fixture(scope="module")
def unsigned(env, regression) -> str:
    """A registered version logged without a signature (a model registered by hand)."""
    _, name = regression
    model, _ = native(name, 1)
    unsigned_name = unique("unsigned")
    mlflow.set_tracking_uri(env["tracking"])
    mlflow.set_registry_uri(env["tracking"])
    mlflow.set_experiment(unsigned_name)
    with mlflow.start_run():
        mlflow.sklearn.log_model(
            model, name="model", serialization_format="skops",
            skops_trusted_types=["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
                                 "numpy.dtype"],
            registered_model_name=unsigned_name,
        )  # fmt: skip
    MlflowClient(env["tracking"]).set_registered_model_alias(unsigned_name, "Champion", "1")
    return unsigned_name


def test_a_model_without_signature_is_refused_unless_allowed(unsigned, env, tables):
    assert mlflow.models.get_model_info(f"models:/{unsigned}/1").signature is None
    params = [f"data={tables['regression']}", f"model_name={unsigned}", "max_samples=5"]
    args = sum((["--param", p] for p in params), [])
    refused = cli(env, "run", "inference", "--local", *args)
    assert refused.status == 1
    text = message(refused.alert())
    assert "Failed step predict: UnsignedModelError" in text
    assert "has no input signature" in text and "allow_unsigned=true" in text
    assert not refused.output("predict", "predictions").exists()
    allowed = cli(env, "run", "inference", "--local", *args, "--param", "allow_unsigned=true")
    assert allowed.status == 0, allowed.stdout[-3000:]
    text = message(allowed.alert())
    assert f"Warning from predict: {unsigned} v1 has no input signature" in text
    assert len(pd.read_parquet(allowed.output("predict", "predictions"))) == len(
        pd.read_parquet(tables["regression"])
    )
