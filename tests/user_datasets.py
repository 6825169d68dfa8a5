"""A user's own reader and writer, outside the project's packages, loaded by import path.

Nothing here imports `pipelines`: a pipeline's step, which imports a user's class by its path,
runs KFP's executor, where the pipeline compiler (and so `pipelines`) cannot be imported.
"""

from __future__ import annotations

import json
import typing as T

import pyarrow.dataset as pads

from components.io import datasets


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
