"""Tests for sharding: balanced splits, pieces listed from metadata, shard readers, samples drawn
across an input, and the manifest that publishes the shards' parts as one dataset.

Every input is a small real file written here (Parquet with several row groups, folders of
Parquet and of CSV files); nothing needs a server.
"""

from __future__ import annotations

import itertools
import json
import os
import pathlib
import random

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from components.core import schemas
from components.io import datasets, shards

# The single Parquet file: 1000 rows in 10 row groups of 100.
ROWS, GROUP = 1000, 100
# The Parquet folder: each file's rows and row group size; the empty file holds no rows.
FOLDER = {"part-0.parquet": (250, 100), "part-1.parquet": (0, 100), "part-2.parquet": (450, 200)}
FOLDER |= {"part-3.parquet": (300, 300)}
# The CSV folder: each file's rows.
CSV_FILES = {"a.csv": 120, "b.csv": 30, "c.csv": 200, "d.csv": 50}


def rows(start: int, stop: int) -> pd.DataFrame:
    """Rows numbered start to stop (exclusive): an int, a float and a text column."""
    ids = list(range(start, stop))
    return pd.DataFrame(
        {
            "id": pd.Series(ids, dtype="int64"),
            "value": pd.Series([i / 8 for i in ids], dtype="float64"),
            "label": pd.Series([f"row-{i}" for i in ids]),
        }
    )


def write_parquet(path: pathlib.Path, frame: pd.DataFrame, group: int) -> None:
    """A Parquet file with row groups of `group` rows."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, path, row_group_size=group)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, pathlib.Path]:
    """One Parquet file of many row groups, a folder of Parquet files, a folder of CSV files."""
    root = tmp_path_factory.mktemp("inputs")
    single = root / "single.parquet"
    write_parquet(single, rows(0, ROWS), GROUP)
    folder = root / "parquet"
    folder.mkdir()
    start = 0
    for name, (count, group) in FOLDER.items():
        write_parquet(folder / name, rows(start, start + count), group)
        start += count
    csv = root / "csv"
    csv.mkdir()
    start = 0
    for name, count in CSV_FILES.items():
        rows(start, start + count).to_csv(csv / name, index=False)
        start += count
    return {"file": single, "folder": folder, "csv": csv}


def reader_of(inputs: dict[str, pathlib.Path], source: str, **options) -> datasets.ReaderKind:
    kind = "CSVReader" if source == "csv" else "ParquetReader"
    return datasets.reader_for(str(inputs[source]), KIND=kind, **options)


def expected_rows(source: str) -> pd.DataFrame:
    """Every row of an input, in its order."""
    total = {"file": ROWS, "folder": 1000, "csv": sum(CSV_FILES.values())}[source]
    return rows(0, total)


def read_piece(piece: shards.Piece) -> pd.DataFrame:
    """A piece's rows as pyarrow and pandas read them, without the readers under test."""
    if piece.path.endswith(".csv"):
        return pd.read_csv(piece.path)
    parquet = pq.ParquetFile(piece.path)
    groups = piece.row_groups if piece.row_groups is not None else range(parquet.num_row_groups)
    return parquet.read_row_groups(list(groups)).to_pandas()


def plan_of(reader: datasets.Reader, parts: int) -> shards.ShardPlan:
    """A plan as the planning job makes it: balanced runs of the pieces, adjacent ones merged."""
    pieces = reader.list_pieces()
    runs = shards.split_balanced([piece.weight for piece in pieces], parts)
    return shards.ShardPlan(
        inputs=reader.model_dump(exclude={"pieces", "columns"}),
        finder={"KIND": "RegisteredFinder", "name": "bikes", "version": 3},
        model_uri="models:/bikes/3",
        model_name="bikes",
        model_version=3,
        shards=[shards.merge_adjacent([pieces[index] for index in run]) for run in runs],
    )


def listing(folder: pathlib.Path) -> list[str]:
    """Every entry of a folder, hidden files included."""
    return sorted(path.name for path in folder.iterdir())


