"""Integration: the training job's roles by registry, a user's own kinds by import path.

A user's model kind (a random forest, which holds a type skops trusts only when declared) is
trained by the TrainingJob against the session's real MLflow server, registered and loaded
back; a user's splitter, signer and saver are used by a training of a project kind. Unknown
kinds and classes of another role are refused in one line that lists the allowed kinds.
"""

from __future__ import annotations

import pathlib
import typing as T

import mlflow
import numpy as np
import pandas as pd
import pydantic as pdt
import pytest
import yaml
from mlflow.tracking import MlflowClient

from components.core import models, results
from components.io import datasets, registries
from components.jobs import base, training
from components.utils import factories
from tests.jobs.helpers import COLUMNS, features, native_model, run, settings, unique, with_demand

pytestmark = pytest.mark.integration

FOREST = "tests.user_models:RandomForestRegressorModel"


@pytest.fixture(scope="module")
def rows(bike, tmp_path_factory) -> pathlib.Path:
    """A tenth of the demo data: enough to fit on, quick to log."""
    path = tmp_path_factory.mktemp("kinds") / "rows.parquet"
    with_demand(bike.iloc[::10].reset_index(drop=True)).to_parquet(path, index=False)
    return path


def job(rows: pathlib.Path, name: str, common: dict[str, T.Any], **fields: T.Any):
    """A TrainingJob of `cnt` on the rows, with the demo features and the given fields."""
    return training.TrainingJob(
        inputs=datasets.ParquetReader(path=str(rows)),
        target="cnt",
        model_name=name,
        **features("cnt"),
        **common,
        **fields,
    )


@pytest.fixture(scope="module")
def forest(mlflow_server, rows, tmp_path_factory) -> tuple[results.TrainingResult, pathlib.Path]:
    """The user's forest, trained by import path with the saver chosen for its kind."""
    holdout = tmp_path_factory.mktemp("forest") / "holdout.parquet"
    common = settings(mlflow_server, unique("kinds"))
    trained = run(
        job(
            rows,
            unique("forest"),
            common,
            # Numbers of a KFP dict parameter arrive as floats: 8.0 trees.
            model={"KIND": FOREST, "params": {"n_estimators": 8.0}},
            holdout=datasets.ParquetWriter(path=str(holdout)),
        )
    )
    return trained, holdout


def test_a_users_model_kind_is_trained_registered_and_loaded_back(tracking, forest, tmp_path):
    trained, holdout = forest
    assert trained.model_kind == FOREST and trained.task == "regression"
    assert trained.model_ref.version == 1
    # Saved with skops, trusting the tree type its kind declares.
    files = pathlib.Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=trained.model_ref.uri, dst_path=str(tmp_path)
        )
    )
    assert (files / "model.skops").is_file()
    assert not [path for path in files.rglob("*") if path.suffix in (".pkl", ".pickle", ".joblib")]
    flavor = yaml.safe_load((files / "MLmodel").read_text())["flavors"]["sklearn"]
    assert flavor["serialization_format"] == "skops"
    assert "sklearn.tree._tree.Tree" in flavor["skops_trusted_types"]
    # Loaded back: the forest, with the params given, predicts the holdout as the job scored it.
    model = native_model(trained.model_ref.name, 1)
    estimator = model[-1]
    assert type(estimator).__name__ == "RandomForestRegressor"
    assert estimator.n_estimators == 8 and estimator.max_depth == 6
    rows = pd.read_parquet(holdout)
    predicted = registries.FlavorLoader().load(trained.model_ref.uri).predict(rows[COLUMNS])
    np.testing.assert_allclose(predicted[models.PREDICTION], model.predict(rows[COLUMNS]))
    rmse = float(np.sqrt(np.mean((predicted[models.PREDICTION] - rows["cnt"]) ** 2)))
    assert rmse == pytest.approx(trained.scores["rmse"], rel=1e-6)
    params = MlflowClient().get_run(trained.model_ref.run_id).data.params
    assert params["model_kind"] == FOREST and params["n_estimators"] == "8"


