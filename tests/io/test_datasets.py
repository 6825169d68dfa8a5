"""Tests for the dataset readers (streamed batches) and writers (atomic, nothing half-written)."""

from __future__ import annotations

import math
import pathlib

import pandas as pd
import pytest

from components.io import datasets

ROWS = 1000
BATCH = 128


@pytest.fixture(scope="module")
def frame(bike) -> pd.DataFrame:
    """A slice of the demo data: ints, floats and a date column."""
    return bike.head(ROWS).reset_index(drop=True)


@pytest.fixture(scope="module")
def sources(frame, tmp_path_factory) -> dict[str, pathlib.Path]:
    """The same rows as one Parquet file, a directory of three Parquet files, and a CSV."""
    root = tmp_path_factory.mktemp("sources")
    single = root / "single.parquet"
    frame.to_parquet(single, index=False)
    directory = root / "parts"
    directory.mkdir()
    for i, (start, stop) in enumerate([(0, 400), (400, 700), (700, ROWS)]):
        frame.iloc[start:stop].to_parquet(directory / f"part-{i}.parquet", index=False)
    csv = root / "rows.csv"
    frame.to_csv(csv, index=False)
    return {"parquet": single, "directory": directory, "csv": csv}


def listing(directory: pathlib.Path) -> list[str]:
    """Every entry of a directory, hidden temporary files included."""
    return sorted(path.name for path in directory.iterdir())


# %% READERS


@pytest.mark.parametrize("source", ["parquet", "directory", "csv"])
@pytest.mark.parametrize("as_uri", [False, True], ids=["path", "file-uri"])
def test_reader_streams_batches_of_the_configured_size(frame, sources, source, as_uri):
    path = sources[source].as_uri() if as_uri else str(sources[source])
    reader = datasets.reader_for(path, batch_size=BATCH)
    expected_kind = datasets.CSVReader if source == "csv" else datasets.ParquetReader
    assert isinstance(reader, expected_kind)
    sizes = [batch.num_rows for batch in reader.batches()]
    assert sum(sizes) == ROWS
    assert max(sizes) == BATCH
    assert all(0 < size <= BATCH for size in sizes)
    assert len(sizes) >= math.ceil(ROWS / BATCH)
    if source != "directory":  # one file: full batches, then the remainder
        assert sizes == [BATCH] * (ROWS // BATCH) + [ROWS % BATCH]
    frames = list(reader.frames())
    assert all(isinstance(part, pd.DataFrame) for part in frames)
    pd.testing.assert_frame_equal(pd.concat(frames, ignore_index=True), frame)
    pd.testing.assert_frame_equal(reader.read(), frame)


def test_reader_reads_only_the_chosen_columns(sources):
    reader = datasets.ParquetReader(path=str(sources["parquet"]), columns=["hr", "cnt"])
    assert reader.schema().names == ["hr", "cnt"]
    assert list(reader.read().columns) == ["hr", "cnt"]


def test_reader_of_a_missing_path_names_it(tmp_path):
    missing = tmp_path / "nowhere" / "data.parquet"
    reader = datasets.ParquetReader(path=str(missing))
    with pytest.raises(datasets.DatasetError, match="input not found") as caught:
        list(reader.batches())
    assert str(missing) in str(caught.value)
    with pytest.raises(datasets.DatasetError, match=str(missing)):
        reader.schema()


def test_reader_of_a_corrupt_parquet_file_names_it(tmp_path):
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"this is not parquet at all" * 10)
    reader = datasets.reader_for(str(corrupt))
    with pytest.raises(datasets.DatasetError) as caught:
        list(reader.batches())
    assert str(corrupt) in str(caught.value)
    assert "ParquetReader" in str(caught.value)


def test_reader_rejects_a_batch_size_below_one():
    with pytest.raises(ValueError, match="batch_size"):
        datasets.ParquetReader(path="x.parquet", batch_size=0)


# %% WRITERS


