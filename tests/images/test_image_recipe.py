"""The compiled pipelines and the component image agree, proved without a cluster.

The image is replayed from images/Dockerfile without Docker (tests/images/pod.py): the wheel is
built from the build context the Dockerfile copies, installed with its pinned dependencies into a
fresh venv, and `data/` laid under the WORKDIR. Then `train`, `promote`, `predict` and `notify`
run exactly as compiled in pipelines/compiled/lifecycle.yaml: the executor's `command` and
`args`, `{{$}}` replaced by an ExecutorInput JSON built from the compiled interface, PATH with
the venv first, the environment the platform spec sets from its ConfigMap and Secrets. They talk
to a real `mlflow server` and a Slack-like webhook on 127.0.0.1.

What stands in for the cluster: the KFP driver and launcher (this test writes the ExecutorInput
and reads the executor output they would exchange with the pod), the artifact store (URIs are
local paths instead of minio://), and the uid: the steps run as this user, not uid 1000.

Cost: installing the wheel's dependencies (mlflow, scikit-learn, shap, pyarrow, kfp...) into the
fresh venv takes 2 to 3 minutes on 2 cores, once per session; each step then takes 5 to 20
seconds, `train` up to 2 minutes on a busy machine: about 5 minutes for the module in all.
Deselect with `-m "not image"` while iterating.
"""

from __future__ import annotations

import json
import pathlib
import re
import shutil
import tomllib
import uuid

import mlflow
import pandas as pd
import pytest
from packaging.markers import Marker

from tests.images import pod
from tests.io.slack_server import SlackWebhookServer

pytestmark = [pytest.mark.image, pytest.mark.integration]

ROOT = pod.ROOT
BIKE = ROOT / "components" / "demo" / "bike-sharing" / "hour.parquet"
# A model and experiment of this module's own on the session's MLflow server.
MODEL = "image-recipe-bike"
EXPERIMENT = "image-recipe"
# The pipeline run id the steps tag their MLflow runs with, as KFP's {{$.pipeline_job_uuid}}.
RUN_ID = str(uuid.uuid4())


def _version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> pod.Image:
    """images/Dockerfile replayed in a temporary root (minutes: see the module docstring)."""
    return pod.build_image(tmp_path_factory.mktemp("image"))


@pytest.fixture(scope="module")
def pipeline(image) -> tuple[dict, dict]:
    """The compiled lifecycle pipeline: its spec and its Kubernetes platform spec.

    Read from the build context the wheel was made of, so that the YAML and the image are one
    snapshot of the repo even while pipelines/compiled/ is being regenerated.
    """
    lifecycle = image.compiled / "lifecycle.yaml"
    if not lifecycle.exists():
        pytest.fail("pipelines/compiled/lifecycle.yaml is missing: run `make compile`")
    return pod.load_pipeline(lifecycle)


@pytest.fixture(scope="module")
def config_maps(mlflow_server) -> dict[str, dict[str, str]]:
    """The ConfigMaps of manifests/: the tracking URI every step reads."""
    return {"mlflow-config": {"MLFLOW_TRACKING_URI": mlflow_server}}


@pytest.fixture(scope="module")
def tasks(tmp_path_factory) -> pathlib.Path:
    """Where the steps' output artifacts land (the pipeline root)."""
    return tmp_path_factory.mktemp("pipeline-root")


def run_step(pipeline, image, tasks, config_maps, component, arguments, secrets=None, task=None):
    """Run one compiled component in the image; fail with its log when the pod fails."""
    step = pod.Step.of(pipeline, component)
    env = step.env(config_maps, secrets or {})
    result = step.run(image, arguments, tasks / (task or component), env)
    assert result.returncode == 0, f"{component} failed:\n{result.log[-6000:]}"
    assert result.output is not None, f"{component} wrote no executor output:\n{result.log}"
    return result


@pytest.fixture(scope="module")
def trained(pipeline, image, tasks, config_maps) -> pod.StepRun:
    """The `train` step on the demo data, found inside the installed wheel (demo://)."""
    arguments = {
        "data": "demo://bike-sharing/hour.parquet",
        "target": "cnt",
        "exclude": ["instant", "dteday", "casual", "registered"],
        "categorical": ["season", "weathersit"],
        "time_column": "instant",
        "model_name": MODEL,
        "model_params": {"max_iter": 50},
        "experiment": EXPERIMENT,
        "run_id": RUN_ID,
    }
    return run_step(pipeline, image, tasks, config_maps, "train", arguments)


@pytest.fixture(scope="module")
def promoted(pipeline, image, tasks, config_maps, trained) -> pod.StepRun:
    """The `promote` step, moving Champion to the version `train` registered."""
    arguments = {
        "version": trained.parameters["version"],
        "model_name": MODEL,
        "experiment": EXPERIMENT,
        "run_id": RUN_ID,
    }
    return run_step(pipeline, image, tasks, config_maps, "promote", arguments)


