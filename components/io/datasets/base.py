"""The datasets' common ground: locations, tables, errors and the readers' base class.

Every reader of `components.io.datasets` is a `Reader`: it opens a file or a folder (a sharded
prediction's folder included) and checks each file's columns before a row is read.
"""

from __future__ import annotations

import abc
import collections
import os
import typing as T

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pydantic as pdt

from components import demo
from components.io import shards

Data = pd.DataFrame | pa.Table | pa.RecordBatch
# KFP's MinIO service, as a default Kubeflow Pipelines install names it.
DEFAULT_MINIO_ENDPOINT = "minio-service.kubeflow:9000"


def extension(path: str) -> str:
    """A path's or URI's extension, lowercase (`.csv`; "" for none).

    A URI's options after "?" are not part of its name, and a trailing "/" is ignored.
    """
    if "://" in path:
        path = path.split("?", 1)[0]
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""


# Compression a text format's file may carry, by the suffix after its own (`.csv.gz`); pyarrow
# reads and writes these as streams. Parquet compresses inside the file: never suffixed. Not
# `.zst`: pyarrow 25's datasets read a `.zst` file's schema from its compressed bytes.
COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".lz4": "lz4"}


def has_extension(path: str, extensions: T.Iterable[str]) -> bool:
    """Whether a path's or URI's name ends with one of the extensions (`.csv`, `.csv.gz`)."""
    if "://" in path:
        path = path.split("?", 1)[0]
    name = path.rstrip("/").rsplit("/", 1)[-1].lower()
    return any(name.endswith(suffix) and len(name) > len(suffix) for suffix in extensions)


def compression(path: str) -> str | None:
    """The stream compression a path's suffix names (`gzip` for `x.csv.gz`), or None."""
    return COMPRESSIONS.get(extension(path))


class DatasetError(ValueError):
    """A dataset cannot be read or written; the message names the path and the cause."""


def not_found(location: str) -> DatasetError:
    """The error for an input that does not exist, with what to give instead of a pattern."""
    message = f"input not found: {location}"
    if any(character in location for character in "*?["):
        # A shell or Spark user writes `part-*.csv`; the readers take the folder instead.
        message += (
            "; patterns are not expanded: give the folder that holds the files (all of them "
            "are read, hive partition folders included)"
        )
    return DatasetError(message)


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
    # The file extensions a reader of this kind is chosen for when no KIND is given.
    EXTENSIONS: T.ClassVar[tuple[str, ...]] = ()
    path: str
    batch_size: int = pdt.Field(default=131_072, gt=0)
    columns: list[str] | None = None
    pieces: list[shards.Piece] | None = None

    @classmethod
    def chosen_for(cls, path: str) -> bool:
        """Whether this kind reads `path` when no KIND is given: by its extension."""
        return has_extension(path, cls.EXTENSIONS)

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
                raise not_found(self.path)
            source: str | list[str] = path
            if info.type == pafs.FileType.Directory:
                filesystem, source = self._published(filesystem, path)
            # A folder of the user's files (not the parts of a manifest) may be hive-partitioned.
            partitioned = info.type == pafs.FileType.Directory and source == path
            if self.pieces is not None:
                # A shard opens its own files only: the plan has checked all of them.
                source = list(dict.fromkeys(piece.path for piece in self.pieces))
            # An explicit schema skips pyarrow's inspection of the first file: inspect() reads
            # each file's schema itself, and pyarrow's would refuse duplicate names vaguely.
            dataset = pads.dataset(
                source, filesystem=filesystem, format=self.format(), schema=pa.schema([])
            )
            schema = self.inspect(dataset)
            if partitioned:
                return self._with_partitions(dataset, schema, filesystem, path)
            return dataset.replace_schema(schema)
        except (pa.ArrowException, OSError) as error:
            raise DatasetError(
                f"cannot open {self.KIND} input {self.path}: {error}{self.format_hint(error)}"
            ) from error

    def _with_partitions(
        self, dataset: pads.Dataset, schema: pa.Schema, filesystem: pafs.FileSystem, folder: str
    ) -> pads.Dataset:
        """The dataset with the `key=value` folders of its files as columns (hive partitions).

        Spark, Hive and `pandas.to_parquet(partition_cols=...)` keep a partition's value in its
        folder's name, not in its files: `country=FR/part-0.parquet`. pandas reads it back as a
        column; so does this reader, after the files' own columns.
        """
        paths = [fragment.path for fragment in dataset.get_fragments()]
        found = _hive_partitions(paths, folder, own=set(schema.names))
        if found is None:
            return dataset.replace_schema(schema)
        fields, expressions = found
        schema = pa.schema([*schema, *fields], metadata=schema.metadata)
        return pads.FileSystemDataset.from_paths(
            paths,
            schema=schema,
            format=self.format(),
            filesystem=filesystem,
            partitions=expressions,
        )

    def format_hint(self, error: Exception) -> str:
        """What to set when a file is not of this kind's format ("" when that is not the cause).

        A folder or a name without a known extension is read as Parquet by default: a folder of
        CSV files, or a CSV file named `.txt`, needs the reader named.
        """
        return ""

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
            yield as_frame(batch)

    def read(self) -> pd.DataFrame:
        """Read the whole dataset into one DataFrame (for training-sized data only)."""
        batches = list(self.batches())
        if not batches:
            return as_frame(self.schema().empty_table())
        return as_frame(pa.Table.from_batches(batches))