@pytest.mark.parametrize("name", ["out.parquet", "out.csv"])
@pytest.mark.parametrize("as_uri", [False, True], ids=["path", "file-uri"])
def test_writer_publishes_under_the_final_name_only_on_success(frame, tmp_path, name, as_uri):
    target = tmp_path / "nested" / name
    writer = datasets.writer_for(target.as_uri() if as_uri else str(target))
    assert isinstance(
        writer, datasets.CSVWriter if name.endswith(".csv") else datasets.ParquetWriter
    )
    with writer.open() as sink:
        sink.write(frame.iloc[:500])
        # Mid-write, only a hidden temporary file exists: readers never see half the rows.
        [temporary] = listing(target.parent)
        assert temporary.startswith(f".{name}.tmp-")
        assert not target.exists()
        sink.write(frame.iloc[500:])
    assert listing(target.parent) == [name]
    pd.testing.assert_frame_equal(datasets.reader_for(str(target)).read(), frame)


@pytest.mark.parametrize("name", ["out.parquet", "out.csv"])
def test_writer_leaves_nothing_when_the_block_fails(frame, tmp_path, name):
    writer = datasets.writer_for(str(tmp_path / name))
    with pytest.raises(RuntimeError, match="boom"), writer.open() as sink:
        sink.write(frame.iloc[:100])
        sink.write(frame.iloc[100:200])
        raise RuntimeError("boom")
    assert listing(tmp_path) == []


def test_writer_leaves_nothing_when_it_fails_before_the_first_batch(tmp_path):
    writer = datasets.ParquetWriter(path=str(tmp_path / "out.parquet"))
    with pytest.raises(KeyError), writer.open():
        raise KeyError("no input")
    assert listing(tmp_path) == []


def test_writer_refuses_to_publish_no_rows(tmp_path):
    writer = datasets.ParquetWriter(path=str(tmp_path / "out.parquet"))
    with pytest.raises(datasets.DatasetError, match="no rows to write"), writer.open():
        pass
    assert listing(tmp_path) == []


def test_writer_replaces_an_existing_output_atomically(frame, tmp_path):
    target = tmp_path / "out.parquet"
    writer = datasets.ParquetWriter(path=str(target))
    writer.write(frame.iloc[:10])
    writer.write(frame.iloc[10:30])
    assert listing(tmp_path) == ["out.parquet"]
    assert len(pd.read_parquet(target)) == 20
    # A failed rewrite keeps the previous output whole.
    with pytest.raises(RuntimeError), writer.open() as sink:
        sink.write(frame)
        raise RuntimeError("boom")
    assert listing(tmp_path) == ["out.parquet"]
    assert len(pd.read_parquet(target)) == 20


def test_csv_round_trip_keeps_values_and_types(tmp_path):
    original = pd.DataFrame(
        {
            "id": [1, 2, 3],
            "score": [0.5, 1.25, -3.0],
            "label": ["low", "medium", "high, or more"],
            "flag": [True, False, True],
        }
    )
    target = tmp_path / "round.csv"
    datasets.CSVWriter(path=str(target)).write(original)
    text = target.read_text().splitlines()
    assert text[0] == '"id","score","label","flag"'
    assert len(text) == 4
    restored = datasets.CSVReader(path=str(target)).read()
    pd.testing.assert_frame_equal(restored, original, check_dtype=False)
    assert restored["id"].dtype == "int64"
    assert restored["score"].dtype == "float64"
    assert restored["flag"].dtype == bool


def test_csv_reader_honours_the_delimiter(tmp_path):
    target = tmp_path / "semi.csv"
    target.write_text("a;b\n1;x\n2;y\n")
    frame = datasets.CSVReader(path=str(target), delimiter=";").read()
    assert list(frame.columns) == ["a", "b"]
    assert frame["a"].tolist() == [1, 2]


def test_writer_casts_later_batches_to_the_first_schema(tmp_path):
    target = tmp_path / "out.parquet"
    with datasets.ParquetWriter(path=str(target)).open() as sink:
        sink.write(pd.DataFrame({"x": [1.5, 2.5]}))
        sink.write(pd.DataFrame({"x": [3, 4]}))  # ints, widened to the first batch's doubles
    restored = pd.read_parquet(target)
    assert restored["x"].dtype == "float64"
    assert restored["x"].tolist() == [1.5, 2.5, 3.0, 4.0]