def concat(frames) -> pd.DataFrame:
    return pd.concat(list(frames), ignore_index=True)


# %% SPLITS


def check_runs(weights: list[int], parts: int, runs: list[range]) -> None:
    """Runs cover every item once, in order, none empty, exactly min(parts, items) of them."""
    assert len(runs) == min(parts, len(weights))
    assert all(isinstance(run, range) and run.step == 1 and len(run) > 0 for run in runs)
    assert [index for run in runs for index in run] == list(range(len(weights)))


def best_largest_run(weights: list[int], parts: int) -> int:
    """The smallest largest run over every split into min(parts, items) contiguous runs."""
    count = min(parts, len(weights))
    best = None
    for cuts in itertools.combinations(range(1, len(weights)), count - 1):
        bounds = [0, *cuts, len(weights)]
        largest = max(sum(weights[a:b]) for a, b in itertools.pairwise(bounds))
        best = largest if best is None else min(best, largest)
    return best


def largest_run(weights: list[int], runs: list[range]) -> int:
    return max(sum(weights[index] for index in run) for run in runs)


def test_split_balanced_covers_every_item_once_in_order_in_the_runs_asked():
    generator = random.Random(20240501)
    for _ in range(200):
        weights = [generator.randint(0, 50) for _ in range(generator.randint(1, 30))]
        for parts in (1, 2, 3, 5, len(weights), len(weights) + 3):
            check_runs(weights, parts, shards.split_balanced(weights, parts))


def test_split_balanced_largest_run_is_the_best_any_contiguous_split_can_do():
    generator = random.Random(7)
    for _ in range(400):
        weights = [
            generator.choice([0, 1, 2, 3, 5, 8, 13, 40]) for _ in range(generator.randint(1, 9))
        ]
        parts = generator.randint(1, len(weights) + 1)
        runs = shards.split_balanced(weights, parts)
        check_runs(weights, parts, runs)
        assert largest_run(weights, runs) == best_largest_run(weights, parts), (weights, parts)


def test_split_balanced_shares_equal_weights_evenly():
    runs = shards.split_balanced([100] * 10, 3)
    check_runs([100] * 10, 3, runs)
    assert sorted(len(run) for run in runs) == [3, 3, 4]  # never 4 / 4 / 2
    assert sorted(len(run) for run in shards.split_balanced([1] * 12, 5)) == [2, 2, 2, 3, 3]
    assert [len(run) for run in shards.split_balanced([7] * 6, 6)] == [1] * 6
    # One heavy item alone, the others shared by the other runs.
    assert shards.split_balanced([1, 1, 1, 1, 10, 1, 1, 1, 1], 3) == [
        range(0, 4),
        range(4, 5),
        range(5, 9),
    ]


def test_split_balanced_accepts_zero_weights_and_no_items():
    for weights in ([0] * 5, [0, 0, 7, 0, 0], [3, 0, 0, 0, 0, 0]):
        for parts in (1, 2, 3, 5, 8):
            runs = shards.split_balanced(weights, parts)
            check_runs(weights, parts, runs)
            assert largest_run(weights, runs) == best_largest_run(weights, parts)
    assert shards.split_balanced([], 3) == []


@pytest.mark.parametrize("parts", [0, -2])
def test_split_balanced_refuses_fewer_than_one_part(parts):
    with pytest.raises(shards.ShardError, match=f"shards must be at least 1, got {parts}"):
        shards.split_balanced([1, 2, 3], parts)


def test_split_balanced_refuses_negative_weights():
    with pytest.raises(shards.ShardError, match="piece weights must be >= 0"):
        shards.split_balanced([4, -1, 2], 2)


