"""Shards: the plan that splits an input between pods, and the manifest that publishes their parts.

A sharded prediction runs in three steps (see `pipelines/dags/inference.py`): a plan lists the
input's pieces (Parquet row groups, CSV files) from metadata alone and splits them into balanced
shards; one pod per shard predicts its pieces into a part of its own; a last step publishes the
parts as one dataset by writing a manifest that lists them, once every shard has succeeded.
The parts stay where the shards wrote them: publishing copies no rows.
"""

from __future__ import annotations

import bisect
import contextlib
import datetime
import itertools
import json
import math
import typing as T
import uuid

import pyarrow as pa
import pyarrow.fs as pafs
import pydantic as pdt

from components.core import drift, schemas, shadow
from components.core.model_refs import ModelRef

# The manifest's file name inside the published folder. The leading "_" follows the Hadoop
# convention (`_SUCCESS`, `_common_metadata`) that pyarrow and Spark readers skip.
MANIFEST = "_manifest.json"
# The manifest format, written into it so that a reader can refuse one it does not know.
MANIFEST_VERSION = 1
# The most pieces a sample is drawn from: each is opened on its own.
SAMPLE_PIECES = 100


class ShardError(ValueError):
    """A plan, a shard's report or a manifest is wrong; the message says which and why."""


