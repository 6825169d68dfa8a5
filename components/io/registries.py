"""Registries: find, load and save models in the MLflow model registry."""

from __future__ import annotations

import abc
import json
import logging
import pathlib
import re
import typing as T

import mlflow
import numpy as np
import pandas as pd
import pydantic as pdt
from mlflow.exceptions import MlflowException
from mlflow.models.signature import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types import DataType
from sklearn.base import is_classifier

from components.core import categories, lineage, models, schemas
from components.core.model_refs import ModelRef
from components.io import flavors
from components.utils import devices, factories

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
# Why evaluation refused the version ("" when it passed).
REASONS_TAG = "evaluation.reasons"
METRIC_TAG = "evaluation.{}"
CHAMPION_TAG = "evaluation.champion_version"
CHAMPION_METRIC_TAG = "evaluation.champion.{}"
NO_CHAMPION = "none"
# Tags put on a version when it is registered by a pipeline step: the KFP run and task that
# registered it, so that a retry of the same task finds it instead of registering another.
TASK_TAGS = (lineage.KFP_RUN_TAG, lineage.KFP_TASK_TAG)


def registrable(name: str) -> str:
    """A registered model's name, refused before any step when MLflow would refuse it.

    Raises:
        ValueError: the name holds `/` or `:`, which MLflow's registry refuses.
    """
    refused = [character for character in "/:" if character in name]
    if refused:
        raise ValueError(
            f"{name!r} cannot name a registered model: MLflow refuses "
            f"{' and '.join(map(repr, refused))} in one (use '-' or '_')"
        )
    return name


# A registered model's name, as the jobs take it: checked where their settings are.
ModelName = T.Annotated[str, pdt.StringConstraints(min_length=1), pdt.AfterValidator(registrable)]


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
        return registrable(name)

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
        # A missing alias after refused candidates (a first version that failed): say why.
        refused = [
            f"v{v.version} failed its evaluation ({v.tags.get(REASONS_TAG) or 'no reason kept'})"
            for v in versions
            if kind == "alias" and v.tags.get(PASSED_TAG) == "false"
        ]
        why = (
            f"; {'; '.join(refused)}: train a version that passes (or review the thresholds), "
            "then run again"
            if refused
            else ""
        )
        return (
            f"model '{self.name}' has no {kind} '{self.alias_or_version}' ({wanted}); "
            f"aliases: {aliases}; latest versions: {latest}{why}"
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
        run, logged = best_logged_run(client, experiment, self.metric, self.mode)
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


def best_logged_run(
    client: MlflowClient,
    experiment: T.Any,
    metric: str,
    mode: T.Literal["min", "max"],
    among: T.Sequence[str] | None = None,
) -> tuple[T.Any, list[T.Any]]:
    """The best run of an experiment by a metric that logged a model, and its logged models.

    How runs are ranked wherever the best is wanted (`BestRunFinder`, a tuning's selection):
    by the metric in its direction, only runs that logged it and a model being candidates.

    Args:
        client: the tracking client.
        experiment: the experiment (an MLflow Experiment) whose runs are ranked.
        metric: the metric to rank by, as the runs log it (`test_rmse`).
        mode: "min" when lower is better, "max" when higher is better.
        among: rank only these runs (by id); None: every run of the experiment.

    Raises:
        RegistryError: no run has the metric, or none of the best logged a model.
    """
    order = "ASC" if mode == "min" else "DESC"
    # The evaluation of a version logs the same figure under the same name as its training;
    # only a run that logged a model is a candidate: the best few are looked at in order.
    filters = [f"metrics.`{metric}` > -1e308"]
    if among is not None:
        if not among:
            raise RegistryError(f"no run to rank by '{metric}': none was given")
        filters.append("attributes.run_id IN ({})".format(", ".join(f"'{r}'" for r in among)))
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=" and ".join(filters),
        order_by=[f"metrics.`{metric}` {order}"],
        max_results=CANDIDATE_RUNS if among is None else max(len(among), 1),
    )
    if not runs:
        searched = client.search_runs([experiment.experiment_id], max_results=20)
        logged = sorted({m for r in searched for m in r.data.metrics})
        scope = f"{len(among)} runs given" if among is not None else "run"
        raise RegistryError(
            f"no {scope} of experiment '{experiment.name}' has the metric '{metric}'; "
            f"metrics logged there: {', '.join(logged) or 'none'}"
        )
    for run in runs:
        models_logged = mlflow.search_logged_models(
            experiment_ids=[experiment.experiment_id],
            filter_string=f"source_run_id = '{run.info.run_id}'",
            output_format="list",
        )
        if models_logged:
            return run, list(models_logged)
    raise RegistryError(
        f"none of the {len(runs)} best runs by '{metric}' of experiment "
        f"'{experiment.name}' logged a model (the best: {runs[0].info.run_id})"
    )


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
    """A loaded model ready to predict, with the signature that its inputs must match.

    Attributes:
        signature: the model's signature, None when it was logged without one.
        model: the model object that predicts (a native model, or the pyfunc model).
        flavor: the MLflow flavour it was loaded from.
    """

    signature: ModelSignature | None
    model: T.Any
    flavor: str

    @property
    @abc.abstractmethod
    def task(self) -> models.Task:
        """Whether the model classifies or regresses (evaluation picks its metrics by it)."""

    @abc.abstractmethod
    def predict(self, inputs: pd.DataFrame) -> pd.DataFrame:
        """Predict for a batch: a `prediction` column (plus class probabilities when known)."""