def test_spread_picks_evenly_spaced_indices_from_the_first_to_the_last():
    assert shards.spread(10, 4) == [0, 3, 6, 9]
    assert shards.spread(10, 2) == [0, 9]
    assert shards.spread(10, 1) == [0]
    assert shards.spread(3, 10) == [0, 1, 2]
    assert shards.spread(0, 5) == [] and shards.spread(5, 0) == []
    for count, chosen in itertools.product(range(1, 40), range(1, 12)):
        indices = shards.spread(count, chosen)
        assert len(indices) == min(count, chosen)
        assert indices == sorted(set(indices))
        assert indices[0] == 0 and (chosen == 1 or indices[-1] == count - 1)


def test_merge_adjacent_joins_consecutive_row_groups_of_one_file_only():
    a0 = shards.Piece(path="a", row_groups=[0], rows=10, bytes=100)
    a1 = shards.Piece(path="a", row_groups=[1], rows=5, bytes=50)
    b0 = shards.Piece(path="b", row_groups=[0], rows=7, bytes=70)
    a2 = shards.Piece(path="a", row_groups=[2], rows=None, bytes=20)
    csv = shards.Piece(path="c.csv", bytes=300)
    assert shards.merge_adjacent([a0, a1, b0, a2, csv, csv]) == [
        shards.Piece(path="a", row_groups=[0, 1], rows=15, bytes=150),
        b0,
        a2,
        csv,  # whole files are never joined: each is read once
        csv,
    ]
    assert shards.merge_adjacent([a1, a2]) == [
        shards.Piece(path="a", row_groups=[1, 2], rows=None, bytes=70)
    ]
    assert shards.merge_adjacent([]) == []


def test_a_piece_weighs_its_rows_when_known_else_its_bytes():
    assert shards.Piece(path="a", row_groups=[0], rows=0, bytes=500).weight == 0
    assert shards.Piece(path="a.csv", bytes=500).weight == 500
    with pytest.raises(ValueError):
        shards.Piece(path="a", rows=-1)


# %% PIECES, FROM METADATA ONLY


