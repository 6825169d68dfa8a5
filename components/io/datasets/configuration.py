"""Configuration: readers and writers from plain dicts, as a job's configuration holds them."""

from __future__ import annotations

import reprlib
import typing as T

import pydantic as pdt

from components.io.datasets.base import DatasetError
from components.io.datasets.csv import CSVReader, CSVWriter
from components.io.datasets.parquet import ParquetReader, ParquetWriter

ReaderKind = ParquetReader | CSVReader
WriterKind = ParquetWriter | CSVWriter


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
