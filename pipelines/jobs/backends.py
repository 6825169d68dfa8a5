"""Trainers and job predictors: start training or batch prediction in the background.

    trainer = LocalTrainer()                       # kfp.local, in a process of its own
    trainer = KFPTrainer(host="http://kfp:8888")   # a run on a Kubeflow Pipelines cluster
    future = trainer.train(data="rows.parquet", target="cnt", model_name="bikes")
    future.result()                                # TrainedModel(name="bikes", version=4, ...)

A trainer runs the `training` pipeline and a job predictor the `inference` pipeline, with the
same parameters as `python -m pipelines run`; both return a future at once
(`pipelines.jobs.futures`). Which backend runs them is configuration: each is a KIND built by a
factory, as finders and loaders are (see `pipelines.jobs.management`).
"""

from __future__ import annotations

import abc
import datetime
import json
import os
import pathlib
import sys
import typing as T

import pydantic as pdt

from components.io import registries
from components.utils import factories
from pipelines.checks import params, preflight
from pipelines.cluster.client import TOKEN_ENV
from pipelines.common.errors import UsageError
from pipelines.dags.catalog import COMPILED
from pipelines.jobs import futures
from pipelines.local import background


class Backend(abc.ABC, pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """Where pipeline runs go: starts a run and finds its future again.

    Args:
        parameters: pipeline parameters every run of this backend gets (a call's own win); only
            those the pipeline declares are passed (and `inference_data` as the `data` of a
            pipeline that only scores: params.taken_by), so one run config serves every pipeline.
    """

    KIND: str
    BACKEND: T.ClassVar[str]
    parameters: dict[str, T.Any] = pdt.Field(default_factory=dict)

    def start(self, pipeline: str, **values: T.Any) -> futures.JobFuture:
        """Check the parameters against the pipeline, then start a run of it; return at once.

        Raises:
            params.ParameterError: an unknown parameter, a value of the wrong type or a
                required one missing; nothing is started.
        """
        declared = self.declared(pipeline)
        defaults = params.taken_by(self.parameters, declared)
        given = {key: value for key, value in values.items() if value is not None}
        checked = preflight.validate(pipeline, {**defaults, **given}, declared)
        return self._start(pipeline, checked)

    @abc.abstractmethod
    def declared(self, pipeline: str) -> dict[str, params.Parameter]:
        """The pipeline's parameters, as this backend will run it."""

    @abc.abstractmethod
    def _start(self, pipeline: str, values: dict[str, T.Any]) -> futures.JobFuture:
        """Start a run with checked values."""

    @abc.abstractmethod
    def get_future(self, job_id: str) -> futures.JobFuture:
        """The future of a run this backend started, from the job part of its id."""


class LocalBackend(Backend, frozen=True):
    """Runs under kfp.local in a background process of this machine.

    Args:
        home: the jobs' folder (default: `$LIFECYCLE_HOME/jobs`, else
            ~/.local/share/kfp-model-lifecycle/jobs).
    """

    BACKEND: T.ClassVar[str] = futures.LOCAL
    home: str | None = None

    def declared(self, pipeline: str) -> dict[str, params.Parameter]:
        """The parameters of the pipeline built in memory, as `run --local` runs it."""
        return params.of_pipeline(pipeline)

    def _start(self, pipeline: str, values: dict[str, T.Any]) -> futures.LocalFuture:
        return futures.LocalFuture(background.submit(pipeline, values, self._home()))

    def get_future(self, job_id: str) -> futures.LocalFuture:
        """The future of a local job, from its 16 hex digits."""
        return futures.LocalFuture.find(job_id, self._home())

    def jobs_folder(self) -> pathlib.Path:
        """The folder this backend's jobs keep their folders in."""
        return self._home() or background.jobs_home()

    def _home(self) -> pathlib.Path | None:
        return pathlib.Path(self.home).expanduser().absolute() if self.home else None


class KFPBackend(Backend, frozen=True):
    """Runs on a Kubeflow Pipelines cluster, created through `kfp.Client`.

    The compiled pipeline is uploaded as a new version only when it changed (as `submit` does).
    Outcomes are read from MLflow (`MLFLOW_TRACKING_URI`), where the steps record them.

    Args:
        host: the KFP API endpoint (default: $KF_PIPELINES_ENDPOINT).
        namespace: the profile namespace on a multi-user KFP.
        token_env: the environment variable that may hold a bearer token.
        experiment: the KFP experiment of the runs (created if missing).
        pipelines_dir: the folder of compiled pipelines.
        tracking_uri: the MLflow server the cluster's steps record in, where outcomes are read
            (default: $MLFLOW_TRACKING_URI).
    """

    BACKEND: T.ClassVar[str] = futures.KFP
    host: str = pdt.Field(default_factory=lambda: os.environ.get("KF_PIPELINES_ENDPOINT", ""))
    namespace: str | None = None
    token_env: str = TOKEN_ENV
    experiment: str = "Default"
    pipelines_dir: str = str(COMPILED)
    tracking_uri: str | None = None

    def client(self) -> T.Any:
        """A connected kfp.Client."""
        from pipelines.cluster.client import build_client

        if not self.host:
            raise UsageError(
                f"{self.KIND} needs the KFP API endpoint: set host in its config, or "
                "$KF_PIPELINES_ENDPOINT"
            )
        return build_client(self.host, self.namespace, self.token_env)

    def declared(self, pipeline: str) -> dict[str, params.Parameter]:
        """The parameters of the compiled pipeline that the run is created from."""
        return params.of_file(self._file(pipeline))

    def _file(self, pipeline: str) -> pathlib.Path:
        from pipelines.cluster.client import resolve_pipeline_file

        return resolve_pipeline_file(pipeline, None, pathlib.Path(self.pipelines_dir))

    def _start(self, pipeline: str, values: dict[str, T.Any]) -> futures.KFPFuture:
        from pipelines.cluster import submit

        client = self.client()
        run_name = f"{pipeline}-{datetime.datetime.now(datetime.UTC):%Y%m%d-%H%M%S}"
        file = self._file(pipeline)
        _, run_id = submit.start_run(
            client, pipeline, file, values, self.experiment, run_name, self.namespace
        )
        return futures.KFPFuture(client, run_id, pipeline, self.tracking_uri)

    def get_future(self, job_id: str) -> futures.KFPFuture:
        """The future of a KFP run, from its run id."""
        return futures.KFPFuture(self.client(), job_id, tracking_uri=self.tracking_uri)


# %% TRAINERS


class Trainer(Backend, frozen=True):
    """Start training in the background: the `training` pipeline (train, evaluate, promote)."""

    PIPELINE: T.ClassVar[str] = "training"

    def train(self, data: str | None = None, **values: T.Any) -> futures.JobFuture:
        """Train, evaluate and (if it passes) promote a new version; return a future at once.

        Args:
            data: the labelled rows (a path or URI), unless the backend's parameters give them.
            **values: other `training` pipeline parameters (target, model_name, model_kind...).

        Returns:
            A future whose result is the registered `TrainedModel`.
        """
        return self.start(self.PIPELINE, data=data, **values)


class LocalTrainer(LocalBackend, Trainer, frozen=True):
    """Train under kfp.local, in a background process of this machine."""

    KIND: T.Literal["LocalTrainer"] = "LocalTrainer"


class KFPTrainer(KFPBackend, Trainer, frozen=True):
    """Train in a run on a Kubeflow Pipelines cluster."""

    KIND: T.Literal["KFPTrainer"] = "KFPTrainer"


# %% JOB PREDICTORS


class JobPredictor(Backend, frozen=True):
    """Start batch predictions in the background: the `inference` pipeline (predict, explain)."""

    PIPELINE: T.ClassVar[str] = "inference"

    def predict(
        self,
        data: str | None = None,
        finder: registries.Finder | T.Mapping[str, T.Any] | None = None,
        **values: T.Any,
    ) -> futures.JobFuture:
        """Predict every row of a dataset with a model from MLflow; return a future at once.

        Args:
            data: the rows to predict (a path or URI), unless the backend's parameters give them.
            finder: which model, as a finder (`ModelManager.finder()`) or its config; default:
                `model_name` and `alias_or_version` (the Champion).
            **values: other `inference` pipeline parameters (model_name, shards, passthrough...).

        Returns:
            A future whose result is the `Predictions`: where, how many rows, which version.
        """
        if isinstance(finder, registries.Finder):
            finder = registries.FINDERS.config_of(finder)
        return self.start(self.PIPELINE, data=data, finder=finder, **values)


class LocalJobPredictor(LocalBackend, JobPredictor, frozen=True):
    """Predict under kfp.local, in a background process of this machine."""

    KIND: T.Literal["LocalJobPredictor"] = "LocalJobPredictor"


class KFPJobPredictor(KFPBackend, JobPredictor, frozen=True):
    """Predict in a run on a Kubeflow Pipelines cluster."""

    KIND: T.Literal["KFPJobPredictor"] = "KFPJobPredictor"


TRAINERS = factories.Factory("trainer", Trainer, (LocalTrainer, KFPTrainer))
JOB_PREDICTORS = factories.Factory(
    "job predictor", JobPredictor, (LocalJobPredictor, KFPJobPredictor)
)


def main(argv: T.Sequence[str] | None = None) -> int:
    """Start a training and print its job id: `python -m pipelines.jobs.backends REQUEST`.

    REQUEST is JSON, `{"trainer": {type, config}, "values": {training parameters}}`; the job's id
    is printed as `{"job": ID}`, the last line of stdout. How a pipeline step starts one (the
    retraining policy): a step runs under KFP's executor, which leaves kfp's compiler
    unimported, and the backends need it, so they run in an interpreter of their own.

    Returns:
        0 when the training started; 1 with the reason on stderr's last line otherwise.
    """
    try:
        [text] = sys.argv[1:] if argv is None else argv
        request = json.loads(text)
        trainer = TRAINERS.build(request["trainer"])
        future = trainer.train(**request["values"])
    except Exception as error:
        print(" ".join(f"{type(error).__name__}: {error}".split()), file=sys.stderr)
        return 1
    print(json.dumps({"job": future.id}))
    return 0


if __name__ == "__main__":  # the module's classes, not this script's copies of them
    from pipelines.jobs.backends import main as start_training

    sys.exit(start_training())