class PyfuncPredictor(Predictor):
    """Predict through MLflow's generic pyfunc flavour, which enforces the signature.

    Its task is read from the signature's outputs: text or boolean predictions classify, as do
    outputs with probability columns (`probability_<class>`, integer classes included);
    anything else regresses. Its classes are known only as it predicts, so a label mapping is
    applied to each batch.
    """

    flavor = mlflow.pyfunc.FLAVOR_NAME

    def __init__(
        self, model: mlflow.pyfunc.PyFuncModel, labels: T.Mapping[str, T.Any] | None = None
    ):
        self.model, self.labels = model, labels
        self.signature = model.metadata.signature

    @property
    def task(self) -> models.Task:
        """Classification for text, boolean or probability outputs, or mapped labels.

        Probability outputs: columns named `probability_<class>` beside integer classes.
        """
        if self.labels is not None:
            return "classification"
        outputs = self.signature.outputs if self.signature is not None else None
        specs = outputs.inputs if outputs else []
        types = {getattr(spec, "type", None) for spec in specs}
        names = [str(getattr(spec, "name", None) or "") for spec in specs]
        if any(name.startswith(models.PROBABILITY_PREFIX) for name in names):
            return "classification"  # integer classes beside their probabilities
        return "classification" if types & {DataType.string, DataType.boolean} else "regression"

    def predict(self, inputs: pd.DataFrame) -> pd.DataFrame:
        """Predict through pyfunc: the model's own output, as a `prediction` column if bare."""
        outputs = self.model.predict(schemas.conform(inputs, self.signature))
        if isinstance(outputs, pd.DataFrame):
            frame = outputs.reset_index(drop=True)
        else:
            if isinstance(outputs, np.ndarray) and outputs.ndim == 2 and outputs.shape[1] == 1:
                outputs = outputs[:, 0]  # one column of predictions (CatBoost's classifier's)
            frame = pd.DataFrame({models.PREDICTION: pd.Series(outputs).to_numpy()})
        return flavors.relabel(frame, self.labels)


