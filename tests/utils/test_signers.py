"""Tests for the signers: the signature accepts the very data the model was trained on."""

from __future__ import annotations

import logging
import uuid

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.models.utils import _enforce_schema

from components.core import models, schemas
from components.io import registries, services
from components.utils import signers

NUMERICAL = ["hr", "mnth", "temp", "hum"]


@pytest.fixture(scope="module")
def holes(bike) -> pd.DataFrame:
    """Features with pandas nullable Int64 columns, one of them holding missing values."""
    frame = bike[[*NUMERICAL, "season", "cnt"]].head(400).copy()
    frame = frame.astype({"hr": "Int64", "mnth": "Int64", "season": "Int64"})
    frame.loc[frame.index[::7], "hr"] = pd.NA
    return frame.reset_index(drop=True)


def test_signature_of_nullable_integers_accepts_its_own_training_data(holes):
    inputs = holes.drop(columns=["cnt"])
    signature = signers.InferSigner().sign(inputs, holes["cnt"].to_numpy(dtype=float))
    types = {spec.name: spec.type.name for spec in signature.inputs.inputs}
    assert types == {
        "hr": "double",
        "mnth": "long",
        "temp": "double",
        "hum": "double",
        "season": "long",
    }
    # MLflow's own enforcement accepts the training rows, missing values included.
    enforced = _enforce_schema(schemas.normalize(inputs), signature.inputs)
    assert enforced["hr"].isna().sum() == inputs["hr"].isna().sum() > 0
    # Without the signer's care, MLflow signs `long` and then refuses its own missing values.
    naive = infer_signature(inputs, holes["cnt"].to_numpy(dtype=float))
    with pytest.raises((MlflowException, TypeError, ValueError)):
        _enforce_schema(schemas.normalize(inputs), naive.inputs)


@pytest.mark.integration
def test_logged_model_predicts_its_training_data_through_pyfunc(tracking, holes):
    inputs, target = holes.drop(columns=["cnt"]), holes["cnt"]
    model = models.HistGradientBoostingRegressorModel(
        numerical=NUMERICAL, categorical=["season"], params={"max_iter": 10}
    )
    pipeline = model.build().fit(schemas.normalize(inputs), target)
    signature = signers.InferSigner().sign(inputs, pipeline.predict(schemas.normalize(inputs)))
    service = services.MlflowService(experiment_name=f"signers-{uuid.uuid4().hex[:8]}")
    service.start()
    name = f"signers-{uuid.uuid4().hex[:8]}"
    with mlflow.start_run(run_name="fit"):
        ref = registries.SklearnSaver().save(pipeline, name, signature, inputs.head(5))
    # The pyfunc flavour enforces the registered signature on the raw training rows.
    predictor = registries.PyfuncPredictor(mlflow.pyfunc.load_model(ref.uri))
    predictions = predictor.predict(inputs)
    assert len(predictions) == len(inputs)
    np.testing.assert_allclose(
        predictions[models.PREDICTION], pipeline.predict(schemas.normalize(inputs))
    )
    # A later batch without missing values is accepted too.
    full = inputs[inputs["hr"].notna()].head(20)
    assert len(predictor.predict(full)) == 20


def test_signature_records_inputs_and_outputs(bike):
    inputs = bike[["hr", "temp"]].head(10)
    labels = np.array(["low"] * 5 + ["high"] * 5)
    signature = signers.InferSigner().sign(inputs, labels)
    assert signature.inputs.input_names() == ["hr", "temp"]
    assert [spec.type.name for spec in signature.inputs.inputs] == ["long", "double"]
    assert repr(signature.outputs) == "[Tensor('str', (-1,))]"


def test_signer_failure_raises_a_clear_error_and_logs_it(caplog):
    inputs = pd.DataFrame({"hr": [1, 2], "tags": [{"a"}, {"b", "c"}]})
    with (
        caplog.at_level(logging.ERROR, logger=signers.__name__),
        pytest.raises(signers.SignatureError) as caught,
    ):
        signers.InferSigner().sign(inputs, np.array([1.0, 2.0]))
    message = str(caught.value)
    assert message.startswith("cannot infer a model signature")
    assert "['tags']" in message and "tags: object" in message
    assert "hr" not in message.split("(inputs:")[0]  # only the column at fault is blamed
    [record] = [r for r in caplog.records if r.name == signers.__name__]
    assert record.levelno == logging.ERROR and "tags" in record.getMessage()


# %% THE REGISTRY OF SIGNERS


def test_an_unknown_signer_is_refused_in_one_line_listing_the_kinds():
    with pytest.raises(ValueError) as caught:
        signers.SIGNERS.build({"KIND": "SchemaSigner"})
    message = str(caught.value)
    assert "\n" not in message
    assert message == (
        "unknown signer type 'SchemaSigner'; allowed: 'InferSigner', or the import path "
        "package.module:Class of a subclass of components.utils.signers:Signer"
    )


def test_a_class_that_is_not_a_signer_is_refused():
    with pytest.raises(ValueError, match="is not a subclass of components.utils.signers:Signer"):
        signers.SIGNERS.build({"KIND": "tests.user_models:NotAKind"})


def test_a_users_signer_is_built_by_its_import_path(holes):
    from tests import user_models

    path = "tests.user_models:InputsOnlySigner"
    signer = signers.SIGNERS.build({"type": path})
    assert type(signer) is user_models.InputsOnlySigner and path == signer.KIND
    signature = signer.sign(holes[NUMERICAL], holes["cnt"].to_numpy(dtype=float))
    assert signature.inputs.input_names() == NUMERICAL and signature.outputs is None
    assert signers.SIGNERS.build({"type": "InferSigner"}) == signers.InferSigner()