def test_a_parquet_file_has_one_piece_per_row_group(inputs):
    pieces = reader_of(inputs, "file").list_pieces()
    path = str(inputs["file"])
    assert [(piece.path, piece.row_groups, piece.rows) for piece in pieces] == [
        (path, [group], GROUP) for group in range(ROWS // GROUP)
    ]
    assert all(piece.bytes > 0 for piece in pieces)
    footer = pq.ParquetFile(path).metadata
    assert [piece.bytes for piece in pieces] == [
        footer.row_group(group).total_byte_size for group in range(footer.num_row_groups)
    ]


def test_a_parquet_folder_has_the_row_groups_of_its_files_without_the_empty_one(inputs):
    pieces = reader_of(inputs, "folder").list_pieces()
    folder = inputs["folder"]
    assert [(pathlib.Path(p.path).name, p.row_groups, p.rows) for p in pieces] == [
        ("part-0.parquet", [0], 100),
        ("part-0.parquet", [1], 100),
        ("part-0.parquet", [2], 50),
        ("part-2.parquet", [0], 200),
        ("part-2.parquet", [1], 200),
        ("part-2.parquet", [2], 50),
        ("part-3.parquet", [0], 300),
    ]
    assert {pathlib.Path(piece.path).parent for piece in pieces} == {folder}


def test_a_csv_folder_has_one_piece_per_file_with_its_size_and_unknown_rows(inputs):
    pieces = reader_of(inputs, "csv").list_pieces()
    assert pieces == [
        shards.Piece(path=str(inputs["csv"] / name), bytes=os.path.getsize(inputs["csv"] / name))
        for name in CSV_FILES
    ]
    assert all(piece.rows is None and piece.row_groups is None for piece in pieces)
    assert [piece.weight for piece in pieces] == [piece.bytes for piece in pieces]


def test_pieces_are_listed_without_reading_a_row(inputs, tmp_path):
    """The data pages are garbage, the footer intact: listing works, reading fails."""
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(inputs["file"].read_bytes())
    before = reader_of(inputs, "file").list_pieces()
    data = bytearray(broken.read_bytes())
    footer = int.from_bytes(data[-8:-4], "little")
    data_end = len(data) - 8 - footer
    assert data[:4] == b"PAR1" and data[-4:] == b"PAR1" and data_end > 100
    data[16 : data_end - 16] = bytes(random.Random(3).getrandbits(8) for _ in range(data_end - 32))
    broken.write_bytes(bytes(data))
    reader = datasets.ParquetReader(path=str(broken))
    pieces = reader.list_pieces()
    assert [(p.row_groups, p.rows, p.bytes) for p in pieces] == [
        (p.row_groups, p.rows, p.bytes) for p in before
    ]
    with pytest.raises(datasets.DatasetError, match="broken.parquet"):
        reader.read()


def test_an_empty_folder_has_no_pieces(tmp_path):
    assert datasets.ParquetReader(path=str(tmp_path)).list_pieces() == []


# %% SHARD READERS


@pytest.mark.parametrize("source", ["file", "folder", "csv"])
@pytest.mark.parametrize("parts", [1, 2, 3, 4, 7, 50])
def test_the_shards_read_every_row_once_in_the_inputs_order(inputs, source, parts):
    reader = reader_of(inputs, source, batch_size=64)
    plan = plan_of(reader, parts)
    assert len(plan.shards) == min(parts, len(reader.list_pieces()))
    frames = []
    for shard in range(len(plan.shards)):
        shard_reader = datasets.reader_for(**plan.reader_config(shard))
        assert shard_reader.pieces == plan.shards[shard]
        frame = shard_reader.read()
        # Exactly its pieces' rows, in their order.
        expected = concat(read_piece(piece) for piece in plan.shards[shard])
        pd.testing.assert_frame_equal(frame, expected)
        if plan.rows is not None:
            assert len(frame) == plan.weights()[shard]
        frames.append(frame)
    pd.testing.assert_frame_equal(concat(frames), expected_rows(source))
    assert reader.read().equals(expected_rows(source))


def test_a_shard_of_row_groups_in_the_middle_of_a_file_reads_only_those(inputs):
    reader = reader_of(inputs, "file")
    piece = shards.Piece(path=str(inputs["file"]), row_groups=[3, 4, 7], rows=300)
    frame = reader.model_copy(update={"pieces": [piece]}).read()
    assert frame["id"].tolist() == [*range(300, 500), *range(700, 800)]


def test_a_shard_reader_opens_only_its_own_files(inputs, tmp_path):
    """A file outside the shard's pieces, even a broken one, is not opened."""
    folder = tmp_path / "folder"
    folder.mkdir()
    for name in FOLDER:
        (folder / name).write_bytes((inputs["folder"] / name).read_bytes())
    pieces = datasets.ParquetReader(path=str(folder)).list_pieces()
    (folder / "part-3.parquet").write_bytes(b"not parquet at all")
    first = [piece for piece in pieces if piece.path.endswith("part-0.parquet")]
    frame = datasets.ParquetReader(path=str(folder), pieces=first).read()
    assert frame["id"].tolist() == list(range(250))
    with pytest.raises(datasets.DatasetError, match="part-3.parquet"):
        datasets.ParquetReader(path=str(folder)).read()


# %% THE PLAN


def test_a_plan_round_trips_through_its_file(inputs, tmp_path):
    plan = plan_of(reader_of(inputs, "folder"), 3)
    path = tmp_path / "plan.json"
    plan.write(str(path))
    again = shards.ShardPlan.read(str(path))
    assert again == plan
    assert again.rows == 1000 and sum(again.weights()) == 1000
    assert again.balance() == max(again.weights()) / (1000 / 3)
    ref = again.model_ref()
    assert (ref.uri, ref.name, ref.version) == ("models:/bikes/3", "bikes", 3)


def test_a_plan_of_csv_files_weighs_bytes_and_knows_no_rows(inputs):
    plan = plan_of(reader_of(inputs, "csv"), 2)
    assert plan.rows is None
    sizes = sum(os.path.getsize(inputs["csv"] / name) for name in CSV_FILES)
    assert sum(plan.weights()) == sizes


@pytest.mark.parametrize("shard", [3, -1, 100])
def test_the_reader_of_an_unknown_shard_is_refused_naming_the_range(inputs, shard):
    plan = plan_of(reader_of(inputs, "file"), 3)
    with pytest.raises(shards.ShardError, match=f"no shard {shard}: the plan has shards 0 to 2"):
        plan.reader_config(shard)


def test_the_sample_reader_spreads_over_the_row_groups_of_every_shard(inputs):
    plan = plan_of(reader_of(inputs, "file"), 2)
    # Two shards of one merged piece each: five row groups apiece.
    assert [[piece.row_groups for piece in part] for part in plan.shards] == [
        [[0, 1, 2, 3, 4]],
        [[5, 6, 7, 8, 9]],
    ]
    config = plan.sample_reader_config(pieces=4)
    assert {key: value for key, value in config.items() if key != "pieces"} == plan.inputs
    assert [piece["row_groups"] for piece in config["pieces"]] == [[0], [3], [6], [9]]
    every = plan.sample_reader_config()
    assert [piece["row_groups"] for piece in every["pieces"]] == [[g] for g in range(10)]
    sample = concat(datasets.reader_for(**config).sample_frames(8))
    assert sample["id"].tolist() == [0, 1, 300, 301, 600, 601, 900, 901]


def test_the_sample_reader_of_csv_files_picks_whole_files_of_every_shard(inputs):
    plan = plan_of(reader_of(inputs, "csv"), 2)
    config = plan.sample_reader_config(pieces=2)
    names = [pathlib.Path(piece["path"]).name for piece in config["pieces"]]
    assert names == ["a.csv", "d.csv"]
    assert all(piece["row_groups"] is None for piece in config["pieces"])


def test_reading_a_missing_plan_is_refused(tmp_path):
    missing = tmp_path / "nowhere" / "plan.json"
    with pytest.raises(shards.ShardError, match="cannot read the shard plan .*plan.json"):
        shards.ShardPlan.read(str(missing))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{not json",
        "[]",
        json.dumps({"inputs": {}, "finder": {}, "model_uri": "m"}),  # no shards
        json.dumps({"inputs": {}, "finder": {}, "model_uri": "m", "shards": [[{"rows": 1}]]}),
        json.dumps({"inputs": {}, "finder": {}, "model_uri": "m", "shards": [], "more": 1}),
        b"\xff\xfe\x00binary",
    ],
    ids=["empty", "not-json", "a-list", "no-shards", "piece-without-path", "unknown-key", "binary"],
)
def test_reading_an_invalid_plan_is_refused(tmp_path, text):
    path = tmp_path / "plan.json"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(shards.ShardError, match="cannot read the shard plan"):
        shards.ShardPlan.read(str(path))