class SklearnPredictor(Predictor):
    """Predict with the native sklearn model: class probabilities and explanations available.

    A bare XGBoost or LightGBM estimator logged with the sklearn flavour gets its categorical
    columns as the categories it learnt (a Pipeline's encoder takes them as text).
    """

    flavor = mlflow.sklearn.FLAVOR_NAME

    def __init__(
        self,
        model: T.Any,
        signature: ModelSignature | None,
        labels: T.Mapping[str, T.Any] | None = None,
    ):
        self.model, self.signature = model, signature
        self.categories = categories.categories_of(model)
        self.probabilities = is_classifier(model) and hasattr(model, "predict_proba")
        self.labels = labels
        self.classes = (
            flavors.mapped_classes(model.classes_, labels) if self.probabilities else None
        )

    @property
    def task(self) -> models.Task:
        """What the estimator says it is (scikit-learn's `is_classifier`)."""
        return models.task_of(self.model)

    def predict(self, inputs: pd.DataFrame) -> pd.DataFrame:
        """Predict natively: `prediction`, plus one probability column per class."""
        frame = categories.as_categories(schemas.conform(inputs, self.signature), self.categories)
        if self.classes is None:
            return flavors.relabel(models.predict_frame(self.model, frame), self.labels)
        if self.labels is None:
            return models.predict_frame(self.model, frame)
        return flavors.class_frame(self.model.predict_proba(frame), self.classes)


# XGBoost objectives whose predicted values are already the class probabilities.
XGBOOST_PROBABILITIES = ("binary:logistic", "multi:softprob")


class XGBoostPredictor(Predictor):
    """Predict with the model's XGBoost booster (`inplace_predict`), on the GPU when visible.

    The task and the classes come from the booster's objective (`binary:*`, `multi:*`
    classify) and from the sklearn wrapper's `classes_` when there is one (class indices
    0..n-1, since XGBoost trains on label-encoded classes: map them with a label mapping).
    Classifiers give one probability column per class: the predicted probabilities, or the
    margins through the logistic (binary) or softmax (multi-class) function for objectives
    that predict otherwise (`binary:logitraw`, `multi:softmax`); `binary:hinge` gives none.
    """

    flavor = "xgboost"

    def __init__(
        self,
        model: T.Any,
        signature: ModelSignature | None,
        labels: T.Mapping[str, T.Any] | None = None,
    ):
        self.model, self.signature = model, signature
        self.booster = model.get_booster() if hasattr(model, "get_booster") else model
        self.device = devices.xgboost_device()
        self.booster.set_param({"device": self.device})
        reason = devices.why_cpu()
        logger.info("XGBoost predicts on %s%s", self.device, f" ({reason})" if reason else "")
        config = json.loads(self.booster.save_config())["learner"]
        self.objective = str(config["objective"]["name"])
        self.categories = categories.xgboost_categories(self.booster)
        self.features = list(self.booster.feature_names or [])
        best = self.booster.attr("best_iteration")
        self.iterations = (0, int(best) + 1) if best is not None else (0, 0)
        self.labels = labels
        self.classes: np.ndarray | None = None
        if self.task == "classification":
            count = int(config["learner_model_param"].get("num_class", "0")) or 2
            classes = getattr(model, "classes_", None)
            classes = np.arange(count) if classes is None else np.asarray(classes)
            self.classes = flavors.mapped_classes(classes, labels)

    @property
    def task(self) -> models.Task:
        """Classification for the `binary:` and `multi:` objectives, regression otherwise."""
        return (
            "classification" if self.objective.startswith(("binary:", "multi:")) else "regression"
        )

    def predict(self, inputs: pd.DataFrame) -> pd.DataFrame:
        """Predict with `inplace_predict` (no DMatrix copy), in the booster's feature order."""
        frame = categories.as_categories(schemas.conform(inputs, self.signature), self.categories)
        if self.features and list(frame.columns) != self.features:
            frame = frame[self.features]
        if self.classes is None:
            values = self.booster.inplace_predict(frame, iteration_range=self.iterations)
            return pd.DataFrame(
                {models.PREDICTION: np.asarray(values).reshape(len(frame), -1)[:, 0]}
            )
        if self.objective == "binary:hinge":
            values = self.booster.inplace_predict(frame, iteration_range=self.iterations)
            return pd.DataFrame({models.PREDICTION: self.classes[np.asarray(values, dtype=int)]})
        kind = "value" if self.objective in XGBOOST_PROBABILITIES else "margin"
        values = np.asarray(
            self.booster.inplace_predict(frame, iteration_range=self.iterations, predict_type=kind)
        )
        return flavors.class_frame(_probabilities(values, kind), self.classes)