@pytest.fixture(scope="module")
def predicted(pipeline, image, tasks, config_maps, promoted) -> pod.StepRun:
    """The `predict` step on the Champion, with the demo's schema and pass-through columns."""
    arguments = {
        "data": "demo://bike-sharing/hour.parquet",
        "input_schema": "demo://bike-sharing/schema.yaml",
        "passthrough": ["instant", "dteday"],
        "batch_size": 5000,
        "model_name": MODEL,
        "experiment": EXPERIMENT,
        "run_id": RUN_ID,
    }
    return run_step(pipeline, image, tasks, config_maps, "predict", arguments)


# %% THE RECIPE


def test_the_replay_follows_the_dockerfile():
    """tests/images/pod.py mirrors these lines; change both together."""
    text = pod.DOCKERFILE.read_text()
    for line in (
        "FROM python:3.11-slim-bookworm AS build",
        "RUN python -m venv /opt/venv",
        "COPY requirements.lock ./",
        "RUN /opt/venv/bin/pip install --no-cache-dir --require-hashes -r requirements.lock",
        "COPY pyproject.toml README.md ./",
        "COPY components/ components/",
        "COPY pipelines/ pipelines/",
        "RUN pip wheel --no-cache-dir --no-deps -w /wheels . \\",
        "&& /opt/venv/bin/pip install --no-cache-dir --no-deps /wheels/*.whl \\",
        '&& /opt/venv/bin/python -c "import components, pipelines, kfp, mlflow, psycopg2"',
        "COPY --from=build /opt/venv /opt/venv",
        "ENV PATH=/opt/venv/bin:$PATH \\",
        "WORKDIR /home/app",
    ):
        assert line in text, f"images/Dockerfile no longer has {line!r}: update tests/images/pod.py"
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", text, flags=re.MULTILINE)
    assert copied == ["requirements.lock", "pyproject.toml README.md", "components/", "pipelines/"]


def test_the_image_installs_exactly_the_lock_and_compiles_the_committed_files(image, tmp_path):
    """A fresh venv from requirements.lock holds its pins, and compiles the committed YAML.

    This is what a fresh machine (CI's, the image's) gets: if a dependency's release changed
    what `make compile` writes (kfp's sdkVersion, say), the lock or the files are stale.
    """
    # The pins whose environment marker holds here (the lock is universal: numpy has one pin
    # for Python 3.11 and another for 3.12+).
    lines = re.findall(
        r"^([A-Za-z0-9_.-]+)==([^\s;]+)(?: ; (.+?))?(?: \\)?$",
        (ROOT / "requirements.lock").read_text(),
        re.M,
    )
    locked = {
        name: version for name, version, marker in lines if not marker or Marker(marker).evaluate()
    }
    installed = json.loads(
        image.python(
            "import json, importlib.metadata as m;"
            "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
        )
    )
    normal = {re.sub(r"[-_.]+", "-", k).lower(): v for k, v in installed.items()}
    for name in ("kfp", "mlflow", "pandas", "pyarrow", "scikit-learn", "shap", "numpy"):
        assert normal[name] == locked[name], (name, normal[name], locked[name])
    out = tmp_path / "compiled"
    image.python(
        "import pathlib; from pipelines.cluster.compilation import compile_all;"
        f"compile_all(pathlib.Path({str(out)!r}), pathlib.Path({str(tmp_path / 'manifests')!r}))"
    )
    for committed in sorted((ROOT / "pipelines" / "compiled").glob("*.yaml")):
        fresh = out / committed.name
        assert fresh.read_bytes() == committed.read_bytes(), (
            f"{committed.name} is stale in the image"
        )


def test_every_compiled_step_runs_the_image_with_no_pip_at_start(image, pipeline):
    tag = f"kfp-model-lifecycle:{_version()}"
    assert image.wheel.name == f"kfp_model_lifecycle-{_version()}-py3-none-any.whl"
    compiled = sorted(image.compiled.glob("*.yaml"))
    assert {path.name for path in compiled} >= {"training.yaml", "inference.yaml", "lifecycle.yaml"}
    for path in compiled:
        spec, _ = pod.load_pipeline(path)
        for label, executor in spec["deploymentSpec"]["executors"].items():
            container = executor["container"]
            assert container["image"] == tag, (path.name, label)
            script = " ".join(container["command"])
            assert "pip install" not in script, (path.name, label)
            assert "python3 -m kfp.dsl.executor_main" in script, (path.name, label)
    # `python3` in the step's script is the venv's, and the package comes from the venv, not
    # from the WORKDIR; the wheel carries the compiled pipelines (package data).
    assert shutil.which("python3", path=image.path) == str(image.venv / "bin" / "python3")
    where = json.loads(
        image.python(
            "import components, json, kfp, pathlib, pipelines;"
            "print(json.dumps([components.__file__, kfp.__version__,"
            " str(pathlib.Path(pipelines.__file__).parent / 'compiled')]))"
        )
    )
    assert pathlib.Path(where[0]).is_relative_to(image.venv)
    assert where[1].startswith("2.17")
    installed = pathlib.Path(where[2])
    assert sorted(installed.glob("*.yaml")) == [installed / path.name for path in compiled]
    for path in compiled:
        assert (installed / path.name).read_text() == path.read_text(), path.name