class Piece(pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """A part of an input that one shard reads whole: a file, or row groups of a Parquet file.

    Args:
        path: the file, as the input's filesystem names it.
        row_groups: the Parquet row groups read (None: the whole file).
        rows: rows in the piece, when known without reading it (Parquet footers).
        bytes: its size in bytes (compressed, as stored).
    """

    path: str
    row_groups: list[int] | None = None
    rows: int | None = pdt.Field(default=None, ge=0)
    bytes: int = pdt.Field(default=0, ge=0)

    @property
    def weight(self) -> int:
        """What balancing shards counts: rows when known, else bytes (CSV)."""
        return self.rows if self.rows is not None else self.bytes


def merge_adjacent(pieces: T.Sequence[Piece]) -> list[Piece]:
    """Join consecutive row-group pieces of the same file into one piece (a shorter plan).

    Args:
        pieces: pieces in input order.
    """
    merged: list[Piece] = []
    for piece in pieces:
        last = merged[-1] if merged else None
        if (
            last is not None
            and last.path == piece.path
            and last.row_groups is not None
            and piece.row_groups is not None
        ):
            merged[-1] = Piece(
                path=piece.path,
                row_groups=[*last.row_groups, *piece.row_groups],
                rows=None if last.rows is None or piece.rows is None else last.rows + piece.rows,
                bytes=last.bytes + piece.bytes,
            )
        else:
            merged.append(piece)
    return merged


def split_balanced(weights: T.Sequence[int], parts: int) -> list[range]:
    """Split items into min(parts, items) contiguous runs, the largest as small as can be.

    Contiguous runs keep the input's order: the shards' parts, read one after the other, are
    the rows in the order a single pod would have written them. The smallest possible largest
    run (the capacity) is found by bisection; then each run ends where its total comes closest
    to an equal share of what is left, within the capacity and leaving the rest packable into
    the runs still to come.

    Args:
        weights: each item's weight (rows or bytes), >= 0.
        parts: the most runs wanted, >= 1.

    Returns:
        Ranges of item indices, in order, none empty, covering every item once.
    """
    if parts < 1:
        raise ShardError(f"shards must be at least 1, got {parts}")
    if any(weight < 0 for weight in weights):
        raise ShardError("piece weights must be >= 0")
    items, count = len(weights), min(parts, len(weights))
    if count == 0:
        return []
    prefix = list(itertools.accumulate(weights, initial=0))

    def fullest_end(start: int, capacity: int) -> int:
        """The end of the longest run from `start` within the capacity (one item at least)."""
        return max(start + 1, bisect.bisect_right(prefix, prefix[start] + capacity) - 1)

    def runs_needed(capacity: int) -> int:
        runs, start = 0, 0
        while start < items:
            start, runs = fullest_end(start, capacity), runs + 1
        return runs

    low, high = max(weights), prefix[-1]
    while low < high:
        middle = (low + high) // 2
        if runs_needed(middle) <= count:
            high = middle
        else:
            low = middle + 1
    # least[i]: the fewest runs within the capacity that hold items i and after.
    least = [0] * (items + 1)
    for start in range(items - 1, -1, -1):
        least[start] = 1 + least[fullest_end(start, low)]
    ranges, start = [], 0
    for runs_left in range(count, 1, -1):
        # Ends that fit the capacity and leave an item, and few enough runs, for the others.
        last = min(fullest_end(start, low), items - (runs_left - 1))
        first, upper = start + 1, last
        while first < upper:  # `least` does not grow along the items: bisect it
            middle = (first + upper) // 2
            if least[middle] <= runs_left - 1:
                upper = middle
            else:
                first = middle + 1
        share = prefix[start] + (prefix[-1] - prefix[start]) / runs_left
        near = bisect.bisect_left(prefix, share, first, last + 1)
        end = min(
            (candidate for candidate in (near - 1, near) if first <= candidate <= last),
            key=lambda candidate: abs(prefix[candidate] - share),
        )
        ranges.append(range(start, end))
        start = end
    ranges.append(range(start, items))
    return ranges


class ShardPlan(pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """Which pieces each shard reads, and the one model version that every shard uses.

    Args:
        inputs: the reader's configuration (KIND, path and options), without pieces.
        finder: the finder configuration that names the model version found once by the plan,
            so that an alias moved during the run cannot split it between two versions.
        model_uri: where that model is loaded from.
        model_name: its registered name (None for a model given by URI).
        model_version: its registered version (None for a model given by URI).
        model_run_id: the run that logged it (where its reference profile is).
        challenger: the finder configuration of the challenger version found once by the
            plan, if any, so that every shard compares with the same one.
        shards: the pieces of each shard.
    """

    inputs: dict[str, T.Any]
    finder: dict[str, T.Any]
    model_uri: str
    model_name: str | None = None
    model_version: int | None = None
    model_run_id: str | None = None
    challenger: dict[str, T.Any] | None = None
    shards: list[list[Piece]]

    def model_ref(self) -> ModelRef:
        """The model every shard predicts with."""
        return ModelRef(
            uri=self.model_uri,
            name=self.model_name,
            version=self.model_version,
            run_id=self.model_run_id,
        )

    @property
    def rows(self) -> int | None:
        """The input's rows, when the format tells them without reading (Parquet)."""
        counts = [piece.rows for pieces in self.shards for piece in pieces]
        return None if any(rows is None for rows in counts) else sum(T.cast(list[int], counts))

    def weights(self) -> list[int]:
        """Each shard's weight: rows, or bytes for CSV."""
        return [sum(piece.weight for piece in pieces) for pieces in self.shards]

    def balance(self) -> float:
        """The largest shard's weight over the mean shard's (1.0: perfectly balanced)."""
        weights = self.weights()
        mean = sum(weights) / len(weights) if weights else 0
        return max(weights) / mean if mean else 1.0

    def reader_config(self, shard: int) -> dict[str, T.Any]:
        """The configuration of a reader of one shard's pieces.

        Args:
            shard: the shard's index.

        Raises:
            ShardError: there is no such shard.
        """
        if not 0 <= shard < len(self.shards):
            raise ShardError(f"no shard {shard}: the plan has shards 0 to {len(self.shards) - 1}")
        return {**self.inputs, "pieces": [piece.model_dump() for piece in self.shards[shard]]}

    def sample_reader_config(self, pieces: int = SAMPLE_PIECES) -> dict[str, T.Any]:
        """The configuration of a reader of evenly spaced pieces of every shard, for samples.

        Args:
            pieces: the most pieces (files, row groups) chosen.
        """
        every = [
            Piece(path=piece.path, row_groups=None if group is None else [group])
            for part in self.shards
            for piece in part
            for group in (piece.row_groups or [None])
        ]
        chosen = [every[index] for index in spread(len(every), pieces)]
        return {**self.inputs, "pieces": [piece.model_dump() for piece in chosen]}

    def write(self, path: str) -> None:
        """Write the plan as JSON to a local file."""
        with open(path, "w", encoding="utf-8") as file:
            file.write(self.model_dump_json(indent=1))

    @classmethod
    def read(cls, path: str) -> ShardPlan:
        """Read a plan written by `write`.

        Raises:
            ShardError: the file is missing or is not a plan.
        """
        try:
            with open(path, encoding="utf-8") as file:
                return cls.model_validate_json(file.read())
        except (OSError, UnicodeDecodeError, pdt.ValidationError) as error:
            raise ShardError(f"cannot read the shard plan {path}: {error}") from None


class ShardReport(pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """What one shard did, as the publishing step receives it (a small JSON text).

    Args:
        shard: the shard's index in the plan.
        uri: its part's location ("" when it wrote none: no rows, or broken rules).
        rows: rows predicted into the part.
        rows_in: rows read and checked.
        columns: the part's columns.
        model_version: the version that predicted (None for a model given by URI).
        format: the part's file format.
        violations: the rules its rows broke, totalled over the whole input when published.
        warnings: what the shard's user should know.
        seconds: the shard's wall time.
        tally: its rows counted into the reference profile's bins (None: drift not checked).
        estimate_tally: its rows' sums for the estimated performance, as JSON (an
            `estimation.EstimateTally`; None: not estimated).
        comparison: its challenger's comparison sums (None: no challenger).
        challenger: the challenger's label, e.g. `bike-sharing v4`.
        notes: why drift or the comparison was not checked, or only in part.
    """

    shard: int = pdt.Field(ge=0)
    uri: str = ""
    rows: int = pdt.Field(default=0, ge=0)
    rows_in: int = pdt.Field(default=0, ge=0)
    columns: int = pdt.Field(default=0, ge=0)
    model_version: int | None = None
    format: T.Literal["parquet", "csv"] = "parquet"
    violations: list[schemas.Violation] = pdt.Field(default_factory=list)
    warnings: list[str] = pdt.Field(default_factory=list)
    seconds: float = pdt.Field(default=0.0, ge=0)
    tally: drift.Tally | None = None
    # Kept as JSON here: its module loads scikit-learn, which readers of reports do not need.
    estimate_tally: dict[str, T.Any] | None = None
    comparison: shadow.Comparison | None = None
    challenger: str = ""
    notes: list[str] = pdt.Field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> ShardReport:
        """Read a report from its JSON text.

        Raises:
            ShardError: the text is not a shard's report.
        """
        try:
            return cls.model_validate_json(text)
        except pdt.ValidationError as error:
            raise ShardError(f"not a shard report: {text[:200]!r}: {error}") from None


class Part(pdt.BaseModel, strict=True, frozen=True, extra="forbid"):
    """One shard's output file, as the manifest lists it."""

    shard: int
    uri: str
    rows: int


class Manifest(pdt.BaseModel, strict=True, frozen=True, extra="ignore"):
    """The published predictions: the parts that make one table, and where they came from.

    `files` lists the parts' locations in order, ready for any reader of many files, e.g.
    `pyarrow.dataset.dataset(manifest["files"], format=manifest["format"])`.

    Args:
        version: the manifest format's version.
        format: the parts' file format (parquet or csv).
        files: the parts' locations, in shard order.
        parts: each part's shard and rows.
        rows: rows in all parts.
        model: the model that predicted them (`bike-sharing v3`).
        model_version: its registered version (None for a model given by URI).
        model_uri: where it was loaded from.
        run_id: the pipeline run that published them.
        inputs: the input's location, credentials masked.
        created_at: when the manifest was written, UTC, ISO 8601.
    """

    version: int = MANIFEST_VERSION
    format: T.Literal["parquet", "csv"]
    files: list[str]
    parts: list[Part]
    rows: int
    model: str
    model_version: int | None = None
    model_uri: str = ""
    run_id: str = ""
    inputs: str = ""
    created_at: str = pdt.Field(
        default_factory=lambda: datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    )

    @pdt.model_validator(mode="after")
    def _parts_match_files(self) -> Manifest:
        if [part.uri for part in self.parts] != self.files:
            raise ValueError("files must list the parts' locations in order")
        if sum(part.rows for part in self.parts) != self.rows:
            raise ValueError("rows must be the parts' total")
        if self.version > MANIFEST_VERSION:
            raise ValueError(
                f"manifest version {self.version} is newer than this reader's "
                f"({MANIFEST_VERSION}); upgrade kfp-model-lifecycle"
            )
        return self


def read_manifest(filesystem: pafs.FileSystem, folder: str) -> Manifest | None:
    """The manifest of a published folder, None when the folder holds none.

    Args:
        filesystem: the folder's filesystem.
        folder: the folder, as the filesystem names it.

    Raises:
        ShardError: the manifest exists but cannot be read.
    """
    path = f"{folder.rstrip('/')}/{MANIFEST}"
    try:
        if filesystem.get_file_info(path).type != pafs.FileType.File:
            return None
        with filesystem.open_input_stream(path) as stream:
            return Manifest.model_validate_json(stream.read())
    except (OSError, pa.ArrowException, pdt.ValidationError) as error:
        raise ShardError(f"cannot read the manifest {path}: {error}") from None


def write_manifest(filesystem: pafs.FileSystem, folder: str, manifest: Manifest) -> None:
    """Publish: write the manifest into the folder, under a temporary name first, then renamed.

    A reader finds either no manifest or the whole one, never part of it.

    Args:
        filesystem: the folder's filesystem.
        folder: the published folder (created when missing).
        manifest: what it lists.
    """
    folder = folder.rstrip("/")
    if isinstance(filesystem, pafs.LocalFileSystem):
        filesystem.create_dir(folder, recursive=True)
    temporary = f"{folder}/.{MANIFEST}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with filesystem.open_output_stream(temporary) as stream:
            stream.write(json.dumps(manifest.model_dump(), indent=1).encode())
        filesystem.move(temporary, f"{folder}/{MANIFEST}")
    except BaseException:
        with contextlib.suppress(OSError, pa.ArrowException):
            filesystem.delete_file(temporary)
        raise


def spread(count: int, chosen: int) -> list[int]:
    """`chosen` indices out of `count`, evenly spaced from the first to the last.

    Args:
        count: how many items there are.
        chosen: how many to pick (at most count).
    """
    chosen = min(chosen, count)
    if chosen <= 0:
        return []
    if chosen == 1:
        return [0]
    step = (count - 1) / (chosen - 1)
    return sorted({math.floor(index * step + 0.5) for index in range(chosen)})
