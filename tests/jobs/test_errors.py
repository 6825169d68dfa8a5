"""Integration: bad input or a bad model reference gets a clear error and leaves no output.

Every case runs the inference job and the explanations job against the session's real MLflow
server, and checks the message (the column, the rule, how many rows) and that the output folder
holds nothing: no output file and no temporary file.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re
import typing as T

import pandas as pd
import pytest

from components.core import features, models, schemas
from components.io import alerts, datasets, registries
from components.jobs import explanations, inference, promotion, training
from tests.conftest import BIKE_SCHEMA
from tests.io.slack_server import SlackWebhookServer
from tests.jobs.helpers import BIKE_CATEGORICAL, BIKE_EXCLUDE, listing, run, settings, unique

pytestmark = pytest.mark.integration

ROWS = 1000


@dataclasses.dataclass(frozen=True)
class Registered:
    name: str
    common: dict[str, T.Any]


@pytest.fixture(scope="module")
def registered(mlflow_server, bike, tmp_path_factory) -> Registered:
    """A small regressor, registered and promoted to Champion (v1)."""
    name = unique("errors")
    common = settings(mlflow_server, unique("errors"))
    source = tmp_path_factory.mktemp("errors") / "training.parquet"
    bike.to_parquet(source, index=False)
    run(
        training.TrainingJob(
            inputs=datasets.ParquetReader(path=str(source)),
            target="cnt",
            model=models.HistGradientBoostingRegressorModel(params={"max_iter": 10}),
            model_name=name,
            exclude=BIKE_EXCLUDE,
            categorical=BIKE_CATEGORICAL,
            **common,
        )
    )
    run(promotion.PromotionJob(model_name=name, **common))
    return Registered(name, common)


@pytest.fixture
def rows(bike) -> pd.DataFrame:
    return bike.iloc[:ROWS].reset_index(drop=True).copy()


def write(frame: pd.DataFrame, directory: pathlib.Path, name: str = "inputs.parquet") -> str:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    frame.to_parquet(path, index=False)
    return str(path)


def make_job(kind: str, source: str, output: pathlib.Path, registered: Registered, **options):
    """The inference or the explanations job, reading `source` and writing into `output`."""
    reader = datasets.ParquetReader(path=source, batch_size=options.pop("batch_size", 250))
    common = {
        "finder": options.pop("finder", registries.RegistryFinder(name=registered.name)),
        "input_schema": str(BIKE_SCHEMA),
        "passthrough": ["instant"],
        **registered.common,
        **options,
    }
    if kind == "inference":
        writer = datasets.ParquetWriter(path=str(output / "predictions.parquet"))
        return inference.InferenceJob(inputs=reader, outputs=writer, **common)
    return explanations.ExplanationsJob(
        inputs_samples=reader,
        models_explanations=datasets.ParquetWriter(path=str(output / "models.parquet")),
        samples_explanations=datasets.ParquetWriter(path=str(output / "samples.parquet")),
        max_samples=ROWS,
        **common,
    )


JOBS = pytest.mark.parametrize("kind", ["inference", "explanations"])


def fails(job, error: type[Exception], output: pathlib.Path) -> str:
    """Run the job, expect the error, check that nothing was written; return the message."""
    with pytest.raises(error) as caught:
        run(job)
    assert listing(output) == []
    return str(caught.value)


@pytest.fixture
def output(tmp_path) -> pathlib.Path:
    path = tmp_path / "outputs"
    path.mkdir()
    return path


# %% MODEL REFERENCES


@JOBS
def test_unknown_model_lists_the_registered_models(
    tracking, registered, rows, tmp_path, output, kind
):
    missing = unique("no-such-model")
    finder = registries.RegistryFinder(name=missing, alias_or_version="Champion")
    job = make_job(kind, write(rows, tmp_path), output, registered, finder=finder)
    message = fails(job, registries.RegistryError, output)
    assert f"no registered model named '{missing}' (models:/{missing}@Champion)" in message
    assert registered.name in message.split("registered models: ")[1].split(", ")


@JOBS
def test_unknown_alias_lists_aliases_and_latest_versions(
    tracking, registered, rows, tmp_path, output, kind
):
    finder = registries.RegistryFinder(name=registered.name, alias_or_version="Staging")
    job = make_job(kind, write(rows, tmp_path), output, registered, finder=finder)
    message = fails(job, registries.RegistryError, output)
    assert f"model '{registered.name}' has no alias 'Staging'" in message
    assert "aliases: Champion=v1; latest versions: v1" in message


# %% BAD INPUT


@JOBS
def test_missing_column(tracking, registered, rows, tmp_path, output, kind):
    job = make_job(kind, write(rows.drop(columns=["hr"]), tmp_path), output, registered)
    message = fails(job, schemas.ValidationError, output)
    assert f"column 'hr': missing, required by the model signature ({ROWS} rows)" in message
    assert f"over {ROWS} rows checked; nothing was written" in message


@JOBS
def test_wrong_dtype(tracking, registered, rows, tmp_path, output, kind):
    rows["hr"] = rows["hr"].map(lambda hour: f"{hour:02d}h")
    job = make_job(kind, write(rows, tmp_path), output, registered)
    message = fails(job, schemas.ValidationError, output)
    assert re.search(rf"column 'hr': type double expected, got \w+ \({ROWS} rows\)", message)


@JOBS
def test_out_of_range_values_are_counted(tracking, registered, rows, tmp_path, output, kind):
    rows.loc[rows.index[10:47], "temp"] = 5.0  # 37 rows
    rows.loc[rows.index[[3, 600]], "weathersit"] = 9  # 2 rows, another rule
    job = make_job(kind, write(rows, tmp_path), output, registered)
    message = fails(job, schemas.ValidationError, output)
    assert "2 rule(s) broken in 2 column(s)" in message
    assert "column 'temp': must satisfy in_range(0, 1) (37 rows)" in message
    assert "column 'weathersit': must satisfy isin([1, 2, 3, 4]) (2 rows)" in message


@JOBS
def test_violation_in_a_later_batch_still_leaves_no_output(
    tracking, registered, rows, tmp_path, output, kind
):
    # Rows 450..649 break the range with batches of 100: the first four batches are clean (and
    # already streamed to the temporary file), the violation spans batches 5, 6 and 7.
    rows.loc[rows.index[450:650], "hum"] = 1.5
    job = make_job(kind, write(rows, tmp_path), output, registered, batch_size=100)
    message = fails(job, schemas.ValidationError, output)
    assert "column 'hum': must satisfy in_range(0, 1) (200 rows)" in message
    assert f"over {ROWS} rows checked" in message


@JOBS
def test_empty_input(tracking, registered, rows, tmp_path, output, kind):
    job = make_job(kind, write(rows.iloc[:0], tmp_path), output, registered)
    message = fails(job, schemas.ValidationError, output)
    assert "input validation failed: the input has no rows" in message
    assert "column" not in message


@JOBS
def test_corrupt_parquet_file(tracking, registered, tmp_path, output, kind):
    source = tmp_path / "inputs" / "corrupt.parquet"
    source.parent.mkdir()
    source.write_bytes(b"PAR1 but not really a parquet file" * 50)
    job = make_job(kind, str(source), output, registered)
    message = fails(job, datasets.DatasetError, output)
    assert str(source) in message


@JOBS
def test_missing_input_file(tracking, registered, tmp_path, output, kind):
    source = tmp_path / "nowhere" / "inputs.parquet"
    job = make_job(kind, str(source), output, registered)
    message = fails(job, datasets.DatasetError, output)
    assert f"input not found: {source}" in message


@JOBS
def test_infinities_are_refused_with_the_column_and_the_rows(
    tracking, registered, rows, tmp_path, output, kind
):
    rows["windspeed"] = rows["windspeed"].astype("float64")
    rows.loc[rows.index[[5, 6, 7]], "windspeed"] = float("inf")
    rows.loc[rows.index[900], "windspeed"] = float("-inf")
    rows.loc[rows.index[901], "windspeed"] = float("nan")  # missing is fine
    job = make_job(kind, write(rows, tmp_path), output, registered, input_schema=None)
    message = fails(job, schemas.ValidationError, output)
    assert f"column 'windspeed': {schemas.INFINITE} (4 rows)" in message
    assert "1 rule(s) broken in 1 column(s)" in message


def test_training_refuses_infinities_and_registers_nothing(tracking, registered, rows, tmp_path):
    rows["temp"] = rows["temp"].astype("float64")
    rows.loc[rows.index[:2], "temp"] = float("-inf")
    job = training.TrainingJob(
        inputs=datasets.ParquetReader(path=write(rows, tmp_path)),
        target="cnt",
        model=models.HistGradientBoostingRegressorModel(params={"max_iter": 10}),
        model_name=registered.name,
        exclude=BIKE_EXCLUDE,
        categorical=BIKE_CATEGORICAL,
        **registered.common,
    )
    with pytest.raises(schemas.ValidationError) as caught:
        run(job)
    assert f"column 'temp': {schemas.INFINITE} (2 rows)" in str(caught.value)
    client = registered.common["mlflow_service"].client()
    assert registries.latest_version(client, registered.name) == 1  # nothing registered


def test_training_without_the_target_writes_no_holdout(tracking, registered, rows, tmp_path):
    holdout = tmp_path / "holdout"
    holdout.mkdir()
    job = training.TrainingJob(
        inputs=datasets.ParquetReader(path=write(rows.drop(columns=["cnt"]), tmp_path)),
        target="cnt",
        model=models.HistGradientBoostingRegressorModel(params={"max_iter": 10}),
        model_name=registered.name,
        exclude=BIKE_EXCLUDE,
        categorical=BIKE_CATEGORICAL,
        holdout=datasets.ParquetWriter(path=str(holdout / "holdout.parquet")),
        **registered.common,
    )
    with pytest.raises(features.FeatureError) as caught:
        run(job)
    columns = ", ".join(rows.drop(columns=["cnt"]).columns)
    assert str(caught.value) == f"target column 'cnt' is not in the data; columns: {columns}"
    assert listing(holdout) == []
    client = registered.common["mlflow_service"].client()
    assert registries.latest_version(client, registered.name) == 1  # nothing registered


@pytest.mark.parametrize(
    ("kind", "params", "error", "reason"),
    [
        ("XGBRegressor", {"objective": "count:poisson", "n_estimators": 5},
         "XGBoostError", "label must be non-negative for Poisson/Tweedie regression"),
        ("LGBMRegressor", {"objective": "poisson", "n_estimators": 5},
         "LightGBMError", "[poisson]: at least one target label is negative"),
        ("HistGradientBoostingRegressor", {"loss": "poisson", "max_iter": 5},
         "ValueError", "loss='poisson' requires non-negative y and sum(y) > 0"),
    ],
)  # fmt: skip
def test_a_fit_the_framework_refuses_is_told_in_one_line_and_registers_nothing(
    tracking, registered, rows, tmp_path, kind, params, error, reason
):
    # XGBoost's refusal reached the run's last line with its source line and stack trace, and
    # the console called it "an unexpected error": it is the data and the objective that clash.
    rows["cnt"] = rows["cnt"] - 100.0  # counts shifted below zero
    job = training.TrainingJob(
        inputs=datasets.ParquetReader(path=write(rows, tmp_path)),
        target="cnt",
        model={"KIND": kind, "params": params},
        model_name=registered.name,
        exclude=BIKE_EXCLUDE,
        categorical=BIKE_CATEGORICAL,
        **registered.common,
    )
    with pytest.raises(models.FitError) as caught:
        run(job)
    given = json.dumps(job.model.params)
    assert str(caught.value) == (
        f"{kind} with model_params {given} cannot be fitted on the training rows: {error}: "
        f"{reason}; change model_params or model_kind, or the rows it is fitted on"
    )
    assert type(caught.value.__cause__).__name__ == error  # the framework's own, for the log
    client = registered.common["mlflow_service"].client()
    assert registries.latest_version(client, registered.name) == 1  # nothing registered


# %% FAILURE ALERTS


@pytest.fixture
def slack(monkeypatch):
    """The fake Slack webhook, set in SLACK_WEBHOOK_URL, with proxies out of the way."""
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    with SlackWebhookServer() as server:
        monkeypatch.setenv("SLACK_WEBHOOK_URL", server.url)
        yield server


@JOBS
def test_failure_is_alerted_on_slack(tracking, slack, registered, tmp_path, output, kind):
    missing = unique("no-such-model")
    job = make_job(
        kind,
        write(pd.DataFrame({"instant": [1]}), tmp_path),
        output,
        registered,
        finder=registries.RegistryFinder(name=missing),
        alerter=alerts.default_alerter(),  # a SlackAlerter, from SLACK_WEBHOOK_URL
    )
    assert isinstance(job.alerter, alerts.SlackAlerter)
    fails(job, registries.RegistryError, output)
    body = slack.requests[-1].body
    title = "InferenceJob" if kind == "inference" else "ExplanationsJob"
    header = body["blocks"][0]["text"]["text"]
    assert f"{title} failed" in header and "FAILED" in header and ":x:" in header
    message = body["blocks"][1]["text"]["text"]
    assert message.startswith("RegistryError: no registered model named")
    assert missing in message
    assert body["text"].startswith(f"[FAILED] {title} failed: RegistryError:")


def test_validation_failure_alert_names_the_column_the_rule_and_the_rows(
    tracking, slack, registered, rows, tmp_path, output
):
    rows.loc[rows.index[:12], "temp"] = 5.0
    job = make_job(
        "inference",
        write(rows, tmp_path),
        output,
        registered,
        alerter=alerts.SlackAlerter(max_backoff_seconds=0.01, timeout_seconds=5),
    )
    fails(job, schemas.ValidationError, output)
    [request] = slack.requests
    message = request.body["blocks"][1]["text"]["text"]
    assert message.startswith("ValidationError: input validation failed")
    assert "column 'temp': must satisfy in_range(0, 1) (12 rows)" in message
