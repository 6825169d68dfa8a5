"""The model manager reads one run config and hands out configured finders, loaders, trainers
and job predictors; a model saved in a folder is found and loaded for real (no server needed)."""

from __future__ import annotations

import pathlib
import textwrap

import mlflow
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from components.io import registries
from pipelines.checks import params
from pipelines.jobs import backends, futures, management
from tests.pipelines import user_kinds

CONFIG = """
pipeline: lifecycle
parameters:
  data: demo://bike-sharing/hour.parquet
  inference_data: demo://bike-sharing/hour.parquet
  target: cnt
  model_name: bikes
  max_samples: 100
model_management:
  finders:
    best: {type: BestRunFinder, config: {metric: test_r2, mode: max}}
    latest: {type: "tests.pipelines.user_kinds:LatestVersionFinder", config: {name: bikes}}
  initializers:
    native: {type: SklearnLoader}
  trainers:
    cluster:
      type: KFPTrainer
      config: {host: "http://kfp.example:8888", experiment: nightly, parameters: {target: y}}
  job_predictors:
    here: {type: LocalJobPredictor, config: {home: /tmp/lifecycle-jobs}}
"""


def write(tmp_path: pathlib.Path, text: str) -> pathlib.Path:
    path = tmp_path / "run.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_the_run_config_builds_every_named_instance(tmp_path):
    manager = management.ModelManager.from_file(write(tmp_path, CONFIG))
    assert manager.finder() == registries.RegistryFinder(name="bikes", alias_or_version="Champion")
    assert manager.finder("best") == registries.BestRunFinder(metric="test_r2", mode="max")
    assert isinstance(manager.finder("latest"), user_kinds.LatestVersionFinder)
    assert manager.initializer() == registries.FlavorLoader()
    assert manager.initializer("native") == registries.SklearnLoader()
    assert isinstance(manager.trainer(), backends.LocalTrainer)
    cluster = manager.trainer("cluster")
    assert isinstance(cluster, backends.KFPTrainer)
    assert (cluster.host, cluster.experiment) == ("http://kfp.example:8888", "nightly")
    # The run config's parameters are every run's defaults; the entry's own win.
    assert cluster.parameters["target"] == "y"
    assert cluster.parameters["model_name"] == "bikes"
    here = manager.job_predictor("here")
    assert isinstance(here, backends.LocalJobPredictor)
    assert here.home == "/tmp/lifecycle-jobs"
    assert here.parameters["data"] == "demo://bike-sharing/hour.parquet"


def test_the_pipeline_commands_accept_the_same_file(tmp_path):
    path = write(tmp_path, CONFIG)
    config = params.load_config(path)
    assert config.pipeline == "lifecycle"
    assert set(config.model_management) == {"finders", "initializers", "trainers", "job_predictors"}
    values = params.resolve("lifecycle", params.of_pipeline("lifecycle"), path, {})
    assert values["model_name"] == "bikes"


def test_a_pipeline_takes_only_the_parameters_it_declares():
    trainer = backends.LocalTrainer(parameters={"target": "cnt", "max_samples": 100})
    declared = trainer.declared("training")
    assert "max_samples" not in declared  # an inference parameter: left out for training
    assert "target" in declared


class RecordingPredictor(backends.LocalJobPredictor, frozen=True):
    """Records the checked values of a run instead of starting it under kfp.local."""

    def _start(self, pipeline, values):
        raise LookupError((pipeline, values))


