"""Factories build the project's kinds and a user's own classes from `{type, config}` or a KIND."""

from __future__ import annotations

import pydantic as pdt
import pytest

from components.io import registries
from components.jobs import base
from components.jobs.inference import InferenceJob
from components.utils import factories
from pipelines.jobs import backends
from tests.pipelines import user_kinds

USER = "tests.pipelines.user_kinds"


def test_a_registered_kind_is_built_from_type_and_config():
    finder = registries.FINDERS.build(
        {"type": "BestRunFinder", "config": {"metric": "test_r2", "mode": "max"}}
    )
    assert finder == registries.BestRunFinder(metric="test_r2", mode="max")
    # The pipeline parameters' spelling builds the very same object.
    assert (
        registries.build_finder({"KIND": "BestRunFinder", "metric": "test_r2", "mode": "max"})
        == finder
    )


def test_a_type_without_config_takes_the_defaults():
    assert registries.LOADERS.build({"type": "PyfuncLoader"}) == registries.PyfuncLoader()
    assert (
        registries.LOADERS.build({"type": "SklearnLoader", "config": None})
        == registries.SklearnLoader()
    )


def test_every_role_lists_the_projects_kinds():
    assert registries.FINDERS.names == (
        "RegistryFinder",
        "BestRunFinder",
        "UriFinder",
        "FolderFinder",
    )
    assert registries.LOADERS.names == (
        "FlavorLoader",
        "SklearnLoader",
        "XGBoostLoader",
        "LightGBMLoader",
        "CatBoostLoader",
        "PyfuncLoader",
    )
    assert backends.TRAINERS.names == ("LocalTrainer", "KFPTrainer")
    assert backends.JOB_PREDICTORS.names == ("LocalJobPredictor", "KFPJobPredictor")


def test_a_users_class_is_built_by_import_path_and_keeps_it_as_kind():
    finder = registries.FINDERS.build(
        {"type": f"{USER}:LatestVersionFinder", "config": {"name": "bikes"}}
    )
    assert isinstance(finder, user_kinds.LatestVersionFinder)
    assert finder.name == "bikes"
    assert f"{USER}:LatestVersionFinder" == finder.KIND
    # Its config builds it again in another process (a pipeline step): the path is the KIND.
    config = registries.FINDERS.config_of(finder)
    assert config == {"KIND": f"{USER}:LatestVersionFinder", "name": "bikes"}
    assert registries.build_finder(config) == finder


def test_a_users_class_with_its_own_kind_round_trips_by_path():
    finder = registries.FINDERS.build(
        {"type": f"{USER}:NamedFinder", "config": {"uri": "runs:/x/m"}}
    )
    assert finder.KIND == "NamedFinder"
    config = registries.FINDERS.config_of(finder)
    assert config["KIND"] == f"{USER}:NamedFinder"
    assert registries.build_finder(config) == finder


def test_a_users_trainer_is_built_and_gets_its_options():
    trainer = backends.TRAINERS.build(
        {
            "type": f"{USER}:RecordingTrainer",
            "config": {"label": "nightly", "parameters": {"target": "y"}},
        }
    )
    assert isinstance(trainer, backends.Trainer)
    assert (trainer.label, trainer.parameters) == ("nightly", {"target": "y"})


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"type": "NoSuchFinder"},
            "unknown finder type 'NoSuchFinder'; allowed: 'RegistryFinder', 'BestRunFinder', "
            "'UriFinder', 'FolderFinder', or the import path package.module:Class of a "
            "subclass of components.io.registries:Finder",
        ),
        (
            {"type": f"{USER}:NotAFinder"},
            f"finder type '{USER}:NotAFinder' is not a subclass of "
            "components.io.registries:Finder; allowed: 'RegistryFinder'",
        ),
        (
            {"type": "components.io.registries:PyfuncLoader"},
            "is not a subclass of components.io.registries:Finder",
        ),
        (
            {"type": "no_such_package.finders:Mine"},
            "finder type 'no_such_package.finders:Mine': cannot import module "
            "'no_such_package.finders'",
        ),
        (  # the module's own error, not "has no": the class may well be there
            {"type": "tests.broken_kinds:Mine"},
            "finder type 'tests.broken_kinds:Mine': cannot import module 'tests.broken_kinds' "
            "(AttributeError: partially initialized module 'kfp.dsl' has no attribute "
            "'Pipeline')",
        ),
        (
            {"type": f"{USER}:Missing"},
            f"finder type '{USER}:Missing': module '{USER}' has no 'Missing'",
        ),
        ({"type": "RegistryFinder"}, "invalid RegistryFinder: name: Field required"),
        (
            {"type": "RegistryFinder", "config": {"name": "m", "alias": "x"}},
            "invalid RegistryFinder: alias: unknown option (did you mean: alias_or_version?); "
            "its options: name, alias_or_version",
        ),
        (
            {"type": "BestRunFinder", "config": {"mode": "up"}},
            "invalid BestRunFinder: mode: Input should be 'min' or 'max'",
        ),
        (
            {"type": "UriFinder", "config": ["uri"]},
            "finder 'UriFinder': 'config' must be a mapping of options, got ['uri']",
        ),
        (
            {"type": "UriFinder", "config": {"KIND": "UriFinder", "uri": "x"}},
            "give the kind as 'type' only",
        ),
        ({"config": {"uri": "x"}}, "a finder config needs a KIND; allowed: 'RegistryFinder'"),
        ("UriFinder", "a finder is given as {type: NAME, config: {...}}, got 'UriFinder'"),
        ({"type": 3}, "unknown finder type 3; allowed:"),
        (
            {"type": "RegistyFinder"},
            "unknown finder type 'RegistyFinder' (did you mean: RegistryFinder?)",
        ),
    ],
)
def test_a_bad_type_or_option_is_refused_with_what_is_allowed(spec, expected):
    with pytest.raises(factories.FactoryError) as caught:
        registries.FINDERS.build(spec)
    assert expected in str(caught.value)