def test_a_users_splitter_signer_and_saver_are_used_by_import_path(tracking, rows, tmp_path):
    holdout = tmp_path / "holdout.parquet"
    trained = run(
        job(
            rows,
            unique("ridge"),
            settings(tracking, unique("kinds")),
            model={"type": "Ridge", "config": {"params": {"alpha": 2.0}}},
            splitter={"type": "tests.user_models:FirstRowsSplitter", "config": {"rows": 150}},
            signer={"KIND": "tests.user_models:InputsOnlySigner"},
            saver={"KIND": "tests.user_models:TaggingSaver", "label": "team-a"},
            holdout=datasets.ParquetWriter(path=str(holdout)),
        )
    )
    # The user's splitter held out the first rows, though the job would stratify or order them.
    assert trained.test_rows == 150
    first = pd.read_parquet(rows)["instant"].head(150).tolist()
    assert pd.read_parquet(holdout)["instant"].tolist() == first
    # The user's signer signed the inputs only.
    info = mlflow.models.get_model_info(trained.model_ref.uri)
    assert info.signature.inputs.input_names() == COLUMNS
    assert info.signature.outputs is None
    # The user's saver tagged the version as it registered it.
    version = MlflowClient().get_model_version(trained.model_ref.name, "1")
    assert version.tags["saved_by"] == "team-a"


def test_the_saver_trusts_only_what_the_model_kind_declares(forest):
    """Checked before anything is logged: no run or server is needed to refuse."""
    trained, holdout = forest
    pipeline = native_model(trained.model_ref.name, 1)
    example = pd.read_parquet(holdout)[COLUMNS].head(5)
    kind = models.MODELS.build({"KIND": "tests.user_models:UndeclaredForestModel"})
    saver = registries.saver_for(kind)
    assert saver == registries.SklearnSaver()
    with pytest.raises(registries.UntrustedTypesError) as caught:
        saver.save(pipeline, "never-registered", None, example, kind=kind)
    assert str(caught.value).startswith(
        "model 'never-registered' holds types that skops does not trust: "
        "['sklearn.tree._tree.Tree']; model kind tests.user_models:UndeclaredForestModel trusts "
        "none: review them and declare them in the model kind's TRUSTED_TYPES"
    )
    # Without its kind, the saver trusts what the project's kinds declare: the forest kinds'
    # trees among them.
    assert saver.trusts(None) == registries.TRUSTED_TYPES
    assert "sklearn.tree._tree.Tree" in registries.TRUSTED_TYPES


def test_a_model_kind_of_another_flavour_needs_a_saver_chosen_for_it():
    kind = models.MODELS.build({"KIND": "tests.user_models:OtherFlavorModel"})
    with pytest.raises(factories.FactoryError) as caught:
        registries.saver_for(kind)
    assert str(caught.value) == (
        "no saver is chosen for the 'xgboost' flavour of model kind "
        "tests.user_models:OtherFlavorModel; name one: allowed: 'SklearnSaver', or the import "
        "path package.module:Class of a subclass of components.io.registries:Saver"
    )


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("model", {"KIND": "SVM"}, "model: Value error, unknown model type "
         "'SVM'; allowed: 'HistGradientBoostingRegressor', "
         "'HistGradientBoostingClassifier', 'Ridge', 'LogisticRegression', "
         "'RandomForestRegressor', 'RandomForestClassifier', 'ExtraTreesRegressor', "
         "'ExtraTreesClassifier', 'XGBRegressor', 'XGBClassifier', 'LGBMRegressor', "
         "'LGBMClassifier', 'EstimatorModel', or the import path package.module:Class of a "
         "subclass of components.core.models:Model, or of an estimator class (any estimator "
         "with the scikit-learn API by its import path"),
        ("model", {"KIND": "tests.user_models:NotAKind"}, "model: Value error, model type "
         "'tests.user_models:NotAKind' is not a subclass of components.core.models:Model; "
         "allowed: 'HistGradientBoostingRegressor'"),
        ("saver", {"KIND": "PickleSaver"}, "saver: Value error, unknown saver type "
         "'PickleSaver'; allowed: 'SklearnSaver', or the import path package.module:Class of a "
         "subclass of components.io.registries:Saver"),
        ("saver", {"KIND": FOREST}, f"saver: Value error, saver type '{FOREST}' is not a "
         "subclass of components.io.registries:Saver; allowed: 'SklearnSaver'"),
        ("signer", {"type": "SchemaSigner"}, "signer: Value error, unknown signer type "
         "'SchemaSigner'; allowed: 'InferSigner', or the import path"),
        ("signer", {"KIND": "tests.user_models:NotAKind"}, "signer: Value error, signer type "
         "'tests.user_models:NotAKind' is not a subclass of components.utils.signers:Signer"),
        ("splitter", {"KIND": "KFold"}, "splitter: Value error, unknown splitter type 'KFold'; "
         "allowed: 'TrainTestSplitter', or the import path"),
        ("splitter", {"KIND": "tests.user_models:InputsOnlySigner"}, "splitter: Value error, "
         "splitter type 'tests.user_models:InputsOnlySigner' is not a subclass of "
         "components.utils.splitters:Splitter"),
    ],
    ids=[
        "model-unknown", "model-base", "saver-unknown", "saver-base",
        "signer-unknown", "signer-base", "splitter-unknown", "splitter-base",
    ],
)  # fmt: skip
def test_the_job_refuses_an_unknown_kind_or_another_roles_class_in_one_line(
    rows, field, value, expected
):
    with pytest.raises(pdt.ValidationError) as caught:
        job(rows, "never-trained", {}, **{field: value})
    line = base.describe_errors("TrainingJob", caught.value)
    assert "\n" not in line
    assert line.startswith(f"invalid TrainingJob settings: {expected}"), line


