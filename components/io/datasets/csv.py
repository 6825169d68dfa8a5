"""CSV: a reader that refuses what it would misread, and a writer with a metadata sidecar.

`import csv` here is the standard library's module: imports are absolute, so this module's own
name does not shadow it.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import json
import os
import re
import typing as T

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pydantic as pdt

from components.io.datasets.base import (
    COMPRESSIONS,
    DatasetError,
    Reader,
    _refuse_duplicates,
    compression,
    resolve,
)
from components.io.datasets.sinks import (
    Sink,
    Writer,
    _remove_stale_temporaries,
    _TableSink,
    _temporary_name,
)

# %% READERS


# CSV files, plain or compressed as a stream (`.csv.gz`): pyarrow decompresses them as it reads.
EXTENSIONS = (".csv", *(".csv" + suffix for suffix in COMPRESSIONS))


class CSVReader(Reader, frozen=True):
    """Read CSV with a header row; column types are inferred by pyarrow.

    Text must decode with the encoding: bytes that do not are refused with the column and row,
    rather than read as a binary column whose raw bytes would be written out again.

    Missing values are read as pandas reads them, in every column, text included: an empty
    field and the markers in `null_values` (`NA`, `N/A`, `null`, `NaN`, `None`, ...) are
    missing. pyarrow alone would keep them as text in text columns, so that a model would see
    "NA" as one more category.

    A file named `.csv.gz` (or `.csv.bz2`, `.csv.lz4`) is decompressed as it is read.

    Args:
        delimiter: the one character between values.
        encoding: the files' text encoding (a Python codec name, e.g. "latin-1").
        null_values: the texts read as missing; None means pandas' markers (`NULL_VALUES`),
            [] means none (then only numeric and other typed columns have missing values, as
            empty fields).
        strings_can_be_null: False keeps the markers as text in text columns (an empty field
            stays an empty text), for data whose text "NA" means something.
        decimal_point: the character between a number's whole and decimal parts: "," for the
            CSV that spreadsheets write in much of Europe (`1,5`, with `;` as delimiter).
    """

    KIND: T.Literal["CSVReader"] = "CSVReader"
    EXTENSIONS: T.ClassVar[tuple[str, ...]] = EXTENSIONS
    delimiter: str = pdt.Field(default=",", min_length=1, max_length=1)
    encoding: str = "utf-8"
    null_values: list[str] | None = None
    strings_can_be_null: bool = True
    decimal_point: str = pdt.Field(default=".", min_length=1, max_length=1)

    @pdt.model_validator(mode="after")
    def _distinct_separators(self) -> T.Self:
        if self.decimal_point == self.delimiter:
            raise ValueError(
                f"decimal_point and delimiter are both {self.delimiter!r}: a CSV with decimal "
                "commas separates its values by another character, most often ';'"
            )
        return self

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
            read_options=self.read_options(),
            parse_options=self.parse_options(),
            convert_options=self.convert_options(),
        )

    def convert_options(self) -> pacsv.ConvertOptions:
        """The CSV convert options: which texts are missing values, in which columns."""
        return pacsv.ConvertOptions(
            null_values=NULL_VALUES if self.null_values is None else self.null_values,
            strings_can_be_null=self.strings_can_be_null,
            decimal_point=self.decimal_point,
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
        options = pacsv.ConvertOptions(
            include_columns=[column],
            column_types={column: pa.binary()},
            null_values=self.convert_options().null_values,
            strings_can_be_null=self.strings_can_be_null,
        )
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


# The texts pandas' read_csv reads as missing (its `na_values` default), empty field included.
NULL_VALUES = [
    "",
    "#N/A",
    "#N/A N/A",
    "#NA",
    "-1.#IND",
    "-1.#QNAN",
    "-NaN",
    "-nan",
    "1.#IND",
    "1.#QNAN",
    "<NA>",
    "N/A",
    "NA",
    "NULL",
    "NaN",
    "None",
    "n/a",
    "nan",
    "null",
]
# Separators that a file split by something else shows inside its single header name.
_OTHER_DELIMITERS = (";", "\t", "|", ",")
# The header row is parsed from at most this many bytes: pyarrow's own first block.
_HEADER_BYTES = 1 << 20


# %% WRITERS


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
    EXTENSIONS: T.ClassVar[tuple[str, ...]] = EXTENSIONS

    def stream_compression(self) -> str | None:
        """`gzip` for `predictions.csv.gz` (and bz2, lz4 alike); None for `.csv`."""
        return compression(self.path)

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