def test_a_job_takes_a_users_finder_by_import_path():
    job = InferenceJob(
        inputs={"KIND": "ParquetReader", "path": "rows.parquet"},
        outputs={"KIND": "ParquetWriter", "path": "out.parquet"},
        finder={"KIND": f"{USER}:LatestVersionFinder", "name": "bikes"},
        loader={"KIND": "PyfuncLoader"},
    )
    assert isinstance(job.finder, user_kinds.LatestVersionFinder)
    assert isinstance(job.loader, registries.PyfuncLoader)
    dumped = job.model_dump()["finder"]
    assert dumped == {"KIND": f"{USER}:LatestVersionFinder", "name": "bikes"}


def test_a_jobs_bad_finder_names_the_field_and_the_allowed_kinds():
    with pytest.raises(pdt.ValidationError) as caught:
        InferenceJob(
            inputs={"KIND": "ParquetReader", "path": "rows.parquet"},
            outputs={"KIND": "ParquetWriter", "path": "out.parquet"},
            finder={"KIND": f"{USER}:NotAFinder"},
        )
    message = base.describe_errors("InferenceJob", caught.value)
    assert message.startswith("invalid InferenceJob settings: finder: ")
    assert "is not a subclass of components.io.registries:Finder" in message
    with pytest.raises(pdt.ValidationError) as caught:
        InferenceJob(
            inputs={"KIND": "ParquetReader", "path": "rows.parquet"},
            outputs={"KIND": "ParquetWriter", "path": "out.parquet"},
            finder={"KIND": "RegistryFinder"},
        )
    assert base.describe_errors("InferenceJob", caught.value) == (
        "invalid InferenceJob settings: finder.name: Field required"
    )


def test_listing_names_every_kind_and_the_import_path():
    """A help text lists the registered kinds from the registry, then how to give one's own."""
    from components.core import models

    assert models.MODELS.listing() == (
        "'HistGradientBoostingRegressor', 'HistGradientBoostingClassifier', 'Ridge', "
        "'LogisticRegression', 'RandomForestRegressor', 'RandomForestClassifier', "
        "'ExtraTreesRegressor', 'ExtraTreesClassifier', 'XGBRegressor', 'XGBClassifier', "
        "'LGBMRegressor' or 'LGBMClassifier', or the import path "
        "package.module:Class of a subclass of components.core.models:Model, or of an estimator "
        "class (any estimator with the scikit-learn API by its import path, e.g. "
        "'sklearn.ensemble:RandomForestRegressor', 'xgboost:XGBClassifier' or "
        "'catboost:CatBoostRegressor' where it is installed)"
    )
    empty = factories.Factory("thing", models.Model, ())
    assert empty.listing() == (
        "the import path package.module:Class of a subclass of components.core.models:Model"
    )


def test_a_kind_alone_builds_it_with_its_default_options():
    """A registered KIND or a user's import path, alone: the kind with its default options."""
    from components.core import explainers

    adapter = pdt.TypeAdapter(explainers.ExplainerKind)
    assert adapter.validate_python("PermutationExplainer") == explainers.PermutationExplainer()
    trainer = backends.TRAINERS.coerce(f"{USER}:RecordingTrainer")
    assert isinstance(trainer, user_kinds.RecordingTrainer) and trainer.label == "mine"
    with pytest.raises(pdt.ValidationError, match="unknown explainer type 'Shapley'; allowed: "):
        adapter.validate_python("Shapley")
