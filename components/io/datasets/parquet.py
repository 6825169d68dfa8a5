"""Parquet: a reader of files and folders by row group, and a writer of one file."""

from __future__ import annotations

import typing as T

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from components.io import shards
from components.io.datasets.base import DatasetError, Reader, resolve
from components.io.datasets.sinks import _RESERVED_KEY, Sink, Writer, _TableSink

# %% READERS


class ParquetReader(Reader, frozen=True):
    """Read Parquet: one file, or a directory of files (hive partitions read as columns)."""

    KIND: T.Literal["ParquetReader"] = "ParquetReader"
    EXTENSIONS: T.ClassVar[tuple[str, ...]] = (".parquet", ".pq")

    def format(self) -> pads.FileFormat:
        """Parquet, read with pyarrow's defaults."""
        return pads.ParquetFileFormat()

    def format_hint(self, error: Exception) -> str:
        """Name the reader to set when a file is no Parquet (a CSV folder, a `.txt` file)."""
        message = str(error)
        if "magic bytes not found" not in message and "smaller than the minimum" not in message:
            return ""
        return (
            "; a folder, or a file without a known extension, is read as Parquet: for CSV "
            "files set the reader, e.g. `reader: {KIND: CSVReader}` (a file named .csv or "
            ".csv.gz is read as CSV by itself)"
        )

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


# %% WRITERS


class ParquetWriter(Writer, frozen=True):
    """Write one Parquet file, batch by batch.

    The write's metadata goes into the file's key-value metadata (the footer, beside pandas'
    own), where any Parquet tool shows it: `pyarrow.parquet.read_schema(path).metadata`,
    DuckDB's `parquet_kv_metadata(path)`, `parquet-tools meta`.
    """

    KIND: T.Literal["ParquetWriter"] = "ParquetWriter"
    EXTENSIONS: T.ClassVar[tuple[str, ...]] = (".parquet", ".pq")
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
