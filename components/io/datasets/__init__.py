"""Datasets: readers that stream record batches and writers that never leave partial output.

- `base`: locations (`resolve`), `to_table`, `DatasetError` and the readers' base class `Reader`.
- `sinks`: the writers' base class `Writer` and the sinks that publish a file once complete.
- `parquet`: `ParquetReader` and `ParquetWriter`.
- `csv`: `CSVReader` and `CSVWriter` (its metadata in a sidecar file).
- `configuration`: readers and writers from plain dicts (`reader_for`, `writer_config`, ...).

Import the names from here (`from components.io import datasets`): the modules are the layout.
"""

from components.io.datasets.base import (
    DEFAULT_MINIO_ENDPOINT,
    Data,
    DatasetError,
    Reader,
    compression,
    extension,
    not_found,
    resolve,
    to_table,
)
from components.io.datasets.configuration import (
    READER_KINDS,
    READERS,
    WRITER_KINDS,
    WRITERS,
    ReaderKind,
    WriterKind,
    reader_config,
    reader_for,
    writer_config,
    writer_for,
)
from components.io.datasets.csv import CSVReader, CSVWriter
from components.io.datasets.parquet import ParquetReader, ParquetWriter
from components.io.datasets.sinks import Sink, Writer

__all__ = [
    "CSVReader",
    "CSVWriter",
    "DEFAULT_MINIO_ENDPOINT",
    "Data",
    "DatasetError",
    "ParquetReader",
    "ParquetWriter",
    "READER_KINDS",
    "READERS",
    "WRITERS",
    "compression",
    "extension",
    "not_found",
    "Reader",
    "ReaderKind",
    "Sink",
    "WRITER_KINDS",
    "Writer",
    "WriterKind",
    "reader_config",
    "reader_for",
    "resolve",
    "to_table",
    "writer_config",
    "writer_for",
]