def test_a_job_predictor_of_a_lifecycle_config_scores_its_inference_data(tmp_path):
    config = CONFIG.replace(
        "  inference_data: demo://bike-sharing/hour.parquet",
        "  inference_data: demo://wine/wine.csv",
    )
    manager = management.ModelManager.from_file(write(tmp_path, config))
    predictor = RecordingPredictor(parameters=manager.job_predictor().parameters)
    with pytest.raises(LookupError) as started:
        predictor.predict()
    pipeline, values = started.value.args[0]
    assert pipeline == "inference"
    assert values["data"] == "demo://wine/wine.csv"  # not the labelled rows of `data`
    assert "target" not in values
    # A call's own rows still win.
    with pytest.raises(LookupError) as started:
        predictor.predict(data="demo://bike-sharing/hour.parquet")
    assert started.value.args[0][1]["data"] == "demo://bike-sharing/hour.parquet"


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        (
            "colours: {}",
            "unknown model_management section 'colours'; "
            "sections: finders, initializers, trainers, job_predictors",
        ),
        ("trainers: [LocalTrainer]", "model_management.trainers must map names to {type, config}"),
        (
            "trainers: {fast: LocalTrainer}",
            "model_management.trainers.fast must be {type: NAME, config: {...}}",
        ),
        (
            "trainers: {fast: {type: LocalTrainer, options: {}}}",
            "model_management.trainers.fast: unknown key 'options'; allowed: type, config",
        ),
        (
            "trainers: {fast: {type: SlurmTrainer}}",
            "model_management.trainers.fast: unknown trainer type 'SlurmTrainer'; allowed: "
            "'LocalTrainer', 'KFPTrainer', or the import path package.module:Class of a "
            "subclass of pipelines.jobs.backends:Trainer",
        ),
        (
            "trainers: {fast: {type: 'tests.pipelines.user_kinds:LatestVersionFinder'}}",
            "is not a subclass of pipelines.jobs.backends:Trainer",
        ),
        (
            "job_predictors: {gpu: {type: KFPJobPredictor, config: {hots: x}}}",
            "model_management.job_predictors.gpu: invalid KFPJobPredictor: "
            "hots: unknown option (did you mean: host?); its options: parameters, host, ",
        ),
        (
            "finders: {by_uri: {type: UriFinder}}",
            "model_management.finders.by_uri: invalid UriFinder: uri: Field required",
        ),
    ],
)
def test_a_bad_entry_is_refused_with_its_place_in_the_file(tmp_path, section, expected):
    path = write(tmp_path, f"parameters: {{model_name: m}}\nmodel_management:\n  {section}\n")
    with pytest.raises(management.ManagementError) as caught:
        management.ModelManager.from_file(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert expected in str(caught.value)


def test_an_unknown_name_lists_the_configured_ones(tmp_path):
    manager = management.ModelManager.from_file(write(tmp_path, CONFIG))
    with pytest.raises(
        management.ManagementError, match="no trainer named 'gpu'; trainers: default, cluster"
    ):
        manager.trainer("gpu")
    bare = management.ModelManager()
    with pytest.raises(
        management.ManagementError,
        match="no finder named 'default'; finders: none .set parameters.model_name",
    ):
        bare.finder()


@pytest.mark.parametrize(
    ("future_id", "expected"),
    [
        (
            "3f2a9c0d1b7e4a56",
            "not a job id: '3f2a9c0d1b7e4a56'; ids look like local:<16 hex digits> or kfp:<run id>",
        ),
        ("slurm:12", "not a job id: 'slurm:12'"),
        ("local:../../etc", "not a local job id: '../../etc' (16 hex digits expected)"),
        ("local:0123456789abcdef", "no local job 0123456789abcdef in "),
    ],
)
def test_get_future_refuses_an_id_it_cannot_find(tmp_path, monkeypatch, future_id, expected):
    monkeypatch.setenv("LIFECYCLE_HOME", str(tmp_path))
    with pytest.raises(futures.FutureNotFound) as caught:
        management.get_future(future_id)
    assert expected in str(caught.value)


def test_a_kfp_id_without_a_host_says_how_to_give_one(monkeypatch):
    monkeypatch.delenv("KF_PIPELINES_ENDPOINT", raising=False)
    with pytest.raises(params.UsageError, match="needs the KFP API endpoint: set host"):
        management.get_future("kfp:8a1e2b3c")


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory) -> pathlib.Path:
    """A model saved in a folder, as `mlflow.sklearn.save_model` writes one."""
    inputs = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0]})
    model = LinearRegression().fit(inputs, [2.0, 4.0, 6.0, 8.0])
    folder = tmp_path_factory.mktemp("saved") / "doubler"
    signature = mlflow.models.infer_signature(inputs, model.predict(inputs))
    mlflow.sklearn.save_model(
        model, folder, signature=signature, serialization_format="cloudpickle"
    )
    return folder


def test_a_folder_finder_and_an_initializer_load_a_saved_model(tmp_path, model_folder, monkeypatch):
    monkeypatch.setenv("LIFECYCLE_HOME", str(tmp_path))  # no server: a local store of its own
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    config = f"""
    model_management:
      finders:
        default: {{type: FolderFinder, config: {{path: "{model_folder}"}}}}
      initializers:
        default: {{type: PyfuncLoader}}
    """
    manager = management.ModelManager.from_file(write(tmp_path, config))
    model_ref, predictor = manager.load()
    assert model_ref.uri == str(model_folder)
    predictions = predictor.predict(pd.DataFrame({"x": [10.0]}))
    assert predictions["prediction"].round(6).tolist() == [20.0]


def test_a_folder_without_a_model_is_refused_with_what_it_holds(tmp_path, model_folder):
    finder = registries.FolderFinder(path=str(model_folder.parent))
    with pytest.raises(registries.RegistryError) as caught:
        finder.find(None)
    assert "holds no MLmodel file, so it is not an MLflow model folder" in str(caught.value)
    assert "models in its sub-folders: doubler" in str(caught.value)
    with pytest.raises(registries.RegistryError, match="no model folder .* does not exist"):
        registries.FolderFinder(path=str(tmp_path / "missing")).find(None)