# %% SAMPLES


@pytest.fixture
def five_files(tmp_path) -> pathlib.Path:
    """A folder of five Parquet files of 100 rows, one row group each."""
    folder = tmp_path / "five"
    folder.mkdir()
    for number in range(5):
        write_parquet(folder / f"{number}.parquet", rows(number * 100, number * 100 + 100), 100)
    return folder


def test_a_sample_yields_at_most_the_rows_asked(five_files):
    reader = datasets.ParquetReader(path=str(five_files))
    for wanted in (1, 7, 20, 99, 500):
        frames = list(reader.sample_frames(wanted))
        assert sum(len(frame) for frame in frames) == wanted
        assert all(isinstance(frame, pd.DataFrame) and len(frame) for frame in frames)
    assert len(concat(reader.sample_frames(10_000))) == 500
    assert list(reader.sample_frames(0)) == []


def test_a_sample_of_a_folder_comes_from_every_file(five_files):
    sample = concat(datasets.ParquetReader(path=str(five_files)).sample_frames(20))
    assert sample["id"].tolist() == [
        row for first in range(0, 500, 100) for row in range(first, first + 4)
    ]
    # Fewer rows than files: one row from each of evenly spaced files.
    sample = concat(datasets.ParquetReader(path=str(five_files)).sample_frames(3))
    assert sample["id"].tolist() == [0, 200, 400]