def _probabilities(values: np.ndarray, kind: str) -> np.ndarray:
    """Class probabilities (rows x classes) from predicted probabilities or margins."""
    if values.ndim == 1:  # binary: the positive class alone
        positive = values if kind == "value" else 1.0 / (1.0 + np.exp(-values))
        return np.column_stack([1.0 - positive, positive])
    if kind == "value":
        return values
    shifted = np.exp(values - values.max(axis=1, keepdims=True))
    softmax: np.ndarray = shifted / shifted.sum(axis=1, keepdims=True)
    return softmax


# LightGBM objectives that classify; their predictions are the class probabilities.
LIGHTGBM_CLASSIFIERS = ("binary", "multiclass", "multiclassova")


class LightGBMPredictor(Predictor):
    """Predict with the model's LightGBM booster.

    The classes are the sklearn wrapper's (`LGBMClassifier` keeps the labels it was trained
    on), or 0..n-1 for a bare Booster (map them with a label mapping).
    """

    flavor = "lightgbm"

    def __init__(
        self,
        model: T.Any,
        signature: ModelSignature | None,
        labels: T.Mapping[str, T.Any] | None = None,
    ):
        self.model, self.signature = model, signature
        self.booster = getattr(model, "booster_", model)
        self.categories = categories.lightgbm_categories(self.booster)
        self.features = list(self.booster.feature_name())
        header = self.booster.model_to_string(num_iteration=1)
        found = re.search(r"^objective=(\S+)", header, flags=re.M)
        self.objective = found.group(1) if found else "regression"
        self.labels = labels
        self.classes: np.ndarray | None = None
        if self.task == "classification":
            classes = getattr(model, "classes_", None)
            count = self.booster.num_model_per_iteration() if classes is None else 0
            classes = np.arange(max(count, 2)) if classes is None else np.asarray(classes)
            self.classes = flavors.mapped_classes(classes, labels)

    @property
    def task(self) -> models.Task:
        """Classification for the binary and multi-class objectives, regression otherwise."""
        return "classification" if self.objective in LIGHTGBM_CLASSIFIERS else "regression"

    def predict(self, inputs: pd.DataFrame) -> pd.DataFrame:
        """Predict with the booster, in its feature order."""
        frame = categories.as_categories(schemas.conform(inputs, self.signature), self.categories)
        frame = categories.in_booster_order(frame, self.features)
        values = np.asarray(self.booster.predict(frame))
        if self.classes is None:
            return pd.DataFrame({models.PREDICTION: values})
        return flavors.class_frame(_probabilities(values, "value"), self.classes)


class CatBoostPredictor(Predictor):
    """Predict with a CatBoost model (`CatBoostClassifier`, `CatBoostRegressor` or `CatBoost`).

    Its categorical columns are the ones it was trained with (missing values in them become
    `catboosts.MISSING`, since CatBoost takes none); the classes are the classifier's own
    labels (`classes_`), mapped with a label mapping when one is given.
    """

    flavor = "catboost"

    def __init__(
        self,
        model: T.Any,
        signature: ModelSignature | None,
        labels: T.Mapping[str, T.Any] | None = None,
    ):
        from components.core import catboosts

        self.model, self.signature, self.labels = model, signature, labels
        self.features = list(model.feature_names_ or [])
        self.classifies = catboosts.is_classifier(model)
        self.classes: np.ndarray | None = None
        if self.classifies:
            self.classes = flavors.mapped_classes(np.asarray(model.classes_), labels)

    @property
    def task(self) -> models.Task:
        """Classification for a classifier or a classification loss, regression otherwise."""
        return "classification" if self.classifies else "regression"

    def predict(self, inputs: pd.DataFrame) -> pd.DataFrame:
        """Predict in the model's feature order: labels and probabilities, or values."""
        from components.core import catboosts

        frame = schemas.conform(inputs, self.signature)
        if self.features and set(self.features) <= set(frame.columns):
            frame = frame[self.features]
        rows = catboosts.pool(self.model, frame.reset_index(drop=True))
        if self.classes is None:
            values = np.asarray(self.model.predict(rows), dtype=float).reshape(len(frame), -1)
            return pd.DataFrame({models.PREDICTION: values[:, 0]})
        probabilities = np.asarray(self.model.predict(rows, prediction_type="Probability"))
        return flavors.class_frame(probabilities.reshape(len(frame), -1), self.classes)


