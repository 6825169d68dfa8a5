"""Configuration: readers and writers from plain dicts, as a job's configuration holds them."""

from __future__ import annotations

import reprlib
import typing as T

import pydantic as pdt

from components.io.datasets.base import DatasetError, Reader
from components.io.datasets.csv import CSVReader, CSVWriter
from components.io.datasets.parquet import ParquetReader, ParquetWriter
from components.io.datasets.sinks import Writer
from components.utils import factories

# The registries of readers and writers: a KIND, `{type, config}` or a user's
# `package.module:Class`; with no KIND, the kind whose extensions the path has, else Parquet (a
# folder of parts, or a name without a known extension).
READERS = factories.Factory("reader", Reader, (ParquetReader, CSVReader), fallback=ParquetReader)
WRITERS = factories.Factory("writer", Writer, (ParquetWriter, CSVWriter), fallback=ParquetWriter)
READER_KINDS: tuple[str, ...] = READERS.names
WRITER_KINDS: tuple[str, ...] = WRITERS.names
# A job's reader or writer field: an instance, or a config built by its registry.
ReaderKind = T.Annotated[pdt.SerializeAsAny[Reader], pdt.BeforeValidator(READERS.coerce)]
WriterKind = T.Annotated[pdt.SerializeAsAny[Writer], pdt.BeforeValidator(WRITERS.coerce)]


def reader_config(
    path: str, options: T.Mapping[str, T.Any] | None = None, **overrides: T.Any
) -> dict[str, T.Any]:
    """The configuration of a reader, as a job's configuration file would hold it.

    Args:
        path: the input path or URI.
        options: reader options; a KIND here picks the reader.
        **overrides: options that win over those in options.

    Returns:
        A plain dict with KIND (unless given: the reader chosen for the path's extension, see
        `READERS`), path and the options.
    """
    default = factories.kind_of(READERS.choose(path))
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
        A plain dict with KIND (unless given: the writer chosen for the path's extension, see
        `WRITERS`), path and the options.
    """
    default = factories.kind_of(WRITERS.choose(path))
    return _config(default, path, options, overrides)


def _config(
    default: str, path: str, options: T.Mapping[str, T.Any] | None, overrides: T.Mapping
) -> dict[str, T.Any]:
    """Merge: the default KIND, then options, then overrides; the path argument wins."""
    return {"KIND": default, **(options or {}), **overrides, "path": path}


def reader_for(path: str, **options: T.Any) -> Reader:
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
    return T.cast(Reader, _build(READERS, reader_config(path, options)))


def writer_for(path: str, **options: T.Any) -> Writer:
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
    return T.cast(Writer, _build(WRITERS, writer_config(path, options)))


def _build(registry: factories.Factory[T.Any], config: dict[str, T.Any]) -> T.Any:
    """Build a reader or a writer from its configuration, or raise a one-line DatasetError."""
    kind = config.get("KIND")
    try:
        registry.resolve(kind)
    except factories.FactoryError as error:
        if isinstance(kind, str) and ":" in kind:  # an import path: why it cannot be used
            raise DatasetError(str(error)) from None
        # A name: ours lists the kinds a user may give.
        raise DatasetError(
            f"unknown {registry.role} KIND {kind!r}; allowed: {', '.join(registry.names)}, or "
            f"the import path package.module:Class of a subclass of "
            f"{factories.qualified(registry.base)}"
        ) from None
    try:
        return registry.coerce(config)
    except pdt.ValidationError as error:
        # "from None": the message says it all; pydantic's chained multi-line dump would not.
        raise DatasetError(f"invalid {kind} for {config['path']}: {_problems(error)}") from None


def _problems(error: pdt.ValidationError) -> str:
    """Pydantic's errors on one line: "batch_size: Input should be greater than 0 (got 0)"."""
    problems = []
    for problem in error.errors(include_url=False):
        field = ".".join(str(part) for part in problem["loc"]) or "options"
        got = "" if problem["type"] == "missing" else f" (got {reprlib.repr(problem['input'])})"
        problems.append(f"{field}: {problem['msg']}{got}")
    return "; ".join(problems)