def test_the_train_steps_model_kind_may_be_a_users_import_path(rows, tmp_path):
    """What the `train` component builds its job from: model_kind and KFP's float params."""
    from types import SimpleNamespace

    from components import fields

    mapped = fields.train_fields(
        target="cnt", model_name="never-trained", holdout=SimpleNamespace(path=str(tmp_path)),
        data=str(rows), dataset=None, reader=None, model_kind=FOREST,
        model_params={"n_estimators": 8.0}, features=None, categorical=None, exclude=None,
        time_column="", test_size=0.25,
    )  # fmt: skip
    built = training.TrainingJob(**mapped)
    assert type(built.model).__name__ == "RandomForestRegressorModel"
    assert built.model.KIND == FOREST and built.model.params == {"n_estimators": 8}
    assert built.splitter.test_size == 0.25
    assert built.saver is None  # chosen for the model kind when it registers


def test_the_train_steps_trusted_types_are_the_estimators_and_refused_for_a_model_kind(
    rows, tmp_path
):
    """A train step's `trusted_types`: what skops may load for an estimator by import path."""
    from types import SimpleNamespace

    from components import fields

    def mapped(model_kind: str, trusted_types: list[T.Any]) -> dict[str, T.Any]:
        return fields.train_fields(
            target="cnt", model_name="never-trained", holdout=SimpleNamespace(path=str(tmp_path)),
            data=str(rows), dataset=None, reader=None, model_kind=model_kind,
            model_params={"n_estimators": 5.0}, features=None, categorical=None, exclude=None,
            time_column="", test_size=0.2, trusted_types=trusted_types,
        )  # fmt: skip

    path = "sklearn.ensemble:GradientBoostingRegressor"
    built = training.TrainingJob(**mapped(path, [models.SKLEARN_TREE]))
    assert type(built.model) is models.EstimatorModel
    assert built.model.trusted_types == [models.SKLEARN_TREE]
    assert models.SKLEARN_TREE in registries.SklearnSaver().trusts(built.model)
    # None given: the estimator's trees are not trusted (the saver would refuse them).
    untrusting = training.TrainingJob(**mapped(path, []))
    assert models.SKLEARN_TREE not in registries.SklearnSaver().trusts(untrusting.model)
    # A model kind declares its own: the step refuses them, in one line that says why.
    with pytest.raises(
        ValueError, match="^trusted_types \\['sklearn.tree._tree.Tree'\\] are for"
    ) as refused:
        mapped("XGBRegressor", [models.SKLEARN_TREE])
    assert "model_kind 'XGBRegressor' is not one" in str(refused.value)
    assert "\n" not in str(refused.value)
