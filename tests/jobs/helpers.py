"""Helpers shared by the job tests: settings for the session's MLflow server and job runners."""

from __future__ import annotations

import pathlib
import typing as T
import uuid

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import infer_signature

from components.core import explainers, schemas
from components.io import alerts, registries, services
from components.jobs import base

# The demo data's features (bike sharing, hourly); `cnt` is the target, and `casual` and
# `registered` are left out because they add up to it.
BIKE_NUMERICAL = [
    "yr",
    "mnth",
    "hr",
    "holiday",
    "weekday",
    "workingday",
    "temp",
    "atemp",
    "hum",
    "windspeed",
]
BIKE_CATEGORICAL = ["season", "weathersit"]
BIKE_TARGET = "cnt"
# The bike data's identifiers, date and the two counts that add up to `cnt`: never features.
BIKE_EXCLUDE = ["instant", "dteday", "casual", "registered"]
# The classification targets that `with_demand` adds: a leak of `cnt` when not the target.
CLASS_TARGETS = ["demand", "busy"]
# The columns the models use, as a signature lists them: numerical, then categorical.
COLUMNS = [*BIKE_NUMERICAL, *BIKE_CATEGORICAL]
DEMAND_LABELS = ["high", "low", "medium"]


def features(target: str = BIKE_TARGET) -> dict[str, T.Any]:
    """The TrainingJob fields that give the demo features (`COLUMNS`) for a target.

    Every other count and class target is excluded: each is a leak of the others.
    """
    leaks = [name for name in [BIKE_TARGET, *CLASS_TARGETS] if name != target]
    return {
        "exclude": [*BIKE_EXCLUDE, *leaks],
        "categorical": list(BIKE_CATEGORICAL),
    }


def unique(prefix: str) -> str:
    """A registered model (or experiment) name that no other test uses on the shared server."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def settings(tracking_uri: str, experiment: str) -> dict[str, T.Any]:
    """The services of a job under test: the session's server, alerts to the log."""
    return {
        "mlflow_service": services.MlflowService(
            tracking_uri=tracking_uri, experiment_name=experiment
        ),
        "alerter": alerts.ConsoleAlerter(),
    }


def run(job: base.Job) -> T.Any:
    """Run a job as a component does: inside its context, so that failures are alerted."""
    with job:
        return job.run()


def with_demand(frame: pd.DataFrame) -> pd.DataFrame:
    """Add the classification targets: `demand` (3 classes) and `busy` (yes/no)."""
    demand = pd.cut(frame["cnt"], [-1, 40, 280, np.inf], labels=["low", "medium", "high"])
    return frame.assign(demand=demand.astype(str), busy=np.where(frame["cnt"] > 150, "yes", "no"))


def listing(directory: pathlib.Path) -> list[str]:
    """Every entry of a directory, hidden temporary files included."""
    return sorted(path.name for path in directory.iterdir())


def register_as_a_notebook(name: str, flavor: str, model: T.Any, frame: pd.DataFrame) -> int:
    """Log a model with its framework's flavour (`mlflow.<flavor>`) and a signature inferred
    from `frame` and its predictions, in a run of its own, and register it; its version."""
    with mlflow.start_run():
        info = getattr(mlflow, flavor).log_model(
            model,
            name="model",
            signature=infer_signature(frame, model.predict(frame)),
            registered_model_name=name,
        )
    return int(info.registered_model_version)


def native_model(name: str, version: int) -> T.Any:
    """The registered sklearn pipeline, loaded without the jobs' code."""
    return mlflow.sklearn.load_model(registries.uri_for(name, version))


def signature_of(name: str, version: int) -> T.Any:
    """The registered version's MLflow signature, read without the jobs' code."""
    return mlflow.models.get_model_info(registries.uri_for(name, version)).signature


def assert_additive(
    samples: pd.DataFrame, inputs: pd.DataFrame, expected: np.ndarray, rtol: float = 1e-6
) -> None:
    """Each sample's base_value + its shap_* values = the expected output, per output.

    Args:
        samples: the samples explanations, one row per sample and output, with `instant`.
        inputs: the input rows, with `instant`, in any order.
        expected: the explained outputs of `inputs` as (samples, outputs), in inputs' order.
    """
    shap_columns = [c for c in samples.columns if c.startswith("shap_")]
    position = {instant: i for i, instant in enumerate(inputs["instant"])}
    n_outputs = samples.groupby("instant").size().unique()
    assert len(n_outputs) == 1
    k = int(n_outputs[0])
    assert expected.shape[1] == k
    totals = samples["base_value"].to_numpy() + samples[shap_columns].to_numpy().sum(axis=1)
    rows = [position[instant] for instant in samples["instant"]]
    outputs = np.tile(np.arange(k), len(samples) // k)
    wanted = expected[rows, outputs]
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(totals, wanted, rtol=rtol, atol=rtol * scale)


def raw_outputs(model: T.Any, inputs: pd.DataFrame, signature: T.Any) -> np.ndarray:
    """What Tree and Linear SHAP explain: the prediction, or a classifier's margins."""
    return explainers.raw_output(model, schemas.conform(inputs, signature))
