"""Writing: the writers' base class and the sinks that publish a file only once complete."""

from __future__ import annotations

import abc
import contextlib
import logging
import os
import re
import reprlib
import typing as T
import uuid

import pyarrow as pa
import pyarrow.fs as pafs
import pydantic as pdt

from components.io.datasets.base import Data, DatasetError, has_extension, resolve, to_table

logger = logging.getLogger(__name__)


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
    # The file extensions a writer of this kind is chosen for when no KIND is given.
    EXTENSIONS: T.ClassVar[tuple[str, ...]] = ()
    path: str

    @classmethod
    def chosen_for(cls, path: str) -> bool:
        """Whether this kind writes `path` when no KIND is given: by its extension."""
        return has_extension(path, cls.EXTENSIONS)

    def stream_compression(self) -> str | None:
        """The compression of the output file as a whole (a text format's `.csv.gz`), or None."""
        return None

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
            # The temporary name hides the suffix that pyarrow would detect the compression by.
            self.stream = self.filesystem.open_output_stream(
                self.temporary, compression=self.writer.stream_compression()
            )
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