class Loader(abc.ABC, pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """Load a model from an MLflow URI as a Predictor.

    The registry (`LOADERS`) chooses the loader of a model when none is named: the first whose
    `chosen_for(flavors)` says so (each native loader serves one MLflow flavour, richest first),
    else pyfunc.

    Args:
        label_mapping: the labels of a classifier trained on label-encoded classes, a list in
            class order (["Adelie", "Chinstrap", "Gentoo"]) or an object {"0": "Adelie", ...};
            None: the model version's `label_mapping` tag (JSON) when it has one; an empty
            list or object: none, whatever the tag says.
    """

    KIND: str
    FLAVOR: T.ClassVar[str | None] = None
    label_mapping: flavors.LabelMapping | None = None

    @classmethod
    def chosen_for(cls, model_flavors: T.Collection[str]) -> bool:
        """Whether this loader is the one for a model with these flavours when none is named."""
        return cls.FLAVOR is not None and cls.FLAVOR in model_flavors

    def labels(self, uri: str) -> dict[str, T.Any] | None:
        """The label mapping to apply: the setting, else the version's tag, else None."""
        if self.label_mapping is not None:
            return flavors.label_mapping(self.label_mapping)
        return flavors.label_mapping(flavors.version_tags(uri).get(flavors.LABEL_MAPPING_TAG))

    @abc.abstractmethod
    def load(self, uri: str) -> Predictor:
        """Load the model at the URI."""


class PyfuncLoader(Loader, frozen=True):
    """Load any MLflow model through the generic pyfunc flavour (signature enforced)."""

    KIND: T.Literal["PyfuncLoader"] = "PyfuncLoader"

    def load(self, uri: str) -> Predictor:
        """Load the pyfunc flavour."""
        return PyfuncPredictor(mlflow.pyfunc.load_model(uri), self.labels(uri))


class NativeLoader(Loader, frozen=True):
    """Load a model in its framework's own flavour (`FLAVOR`) as the predictor made for it."""

    KIND: str
    PREDICTOR: T.ClassVar[type[Predictor]]

    def load(self, uri: str) -> Predictor:
        """Load the flavour, with the signature recorded beside it."""
        flavor = T.cast(str, self.FLAVOR)
        native = flavors.load_native(uri, flavor)
        if native is None:
            model_flavors = mlflow.models.get_model_info(uri).flavors
            raise RegistryError(
                f"{uri} has no {flavor} flavour (flavours: {', '.join(sorted(model_flavors))}); "
                f"{self.KIND} loads {flavor} models: use FlavorLoader for any model"
            )
        return self.PREDICTOR(native.model, native.signature, self.labels(uri))  # type: ignore[call-arg]


class SklearnLoader(NativeLoader, frozen=True):
    """Load the native sklearn flavour: needed for `predict_proba` and explanations."""

    KIND: T.Literal["SklearnLoader"] = "SklearnLoader"
    FLAVOR: T.ClassVar[str | None] = "sklearn"
    PREDICTOR: T.ClassVar[type[Predictor]] = SklearnPredictor


class XGBoostLoader(NativeLoader, frozen=True):
    """Load the native xgboost flavour (an `XGBModel` or a raw `Booster`)."""

    KIND: T.Literal["XGBoostLoader"] = "XGBoostLoader"
    FLAVOR: T.ClassVar[str | None] = "xgboost"
    PREDICTOR: T.ClassVar[type[Predictor]] = XGBoostPredictor


class LightGBMLoader(NativeLoader, frozen=True):
    """Load the native lightgbm flavour (an `LGBMModel` or a raw `Booster`)."""

    KIND: T.Literal["LightGBMLoader"] = "LightGBMLoader"
    FLAVOR: T.ClassVar[str | None] = "lightgbm"
    PREDICTOR: T.ClassVar[type[Predictor]] = LightGBMPredictor


class CatBoostLoader(NativeLoader, frozen=True):
    """Load the native catboost flavour (where catboost is installed)."""

    KIND: T.Literal["CatBoostLoader"] = "CatBoostLoader"
    FLAVOR: T.ClassVar[str | None] = "catboost"
    PREDICTOR: T.ClassVar[type[Predictor]] = CatBoostPredictor


class FlavorLoader(Loader, frozen=True):
    """Load the richest flavour a model has, as the registry chooses it.

    The first native loader of `LOADERS` whose flavour the model has (sklearn, then xgboost,
    lightgbm, catboost: a prediction plus one probability column per class), the generic pyfunc
    flavour otherwise (any MLflow model).
    """

    KIND: T.Literal["FlavorLoader"] = "FlavorLoader"

    def load(self, uri: str) -> Predictor:
        """Load with the loader chosen for the model's flavours."""
        model_flavors = mlflow.models.get_model_info(uri).flavors
        kind = LOADERS.choose(model_flavors)
        return kind.model_validate({"label_mapping": self.label_mapping}).load(uri)


# The registry of loaders, native ones richest first (the order `FlavorLoader` chooses in).
LOADERS = factories.Factory(
    "loader",
    Loader,
    (FlavorLoader, SklearnLoader, XGBoostLoader, LightGBMLoader, CatBoostLoader, PyfuncLoader),
    fallback=PyfuncLoader,
)
LoaderKind = T.Annotated[pdt.SerializeAsAny[Loader], pdt.BeforeValidator(LOADERS.coerce)]


def loader_config(loader: T.Mapping[str, T.Any] | None) -> dict[str, T.Any]:
    """The loader a step uses, as a config with a KIND.

    A config with a KIND (or `{type, config}`) is used as it is (e.g. `{"KIND":
    "XGBoostLoader", "label_mapping": ["a", "b"]}`); without one, its options are
    `FlavorLoader`'s, the default (`{"label_mapping": ["a", "b"]}`; `{}`: the default as it is).

    Args:
        loader: the user's loader config, if any.
    """
    loader = dict(loader or {})
    if "KIND" in loader or "type" in loader:
        return loader
    return {"KIND": factories.kind_of(FlavorLoader), **loader}


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

    def log(
        self,
        model: T.Any,
        name: str,
        signature: ModelSignature,
        input_example: pd.DataFrame,
        kind: models.Model | None = None,
    ) -> ModelRef:
        """Log the model on the active run without registering it (a tuning's trial).

        Args: as `save`'s, less the tags (only a registered version has them).

        Returns:
            the logged model: its URI and run, no version.

        Raises:
            NotImplementedError: the saver can only save (log and register at once).
        """
        raise NotImplementedError(
            f"saver {self.KIND} cannot log a model without registering it; tuning trials need "
            "a saver with a `log` method (SklearnSaver has one)"
        )

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

    def log(
        self,
        model: T.Any,
        name: str,
        signature: ModelSignature,
        input_example: pd.DataFrame,
        kind: models.Model | None = None,
    ) -> ModelRef:
        """Check the model's types, then log it in skops format on the active run."""
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
        return ModelRef(uri=info.model_uri, run_id=info.run_id)

    def save(self, model, name, signature, input_example, tags=None, kind=None) -> ModelRef:
        """Log the model (`log`), then register the logged model as a new version."""
        logged = self.log(model, name, signature, input_example, kind=kind)
        return register_logged(logged, name, tags)


def register_logged(
    logged: ModelRef, name: str, tags: T.Mapping[str, str] | None = None
) -> ModelRef:
    """Register a model logged on a run as a new version of a registered model.

    How every version is registered: by a training step right after logging its model, or by a
    tuning's selection from the model its best trial logged (signature and example with it).

    Args:
        logged: the logged model (its URI and the run that logged it).
        name: the registered model name.
        tags: tags of the new version, set as it is created (never missing on it).
    """
    # Registered with its tags in one call: a version is never seen without them.
    version = mlflow.register_model(logged.uri, name, tags=dict(tags or {}))
    return ModelRef(
        uri=uri_for(name, version.version),
        name=name,
        version=int(version.version),
        run_id=logged.run_id,
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
