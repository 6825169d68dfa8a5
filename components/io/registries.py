"""Registries: find, load and save models in the MLflow model registry."""

from __future__ import annotations

import abc
import logging
import pathlib
import typing as T

import mlflow
import pandas as pd
import pydantic as pdt
from mlflow.exceptions import MlflowException
from mlflow.models.signature import ModelSignature
from mlflow.tracking import MlflowClient

from components.core import lineage, models, schemas
from components.core.model_refs import ModelRef
from components.utils import factories

logger = logging.getLogger(__name__)

# Types that skops may load beyond its own defaults: those the project's model kinds declare
# (`Model.TRUSTED_TYPES`), reviewed by hand with each kind, never trusted automatically at save or
# load time. A saving step trusts those of the kind it saves.
TRUSTED_TYPES: tuple[str, ...] = models.trusted_types()
ARTIFACT_PATH = "model"
# The file that makes a folder an MLflow model.
MLMODEL = "MLmodel"


# Tags put on an evaluated model version; promotion reads PASSED_TAG, and CHAMPION_TAG (the
# Champion version it was compared with, or "none") to move the alias only if it is still there.
PASSED_TAG = "evaluation.passed"
METRIC_TAG = "evaluation.{}"
CHAMPION_TAG = "evaluation.champion_version"
CHAMPION_METRIC_TAG = "evaluation.champion.{}"
NO_CHAMPION = "none"
# Tags put on a version when it is registered by a pipeline step: the KFP run and task that
# registered it, so that a retry of the same task finds it instead of registering another.
TASK_TAGS = (lineage.KFP_RUN_TAG, lineage.KFP_TASK_TAG)


class RegistryError(LookupError):
    """A model, version or alias cannot be found; the message lists what does exist."""


class UnsignedModelError(ValueError):
    """A model without an input signature, whose inputs therefore cannot be checked."""


def is_version(alias_or_version: str | int) -> bool:
    """An int, or a string of digits, names a version; anything else names an alias."""
    return isinstance(alias_or_version, int) or str(alias_or_version).isdigit()


def uri_for(name: str, alias_or_version: str | int) -> str:
    """The models:/ URI of a registered model by version or alias.

    Example:
        uri_for("bike-sharing", "Champion") == "models:/bike-sharing@Champion"
        uri_for("bike-sharing", 3) == "models:/bike-sharing/3"
    """
    if is_version(alias_or_version):
        return f"models:/{name}/{int(alias_or_version)}"
    return f"models:/{name}@{alias_or_version}"


def latest_version(client: MlflowClient, name: str) -> int:
    """The newest version number of a registered model."""
    versions = client.search_model_versions(
        f"name='{name}'", order_by=["version_number DESC"], max_results=1
    )
    if not versions:
        raise RegistryError(f"registered model '{name}' has no versions")
    return int(versions[0].version)


def comparison_tags(champion: int | None, champion_scores: T.Mapping[str, float]) -> dict[str, str]:
    """The tags that record on a candidate version which Champion it was compared with.

    Args:
        champion: the Champion's version, None when there was none.
        champion_scores: the Champion's metrics on the candidate's held-out rows.
    """
    return {
        **{CHAMPION_METRIC_TAG.format(k): f"{v:.6g}" for k, v in champion_scores.items()},
        CHAMPION_TAG: str(champion) if champion is not None else NO_CHAMPION,
    }


def set_version_tags(
    client: MlflowClient, name: str, version: int, tags: T.Mapping[str, str]
) -> None:
    """Set tags on a model version, in order (MLflow has no batch call for them)."""
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version), key, value)


def task_tags(run_tags: T.Mapping[str, str]) -> dict[str, str]:
    """The tags that identify the pipeline task registering a version ({} outside a pipeline)."""
    if not all(run_tags.get(key) for key in TASK_TAGS):
        return {}
    return {key: run_tags[key] for key in TASK_TAGS}


