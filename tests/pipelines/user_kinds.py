"""A user's own strategies, outside the project's packages, loaded by import path in tests."""

from __future__ import annotations

import typing as T

import pydantic as pdt
from mlflow.tracking import MlflowClient

from components.core.results import ModelRef
from components.io import registries
from pipelines.jobs import backends, futures


class LatestVersionFinder(registries.Finder, frozen=True):
    """The newest version of a registered model. It declares no KIND: it keeps its path."""

    name: str

    def find(self, client: MlflowClient) -> ModelRef:
        """The highest version number of the model."""
        version = registries.latest_version(client, self.name)
        return ModelRef(registries.uri_for(self.name, version), self.name, version)


class NamedFinder(registries.Finder, frozen=True):
    """A finder that declares its own KIND."""

    KIND: T.Literal["NamedFinder"] = "NamedFinder"
    uri: str

    def find(self, client: MlflowClient) -> ModelRef:
        """The URI as given."""
        return ModelRef(uri=self.uri)


class NotAFinder(pdt.BaseModel):
    """Has a find method, but is no Finder."""

    KIND: str = "NotAFinder"

    def find(self, client: MlflowClient) -> ModelRef:
        """Never called: the factory refuses the class."""
        raise AssertionError("built although not a Finder")


class RecordingTrainer(backends.LocalBackend, backends.Trainer, frozen=True):
    """A user's trainer: runs locally, and says so in its KIND-less config."""

    label: str = "mine"

    def _start(self, pipeline: str, values: dict[str, T.Any]) -> futures.JobFuture:
        raise NotImplementedError(f"{self.label} would start {pipeline} with {sorted(values)}")