# %% THE STEPS


def test_train_registers_a_version_and_describes_it(trained, mlflow_server):
    version = trained.parameters["version"]
    assert isinstance(version, int) and version >= 1
    model = trained.metadata("model")
    assert model["name"] == MODEL
    assert model["version"] == version
    assert model["mlflow_uri"].startswith("models:/") and model["run_id"]
    assert json.loads(trained.path("model").read_text())["version"] == version
    metrics = trained.metadata("metrics")
    assert {"rmse", "r2"} <= set(metrics) and metrics["r2"] > 0.5
    holdout = pd.read_parquet(trained.path("holdout"))
    rows = len(pd.read_parquet(BIKE))
    assert len(holdout) == pytest.approx(rows * 0.2, abs=2) and "cnt" in holdout.columns
    summary = trained.path("summary").read_text()
    assert summary.startswith("## Training") and f"| model | {MODEL} v{version} |" in summary


def test_promote_moves_the_champion(promoted, trained, mlflow_server):
    # The version the alias serves now: the trained one (there was no Champion to beat).
    assert promoted.parameters["Output"] == str(trained.parameters["version"])
    client = mlflow.MlflowClient(tracking_uri=mlflow_server)
    champion = client.get_model_version_by_alias(MODEL, "Champion")
    assert int(champion.version) == trained.parameters["version"]
    assert "## Promotion" in promoted.path("summary").read_text()


def test_predict_writes_the_predictions_and_the_summary(predicted, trained):
    version = trained.parameters["version"]
    bike = pd.read_parquet(BIKE)
    assert predicted.parameters == {"rows": len(bike), "version": version}
    predictions = pd.read_parquet(predicted.path("predictions"))
    assert list(predictions.columns) == ["instant", "dteday", "prediction"]
    assert len(predictions) == len(bike)
    assert predictions["instant"].tolist() == bike["instant"].tolist()
    assert predictions["prediction"].notna().all()
    metadata = predicted.metadata("predictions")
    assert metadata["rows"] == len(bike) and metadata["model"] == f"{MODEL} v{version}"
    summary = predicted.path("summary").read_text()
    assert summary.startswith("## Predictions")
    assert f"| model | {MODEL} v{version} |" in summary
    assert f"| rows out | {len(bike)} |" in summary


def test_a_failing_step_exits_non_zero_and_leaves_no_output(
    pipeline, image, tasks, config_maps, promoted
):
    step = pod.Step.of(pipeline, "predict")
    arguments = {"data": "data/no-such-file.parquet", "model_name": MODEL, "experiment": EXPERIMENT}
    result = step.run(image, arguments, tasks / "predict-missing", step.env(config_maps, {}))
    assert result.returncode != 0
    assert "no-such-file.parquet" in result.log
    assert result.output is None
    assert not result.path("predictions").exists()


def test_notify_posts_the_run_to_the_slack_secret(pipeline, image, tasks, config_maps, predicted):
    with SlackWebhookServer() as slack:
        secrets = {"slack-webhook": {"SLACK_WEBHOOK_URL": slack.url}}
        status = {
            "state": "FAILED",
            "pipelineJobResourceName": f"lifecycle-{RUN_ID[:8]}",
            "pipelineTaskName": "exit-handler-1",
            "error": {"code": 9, "message": "explain: pod OOMKilled"},
        }
        arguments = {
            "status": status,
            "pipeline": "lifecycle",
            "run_id": RUN_ID,
            "experiment": EXPERIMENT,
            "ui_base_url": "http://kubeflow.test",
        }
        result = run_step(pipeline, image, tasks, config_maps, "notify", arguments, secrets)
        assert result.parameters == {"Output": True}
        [request] = slack.requests
    text = json.dumps(request.body)
    assert "lifecycle: FAILED" in text and "explain: pod OOMKilled" in text
    assert f"{MODEL} v{predicted.parameters['version']}" in text  # found through MLflow
    assert f"http://kubeflow.test/#/runs/details/{RUN_ID}" in text
    assert SlackWebhookServer.PATH not in result.log