def task_version(client: MlflowClient, name: str, tags: T.Mapping[str, str]) -> ModelRef | None:
    """The version an earlier attempt of the same pipeline task registered, if any.

    A retried step runs again with the same KFP run id and task name: finding its version makes
    the retry leave the registry as one attempt would.

    Args:
        client: the registry client.
        name: the registered model name.
        tags: `task_tags` of the step ({} finds nothing).
    """
    if not tags:
        return None
    query = " and ".join([f"name='{name}'", *(f"tags.`{k}` = '{v}'" for k, v in tags.items())])
    try:
        found = client.search_model_versions(query, order_by=["version_number ASC"])
    except MlflowException:  # no such model yet
        return None
    if not found:
        return None
    version = found[0]
    return ModelRef(
        uri=uri_for(name, int(version.version)),
        name=name,
        version=int(version.version),
        run_id=version.run_id,
    )


# %% FINDERS


class Finder(abc.ABC, pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """Find which model to use, resolved to a concrete URI (and version when registered)."""

    KIND: str

    @abc.abstractmethod
    def find(self, client: MlflowClient) -> ModelRef:
        """Resolve the model reference."""


class RegistryFinder(Finder, frozen=True):
    """A registered model by name and alias or version.

    Args:
        name: the registered model name.
        alias_or_version: an alias ("Champion") or a version number (3 or "3").
    """

    KIND: T.Literal["RegistryFinder"] = "RegistryFinder"
    name: str
    alias_or_version: str | int = "Champion"

    @pdt.field_validator("name")
    @classmethod
    def _named(cls, name: str) -> str:
        if not name:
            raise ValueError(
                "no model named: set model_name to the registered model, or give a finder of "
                "another KIND (BestRunFinder, UriFinder)"
            )
        return name

    def find(self, client: MlflowClient) -> ModelRef:
        """Resolve the alias or version to a concrete version."""
        try:
            if is_version(self.alias_or_version):
                found = client.get_model_version(self.name, str(int(self.alias_or_version)))
            else:
                found = client.get_model_version_by_alias(self.name, str(self.alias_or_version))
        except MlflowException as error:
            raise RegistryError(self._explain(client)) from error
        return ModelRef(
            uri=uri_for(self.name, int(found.version)),
            name=self.name,
            version=int(found.version),
            run_id=found.run_id,
        )

    def _explain(self, client: MlflowClient) -> str:
        """Say what is missing and what exists instead."""
        wanted = uri_for(self.name, self.alias_or_version)
        try:
            model = client.get_registered_model(self.name)
        except MlflowException:
            names = sorted(m.name for m in client.search_registered_models(max_results=50))
            return (
                f"no registered model named '{self.name}' ({wanted}); "
                f"registered models: {', '.join(names) or 'none'}"
            )
        aliases = ", ".join(f"{a}=v{v}" for a, v in sorted(model.aliases.items())) or "none"
        versions = client.search_model_versions(
            f"name='{self.name}'", order_by=["version_number DESC"], max_results=5
        )
        latest = ", ".join(f"v{v.version}" for v in versions) or "none"
        kind = "version" if is_version(self.alias_or_version) else "alias"
        return (
            f"model '{self.name}' has no {kind} '{self.alias_or_version}' ({wanted}); "
            f"aliases: {aliases}; latest versions: {latest}"
        )


# How many of the best runs by a metric BestRunFinder looks at for one that logged a model.
CANDIDATE_RUNS = 50


class BestRunFinder(Finder, frozen=True):
    """The model logged by the best run of an experiment for one metric.

    The training job logs its holdout metrics as `test_<metric>` (test_rmse, test_r2, test_mae;
    test_f1_macro, test_accuracy, test_roc_auc, test_log_loss for classifiers), and so does
    the evaluation job (whose runs log no model, and are passed over).

    Args:
        experiment_name: the experiment whose runs are compared; the job's own when None.
        metric: the metric to rank runs by.
        mode: "min" when lower is better, "max" when higher is better.
    """

    KIND: T.Literal["BestRunFinder"] = "BestRunFinder"
    experiment_name: str | None = None
    metric: str = "test_rmse"
    mode: T.Literal["min", "max"] = "min"

    def find(self, client: MlflowClient) -> ModelRef:
        """Rank the experiment's runs by the metric and return the best run's logged model."""
        if self.experiment_name is None:
            experiment = client.get_experiment(mlflow.tracking.fluent._get_experiment_id())
        else:
            experiment = client.get_experiment_by_name(self.experiment_name)
        if experiment is None:
            names = sorted(e.name for e in client.search_experiments(max_results=50))
            raise RegistryError(
                f"no experiment named '{self.experiment_name}'; experiments: {', '.join(names)}"
            )
        order = "ASC" if self.mode == "min" else "DESC"
        # The evaluation of a version logs the same figure under the same name as its training;
        # only a run that logged a model is a candidate: the best few are looked at in order.
        runs = client.search_runs(
            [experiment.experiment_id],
            filter_string=f"metrics.`{self.metric}` > -1e308",
            order_by=[f"metrics.`{self.metric}` {order}"],
            max_results=CANDIDATE_RUNS,
        )
        if not runs:
            logged = sorted(
                {m for r in client.search_runs([experiment.experiment_id], max_results=20)
                 for m in r.data.metrics}
            )  # fmt: skip
            raise RegistryError(
                f"no run of experiment '{experiment.name}' has the metric '{self.metric}'; "
                f"metrics logged there: {', '.join(logged) or 'none'}"
            )
        for run in runs:
            logged = mlflow.search_logged_models(
                experiment_ids=[experiment.experiment_id],
                filter_string=f"source_run_id = '{run.info.run_id}'",
                output_format="list",
            )
            if logged:
                break
        else:
            raise RegistryError(
                f"none of the {len(runs)} best runs by '{self.metric}' of experiment "
                f"'{experiment.name}' logged a model (the best: {runs[0].info.run_id})"
            )
        logger.info(
            "best run %s: %s=%s", run.info.run_id, self.metric, run.data.metrics[self.metric]
        )
        # Name the registered version when the run's model was registered, for people and tags.
        versions = client.search_model_versions(f"run_id = '{run.info.run_id}'")
        if versions:
            version = versions[0]
            return ModelRef(
                uri=uri_for(version.name, int(version.version)),
                name=version.name,
                version=int(version.version),
                run_id=run.info.run_id,
            )
        return ModelRef(uri=logged[0].model_uri, run_id=run.info.run_id)


class UriFinder(Finder, frozen=True):
    """A model at a plain MLflow URI (models:/, runs:/, a path).

    Args:
        uri: the model's URI.
    """

    KIND: T.Literal["UriFinder"] = "UriFinder"
    uri: str

    def find(self, client: MlflowClient) -> ModelRef:
        """Return the URI as it is (with its run, for a runs:/ URI)."""
        parts = self.uri.split("/")
        run_id = parts[1] if self.uri.startswith("runs:/") and len(parts) > 2 else None
        return ModelRef(uri=self.uri, run_id=run_id or None)


class FolderFinder(Finder, frozen=True):
    """A model saved in a local folder, as `mlflow.<flavor>.save_model` writes one.

    Args:
        path: the folder that holds the model's `MLmodel` file.
    """

    KIND: T.Literal["FolderFinder"] = "FolderFinder"
    path: str

    def find(self, client: MlflowClient) -> ModelRef:
        """Check the folder holds an MLflow model and return its absolute path."""
        folder = pathlib.Path(self.path).expanduser().absolute()
        if not folder.is_dir():
            raise RegistryError(f"no model folder {folder}: it does not exist or is a file")
        if not (folder / MLMODEL).is_file():
            inside = sorted(p.parent.name for p in folder.glob(f"*/{MLMODEL}"))[:5]
            hint = f"; models in its sub-folders: {', '.join(inside)}" if inside else ""
            raise RegistryError(
                f"{folder} holds no {MLMODEL} file, so it is not an MLflow model folder "
                f"(what mlflow.<flavor>.save_model writes){hint}"
            )
        return ModelRef(uri=str(folder))


FINDERS = factories.Factory(
    "finder", Finder, (RegistryFinder, BestRunFinder, UriFinder, FolderFinder)
)
FINDER_KINDS = FINDERS.names
# A job's finder field: a Finder, or a config with a KIND built by the factory (a user's class
# by import path included).
FinderKind = T.Annotated[pdt.SerializeAsAny[Finder], pdt.BeforeValidator(FINDERS.coerce)]


def build_finder(config: T.Mapping[str, T.Any]) -> Finder:
    """Build a finder from a config with a KIND (or `{type, config}`); one clear ValueError.

    Args:
        config: e.g. {"KIND": "BestRunFinder", "metric": "test_r2", "mode": "max"}.
    """
    return FINDERS.build(config)


def finder_config(
    finder: T.Mapping[str, T.Any] | None, model_name: str, alias_or_version: str | int
) -> dict[str, T.Any]:
    """The finder a step uses, as a config with a KIND.

    A config with a KIND is used as it is (e.g. `{"KIND": "BestRunFinder", "metric":
    "test_r2", "mode": "max"}`); without one, it refines the registered model's alias or version
    named by the step's `model_name` and `alias_or_version`.

    Args:
        finder: the user's finder config, if any.
        model_name: the registered model name.
        alias_or_version: an alias or a version number.
    """
    finder = dict(finder or {})
    if "KIND" in finder:
        return finder
    defaults = {"KIND": "RegistryFinder", "name": model_name, "alias_or_version": alias_or_version}
    return {**defaults, **finder}


def challenger_config(challenger: str, model_name: str) -> dict[str, T.Any] | None:
    """The finder of a challenger model, from a step's `challenger` parameter.

    Args:
        challenger: an alias or version of `model_name` ("Challenger", "4"), or a model URI
            (models:/..., runs:/...); "" for none.
        model_name: the registered model name of the Champion.

    Raises:
        ValueError: an alias or version is given without a model name.
    """
    challenger = challenger.strip()
    if not challenger:
        return None
    if ":/" in challenger:
        return {"KIND": "UriFinder", "uri": challenger}
    if not model_name:
        raise ValueError(
            f"challenger '{challenger}' is an alias or version of model_name, which is empty: "
            "set model_name, or give the challenger as a models:/ or runs:/ URI"
        )
    return {"KIND": "RegistryFinder", "name": model_name, "alias_or_version": challenger}


def pinned_finder(model_ref: ModelRef) -> dict[str, T.Any]:
    """The finder config that finds this very model again: its version, or its URI.

    Steps that must all use one model (the shards of a prediction) get this instead of an
    alias, which another run may move while they run.

    Args:
        model_ref: the model found once.
    """
    if model_ref.name and model_ref.version:
        return {
            "KIND": "RegistryFinder",
            "name": model_ref.name,
            "alias_or_version": model_ref.version,
        }
    return {"KIND": "UriFinder", "uri": model_ref.uri}


# %% LOADERS


class Predictor(abc.ABC):
    """A loaded model ready to predict, with the signature that its inputs must match."""

    signature: ModelSignature | None

    @abc.abstractmethod
    def predict(self, inputs: pd.DataFrame) -> pd.DataFrame:
        """Predict for a batch: a `prediction` column (plus class probabilities when known)."""


class PyfuncPredictor(Predictor):
    """Predict through MLflow's generic pyfunc flavour, which enforces the signature."""

    def __init__(self, model: mlflow.pyfunc.PyFuncModel):
        self.model = model
        self.signature = model.metadata.signature

    def predict(self, inputs: pd.DataFrame) -> pd.DataFrame:
        """Predict through pyfunc: the model's own output, as a `prediction` column if bare."""
        outputs = self.model.predict(schemas.conform(inputs, self.signature))
        if isinstance(outputs, pd.DataFrame):
            return outputs.reset_index(drop=True)
        return pd.DataFrame({models.PREDICTION: pd.Series(outputs).to_numpy()})


class SklearnPredictor(Predictor):
    """Predict with the native sklearn model: class probabilities and explanations available."""

    def __init__(self, model: T.Any, signature: ModelSignature | None):
        self.model, self.signature = model, signature

    def predict(self, inputs: pd.DataFrame) -> pd.DataFrame:
        """Predict natively: `prediction`, plus one probability column per class."""
        return models.predict_frame(self.model, schemas.conform(inputs, self.signature))


class Loader(abc.ABC, pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """Load a model from an MLflow URI as a Predictor."""

    KIND: str

    @abc.abstractmethod
    def load(self, uri: str) -> Predictor:
        """Load the model at the URI."""


class PyfuncLoader(Loader, frozen=True):
    """Load any MLflow model through the generic pyfunc flavour (signature enforced)."""

    KIND: T.Literal["PyfuncLoader"] = "PyfuncLoader"

    def load(self, uri: str) -> Predictor:
        """Load the pyfunc flavour."""
        return PyfuncPredictor(mlflow.pyfunc.load_model(uri))


class SklearnLoader(Loader, frozen=True):
    """Load the native sklearn flavour: needed for `predict_proba` and explanations."""

    KIND: T.Literal["SklearnLoader"] = "SklearnLoader"

    def load(self, uri: str) -> Predictor:
        """Load the sklearn flavour, with the signature recorded beside it."""
        info = mlflow.models.get_model_info(uri)
        if mlflow.sklearn.FLAVOR_NAME not in info.flavors:
            raise RegistryError(
                f"{uri} has no sklearn flavour (flavours: {', '.join(sorted(info.flavors))}); "
                "explanations need a scikit-learn model"
            )
        return SklearnPredictor(mlflow.sklearn.load_model(uri), info.signature)


class FlavorLoader(Loader, frozen=True):
    """Load the richest flavour a model has.

    Native sklearn when the model was logged with it (prediction plus one probability column per
    class), the generic pyfunc flavour otherwise (any MLflow model).
    """

    KIND: T.Literal["FlavorLoader"] = "FlavorLoader"

    def load(self, uri: str) -> Predictor:
        """Load the sklearn flavour when present, else pyfunc."""
        flavors = mlflow.models.get_model_info(uri).flavors
        native = mlflow.sklearn.FLAVOR_NAME in flavors
        return (SklearnLoader() if native else PyfuncLoader()).load(uri)


LOADERS = factories.Factory("loader", Loader, (FlavorLoader, PyfuncLoader, SklearnLoader))
LoaderKind = T.Annotated[pdt.SerializeAsAny[Loader], pdt.BeforeValidator(LOADERS.coerce)]


def check_signature(ref: ModelRef, predictor: Predictor, allow_unsigned: bool) -> list[str]:
    """Refuse a model without an input signature unless the user opted in.

    Without a signature nothing checks the inputs' columns and types: wrong data would be
    predicted silently. With `allow_unsigned` the job goes on and says so.

    Returns:
        The warnings to pass on to the log and the alert ([] for a signed model).

    Raises:
        UnsignedModelError: the model has no input signature and the user did not opt in.
    """
    signature = predictor.signature
    if signature is not None and signature.inputs is not None:
        return []
    if not allow_unsigned:
        raise UnsignedModelError(
            f"{ref.describe()} has no input signature, so its inputs cannot be checked; "
            "register it with a signature (mlflow.models.infer_signature), or set "
            "allow_unsigned=true to predict without input validation"
        )
    warning = f"{ref.describe()} has no input signature: its inputs were not validated"
    logger.warning(warning)
    return [warning]


# %% SAVERS


class UntrustedTypesError(TypeError):
    """The model holds types that its model kind does not declare, so skops would refuse them."""


class Saver(abc.ABC, pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """Log a fitted model to MLflow and register it as a new version.

    The registry (`SAVERS`) chooses the saver of a model kind when none is named: the first
    whose `chosen_for(kind)` says so (by the MLflow flavour the kind is saved with).
    """

    KIND: str

    @classmethod
    def chosen_for(cls, kind: models.Model) -> bool:
        """Whether this saver is the one for a model kind when none is named.

        Args:
            kind: the model kind (its class declares its flavour).

        Returns:
            False unless a saver says otherwise: such a saver is used when named only.
        """
        return False

    @abc.abstractmethod
    def save(
        self,
        model: T.Any,
        name: str,
        signature: ModelSignature,
        input_example: pd.DataFrame,
        tags: T.Mapping[str, str] | None = None,
        kind: models.Model | None = None,
    ) -> ModelRef:
        """Log and register the model; return the new version's reference.

        Args:
            model: the fitted model.
            name: the registered model name.
            signature: its inputs and outputs.
            input_example: a few input rows, stored with the model.
            tags: tags of the new version, set as it is created (never missing on it).
            kind: the model kind the model was built from, which declares what saving it
                needs (e.g. the types skops may trust); None for a model built elsewhere.
        """


class SklearnSaver(Saver, frozen=True):
    """Log with the sklearn flavour in skops format (never pickle), and register it.

    skops refuses to load a type it does not trust; the saver trusts only the types that the
    model kind declares (`Model.TRUSTED_TYPES`; those of every project kind, `TRUSTED_TYPES`,
    for a model given without its kind) and the ones listed here, and refuses any other before
    anything is logged.

    Args:
        trusted_types: more types skops may load beyond its defaults (reviewed by hand).
    """

    KIND: T.Literal["SklearnSaver"] = "SklearnSaver"
    trusted_types: tuple[str, ...] = ()

    @classmethod
    def chosen_for(cls, kind: models.Model) -> bool:
        """The model kinds saved with the sklearn flavour."""
        return bool(kind.FLAVOR == mlflow.sklearn.FLAVOR_NAME)

    def trusts(self, kind: models.Model | None) -> tuple[str, ...]:
        """The types this saver lets skops load for a model of this kind.

        Args:
            kind: the model kind, or None for a model built elsewhere.
        """
        declared = TRUSTED_TYPES if kind is None else kind.skops_trusted()
        return tuple(dict.fromkeys([*declared, *self.trusted_types]))

    def save(self, model, name, signature, input_example, tags=None, kind=None) -> ModelRef:
        """Check the model's types, then log it in skops format and register a version."""
        import skops.io  # only a saving step pays for it (a second at start-up)

        untrusted = set(skops.io.get_untrusted_types(data=skops.io.dumps(model)))
        unknown = sorted(untrusted - set(self.trusts(kind)))
        if unknown:
            owner = f"model kind {kind.KIND}" if kind is not None else "the saver"
            how = (
                kind.how_to_trust()
                if kind is not None
                else "review them and declare them in the model kind's TRUSTED_TYPES (or the "
                "saver's trusted_types)"
            )
            raise UntrustedTypesError(
                f"model '{name}' holds types that skops does not trust: {unknown}; {owner} "
                f"trusts {sorted(self.trusts(kind)) or 'none'}: {how}"
            )
        info = mlflow.sklearn.log_model(
            sk_model=model,
            name=ARTIFACT_PATH,
            signature=signature,
            input_example=input_example,
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
            skops_trusted_types=sorted(untrusted),
            # Stated, not inferred: inference reloads the model in a subprocess (seconds).
            pip_requirements=requirements_for(untrusted),
        )
        # Registered with its tags in one call: a version is never seen without them.
        version = mlflow.register_model(info.model_uri, name, tags=dict(tags or {}))
        return ModelRef(
            uri=uri_for(name, version.version),
            name=name,
            version=int(version.version),
            run_id=info.run_id,
        )


def requirements_for(types: T.Iterable[str]) -> list[str]:
    """The pip requirements of a model saved with the sklearn flavour and holding these types.

    sklearn's and skops' own, plus each installed distribution whose package a type comes from
    (`xgboost.core.Booster` pins the installed `xgboost-cpu` or `xgboost`, `lightgbm...` pins
    `lightgbm`), at the installed version, so that a serving environment can load the model.
    The standard library, numpy and this project's own package add nothing.

    Args:
        types: the types of the fitted model beyond those skops trusts by default.
    """
    import importlib.metadata as metadata

    requirements = list(mlflow.sklearn.get_default_pip_requirements(include_skops=True))
    listed = {requirement.split("=")[0].lower() for requirement in requirements}
    distributions = metadata.packages_distributions()
    own = set(distributions.get(__name__.split(".")[0], []))
    for package in sorted({name.split(".")[0] for name in types} - {"numpy", "sklearn"}):
        for distribution in distributions.get(package, []):
            if distribution in own or distribution.lower() in listed:
                continue
            requirements.append(f"{distribution}=={metadata.version(distribution)}")
            listed.add(distribution.lower())
    return requirements


# The registry of savers; a model kind's is the one chosen for its flavour (`SAVERS.choose`).
SAVERS = factories.Factory("saver", Saver, (SklearnSaver,))
# A job's saver field: a Saver, or a config with a KIND built by the registry (a user's class by
# import path included).
SaverKind = T.Annotated[pdt.SerializeAsAny[Saver], pdt.BeforeValidator(SAVERS.coerce)]


def saver_for(kind: models.Model) -> Saver:
    """The saver registered for a model kind's flavour.

    Args:
        kind: the model kind.

    Raises:
        factories.FactoryError: no saver is registered for the kind's flavour; the message
            lists the savers.
    """
    try:
        return SAVERS.choose(kind)()
    except factories.FactoryError:
        raise factories.FactoryError(
            f"no saver is chosen for the {kind.FLAVOR!r} flavour of model kind {kind.KIND}; "
            f"name one: {SAVERS.allowed()}"
        ) from None
