"""Model management: finders, initializers, trainers and job predictors chosen by configuration.

The run config (`--config FILE`) may carry a `model_management` section; each entry is named
and built by a factory from `{type: NAME, config: {...}}`, where NAME is one of the project's
kinds or a user's class `package.module:Class`:

    pipeline: lifecycle
    parameters: {data: rows.parquet, target: cnt, model_name: bikes}
    model_management:
      finders:
        default: {type: RegistryFinder, config: {name: bikes, alias_or_version: Champion}}
        best: {type: BestRunFinder, config: {metric: test_r2, mode: max}}
      initializers:
        default: {type: FlavorLoader}
      trainers:
        default: {type: LocalTrainer}
        cluster: {type: KFPTrainer, config: {host: "http://localhost:8080"}}
      job_predictors:
        default: {type: LocalJobPredictor}

    manager = ModelManager.from_file("confs/bike-sharing.yaml")
    future = manager.job_predictor().predict(data="new_rows.parquet")
    future.id                       # come back to it later, from any process:
    ModelManager().get_future(future.id).result()
    manager.list_jobs(state="running")          # every local job (and KFP run) configured
    manager.prune_jobs(older_than=30)           # remove local jobs that ended 30+ days ago

Without a section, `default` is: the registry's Champion of `parameters.model_name`, the richest
flavour loader, and local (kfp.local) trainer and job predictor. The trainers and job predictors
get the config's `parameters`, each pipeline taking those it declares; a key that no pipeline
declares is refused when the manager is built. Before a job starts, its pipeline's steps check
every value as they will when they run (`pipelines.checks.preflight`): a bad one starts nothing.
"""

from __future__ import annotations

import pathlib
import typing as T

from components.io import registries
from components.utils import factories
from pipelines.checks import params
from pipelines.cluster.client import TOKEN_ENV
from pipelines.jobs import backends, futures, listing

DEFAULT = "default"
SECTION = "model_management"
# Each section: the factory that builds its entries.
FACTORIES: dict[str, factories.Factory] = {
    "finders": registries.FINDERS,
    "initializers": registries.LOADERS,
    "trainers": backends.TRAINERS,
    "job_predictors": backends.JOB_PREDICTORS,
}
# A kind of backend, as `ModelManager._backends` hands them out.
_B = T.TypeVar("_B", bound=backends.Backend)


class ManagementError(params.ParameterError):
    """A model_management section that cannot be built; names the entry and why."""


