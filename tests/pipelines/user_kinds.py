"""A user's own strategies, outside the project's packages, loaded by import path in tests."""

from __future__ import annotations

import json
import typing as T

import pyarrow.dataset as pads
import pydantic as pdt
from mlflow.tracking import MlflowClient

from components.core.results import ModelRef
from components.io import datasets, registries
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


class JsonLinesReader(datasets.Reader, frozen=True):
    """JSON Lines, one record per line: pyarrow reads the format. No KIND: it keeps its path."""

    EXTENSIONS: T.ClassVar[tuple[str, ...]] = (".jsonl",)

    def format(self) -> pads.FileFormat:
        """pyarrow's JSON format."""
        return pads.JsonFileFormat()


class JsonLinesWriter(datasets.Writer, frozen=True):
    """JSON Lines out, one record per row; no metadata kept. No KIND: it keeps its path."""

    EXTENSIONS: T.ClassVar[tuple[str, ...]] = (".jsonl",)

    def sink(self, stream: T.Any, schema: T.Any) -> datasets.Sink:
        """Each batch's rows as JSON objects, one per line."""
        return _JsonLinesSink(stream)

    def read_metadata(self) -> dict[str, str]:
        """JSON Lines has nowhere to keep metadata."""
        return {}


class _JsonLinesSink(datasets.Sink):
    def __init__(self, stream: T.Any):
        self.stream = stream

    def write(self, data: T.Any) -> None:
        for row in datasets.to_table(data).to_pylist():
            self.stream.write((json.dumps(row, default=str) + "\n").encode())

    def close(self) -> None:
        """The writer closes the stream it opened."""