def test_a_sample_of_csv_files_comes_from_several_files(inputs):
    sample = concat(reader_of(inputs, "csv").sample_frames(8))
    assert sample["id"].tolist() == [0, 1, 120, 121, 150, 151, 350, 351]


def test_small_pieces_leave_their_share_to_the_next_ones(tmp_path):
    folder = tmp_path / "uneven"
    folder.mkdir()
    counts = [1, 2, 100, 100, 100]
    start = 0
    for number, count in enumerate(counts):
        write_parquet(folder / f"{number}.parquet", rows(start, start + count), 100)
        start += count
    sample = concat(datasets.ParquetReader(path=str(folder), batch_size=4).sample_frames(50))
    assert len(sample) == 50
    firsts = [0, 1, 3, 103, 203]
    taken = [
        int(sample["id"].between(a, a + n - 1).sum()) for a, n in zip(firsts, counts, strict=True)
    ]
    assert taken == [1, 2, 16, 16, 15]
    assert sample["id"].is_monotonic_increasing


def test_a_sample_of_one_file_comes_from_several_row_groups(inputs):
    sample = concat(reader_of(inputs, "file").sample_frames(30))
    assert len(sample) == 30
    assert len(set(sample["id"] // GROUP)) == 10


def test_a_sample_spreads_over_the_chosen_pieces_only(inputs):
    piece = shards.Piece(path=str(inputs["file"]), row_groups=[8], rows=100)
    reader = reader_of(inputs, "file").model_copy(update={"pieces": [piece]})
    sample = concat(reader.sample_frames(5))
    assert sample["id"].tolist() == [800, 801, 802, 803, 804]


# %% THE MANIFEST


def write_parts(folder: pathlib.Path, sizes: list[int], extension: str = "parquet"):
    """Parts as the shards write them, and the manifest that lists them."""
    folder.mkdir(parents=True, exist_ok=True)
    files, parts, start = [], [], 0
    for shard, size in enumerate(sizes):
        path = folder / f"part-{shard}.{extension}"
        writer = datasets.writer_for(str(path))
        writer.write(rows(start, start + size))
        files.append(str(path))
        parts.append(shards.Part(shard=shard, uri=str(path), rows=size))
        start += size
    manifest = shards.Manifest(
        format=extension,
        files=files,
        parts=parts,
        rows=start,
        model="bikes v3",
        model_version=3,
        model_uri="models:/bikes/3",
        run_id="run-1",
        inputs="s3://bucket/input",
    )
    return manifest


def test_a_published_folder_reads_as_its_parts_in_order(tmp_path):
    published = tmp_path / "published"
    # The parts live in the shards' own folders: in any order of names.
    manifest = write_parts(tmp_path / "parts", [300, 1, 250])
    manifest = manifest.model_copy(
        update={"files": manifest.files[::-1], "parts": manifest.parts[::-1]}
    )
    shards.write_manifest(pafs.LocalFileSystem(), str(published), manifest)
    assert listing(published) == [shards.MANIFEST]
    expected = concat([rows(301, 551), rows(300, 301), rows(0, 300)])
    table = datasets.ParquetReader(path=str(published), batch_size=64).read()
    pd.testing.assert_frame_equal(table, expected)
    # Any reader of many files reads the same table from the manifest's own words.
    written = json.loads((published / shards.MANIFEST).read_text())
    dataset = pads.dataset(written["files"], format=written["format"])
    pd.testing.assert_frame_equal(dataset.to_table().to_pandas(), expected)
    assert shards.read_manifest(pafs.LocalFileSystem(), str(published)) == manifest
    assert written["version"] == shards.MANIFEST_VERSION and written["rows"] == 551


def test_a_published_folder_reads_only_the_parts_its_manifest_lists(tmp_path):
    published = tmp_path / "published"
    manifest = write_parts(published, [10, 20])
    # A part that a failed attempt left beside them, not listed.
    write_parquet(published / "part-9.parquet", rows(5000, 5100), 100)
    shards.write_manifest(pafs.LocalFileSystem(), str(published) + "/", manifest)
    frame = datasets.ParquetReader(path=str(published)).read()
    assert frame["id"].tolist() == list(range(30))
    # Its pieces are the parts' row groups, for a sharded prediction of the published rows.
    pieces = datasets.ParquetReader(path=str(published)).list_pieces()
    assert [(pathlib.Path(p.path).name, p.rows) for p in pieces] == [
        ("part-0.parquet", 10),
        ("part-1.parquet", 20),
    ]


def test_the_shards_of_a_published_folder_read_its_parts(tmp_path):
    published = tmp_path / "published"
    manifest = write_parts(tmp_path / "parts", [120, 80, 200])
    shards.write_manifest(pafs.LocalFileSystem(), str(published), manifest)
    plan = plan_of(datasets.ParquetReader(path=str(published)), 2)
    frames = [datasets.reader_for(**plan.reader_config(n)).read() for n in range(2)]
    assert [len(frame) for frame in frames] == [200, 200]
    pd.testing.assert_frame_equal(concat(frames), rows(0, 400))


def test_a_manifest_of_no_parts_reads_as_no_rows(tmp_path):
    published = tmp_path / "published"
    empty = shards.Manifest(format="parquet", files=[], parts=[], rows=0, model="bikes v3")
    shards.write_manifest(pafs.LocalFileSystem(), str(published), empty)
    reader = datasets.ParquetReader(path=str(published))
    assert reader.read().empty
    assert reader.list_pieces() == []
    assert list(reader.sample_frames(10)) == []


def test_a_csv_manifest_reads_with_a_csv_reader_only(tmp_path):
    published = tmp_path / "published"
    manifest = write_parts(tmp_path / "parts", [40, 60], extension="csv")
    shards.write_manifest(pafs.LocalFileSystem(), str(published), manifest)
    frame = datasets.CSVReader(path=str(published)).read()
    assert frame["id"].tolist() == list(range(100))
    with pytest.raises(datasets.DatasetError, match=r"holds csv parts; .*'KIND': 'CSVReader'"):
        datasets.ParquetReader(path=str(published)).read()
    parquet = tmp_path / "parquet"
    shards.write_manifest(pafs.LocalFileSystem(), str(parquet), write_parts(parquet, [5]))
    with pytest.raises(datasets.DatasetError, match="'KIND': 'ParquetReader'"):
        datasets.CSVReader(path=str(parquet)).read()


class FailingMove(pafs.LocalFileSystem):
    """The local filesystem, but its rename fails (a full disk, a lost connection)."""

    def move(self, source, destination):
        raise OSError(f"cannot move {source}")


def test_a_failed_publish_leaves_no_manifest_and_no_temporary(tmp_path):
    published = tmp_path / "published"
    manifest = write_parts(tmp_path / "parts", [10])
    with pytest.raises(OSError, match="cannot move"):
        shards.write_manifest(FailingMove(), str(published), manifest)
    assert listing(published) == []
    assert shards.read_manifest(pafs.LocalFileSystem(), str(published)) is None
    # A second publish over a first one replaces it whole.
    shards.write_manifest(pafs.LocalFileSystem(), str(published), manifest)
    bigger = write_parts(tmp_path / "parts", [10, 5])
    shards.write_manifest(pafs.LocalFileSystem(), str(published), bigger)
    assert listing(published) == [shards.MANIFEST]
    assert shards.read_manifest(pafs.LocalFileSystem(), str(published)).rows == 15


def test_a_folder_without_a_manifest_has_none(tmp_path, inputs):
    local = pafs.LocalFileSystem()
    assert shards.read_manifest(local, str(inputs["folder"])) is None
    assert shards.read_manifest(local, str(tmp_path / "nowhere")) is None
    # A folder named like one is no manifest.
    (tmp_path / "odd" / shards.MANIFEST).mkdir(parents=True)
    assert shards.read_manifest(local, str(tmp_path / "odd")) is None


def manifest_text(manifest: shards.Manifest, **changes) -> str:
    return json.dumps({**manifest.model_dump(), **changes})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("reordered", "files must list the parts' locations in order"),
        ("missing-file", "files must list the parts' locations in order"),
        ("rows", "rows must be the parts' total"),
        ("version", "manifest version 2 is newer than this reader's \\(1\\)"),
        ("format", "format"),
        ("not-json", "Invalid JSON"),
    ],
)
def test_a_wrong_manifest_is_refused(tmp_path, change, message):
    published = tmp_path / "published"
    published.mkdir()
    manifest = write_parts(tmp_path / "parts", [10, 20])
    texts = {
        "reordered": manifest_text(manifest, files=manifest.files[::-1]),
        "missing-file": manifest_text(manifest, files=manifest.files[:1]),
        "rows": manifest_text(manifest, rows=31),
        "version": manifest_text(manifest, version=2),
        "format": manifest_text(manifest, format="orc"),
        "not-json": manifest_text(manifest)[:-20],
    }
    (published / shards.MANIFEST).write_text(texts[change])
    with pytest.raises(shards.ShardError, match=f"(?s)cannot read the manifest .*{message}"):
        shards.read_manifest(pafs.LocalFileSystem(), str(published))
    with pytest.raises(datasets.DatasetError, match=f"(?s)cannot read the manifest .*{message}"):
        datasets.ParquetReader(path=str(published)).read()


