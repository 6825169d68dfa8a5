"""Datasets: readers that stream record batches and writers that never leave partial output."""

from __future__ import annotations

import abc
import contextlib
import logging
import os
import typing as T
import uuid

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pydantic as pdt

logger = logging.getLogger(__name__)

Data = pd.DataFrame | pa.Table | pa.RecordBatch


class DatasetError(ValueError):
    """A dataset cannot be read or written; the message names the path and the cause."""


def resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    """Return the pyarrow filesystem and the path within it for a local path or a URI.

    Local paths need no scheme; s3://, gs://, hdfs:// and file:// go through pyarrow's own
    filesystems, so credentials come from the usual environment variables.
    """
    if "://" in uri:
        return pafs.FileSystem.from_uri(uri)
    return pafs.LocalFileSystem(), os.path.abspath(uri)


def to_table(data: Data) -> pa.Table:
    """Turn a DataFrame, a RecordBatch or a Table into a Table, keeping column names."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    return pa.Table.from_pandas(data, preserve_index=False)


# %% READERS


class Reader(abc.ABC, pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """Read a dataset (one file or a directory of files) as a stream of record batches.

    Args:
        path: a local path or a URI that pyarrow opens (s3://, gs://, file://).
        batch_size: the most rows in one batch; bounds the memory a job needs.
        columns: read only these columns (all when None).
    """

    KIND: str
    path: str
    batch_size: int = pdt.Field(default=131_072, gt=0)
    columns: list[str] | None = None

    @abc.abstractmethod
    def format(self) -> pads.FileFormat:
        """The pyarrow dataset format of the files."""

    def dataset(self) -> pads.Dataset:
        """Open the dataset lazily; fail with a DatasetError naming the path."""
        filesystem, path = resolve(self.path)
        try:
            info = filesystem.get_file_info(path)
            if info.type == pafs.FileType.NotFound:
                raise DatasetError(f"input not found: {self.path}")
            return pads.dataset(path, filesystem=filesystem, format=self.format())
        except (pa.ArrowException, OSError) as error:
            raise DatasetError(f"cannot open {self.KIND} input {self.path}: {error}") from error

    def schema(self) -> pa.Schema:
        """The schema of the columns that the reader returns."""
        schema = self.dataset().schema
        if self.columns is None:
            return schema
        return pa.schema([schema.field(name) for name in self.columns])

    def fragments(self, dataset: pads.Dataset) -> T.Iterator[pads.Fragment]:
        """The pieces scanned one after another: the dataset's files."""
        return iter(dataset.get_fragments())

    def batches(self) -> T.Iterator[pa.RecordBatch]:
        """Yield record batches of at most batch_size rows; empty batches are skipped.

        Fragments are scanned one at a time: pyarrow's scan of a whole dataset reads ahead of a
        slow consumer (a model predicting) by up to a gigabyte, so memory would grow with the
        input instead of staying bounded by batch_size.
        """
        dataset = self.dataset()
        try:
            for fragment in self.fragments(dataset):
                for batch in fragment.to_batches(
                    schema=dataset.schema, columns=self.columns, batch_size=self.batch_size
                ):
                    if batch.num_rows:
                        yield batch
        except (pa.ArrowException, OSError) as error:
            raise DatasetError(f"cannot read {self.KIND} input {self.path}: {error}") from error

    def frames(self) -> T.Iterator[pd.DataFrame]:
        """Yield the batches as pandas DataFrames."""
        for batch in self.batches():
            yield batch.to_pandas()

    def read(self) -> pd.DataFrame:
        """Read the whole dataset into one DataFrame (for training-sized data only)."""
        batches = list(self.batches())
        if not batches:
            return self.schema().empty_table().to_pandas()
        return pa.Table.from_batches(batches).to_pandas()


class ParquetReader(Reader, frozen=True):
    """Read Parquet: one file, or a directory (hive partitions included) of files."""

    KIND: T.Literal["ParquetReader"] = "ParquetReader"

    def format(self) -> pads.FileFormat:
        return pads.ParquetFileFormat()

    def fragments(self, dataset: pads.Dataset) -> T.Iterator[pads.Fragment]:
        # One row group at a time: a whole file's scan pre-buffers and reads its row groups ahead.
        for fragment in dataset.get_fragments():
            yield from fragment.split_by_row_group()


class CSVReader(Reader, frozen=True):
    """Read CSV with a header row; column types are inferred by pyarrow."""

    KIND: T.Literal["CSVReader"] = "CSVReader"
    delimiter: str = ","

    def format(self) -> pads.FileFormat:
        return pads.CsvFileFormat(parse_options=pacsv.ParseOptions(delimiter=self.delimiter))


ReaderKind = ParquetReader | CSVReader


def reader_for(path: str, **options: T.Any) -> ReaderKind:
    """Pick the reader from the path's extension (Parquet unless it ends in .csv)."""
    if path.lower().rstrip("/").endswith(".csv"):
        return CSVReader(path=path, **options)
    return ParquetReader(path=path, **options)


# %% WRITERS


class Sink(abc.ABC):
    """An open output: write batches to it; it is published only when the block succeeds."""

    @abc.abstractmethod
    def write(self, data: Data) -> None:
        """Append rows."""

    @abc.abstractmethod
    def close(self) -> None:
        """Flush and close the temporary file."""


class Writer(abc.ABC, pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """Write a dataset to one file, atomically: a temporary name first, renamed on success.

    Args:
        path: the output file, a local path or a URI that pyarrow opens.
    """

    KIND: str
    path: str

    @abc.abstractmethod
    def sink(self, stream: T.Any, schema: pa.Schema) -> Sink:
        """Open a format-specific sink over an output stream."""

    @contextlib.contextmanager
    def open(self) -> T.Iterator[Sink]:
        """Open the output; on any error the temporary file is removed and nothing is published.

        Example:
            with writer.open() as sink:
                for batch in batches:
                    sink.write(batch)
        """
        filesystem, path = resolve(self.path)
        parent, name = os.path.split(path.rstrip("/"))
        if isinstance(filesystem, pafs.LocalFileSystem):
            filesystem.create_dir(parent, recursive=True)
        temporary = f"{parent}/.{name}.tmp-{uuid.uuid4().hex[:8]}"
        lazy = _LazySink(self, filesystem, temporary)
        try:
            yield lazy
            lazy.close()
            filesystem.move(temporary, path)
        except BaseException:
            lazy.abort()
            raise
        logger.info("wrote %s rows to %s", lazy.rows, self.path)

    def write(self, data: Data) -> None:
        """Write all the data at once."""
        with self.open() as sink:
            sink.write(data)


class _LazySink(Sink):
    """Defer opening the file until the first batch gives the schema."""

    def __init__(self, writer: Writer, filesystem: pafs.FileSystem, temporary: str):
        self.writer, self.filesystem, self.temporary = writer, filesystem, temporary
        self.stream: T.Any = None
        self.inner: Sink | None = None
        self.rows = 0

    def write(self, data: Data) -> None:
        table = to_table(data)
        if self.inner is None:
            self.stream = self.filesystem.open_output_stream(self.temporary)
            self.inner = self.writer.sink(self.stream, table.schema)
        self.inner.write(table)
        self.rows += table.num_rows

    def close(self) -> None:
        if self.inner is None:
            raise DatasetError(f"no rows to write to {self.writer.path}")
        self.inner.close()
        self.stream.close()

    def abort(self) -> None:
        # Close the format writer first so it does not try to flush into a closed stream later.
        with contextlib.suppress(Exception):
            if self.inner is not None:
                self.inner.close()
        with contextlib.suppress(Exception):
            if self.stream is not None and not self.stream.closed:
                self.stream.close()
        with contextlib.suppress(FileNotFoundError, OSError):
            self.filesystem.delete_file(self.temporary)


class _TableSink(Sink):
    """Cast each table to the first batch's schema and hand it to a pyarrow table writer."""

    def __init__(self, schema: pa.Schema, writer: T.Any):
        self.schema, self.writer = schema, writer

    def write(self, data: Data) -> None:
        table = to_table(data)
        if not table.schema.equals(self.schema):
            table = table.cast(self.schema)
        self.writer.write_table(table)

    def close(self) -> None:
        self.writer.close()


class ParquetWriter(Writer, frozen=True):
    """Write one Parquet file, batch by batch."""

    KIND: T.Literal["ParquetWriter"] = "ParquetWriter"
    compression: str = "zstd"

    def sink(self, stream, schema) -> Sink:
        return _TableSink(schema, pq.ParquetWriter(stream, schema, compression=self.compression))


class CSVWriter(Writer, frozen=True):
    """Write one CSV file with a header row, batch by batch."""

    KIND: T.Literal["CSVWriter"] = "CSVWriter"

    def sink(self, stream, schema) -> Sink:
        return _TableSink(schema, pacsv.CSVWriter(stream, schema))


WriterKind = ParquetWriter | CSVWriter


def writer_for(path: str) -> WriterKind:
    """Pick the writer from the path's extension (Parquet unless it ends in .csv)."""
    if path.lower().endswith(".csv"):
        return CSVWriter(path=path)
    return ParquetWriter(path=path)