def as_frame(data: pa.Table | pa.RecordBatch) -> pd.DataFrame:
    """The rows as a DataFrame whose columns are the data's columns, in the data's order.

    pandas' metadata in a Parquet file written from a frame with an index (`set_index("id")`
    then `to_parquet`) makes its index columns the frame's index again: they would vanish
    from the columns that the schema lists (a pass-through `id` "missing"). They stay columns;
    an unnamed index (the row numbers of a filtered frame) stays out, as pandas keeps it out of
    the columns; the rest of the metadata (nullable and timezone dtypes) still applies.
    """
    frame = data.to_pandas()
    if isinstance(frame.index, pd.RangeIndex) and frame.index.name is None:
        return frame
    # An unnamed level is pandas' row numbering (`__index_level_0__`), no column of the data;
    # nor is a level that repeats a column (`set_index("id", drop=False)`).
    named = [n for n in frame.index.names if n is not None and n not in frame.columns]
    frame = frame.reset_index(level=named) if named else frame
    frame = frame.reset_index(drop=True)
    order = [name for name in data.schema.names if name in frame.columns]
    return frame[order] if len(order) == frame.shape[1] else frame


def _refuse_duplicates(file: str, names: T.Sequence[str]) -> None:
    """Raise when a column name repeats: a by-name selection could not tell them apart."""
    counts = collections.Counter(names)
    if repeated := [name for name, count in counts.items() if count > 1]:
        raise DatasetError(
            f"{file}: duplicated column name(s) {_quoted(repeated)}; each column needs its own name"
        )


# The folder name Hive gives a partition whose value is missing.
_HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"


def _hive_partitions(
    paths: list[str], folder: str, own: set[str]
) -> tuple[list[pa.Field], list[T.Any]] | None:
    """The partition columns that `key=value` folders give files under `folder`, if any.

    Args:
        paths: the files.
        folder: the folder they were found under.
        own: the files' own columns: a key that is one of them stays the files' column.

    Returns:
        The partition columns (whole numbers as int64, anything else as text), and for each
        file the expression of its values; None when no file lies in a `key=value` folder.

    Raises:
        DatasetError: files lie under different partition keys (`year=` here, `month=` there).
    """
    import urllib.parse

    import pyarrow.compute as pc

    base = folder.rstrip("/") + "/"
    values: list[dict[str, str | None]] = []
    for path in paths:
        parts = path[len(base) :].split("/")[:-1] if path.startswith(base) else []
        pairs = [part.split("=", 1) for part in parts if "=" in part]
        values.append(
            {
                key: None if value == _HIVE_NULL else urllib.parse.unquote(value)
                for key, value in pairs
            }
        )
    first = next((index for index, found in enumerate(values) if found), None)
    if first is None:
        return None
    keys = list(values[first])
    for path, found in zip(paths, values, strict=True):
        if list(found) != keys:
            raise DatasetError(
                f"{folder}: the files lie under different partition folders: {paths[first]} "
                f"under {'/'.join(f'{k}=' for k in keys)}, {path} under "
                f"{'/'.join(f'{k}=' for k in found) or 'none'}"
            )
    fields = []
    for key in keys:
        column = [value for found in values if (value := found[key]) is not None]
        whole = all(v.lstrip("-").isdigit() and not (len(v) > 1 and v[0] == "0") for v in column)
        fields.append(pa.field(key, pa.int64() if column and whole else pa.string()))
    fields = [field for field in fields if field.name not in own]
    expressions = []
    for found in values:
        expression = pc.scalar(True)
        for field in fields:
            value = found[field.name]
            if value is None:
                expression = expression & pc.field(field.name).is_null()
            else:
                typed = int(value) if pa.types.is_integer(field.type) else value
                expression = expression & (pc.field(field.name) == pa.scalar(typed, field.type))
        expressions.append(expression)
    return fields, expressions


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


# The reader of each format that a manifest names.
_READER_OF_FORMAT = {"parquet": "ParquetReader", "csv": "CSVReader"}