def test_a_manifest_with_fields_from_a_later_release_still_reads(tmp_path):
    published = tmp_path / "published"
    published.mkdir()
    manifest = write_parts(tmp_path / "parts", [10])
    (published / shards.MANIFEST).write_text(manifest_text(manifest, checksum="abc"))
    assert shards.read_manifest(pafs.LocalFileSystem(), str(published)) == manifest


def test_a_manifest_is_checked_when_it_is_made():
    part = shards.Part(shard=0, uri="/parts/0.parquet", rows=3)
    with pytest.raises(ValueError, match="files must list the parts' locations in order"):
        shards.Manifest(format="parquet", files=[], parts=[part], rows=3, model="m")
    with pytest.raises(ValueError, match="rows must be the parts' total"):
        shards.Manifest(format="parquet", files=[part.uri], parts=[part], rows=4, model="m")
    made = shards.Manifest(format="parquet", files=[part.uri], parts=[part], rows=3, model="m")
    assert made.created_at.endswith("+00:00")


# %% SHARD REPORTS


@pytest.mark.parametrize(
    "text",
    ["", "not json", "[]", "{}", '{"shard": -1}', '{"shard": 0, "format": "orc"}'],
    ids=["empty", "not-json", "a-list", "no-shard", "negative-shard", "unknown-format"],
)
def test_a_text_that_is_no_shard_report_is_refused(text):
    with pytest.raises(shards.ShardError, match="not a shard report"):
        shards.ShardReport.parse(text)


def test_a_report_with_broken_rules_round_trips():
    report = shards.ShardReport(
        shard=2,
        uri="",
        rows=0,
        rows_in=500,
        columns=3,
        model_version=3,
        format="csv",
        violations=[
            schemas.Violation(column="temp", rule="at most 1.0", rows=4),
            schemas.Violation(column="hr", rule="not null", rows=1),
        ],
        warnings=["2 rules broken"],
        seconds=1.5,
    )
    again = shards.ShardReport.parse(report.model_dump_json())
    assert again == report
    assert [str(violation) for violation in again.violations] == [
        "column 'temp': at most 1.0 (4 rows)",
        "column 'hr': not null (1 rows)",
    ]