class ModelManager:
    """Hand out the configured finders, initializers, trainers and job predictors by name.

    Args:
        management: the `model_management` section: {section: {name: {type, config}}}.
        parameters: the run config's pipeline parameters (the defaults of every run).
        source: where the config came from, for messages.

    Raises:
        ManagementError: an unknown section, a bad type or option, or a parameter that no
            pipeline declares; every entry is built here, so a mistake shows at once, with its
            place in the config.
    """

    def __init__(
        self,
        management: T.Mapping[str, T.Any] | None = None,
        parameters: T.Mapping[str, T.Any] | None = None,
        source: str = "config",
    ):
        self.parameters = dict(parameters or {})
        self.source = source
        self._pipelines: dict[str, params.PipelineParameters] | None = None
        self._check_declared(self.parameters, f"{source}: parameters")
        management = dict(management or {})
        unknown = [key for key in management if key not in FACTORIES]
        if unknown:
            raise ManagementError(
                f"{source}: unknown {SECTION} section {unknown[0]!r}; "
                f"sections: {', '.join(FACTORIES)}"
            )
        self.instances: dict[str, dict[str, T.Any]] = {
            section: self._build(section, management.get(section) or {}) for section in FACTORIES
        }

    @classmethod
    def from_file(cls, path: pathlib.Path | str) -> ModelManager:
        """The manager of a run config file (`pipeline`, `parameters`, `model_management`)."""
        config = params.load_config(pathlib.Path(path))
        return cls(config.model_management, config.parameters, source=str(path))

    def _build(self, section: str, entries: T.Any) -> dict[str, T.Any]:
        where = f"{self.source}: {SECTION}.{section}"
        if not isinstance(entries, T.Mapping):
            raise ManagementError(f"{where} must map names to {{type, config}}, got {entries!r}")
        built = {}
        if section != "finders" or self.parameters.get("model_name"):
            built[DEFAULT] = self._default(section)
        for name, spec in entries.items():
            if not isinstance(spec, T.Mapping) or "type" not in spec:
                raise ManagementError(
                    f"{where}.{name} must be {{type: NAME, config: {{...}}}}, got {spec!r}"
                )
            extra = [key for key in spec if key not in factories.SPEC_KEYS]
            if extra:
                raise ManagementError(
                    f"{where}.{name}: unknown key {extra[0]!r}; allowed: type, config"
                )
            spec = dict(spec)
            if section in ("trainers", "job_predictors"):
                config = dict(spec.get("config") or {})
                own = config.get("parameters") or {}
                if isinstance(own, T.Mapping):
                    self._check_declared(own, f"{where}.{name}.config.parameters")
                config["parameters"] = {**self.parameters, **own}
                spec["config"] = config
            try:
                built[str(name)] = FACTORIES[section].build(spec)
            except ValueError as error:
                raise ManagementError(f"{where}.{name}: {error}") from None
        return built

    def _check_declared(self, values: T.Mapping[str, T.Any], where: str) -> None:
        """Refuse a parameter that none of the project's pipelines declares."""
        if not values:
            return
        if self._pipelines is None:
            self._pipelines = params.of_pipelines()
        try:
            params.check_declared(values, self._pipelines, where)
        except params.ParameterError as error:
            raise ManagementError(str(error)) from None

    def _default(self, section: str) -> T.Any:
        if section == "finders":
            return registries.RegistryFinder(
                name=str(self.parameters["model_name"]),
                alias_or_version=self.parameters.get("alias_or_version", "Champion"),
            )
        if section == "initializers":
            return registries.FlavorLoader()
        if section == "trainers":
            return backends.LocalTrainer(parameters=self.parameters)
        return backends.LocalJobPredictor(parameters=self.parameters)

    def _get(self, section: str, name: str) -> T.Any:
        found = self.instances[section]
        if name not in found:
            hint = ""
            if section == "finders" and not found:
                hint = " (set parameters.model_name, or configure one)"
            raise ManagementError(
                f"{self.source}: no {section[:-1].replace('_', ' ')} named {name!r}; "
                f"{section}: {', '.join(found) or 'none'}{hint}"
            )
        return found[name]

    def finder(self, name: str = DEFAULT) -> registries.Finder:
        """The finder configured under this name."""
        return self._get("finders", name)

    def initializer(self, name: str = DEFAULT) -> registries.Loader:
        """The initializer (model loader) configured under this name."""
        return self._get("initializers", name)

    def trainer(self, name: str = DEFAULT) -> backends.Trainer:
        """The trainer configured under this name."""
        return self._get("trainers", name)

    def job_predictor(self, name: str = DEFAULT) -> backends.JobPredictor:
        """The job predictor configured under this name."""
        return self._get("job_predictors", name)

    def load(
        self, finder: str = DEFAULT, initializer: str = DEFAULT
    ) -> tuple[registries.ModelRef, registries.Predictor]:
        """Find a model and load it here, ready to predict in this process.

        Returns:
            The model found (version, URI) and the loaded predictor.
        """
        from pipelines.common import outcomes

        # The same store as the runs: $MLFLOW_TRACKING_URI, else the local one (never ./mlflow.db).
        uri = outcomes.tracking_uri()
        model_ref = self.finder(finder).find(registries.MlflowClient(uri, uri))
        return model_ref, self.initializer(initializer).load(model_ref.uri)

    def get_future(self, future_id: str) -> futures.JobFuture:
        """The future of a job from its id alone, in any process.

        A `local:` id is looked for in the configured local backend's jobs folder (the default
        one when none is configured); a `kfp:` id is asked of the configured KFP backend's host
        (else `$KF_PIPELINES_ENDPOINT`).

        Raises:
            futures.FutureNotFound: the id is malformed or no such job exists.
        """
        backend, job = futures.split_id(future_id)
        for section in ("trainers", "job_predictors"):
            for instance in self.instances[section].values():
                if getattr(instance, "BACKEND", None) == backend:
                    return instance.get_future(job)
        default = backends.LocalTrainer() if backend == futures.LOCAL else backends.KFPTrainer()
        return default.get_future(job)

    def jobs_folders(self) -> list[pathlib.Path]:
        """The folders of the local backends configured, the default one among them."""
        folders: list[pathlib.Path] = []
        for instance in self._backends(backends.LocalBackend):
            if instance.jobs_folder() not in folders:
                folders.append(instance.jobs_folder())
        return folders

    def kfp_backends(
        self, host: str | None = None, namespace: str | None = None, token_env: str = TOKEN_ENV
    ) -> list[backends.KFPBackend]:
        """The KFP backends configured with a host, one per cluster; only `host`'s when given."""
        if host:
            return [backends.KFPTrainer(host=host, namespace=namespace, token_env=token_env)]
        found: dict[tuple[str, str | None], backends.KFPBackend] = {}
        for instance in self._backends(backends.KFPBackend):
            if instance.host:
                found.setdefault((instance.host, instance.namespace), instance)
        return list(found.values())

    def _backends(self, kind: type[_B]) -> list[_B]:
        return [
            instance
            for section in ("trainers", "job_predictors")
            for instance in self.instances[section].values()
            if isinstance(instance, kind)
        ]

    def list_jobs(
        self,
        state: str | None = None,
        host: str | None = None,
        namespace: str | None = None,
        token_env: str = TOKEN_ENV,
    ) -> list[listing.JobSummary]:
        """Every job of the configured backends, newest first.

        Args:
            state: only the jobs in this state (queued, running, completed, errored, canceled).
            host: list this KFP cluster's runs, instead of the configured KFP backends' ones.
            namespace: the profile namespace on a multi-user KFP (with `host`).
            token_env: the environment variable that may hold a bearer token (with `host`).

        Returns:
            The local jobs of every configured jobs folder (unreadable folders included, when
            no state is asked for) and the runs of this project's pipelines on each KFP
            cluster configured.

        Raises:
            UsageError: `state` is not a job state.
        """
        listing.check_state(state)
        jobs = [job for folder in self.jobs_folders() for job in listing.list_local(folder, state)]
        for backend in self.kfp_backends(host, namespace, token_env):
            jobs += listing.list_kfp(backend.client(), state, backend.namespace)
        return listing.newest_first(jobs)

    def prune_jobs(
        self, older_than: float, state: str | None = None, dry_run: bool = False
    ) -> listing.PruneReport:
        """Remove the local jobs that ended more than `older_than` days ago (`listing.prune`).

        KFP runs are never pruned: the cluster keeps its own.

        Args:
            older_than: days since the job ended.
            state: only the jobs that ended so: completed, errored or canceled.
            dry_run: say what would be removed; remove nothing.

        Raises:
            UsageError: `older_than` is not a number of days, or `state` not an ended state.
        """
        folders = self.jobs_folders()
        reports = [listing.prune(folder, older_than, state, dry_run) for folder in folders]
        return sum(reports[1:], reports[0])


def get_future(future_id: str, config: pathlib.Path | str | None = None) -> futures.JobFuture:
    """The future of a job from its id, with the backends of a run config (default ones if None)."""
    return manager_of(config).get_future(future_id)


def manager_of(config: pathlib.Path | str | None = None) -> ModelManager:
    """The manager of a run config file, or the default one."""
    return ModelManager.from_file(config) if config else ModelManager()
