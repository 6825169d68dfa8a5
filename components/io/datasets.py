"""Datasets: readers that stream record batches and writers that never leave partial output."""

from __future__ import annotations

import abc
import codecs
import collections
import contextlib
import csv
import io
import json
import logging
import os
import re
import reprlib
import typing as T
import uuid

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pydantic as pdt

from components import demo
from components.io import shards

logger = logging.getLogger(__name__)

Data = pd.DataFrame | pa.Table | pa.RecordBatch
# KFP's MinIO service, as a default Kubeflow Pipelines install names it.
DEFAULT_MINIO_ENDPOINT = "minio-service.kubeflow:9000"


class DatasetError(ValueError):
    """A dataset cannot be read or written; the message names the path and the cause."""


def resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    """Return the pyarrow filesystem and the path within it for a local path or a URI.

    Local paths need no scheme; s3://, gs://, hdfs:// and file:// go through pyarrow's own
    filesystems, so credentials come from the usual environment variables; demo:// names a
    bundled demo file; minio:// (the URIs of KFP's artifacts on a default install) is S3 at
    $MINIO_ENDPOINT (default: KFP's in-cluster MinIO service), credentials from
    AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
    """
    try:
        uri = demo.resolve(uri)
    except FileNotFoundError as error:
        raise DatasetError(str(error)) from None
    if uri.startswith("minio://"):
        # KFP's default artifact store (the URIs of a cluster's artifacts): MinIO speaks S3.
        endpoint = os.environ.get("MINIO_ENDPOINT", DEFAULT_MINIO_ENDPOINT)
        scheme = os.environ.get("MINIO_SCHEME", "http")
        filesystem = pafs.S3FileSystem(endpoint_override=endpoint, scheme=scheme)
        return filesystem, uri.removeprefix("minio://")
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

    Opening the dataset checks every file's columns before a row is read: names must be unique
    and the files of a directory must agree on names and types, so a file that lacks a column is
    refused instead of read as nulls. Parquet files are checked from their footers only.

    A folder published by a sharded prediction (a `_manifest.json` listing its parts, see
    `components.io.shards`) reads as one dataset: its parts, in order.

    Args:
        path: a local path or a URI that pyarrow opens (s3://, gs://, file://).
        batch_size: the most rows in one batch; bounds the memory a job needs.
        columns: read only these columns (all when None).
        pieces: read only these pieces of the dataset (a shard's part, see `list_pieces`);
            their paths are the dataset's files as its filesystem names them.
    """

    KIND: str
    path: str
    batch_size: int = pdt.Field(default=131_072, gt=0)
    columns: list[str] | None = None
    pieces: list[shards.Piece] | None = None

    @abc.abstractmethod
    def format(self) -> pads.FileFormat:
        """The pyarrow dataset format of the files."""

    def dataset(self) -> pads.Dataset:
        """Open the dataset lazily and check its files' columns.

        Returns:
            The dataset, with the first file's schema.

        Raises:
            DatasetError: the input is missing or unreadable, or its columns are refused; the
                message names the path or the file.
        """
        filesystem, path = resolve(self.path)
        try:
            info = filesystem.get_file_info(path)
            if info.type == pafs.FileType.NotFound:
                raise DatasetError(f"input not found: {self.path}")
            source: str | list[str] = path
            if info.type == pafs.FileType.Directory:
                filesystem, source = self._published(filesystem, path)
            if self.pieces is not None:
                # A shard opens its own files only: the plan has checked all of them.
                source = list(dict.fromkeys(piece.path for piece in self.pieces))
            # An explicit schema skips pyarrow's inspection of the first file: inspect() reads
            # each file's schema itself, and pyarrow's would refuse duplicate names vaguely.
            dataset = pads.dataset(
                source, filesystem=filesystem, format=self.format(), schema=pa.schema([])
            )
            return dataset.replace_schema(self.inspect(dataset))
        except (pa.ArrowException, OSError) as error:
            raise DatasetError(f"cannot open {self.KIND} input {self.path}: {error}") from error

    def _published(
        self, filesystem: pafs.FileSystem, folder: str
    ) -> tuple[pafs.FileSystem, str | list[str]]:
        """A folder's files: the parts its manifest lists, or the folder itself when it has none."""
        try:
            manifest = shards.read_manifest(filesystem, folder)
        except shards.ShardError as error:
            raise DatasetError(str(error)) from None
        if manifest is None:
            return filesystem, folder
        if manifest.format != self.format().default_extname:
            raise DatasetError(
                f"{self.path} holds {manifest.format} parts; read it with "
                f"{{'KIND': '{_READER_OF_FORMAT[manifest.format]}'}}"
            )
        located = [resolve(uri) for uri in manifest.files]
        if not located:  # a manifest of no parts: no shard wrote rows
            return filesystem, []
        kinds = {type(part_filesystem).__name__ for part_filesystem, _ in located}
        if len(kinds) > 1:
            raise DatasetError(f"{self.path}: the manifest's parts lie on different filesystems")
        return located[0][0], [part for _, part in located]

    def list_pieces(self) -> list[shards.Piece]:
        """The dataset's pieces that shards split between them, from metadata only, in order.

        Returns:
            One piece per Parquet row group (its rows known from the footer), or per file for
            formats without row groups (its size in bytes); files without rows are left out.
        """
        dataset = self.dataset()
        try:
            return [
                piece
                for fragment in self.fragments(dataset)
                for piece in self.fragment_pieces(fragment)
            ]
        except (pa.ArrowException, OSError) as error:
            raise DatasetError(f"cannot list the pieces of {self.path}: {error}") from error

    def fragment_pieces(self, fragment: pads.Fragment) -> list[shards.Piece]:
        """The pieces of one scanned fragment: the whole file.

        Args:
            fragment: a file of the dataset.
        """
        size = fragment.filesystem.get_file_info(fragment.path).size or 0
        return [shards.Piece(path=fragment.path, bytes=size)]

    def sample_frames(
        self, rows: int, spread_over: int = shards.SAMPLE_PIECES
    ) -> T.Iterator[pd.DataFrame]:
        """Yield at most `rows` rows drawn across the dataset, not only from its first file.

        The first rows of up to `spread_over` evenly spaced pieces (files, row groups), an equal
        share of each; a piece with fewer rows leaves its share to the pieces after it.

        Args:
            rows: the most rows yielded.
            spread_over: the most pieces read (each is opened on its own).
        """
        pieces = self.pieces if self.pieces is not None else self.list_pieces()
        chosen = [pieces[index] for index in shards.spread(len(pieces), min(rows, spread_over))]
        left = rows
        for number, piece in enumerate(chosen):
            share = -(-left // (len(chosen) - number))  # ceil: the shares add up to `rows`
            reader = self.model_copy(
                update={"pieces": [piece], "batch_size": min(self.batch_size, share)}
            )
            taken = 0
            for frame in reader.frames():
                frame = frame.head(share - taken)
                taken += len(frame)
                yield frame
                if taken >= share:
                    break
            left -= taken
            if left <= 0:
                return

    def inspect(self, dataset: pads.Dataset) -> pa.Schema:
        """Check each file's columns against the first file's; hidden files are not listed.

        Args:
            dataset: the dataset whose files (fragments) are checked.

        Returns:
            The first file's schema (an empty schema for an empty directory).

        Raises:
            DatasetError: a file repeats a column name, or differs from the first file.
        """
        first: pads.Fragment | None = None
        expected = pa.schema([])
        for fragment in dataset.get_fragments():
            schema = self.file_schema(fragment)
            _refuse_duplicates(fragment.path, schema.names)
            if first is None:
                first, expected = fragment, schema
            elif differences := _differences(expected, schema):
                raise DatasetError(
                    f"{self.KIND} input {self.path}: the files disagree on their columns; "
                    f"{fragment.path} differs from {first.path}: {'; '.join(differences)}"
                )
        return expected

    def file_schema(self, fragment: pads.Fragment) -> pa.Schema:
        """Read one file's own schema (for Parquet, from its footer only).

        Args:
            fragment: the file.

        Returns:
            The columns and types that the file holds.
        """
        return fragment.physical_schema

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

        Raises:
            DatasetError: the dataset cannot be opened, or a file fails while it is read.
        """
        dataset = self.dataset()
        fragment = None
        try:
            for fragment in self.fragments(dataset):
                for batch in fragment.to_batches(
                    schema=dataset.schema, columns=self.columns, batch_size=self.batch_size
                ):
                    if batch.num_rows:
                        yield batch
        except (pa.ArrowException, OSError, UnicodeError) as error:
            raise self.read_error(fragment, error) from error

    def read_error(self, fragment: pads.Fragment | None, error: Exception) -> DatasetError:
        """Explain an error raised while a file is scanned.

        Args:
            fragment: the file (or the part of it) being scanned; None before the first.
            error: what pyarrow raised.

        Returns:
            The error to raise instead.
        """
        where = f" (file {fragment.path})" if fragment is not None else ""
        return DatasetError(f"cannot read {self.KIND} input {self.path}{where}: {error}")

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


def _refuse_duplicates(file: str, names: T.Sequence[str]) -> None:
    """Raise when a column name repeats: a by-name selection could not tell them apart."""
    counts = collections.Counter(names)
    if repeated := [name for name, count in counts.items() if count > 1]:
        raise DatasetError(
            f"{file}: duplicated column name(s) {_quoted(repeated)}; each column needs its own name"
        )


def _differences(expected: pa.Schema, found: pa.Schema) -> list[str]:
    """Describe how a file's columns differ from the first file's (empty when they agree).

    Order does not matter: columns are matched by name. Types must be equal, but for two
    harmless cases that pyarrow casts exactly: a column of nulls only (type null, as pandas
    writes an empty object column) and the 64-bit offset variants of strings and bytes
    (large_string, as pandas 3 writes, against string, as Spark writes).
    """
    wanted = dict(zip(expected.names, expected.types, strict=True))
    given = dict(zip(found.names, found.types, strict=True))
    differences = []
    if missing := [name for name in wanted if name not in given]:
        differences.append(f"missing column(s) {_quoted(missing)}")
    if extra := [name for name in given if name not in wanted]:
        differences.append(f"extra column(s) {_quoted(extra)}")
    for name, kind in given.items():
        if name in wanted and not _same_type(wanted[name], kind):
            differences.append(f"column {name!r} is {kind}, not {wanted[name]}")
    return differences


def _same_type(expected: pa.DataType, found: pa.DataType) -> bool:
    """Whether a file's column type reads as the expected one (see _differences)."""
    if pa.types.is_null(found):
        return True
    return _LARGE.get(expected, expected) == _LARGE.get(found, found)


# The 64-bit offset types, as their 32-bit offset equivalents.
_LARGE = {pa.large_string(): pa.string(), pa.large_binary(): pa.binary()}


def _quoted(names: T.Iterable[str]) -> str:
    """List column names as 'a', 'b'."""
    return ", ".join(repr(name) for name in names)


class ParquetReader(Reader, frozen=True):
    """Read Parquet: one file, or a directory (hive partitions included) of files."""

    KIND: T.Literal["ParquetReader"] = "ParquetReader"

    def format(self) -> pads.FileFormat:
        """Parquet, read with pyarrow's defaults."""
        return pads.ParquetFileFormat()

    def fragments(self, dataset: pads.Dataset) -> T.Iterator[pads.Fragment]:
        """The row groups of each file (those of the reader's pieces only), one at a time.

        A whole file's scan pre-buffers and reads its row groups ahead of the consumer.
        """
        wanted: dict[str, set[int] | None] = {}
        for piece in self.pieces or []:
            groups = None if piece.row_groups is None else set(piece.row_groups)
            known = wanted.get(piece.path, set())
            wanted[piece.path] = None if groups is None or known is None else known | groups
        for fragment in dataset.get_fragments():
            groups = wanted.get(fragment.path) if self.pieces is not None else None
            for row_group in fragment.split_by_row_group():
                if groups is None or row_group.row_groups[0].id in groups:
                    yield row_group

    def fragment_pieces(self, fragment: pads.Fragment) -> list[shards.Piece]:
        """One piece per row group, its rows and bytes from the file's footer.

        Args:
            fragment: one row group of a file (see `fragments`).
        """
        return [
            shards.Piece(
                path=fragment.path,
                row_groups=[group.id],
                rows=group.num_rows,
                bytes=max(group.total_byte_size, 0),
            )
            for group in fragment.row_groups
            if group.num_rows
        ]


class CSVReader(Reader, frozen=True):
    """Read CSV with a header row; column types are inferred by pyarrow.

    Text must decode with the encoding: bytes that do not are refused with the column and row,
    rather than read as a binary column whose raw bytes would be written out again.

    Args:
        delimiter: the one character between values.
        encoding: the files' text encoding (a Python codec name, e.g. "latin-1").
    """

    KIND: T.Literal["CSVReader"] = "CSVReader"
    delimiter: str = pdt.Field(default=",", min_length=1, max_length=1)
    encoding: str = "utf-8"

    @pdt.field_validator("encoding")
    @classmethod
    def _known_encoding(cls, encoding: str) -> str:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ValueError(f"unknown encoding {encoding!r}") from None
        return encoding

    def format(self) -> pads.FileFormat:
        """CSV with the reader's delimiter and encoding."""
        return pads.CsvFileFormat(
            read_options=self.read_options(), parse_options=self.parse_options()
        )

    def read_options(self) -> pacsv.ReadOptions:
        """The CSV read options: the encoding (pyarrow transcodes the text to UTF-8)."""
        return pacsv.ReadOptions(encoding=self.encoding)

    def parse_options(self) -> pacsv.ParseOptions:
        """The CSV parse options: the delimiter."""
        return pacsv.ParseOptions(delimiter=self.delimiter)

    def file_schema(self, fragment: pads.Fragment) -> pa.Schema:
        """Infer one file's schema from its first block and refuse what it would misread.

        Args:
            fragment: the CSV file.

        Returns:
            The inferred columns and types.

        Raises:
            DatasetError: the header repeats a name, looks split by another delimiter, or a
                column holds bytes that the encoding does not decode.
        """
        try:
            schema = fragment.physical_schema
        except pa.ArrowInvalid:
            # pyarrow refuses a repeated header name before giving any schema.
            _refuse_duplicates(fragment.path, self.header(fragment))
            raise
        except UnicodeDecodeError as error:
            # Transcoding from a non-UTF-8 encoding fails in Python's codec, not in pyarrow.
            raise DatasetError(self._undecodable(fragment.path, None, None)) from error
        try:
            names = schema.names
        except UnicodeDecodeError as error:
            # pyarrow keeps undecodable header bytes as they are; Python cannot name them.
            raise DatasetError(
                self._undecodable(fragment.path, None, None, "header row")
            ) from error
        self._refuse_one_column(fragment.path, names)
        self._refuse_binary(fragment, schema)
        return schema

    def header(self, fragment: pads.Fragment) -> list[str]:
        """Parse the header row with Python's csv module, from the file's first bytes.

        Args:
            fragment: the CSV file.

        Returns:
            The column names, as written.
        """
        with fragment.filesystem.open_input_stream(fragment.path) as stream:
            head = stream.read(_HEADER_BYTES)
        text = head.decode(self.encoding, errors="replace")
        return next(csv.reader(io.StringIO(text), delimiter=self.delimiter), [])

    def _refuse_one_column(self, file: str, names: list[str]) -> None:
        # One column named "a;b;c" is a file split by another character, not a real column.
        if len(names) != 1:
            return
        found = [sep for sep in _OTHER_DELIMITERS if sep != self.delimiter and sep in names[0]]
        if found:
            separator = max(found, key=names[0].count)
            raise DatasetError(
                f"{file}: the header parses as one column {names[0]!r} with delimiter "
                f"{self.delimiter!r}; it looks separated by {separator!r}: "
                f"set delimiter={separator!r}"
            )

    def _refuse_binary(self, fragment: pads.Fragment, schema: pa.Schema) -> None:
        # pyarrow infers binary for a text column whose first block does not decode.
        binary = [field.name for field in schema if pa.types.is_binary(field.type)]
        if binary:
            row = self._first_undecodable(fragment, binary[0])
            raise DatasetError(self._undecodable(fragment.path, binary[0], row))

    def _first_undecodable(self, fragment: pads.Fragment, column: str) -> int | None:
        # The bad value lies in the first block, where pyarrow inferred binary: only that block
        # of that one column is read, as the streaming reader's first batch.
        options = pacsv.ConvertOptions(include_columns=[column], column_types={column: pa.binary()})
        with fragment.filesystem.open_input_stream(fragment.path) as stream:
            reader = pacsv.open_csv(
                stream,
                read_options=self.read_options(),
                parse_options=self.parse_options(),
                convert_options=options,
            )
            batch = next(iter(reader), None)
        values = batch.column(0).to_pylist() if batch is not None else []
        for row, value in enumerate(values, start=1):
            if value is not None and not _decodes(value):
                return row
        return None

    def _undecodable(
        self, file: str, column: str | None, row: int | None, part: str = "file"
    ) -> str:
        where = f"column {column!r}" if column else f"the {part}"
        at = f" at data row {row}" if row else ""
        return (
            f"{file}: {where} is not valid {self.encoding} text{at}; set the encoding option to "
            "the file's encoding, e.g. encoding='latin-1'"
        )

    def read_error(self, fragment: pads.Fragment | None, error: Exception) -> DatasetError:
        """Name the column and row of bytes that pyarrow found invalid after the first block.

        Args:
            fragment: the CSV file being scanned; None before the first.
            error: what pyarrow raised.

        Returns:
            The error to raise instead.
        """
        if fragment is not None and isinstance(error, UnicodeDecodeError):
            return DatasetError(self._undecodable(fragment.path, None, None))
        message = str(error)
        if fragment is None or "invalid UTF8" not in message:
            return super().read_error(fragment, error)
        # pyarrow's message: "In CSV column #1: Row #200002: ..."; rows count the header.
        column = re.search(r"column #(\d+)", message)
        row = re.search(r"Row #(\d+)", message)
        names = fragment.physical_schema.names
        name = names[int(column[1])] if column and int(column[1]) < len(names) else None
        return DatasetError(
            self._undecodable(fragment.path, name, int(row[1]) - 1 if row else None)
        )


def _decodes(value: bytes) -> bool:
    """Whether bytes are valid UTF-8 (what pyarrow's string columns hold)."""
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# Separators that a file split by something else shows inside its single header name.
_OTHER_DELIMITERS = (";", "\t", "|", ",")
# The header row is parsed from at most this many bytes: pyarrow's own first block.
_HEADER_BYTES = 1 << 20

ReaderKind = ParquetReader | CSVReader
# The reader of each format that a manifest names.
_READER_OF_FORMAT = {"parquet": "ParquetReader", "csv": "CSVReader"}


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

    A write may carry key-value metadata (text keys and values, e.g. the lineage of the rows,
    see `components.core.lineage`), known before the first batch. Each kind keeps it where its
    format allows, and `read_metadata` reads it back: Parquet in the file's own schema metadata,
    CSV in a JSON sidecar file (see each kind).

    Args:
        path: the output file, a local path or a URI that pyarrow opens.
    """

    KIND: str
    path: str

    @abc.abstractmethod
    def sink(self, stream: T.Any, schema: pa.Schema) -> Sink:
        """Open a format-specific sink over an output stream.

        Args:
            stream: the temporary file's output stream.
            schema: the first batch's schema; its metadata holds the write's metadata.
        """

    @abc.abstractmethod
    def read_metadata(self) -> dict[str, str]:
        """The metadata that the last write to the path carried ({} when it carried none).

        Raises:
            DatasetError: the output cannot be read.
        """

    @contextlib.contextmanager
    def open(self, metadata: T.Mapping[str, str] | None = None) -> T.Iterator[Sink]:
        """Open the output; on any error the temporary file is removed and nothing is published.

        Args:
            metadata: key-value pairs kept with the output (see the kind for where).

        Raises:
            DatasetError: a metadata key or value is not text, or a key is one that the
                Parquet format or pandas reserve; raised before anything is written.

        Example:
            with writer.open(metadata={"lineage.model_name": "bikes"}) as sink:
                for batch in batches:
                    sink.write(batch)
        """
        metadata = _checked_metadata(self.path, metadata)
        filesystem, path = resolve(self.path)
        parent, name = os.path.split(path.rstrip("/"))
        if isinstance(filesystem, pafs.LocalFileSystem):
            filesystem.create_dir(parent, recursive=True)
        _remove_stale_temporaries(filesystem, parent, name)
        temporary = _temporary_name(parent, name)
        lazy = _LazySink(self, filesystem, temporary, metadata)
        try:
            yield lazy
            lazy.close()
            self.publish(filesystem, temporary, path, metadata)
        except BaseException:
            lazy.abort()
            raise
        logger.info("wrote %s rows to %s", lazy.rows, self.path)

    def publish(
        self, filesystem: pafs.FileSystem, temporary: str, path: str, metadata: dict[str, str]
    ) -> None:
        """Move the complete temporary file to its final name.

        Args:
            filesystem: where both files are.
            temporary: the complete temporary file.
            path: the final name, within the filesystem.
            metadata: the write's metadata (already inside the file for formats that hold it).
        """
        filesystem.move(temporary, path)

    def write(self, data: Data, metadata: T.Mapping[str, str] | None = None) -> None:
        """Write all the data at once, with optional metadata (see `open`)."""
        with self.open(metadata) as sink:
            sink.write(data)


# Schema metadata keys that pyarrow and pandas write and read themselves: a write's metadata
# must not replace them, or the file would no longer read back as the same frame.
_RESERVED_KEY = re.compile(r"pandas|ARROW:.*")


def _checked_metadata(path: str, metadata: T.Mapping[str, str] | None) -> dict[str, str]:
    """A plain dict of text keys and values, or a DatasetError naming the first bad pair."""
    checked = {}
    for key, value in (metadata or {}).items():
        if not isinstance(key, str) or not key or not isinstance(value, str):
            raise DatasetError(
                f"metadata for {path}: keys and values must be text and keys non-empty; "
                f"got {key!r}: {reprlib.repr(value)}"
            )
        if _RESERVED_KEY.fullmatch(key):
            raise DatasetError(
                f"metadata for {path}: the key {key!r} is reserved by pyarrow and pandas; "
                "choose a namespaced key, e.g. 'lineage.model_name'"
            )
        checked[key] = value
    return checked


def _temporary_name(parent: str, name: str) -> str:
    """A hidden name beside the output, unique to this write (see _remove_stale_temporaries)."""
    return f"{parent}/.{name}.tmp-{uuid.uuid4().hex[:8]}"


def _remove_stale_temporaries(filesystem: pafs.FileSystem, parent: str, name: str) -> None:
    """Delete what an earlier writer of the same output left when it was killed mid-write.

    A SIGKILL or an OOM kill skips the cleanup of `open`; a retried step writes to the same
    place, so the next write clears those hidden `.NAME.tmp-*` files.
    """
    prefix = f".{name}.tmp-"
    try:
        entries = filesystem.get_file_info(pafs.FileSelector(parent, allow_not_found=True))
    except (OSError, pa.ArrowException):
        return  # listing is a courtesy: never fail a write for it
    for entry in entries:
        if entry.base_name.startswith(prefix) and entry.type == pafs.FileType.File:
            with contextlib.suppress(OSError, pa.ArrowException):
                filesystem.delete_file(entry.path)
                logger.info("removed a stale temporary file %s", entry.path)


class _LazySink(Sink):
    """Defer opening the file until the first batch gives the schema."""

    def __init__(
        self,
        writer: Writer,
        filesystem: pafs.FileSystem,
        temporary: str,
        metadata: dict[str, str],
    ):
        self.writer, self.filesystem, self.temporary = writer, filesystem, temporary
        self.metadata = metadata
        self.stream: T.Any = None
        self.inner: Sink | None = None
        self.rows = 0

    def write(self, data: Data) -> None:
        table = to_table(data)
        if self.inner is None:
            self.stream = self.filesystem.open_output_stream(self.temporary)
            # Added to, not replacing, the batch's own metadata: pandas' (dtypes, index) stays.
            schema = table.schema.with_metadata(
                {**(table.schema.metadata or {}), **_encoded(self.metadata)}
            )
            self.inner = self.writer.sink(self.stream, schema)
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


def _encoded(metadata: dict[str, str]) -> dict[bytes, bytes]:
    """Metadata as the UTF-8 bytes that Arrow schemas hold."""
    return {key.encode(): value.encode() for key, value in metadata.items()}


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
    """Write one Parquet file, batch by batch.

    The write's metadata goes into the file's key-value metadata (the footer, beside pandas'
    own), where any Parquet tool shows it: `pyarrow.parquet.read_schema(path).metadata`,
    DuckDB's `parquet_kv_metadata(path)`, `parquet-tools meta`.
    """

    KIND: T.Literal["ParquetWriter"] = "ParquetWriter"
    compression: str = "zstd"

    def sink(self, stream, schema) -> Sink:
        """A Parquet writer with the configured compression."""
        return _TableSink(schema, pq.ParquetWriter(stream, schema, compression=self.compression))

    def read_metadata(self) -> dict[str, str]:
        """The file's key-value metadata, without the keys that pyarrow and pandas keep."""
        filesystem, path = resolve(self.path)
        try:
            metadata = pq.read_schema(path, filesystem=filesystem).metadata or {}
        except (pa.ArrowException, OSError) as error:
            raise DatasetError(f"cannot read the metadata of {self.path}: {error}") from error
        decoded = {key.decode(): value.decode() for key, value in metadata.items()}
        return {key: value for key, value in decoded.items() if not _RESERVED_KEY.fullmatch(key)}


class CSVWriter(Writer, frozen=True):
    """Write one CSV file with a header row, batch by batch.

    CSV has no place for metadata: a write that carries some also writes it, as one JSON object,
    to a sidecar file `_<name>.metadata.json` beside the output (`sidecar`). The leading `_`
    follows the Hadoop convention (`_SUCCESS`, `_common_metadata`) that pyarrow and Spark follow
    too: a reader of the folder skips the sidecar instead of parsing it as data.

    The sidecar always describes the file beside it: a write removes the previous write's
    sidecar before it publishes the new file, and publishes its own sidecar right after. A
    failure between the two leaves the new file without a sidecar, never with a wrong one.
    """

    KIND: T.Literal["CSVWriter"] = "CSVWriter"

    def sink(self, stream, schema) -> Sink:
        """A CSV writer that writes the header with the first batch."""
        return _TableSink(schema, pacsv.CSVWriter(stream, schema))

    def sidecar(self) -> str:
        """The path (or URI) of the metadata sidecar file beside the output."""
        location, query = self.path, ""
        if "://" in location:  # a URI's options ("?region=...") stay at its end
            location, mark, options = location.partition("?")
            query = mark + options
        parent, slash, name = location.rstrip("/").rpartition("/")
        return f"{parent}{slash}_{name}.metadata.json{query}"

    def publish(self, filesystem, temporary, path, metadata) -> None:
        """Write the sidecar's temporary file, then publish the output, then the sidecar."""
        _, sidecar = resolve(self.sidecar())
        parent, name = os.path.split(sidecar)
        _remove_stale_temporaries(filesystem, parent, name)
        staged = _temporary_name(parent, name) if metadata else None
        try:
            if staged is not None:
                with filesystem.open_output_stream(staged) as stream:
                    stream.write(json.dumps(metadata, indent=2, sort_keys=True).encode())
            if filesystem.get_file_info(sidecar).type == pafs.FileType.File:
                filesystem.delete_file(sidecar)
            filesystem.move(temporary, path)
            if staged is not None:
                filesystem.move(staged, sidecar)
        except BaseException:
            if staged is not None:
                with contextlib.suppress(OSError, pa.ArrowException):
                    filesystem.delete_file(staged)
            raise

    def read_metadata(self) -> dict[str, str]:
        """The sidecar's key-value pairs ({} when the last write carried no metadata)."""
        filesystem, path = resolve(self.sidecar())
        try:
            if filesystem.get_file_info(path).type == pafs.FileType.NotFound:
                return {}
            with filesystem.open_input_stream(path) as stream:
                return json.loads(stream.read().decode())
        except (pa.ArrowException, OSError, ValueError) as error:
            raise DatasetError(f"cannot read the metadata of {self.path}: {error}") from error


WriterKind = ParquetWriter | CSVWriter


# %% CONFIGURATION


def _kinds(union: T.Any) -> tuple[str, ...]:
    """The KIND names of the classes in a union, in its order."""
    return tuple(kind.model_fields["KIND"].default for kind in T.get_args(union))


READER_KINDS: tuple[str, ...] = _kinds(ReaderKind)
WRITER_KINDS: tuple[str, ...] = _kinds(WriterKind)

# Built once: a TypeAdapter compiles its validator when it is created.
_READERS = pdt.TypeAdapter(T.Annotated[ReaderKind, pdt.Field(discriminator="KIND")])
_WRITERS = pdt.TypeAdapter(T.Annotated[WriterKind, pdt.Field(discriminator="KIND")])


def is_csv(path: str) -> bool:
    """Whether a path or URI names CSV by its extension.

    Args:
        path: a local path or a URI; a URI's options after "?" are not part of its name.

    Returns:
        True when the name ends in .csv (any case, trailing "/" ignored).
    """
    if "://" in path:
        path = path.split("?", 1)[0]
    return path.lower().rstrip("/").endswith(".csv")


def reader_config(
    path: str, options: T.Mapping[str, T.Any] | None = None, **overrides: T.Any
) -> dict[str, T.Any]:
    """The configuration of a reader, as a job's configuration file would hold it.

    Args:
        path: the input path or URI.
        options: reader options; a KIND here picks the reader.
        **overrides: options that win over those in options.

    Returns:
        A plain dict with KIND (CSVReader for a .csv path, else ParquetReader, unless given),
        path and the options.
    """
    default = "CSVReader" if is_csv(path) else "ParquetReader"
    return _config(default, path, options, overrides)


def writer_config(
    path: str, options: T.Mapping[str, T.Any] | None = None, **overrides: T.Any
) -> dict[str, T.Any]:
    """The configuration of a writer, as a job's configuration file would hold it.

    Args:
        path: the output path or URI.
        options: writer options; a KIND here picks the writer.
        **overrides: options that win over those in options.

    Returns:
        A plain dict with KIND (CSVWriter for a .csv path, else ParquetWriter, unless given),
        path and the options.
    """
    default = "CSVWriter" if is_csv(path) else "ParquetWriter"
    return _config(default, path, options, overrides)


def _config(
    default: str, path: str, options: T.Mapping[str, T.Any] | None, overrides: T.Mapping
) -> dict[str, T.Any]:
    """Merge: the default KIND, then options, then overrides; the path argument wins."""
    return {"KIND": default, **(options or {}), **overrides, "path": path}


def reader_for(path: str, **options: T.Any) -> ReaderKind:
    """Build a reader from its configuration (see reader_config).

    Args:
        path: the input path or URI.
        **options: reader options, KIND included (else chosen by the path's extension).

    Returns:
        The reader.

    Raises:
        DatasetError: the KIND is unknown (the message lists the allowed ones), or an option
            is invalid (the message names it and the rule).
    """
    return _build("reader", _READERS, READER_KINDS, reader_config(path, options))


def writer_for(path: str, **options: T.Any) -> WriterKind:
    """Build a writer from its configuration (see writer_config).

    Args:
        path: the output path or URI.
        **options: writer options, KIND included (else chosen by the path's extension).

    Returns:
        The writer.

    Raises:
        DatasetError: the KIND is unknown (the message lists the allowed ones), or an option
            is invalid (the message names it and the rule).
    """
    return _build("writer", _WRITERS, WRITER_KINDS, writer_config(path, options))


def _build(role: str, adapter: pdt.TypeAdapter, kinds: tuple[str, ...], config: dict) -> T.Any:
    """Validate a configuration into a reader or a writer, or raise a one-line DatasetError."""
    kind = config.get("KIND")
    # Checked here, not read from pydantic's union_tag_invalid error, so the message is ours.
    if kind not in kinds:
        raise DatasetError(f"unknown {role} KIND {kind!r}; allowed: {', '.join(kinds)}")
    try:
        return adapter.validate_python(config)
    except pdt.ValidationError as error:
        # "from None": the message says it all; pydantic's chained multi-line dump would not.
        raise DatasetError(f"invalid {kind} for {config['path']}: {_problems(error)}") from None


def _problems(error: pdt.ValidationError) -> str:
    """Pydantic's errors on one line: "batch_size: Input should be greater than 0 (got 0)"."""
    problems = []
    for problem in error.errors(include_url=False):
        field = ".".join(str(part) for part in problem["loc"][1:]) or "options"  # [0]: the KIND
        got = "" if problem["type"] == "missing" else f" (got {reprlib.repr(problem['input'])})"
        problems.append(f"{field}: {problem['msg']}{got}")
    return "; ".join(problems)
