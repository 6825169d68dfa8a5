"""Signers: generate the MLflow signature that the registry enforces on model inputs."""

from __future__ import annotations

import abc
import logging
import typing as T

import pandas as pd
import pydantic as pdt
from mlflow.models import infer_signature
from mlflow.models.signature import ModelSignature

from components.core import schemas
from components.utils import factories

logger = logging.getLogger(__name__)


class SignatureError(ValueError):
    """The signature could not be generated from the given inputs and outputs."""


class Signer(abc.ABC, pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """Generate a model signature from example inputs and outputs.

    Use a signer to record the interface of a model when it is registered, so that inference
    can check its inputs before predicting:

        signature = InferSigner().sign(inputs=train_inputs, outputs=train_predictions)
    """

    KIND: str

    @abc.abstractmethod
    def sign(self, inputs: pd.DataFrame, outputs: T.Any) -> ModelSignature:
        """Generate the signature.

        Args:
            inputs: example model inputs (the training features).
            outputs: the model's outputs for those inputs.

        Returns:
            The MLflow signature.
        """


class InferSigner(Signer, frozen=True):
    """Infer the signature from the data with `mlflow.models.infer_signature`.

    Nullable integer columns with missing values are signed as doubles (see `schemas.normalize`),
    so that the signature accepts the very data the model was trained on.
    """

    KIND: T.Literal["InferSigner"] = "InferSigner"

    def sign(self, inputs: pd.DataFrame, outputs: T.Any) -> ModelSignature:
        """Infer the signature; refuse one that MLflow could only type as `Any`."""
        columns = ", ".join(f"{name}: {dtype}" for name, dtype in inputs.dtypes.items())
        try:
            signature = infer_signature(model_input=schemas.normalize(inputs), model_output=outputs)
        except Exception as error:
            logger.error("cannot infer a model signature from inputs (%s): %s", columns, error)
            raise SignatureError(f"cannot infer a model signature: {error}") from error
        if not signature.inputs.has_input_names():
            # MLflow falls back to an untyped `Any` input, with only a warning, when it cannot
            # type a column: such a signature would check nothing at inference, so refuse it.
            untyped = [
                name
                for name in inputs.columns
                if not infer_signature(schemas.normalize(inputs[[name]])).inputs.has_input_names()
            ]
            logger.error("cannot infer a model signature: MLflow cannot type %s", untyped)
            raise SignatureError(
                f"cannot infer a model signature: MLflow cannot type the input column(s) "
                f"{untyped} (inputs: {columns})"
            )
        return signature


# The registry of signers: a KIND, `{type, config}` or a user's `package.module:Class`.
SIGNERS = factories.Factory("signer", Signer, (InferSigner,))
# A job's signer field: a Signer, or a config with a KIND built by the registry (a user's class
# by import path included).
SignerKind = T.Annotated[pdt.SerializeAsAny[Signer], pdt.BeforeValidator(SIGNERS.coerce)]
