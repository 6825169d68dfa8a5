"""Tests for the dataset readers (streamed batches) and writers (atomic, nothing half-written)."""

from __future__ import annotations

import json
import math
import pathlib

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
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


def test_a_pattern_for_a_path_is_answered_with_the_folder_to_give(tmp_path):
    (tmp_path / "part-1.csv").write_text("a\n1\n")
    reader = datasets.reader_for(str(tmp_path / "part-*.csv"))
    with pytest.raises(datasets.DatasetError, match=r"patterns are not expanded: give the folder"):
        reader.schema()
    with pytest.raises(datasets.DatasetError) as caught:
        datasets.reader_for(str(tmp_path / "nothing.csv")).schema()
    assert str(caught.value) == f"input not found: {tmp_path / 'nothing.csv'}"


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


# %% METADATA: KEY-VALUE PAIRS CARRIED WITH AN OUTPUT (E.G. ITS LINEAGE)

METADATA = {"lineage.model_name": "bikes", "lineage.model_version": "3", "note": 'é, "x"'}


@pytest.mark.parametrize("as_uri", [False, True], ids=["path", "file-uri"])
def test_parquet_metadata_is_in_the_schema_beside_pandas_own(frame, tmp_path, as_uri):
    target = tmp_path / "out.parquet"
    writer = datasets.ParquetWriter(path=target.as_uri() if as_uri else str(target))
    with writer.open(metadata=METADATA) as sink:
        sink.write(frame.iloc[:300])
        sink.write(pa.RecordBatch.from_pandas(frame.iloc[300:], preserve_index=False))
    assert listing(tmp_path) == ["out.parquet"]  # nothing beside the file: it holds it all
    stored = pq.read_schema(target).metadata
    assert {key: stored[key.encode()].decode() for key in METADATA} == METADATA
    assert b"pandas" in stored, "pandas' own metadata (dtypes, index) must stay"
    assert writer.read_metadata() == METADATA
    # Every reader still sees the same frame.
    pd.testing.assert_frame_equal(datasets.reader_for(str(target)).read(), frame)
    pd.testing.assert_frame_equal(pd.read_parquet(target), frame)


def test_parquet_without_metadata_reads_back_none(frame, tmp_path):
    writer = datasets.ParquetWriter(path=str(tmp_path / "out.parquet"))
    writer.write(frame.head(5))
    assert writer.read_metadata() == {}


def test_csv_metadata_goes_to_a_sidecar_that_folder_readers_skip(frame, tmp_path):
    target = tmp_path / "out.csv"
    writer = datasets.CSVWriter(path=str(target))
    writer.write(frame, metadata=METADATA)
    assert listing(tmp_path) == ["_out.csv.metadata.json", "out.csv"]
    assert writer.sidecar() == str(tmp_path / "_out.csv.metadata.json")
    assert json.loads((tmp_path / "_out.csv.metadata.json").read_text()) == METADATA
    assert writer.read_metadata() == METADATA
    # The CSV itself is unchanged, and a reader of the folder does not take the sidecar as data.
    single = datasets.CSVReader(path=str(target)).read()
    folder = datasets.CSVReader(path=str(tmp_path)).read()
    pd.testing.assert_frame_equal(folder, single)
    assert len(single) == len(frame)


def test_csv_rewrite_replaces_or_removes_the_previous_sidecar(frame, tmp_path):
    writer = datasets.CSVWriter(path=str(tmp_path / "out.csv"))
    writer.write(frame.head(5), metadata=METADATA)
    writer.write(frame.head(6), metadata={"lineage.model_version": "4"})
    assert writer.read_metadata() == {"lineage.model_version": "4"}
    # A write without metadata leaves no sidecar describing rows that are gone.
    writer.write(frame.head(7))
    assert listing(tmp_path) == ["out.csv"]
    assert writer.read_metadata() == {}


@pytest.mark.parametrize("name", ["out.parquet", "out.csv"])
def test_a_failed_write_with_metadata_keeps_the_previous_output_and_metadata(frame, tmp_path, name):
    writer = datasets.writer_for(str(tmp_path / name))
    writer.write(frame.head(5), metadata={"lineage.model_version": "1"})
    before = listing(tmp_path)
    with pytest.raises(RuntimeError, match="boom"), writer.open(metadata=METADATA) as sink:
        sink.write(frame.head(10))
        raise RuntimeError("boom")
    assert listing(tmp_path) == before
    assert writer.read_metadata() == {"lineage.model_version": "1"}
    assert len(datasets.reader_for(str(tmp_path / name)).read()) == 5


@pytest.mark.parametrize("name", ["out.parquet", "out.csv"])
def test_a_failed_first_write_with_metadata_leaves_nothing(frame, tmp_path, name):
    writer = datasets.writer_for(str(tmp_path / name))
    with pytest.raises(RuntimeError, match="boom"), writer.open(metadata=METADATA) as sink:
        sink.write(frame.head(10))
        raise RuntimeError("boom")
    assert listing(tmp_path) == []


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"pandas": "{}"}, "the key 'pandas' is reserved"),
        ({"ARROW:schema": "x"}, "the key 'ARROW:schema' is reserved"),
        ({"lineage.model_version": 3}, "keys and values must be text"),
        ({"": "x"}, "keys non-empty"),
    ],
)
@pytest.mark.parametrize("name", ["out.parquet", "out.csv"])
def test_invalid_metadata_is_refused_before_anything_is_written(tmp_path, name, metadata, message):
    writer = datasets.writer_for(str(tmp_path / name))
    with pytest.raises(datasets.DatasetError, match=message) as caught:
        writer.write(pd.DataFrame({"a": [1]}), metadata=metadata)
    assert str(tmp_path / name) in str(caught.value)
    assert listing(tmp_path) == []


def test_csv_sidecar_of_a_uri_keeps_its_options():
    writer = datasets.CSVWriter(path="s3://bucket/out/predictions.csv?region=eu-west-1")
    assert writer.sidecar() == "s3://bucket/out/_predictions.csv.metadata.json?region=eu-west-1"
    assert datasets.CSVWriter(path="out.csv").sidecar() == "_out.csv.metadata.json"


# %% WHAT USERS HAVE: ENCODINGS, DELIMITERS, DUPLICATES, FOLDERS


def write_latin1(path: pathlib.Path, lines: list[str]) -> pathlib.Path:
    path.write_bytes("\n".join(lines).encode("latin-1"))
    return path


def test_csv_reader_decodes_latin1_with_the_encoding_option(tmp_path):
    source = write_latin1(tmp_path / "cities.csv", ["id,city,note", "1,Bern,ok", "2,Zürich,café"])
    frame = datasets.CSVReader(path=str(source), encoding="latin-1").read()
    assert frame["city"].tolist() == ["Bern", "Zürich"]
    assert frame["note"].tolist() == ["ok", "café"]


def test_csv_reader_refuses_undecodable_bytes_in_the_first_block(tmp_path):
    # pyarrow would infer a binary column and its raw bytes would be written out again.
    source = write_latin1(tmp_path / "cities.csv", ["id,city", "1,Bern", "2,Zürich", "3,Genf"])
    reader = datasets.CSVReader(path=str(source))
    with pytest.raises(datasets.DatasetError) as caught:
        reader.dataset()
    message = str(caught.value)
    assert message == (
        f"{source}: column 'city' is not valid utf-8 text at data row 2; set the encoding "
        "option to the file's encoding, e.g. encoding='latin-1'"
    )
    with pytest.raises(datasets.DatasetError, match="data row 2"):
        next(reader.batches())


def test_csv_reader_refuses_undecodable_bytes_found_only_while_scanning(tmp_path):
    # Beyond pyarrow's first block (1 MiB) the column is already inferred as text: the bad bytes
    # surface during the scan, as pyarrow's "invalid UTF8" error, and are explained the same way.
    rows = 200_000
    lines = ["id,city"] + [f"{i},Bern" for i in range(rows)] + [f"{rows},Zürich"]
    source = write_latin1(tmp_path / "late.csv", lines)
    reader = datasets.CSVReader(path=str(source), batch_size=50_000)
    assert reader.dataset().schema.field("city").type == "string"
    with pytest.raises(datasets.DatasetError) as caught:
        for _ in reader.batches():
            pass
    message = str(caught.value)
    assert message.startswith(f"{source}: column 'city' is not valid utf-8 text")
    assert f"at data row {rows + 1};" in message
    assert "encoding='latin-1'" in message
    frame = datasets.CSVReader(path=str(source), encoding="latin-1").read()
    assert frame["city"].iloc[-1] == "Zürich"


def test_csv_reader_refuses_text_that_its_encoding_cannot_transcode(tmp_path):
    source = write_latin1(tmp_path / "cities.csv", ["id,city", "1,Zürich"])
    with pytest.raises(datasets.DatasetError, match="the file is not valid ascii text") as caught:
        datasets.CSVReader(path=str(source), encoding="ascii").read()
    assert str(source) in str(caught.value)


def test_parquet_binary_columns_are_read_as_they_are(tmp_path):
    source = tmp_path / "blobs.parquet"
    pd.DataFrame({"id": [1, 2], "blob": [b"\xfc\x00\xff", b"ok"]}).to_parquet(source)
    frame = datasets.ParquetReader(path=str(source)).read()
    assert frame["blob"].tolist() == [b"\xfc\x00\xff", b"ok"]


@pytest.mark.parametrize(
    ("separator", "shown"),
    [(";", "';'"), ("\t", "'\\t'"), ("|", "'|'")],
    ids=["semi", "tab", "pipe"],
)
def test_csv_reader_hints_at_the_delimiter_of_a_one_column_header(tmp_path, separator, shown):
    source = tmp_path / "export.csv"
    source.write_text(separator.join(["a", "b", "c"]) + "\n" + separator.join("123") + "\n")
    with pytest.raises(datasets.DatasetError) as caught:
        datasets.CSVReader(path=str(source)).dataset()
    message = str(caught.value)
    assert message.startswith(f"{source}: the header parses as one column")
    assert message.endswith(f"looks separated by {shown}: set delimiter={shown}")
    frame = datasets.CSVReader(path=str(source), delimiter=separator).read()
    assert list(frame.columns) == ["a", "b", "c"]


def test_csv_reader_refuses_duplicate_column_names(tmp_path):
    source = tmp_path / "dup.csv"
    source.write_text("id,a,b,a,b,c\n1,2,3,4,5,6\n")
    with pytest.raises(datasets.DatasetError) as caught:
        datasets.CSVReader(path=str(source)).dataset()
    assert str(caught.value) == (
        f"{source}: duplicated column name(s) 'a', 'b'; each column needs its own name"
    )


def test_parquet_reader_refuses_duplicate_column_names(tmp_path):
    source = tmp_path / "dup.parquet"
    pq.write_table(pa.table([pa.array([1]), pa.array([2]), pa.array([3])], ["x", "y", "x"]), source)
    with pytest.raises(datasets.DatasetError, match=r"duplicated column name\(s\) 'x';") as caught:
        list(datasets.ParquetReader(path=str(source)).batches())
    assert str(source) in str(caught.value)


def part(directory: pathlib.Path, name: str, columns: dict) -> pathlib.Path:
    """Write one file of a folder, Parquet or CSV by its name."""
    directory.mkdir(exist_ok=True)
    path = directory / name
    frame = pd.DataFrame(columns)
    if name.endswith(".csv"):
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


def test_folder_of_agreeing_files_streams_and_ignores_hidden_files(tmp_path):
    folder = tmp_path / "parts"
    for i in range(3):
        part(folder, f"part-{i}.parquet", {"id": [3 * i, 3 * i + 1, 3 * i + 2], "x": [0.5] * 3})
    # Hidden files (as Spark and half-written outputs leave) disagree, and are not read.
    part(folder, ".part-9.parquet", {"other": ["a"]})
    part(folder, "_SUCCESS", {"other": ["a"]})
    reader = datasets.ParquetReader(path=str(folder), batch_size=2)
    batches = list(reader.batches())
    assert max(batch.num_rows for batch in batches) == 2
    assert sorted(reader.read()["id"]) == list(range(9))


def test_folder_of_csv_files_streams(tmp_path):
    folder = tmp_path / "csv"
    part(folder, "a.csv", {"id": [1, 2], "name": ["x", "y"]})
    part(folder, "b.csv", {"name": ["z"], "id": [3]})  # the order of columns does not matter
    frame = datasets.CSVReader(path=str(folder)).read()
    assert sorted(frame["id"]) == [1, 2, 3]


@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_folder_refuses_a_file_that_lacks_a_column(tmp_path, suffix):
    # Read against the first file's schema, the missing column would silently become nulls.
    folder = tmp_path / "parts"
    first = part(folder, f"a.{suffix}", {"id": [1], "temp": [0.5], "hum": [0.1]})
    other = part(folder, f"b.{suffix}", {"id": [2], "hum": [0.2], "wind": [3.0]})
    reader = datasets.reader_for(
        str(folder), KIND="CSVReader" if suffix == "csv" else "ParquetReader"
    )
    batches = reader.batches()
    with pytest.raises(datasets.DatasetError) as caught:
        next(batches)  # refused on opening: not one batch comes out first
    assert str(caught.value) == (
        f"{reader.KIND} input {folder}: the files disagree on their columns; {other} differs "
        f"from {first}: missing column(s) 'temp'; extra column(s) 'wind'"
    )


def test_folder_refuses_a_file_whose_column_has_another_type(tmp_path):
    folder = tmp_path / "parts"
    first = part(folder, "a.parquet", {"id": [1], "hr": [3], "name": ["a"]})
    other = part(folder, "b.parquet", {"id": [2], "hr": ["three"], "name": ["b"]})
    # Strings with 32-bit offsets (as Spark writes) read as pandas' large strings: no difference.
    pq.write_table(
        pa.table({"id": [3], "hr": [4], "name": pa.array(["c"], pa.string())}), folder / "c.parquet"
    )
    with pytest.raises(datasets.DatasetError) as caught:
        datasets.ParquetReader(path=str(folder)).schema()
    message = str(caught.value)
    assert message.endswith(f"{other} differs from {first}: column 'hr' is large_string, not int64")
    other.unlink()
    assert sorted(datasets.ParquetReader(path=str(folder)).read()["name"]) == ["a", "c"]


def test_parquet_checks_read_the_footer_only(tmp_path):
    # Data pages overwritten, footer intact: opening (the checks) succeeds, scanning fails.
    source = tmp_path / "data.parquet"
    pd.DataFrame({"x": range(10_000)}).to_parquet(source, compression=None)
    raw = bytearray(source.read_bytes())
    footer = int.from_bytes(raw[-8:-4], "little") + 8
    raw[4 : len(raw) - footer] = b"\xff" * (len(raw) - footer - 4)
    source.write_bytes(bytes(raw))
    reader = datasets.ParquetReader(path=str(source))
    assert reader.dataset().schema.names == ["x"]
    with pytest.raises(datasets.DatasetError, match="cannot read ParquetReader input"):
        list(reader.batches())


# %% CONFIGURATION


def test_reader_config_picks_the_kind_by_extension_unless_given():
    assert datasets.reader_config("in/rows.CSV") == {"KIND": "CSVReader", "path": "in/rows.CSV"}
    assert datasets.reader_config("in/rows.parquet", {"batch_size": 10}, columns=["a"]) == {
        "KIND": "ParquetReader",
        "batch_size": 10,
        "columns": ["a"],
        "path": "in/rows.parquet",
    }
    # A URI's options after "?" are not its extension.
    assert datasets.reader_config("s3://b/k.csv?endpoint_override=h:1")["KIND"] == "CSVReader"
    assert datasets.reader_config("rows.csv", {"KIND": "ParquetReader"})["KIND"] == "ParquetReader"
    assert datasets.writer_config("out/p.csv")["KIND"] == "CSVWriter"
    assert datasets.writer_config("out/p", {"compression": "snappy"}) == {
        "KIND": "ParquetWriter",
        "compression": "snappy",
        "path": "out/p",
    }
    assert datasets.READER_KINDS == ("ParquetReader", "CSVReader")
    assert datasets.WRITER_KINDS == ("ParquetWriter", "CSVWriter")


def test_reader_for_builds_an_explicit_kind(tmp_path):
    source = tmp_path / "export.txt"
    source.write_text("a;b\n1;x\n")
    reader = datasets.reader_for(str(source), KIND="CSVReader", delimiter=";", batch_size=5)
    assert reader == datasets.CSVReader(path=str(source), delimiter=";", batch_size=5)
    assert reader.read()["b"].tolist() == ["x"]
    writer = datasets.writer_for(str(tmp_path / "out.bin"), KIND="CSVWriter")
    assert isinstance(writer, datasets.CSVWriter)
    assert datasets.writer_for("o.parquet", compression="snappy").compression == "snappy"


def test_reader_for_an_unknown_kind_lists_the_allowed_ones():
    with pytest.raises(datasets.DatasetError) as caught:
        datasets.reader_for("x.parquet", KIND="Foo")
    assert str(caught.value) == (
        "unknown reader KIND 'Foo'; allowed: ParquetReader, CSVReader, or the import path "
        "package.module:Class of a subclass of components.io.datasets.base:Reader"
    )
    with pytest.raises(datasets.DatasetError, match="allowed: ParquetWriter, CSVWriter"):
        datasets.writer_for("x.parquet", KIND="ParquetReader")


def test_reader_for_invalid_options_give_one_readable_line():
    with pytest.raises(datasets.DatasetError) as caught:
        datasets.reader_for("x.parquet", batch_size=0)
    message = str(caught.value)
    assert message == (
        "invalid ParquetReader for x.parquet: batch_size: Input should be greater than 0 (got 0)"
    )
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    with pytest.raises(datasets.DatasetError) as caught:
        datasets.reader_for("x.csv", encoding="no-such-codec", colour="red")
    message = str(caught.value)
    assert "\n" not in message
    assert "encoding: Value error, unknown encoding 'no-such-codec'" in message
    assert "colour: unknown option (did you mean: columns?); its options: path, " in message


def test_csv_header_not_valid_in_the_encoding_is_named(tmp_path):
    path = tmp_path / "latin-header.csv"
    pd.DataFrame({"région": ["Süd"], "x": [1]}).to_csv(path, index=False, encoding="latin-1")
    with pytest.raises(datasets.DatasetError) as caught:
        datasets.reader_for(str(path)).schema()
    assert "the header row is not valid utf-8 text" in str(caught.value)
    assert "encoding='latin-1'" in str(caught.value)
    read = datasets.reader_for(str(path), encoding="latin-1").read()
    assert list(read.columns) == ["région", "x"] and read["région"].tolist() == ["Süd"]


def test_a_write_removes_what_a_killed_writer_left_behind(tmp_path):
    """A SIGKILLed step leaves its hidden temporary file; its retry's write clears it."""
    stale = tmp_path / ".predictions.parquet.tmp-deadbeef"
    stale.write_bytes(b"half a file")
    other = tmp_path / ".other.parquet.tmp-deadbeef"  # another output's: not ours to remove
    other.write_bytes(b"x")
    datasets.ParquetWriter(path=str(tmp_path / "predictions.parquet")).write(
        pd.DataFrame({"a": [1, 2]})
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".other.parquet.tmp-deadbeef",
        "predictions.parquet",
    ]


USER_READER = "tests.user_datasets:JsonLinesReader"


def test_a_users_reader_by_import_path_reads_its_format(tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"a": 1, "b": "x"}\n{"a": 2, "b": "y"}\n')
    reader = datasets.reader_for(str(rows), KIND=USER_READER)
    assert type(reader).__name__ == "JsonLinesReader" and reader.KIND == USER_READER
    assert reader.read().to_dict("list") == {"a": [1, 2], "b": ["x", "y"]}
    # A job's field takes the same config, and gives it back with its KIND, as a step needs.
    from components.jobs.promotion import PromotionJob

    job = PromotionJob(
        model_name="m",
        version=1,
        target="a",
        inputs=datasets.reader_config(str(rows), {"KIND": USER_READER}),
    )
    assert job.model_dump(mode="json")["inputs"]["KIND"] == USER_READER
    # Not a reader: one line that says what is allowed.
    with pytest.raises(datasets.DatasetError, match="not a subclass of components.io.datasets"):
        datasets.reader_for(str(rows), KIND="tests.pipelines.user_kinds:NamedFinder")


def test_the_default_kind_is_asked_of_the_registry_by_extension():
    assert datasets.READERS.choose("s3://b/k.CSV?endpoint_override=h:1").__name__ == "CSVReader"
    assert datasets.READERS.choose("rows/").__name__ == "ParquetReader"  # a folder: the fallback
    assert datasets.WRITERS.choose("out.pq").__name__ == "ParquetWriter"
    assert datasets.extension("gs://b/part.Parquet/") == ".parquet"
    assert datasets.extension("data/no_extension") == ""


def test_csv_missing_markers_in_text_columns_are_missing_as_pandas_reads_them(tmp_path):
    path = tmp_path / "markers.csv"
    path.write_text("city,temp\nOslo,1.5\nNA,2.0\nN/A,NA\nnull,\n,3.0\nNamibia,4.0\n")
    frame = datasets.CSVReader(path=str(path)).read()
    expected = pd.read_csv(path)
    assert frame["city"].isna().tolist() == expected["city"].isna().tolist()
    assert frame["city"].isna().tolist() == [False, True, True, True, True, False]
    assert frame["temp"].isna().tolist() == [False, False, True, True, False, False]
    assert frame["city"].dropna().tolist() == ["Oslo", "Namibia"]


def test_csv_reader_markers_are_pandas_defaults():
    from pandas._libs.parsers import STR_NA_VALUES

    assert sorted(datasets.csv.NULL_VALUES) == sorted(STR_NA_VALUES)


def test_csv_reader_can_keep_na_as_text(tmp_path):
    path = tmp_path / "codes.csv"
    # "NA" is North America here, not a missing value.
    path.write_text("continent,n\nNA,1\nEU,2\n,3\n")
    kept = datasets.CSVReader(path=str(path), strings_can_be_null=False).read()
    assert kept["continent"].tolist() == ["NA", "EU", ""]
    only_empty = datasets.CSVReader(path=str(path), null_values=[""]).read()
    assert only_empty["continent"].isna().tolist() == [False, False, True]
    assert only_empty["continent"].iloc[0] == "NA"


@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".lz4"])
def test_compressed_csv_is_read_and_written_as_csv(tmp_path, suffix):
    original = pd.DataFrame({"id": [1, 2, 3], "label": ["a", None, "c, d"]})
    path = tmp_path / f"rows.csv{suffix}"
    assert datasets.reader_config(str(path).upper())["KIND"] == "CSVReader"
    assert datasets.writer_config(f"s3://b/out.CSV{suffix}?region=x")["KIND"] == "CSVWriter"
    datasets.writer_for(str(path)).write(original)
    # The file is compressed, as its name says: pyarrow's own stream reader decodes it.
    with pa.input_stream(str(path), compression=datasets.compression(str(path))) as stream:
        assert stream.read().decode().splitlines()[0] == '"id","label"'
    assert not path.read_bytes().startswith(b'"id"')
    pd.testing.assert_frame_equal(datasets.reader_for(str(path)).read(), original)
    # A folder of compressed parts reads as one dataset.
    folder = tmp_path / "parts"
    folder.mkdir()
    for part in range(2):
        datasets.CSVWriter(path=str(folder / f"part-{part}.csv{suffix}")).write(original)
    assert len(datasets.CSVReader(path=str(folder)).read()) == 6


def test_a_folder_of_csv_read_as_parquet_names_the_reader_to_set(tmp_path):
    folder = tmp_path / "to-score"
    folder.mkdir()
    pd.DataFrame({"a": [1, 2]}).to_csv(folder / "part-0.csv", index=False)
    with pytest.raises(datasets.DatasetError) as refused:
        datasets.reader_for(str(folder)).dataset()
    message = str(refused.value)
    assert message.startswith(f"cannot open ParquetReader input {folder}: ")
    assert "for CSV files set the reader, e.g. `reader: {KIND: CSVReader}`" in message
    with pytest.raises(datasets.DatasetError) as missing:
        datasets.reader_for(str(tmp_path / "nope.parquet")).dataset()
    assert "for CSV" not in str(missing.value)


def test_index_columns_of_a_pandas_parquet_file_stay_columns(tmp_path):
    # pandas writes a frame's named index as columns with metadata that made them the
    # DataFrame's index again on reading: a pass-through "id" was reported missing.
    frame = pd.DataFrame(
        {
            "id": ["c0", "c1", "c2", "c3"],
            "shop": [1, 1, 2, 2],
            "visits": pd.array([1, None, 3, 4], dtype="Int64"),
            "y": [0.5, 1.5, 2.5, 3.5],
        }
    )
    frame.set_index(["id", "shop"]).to_parquet(tmp_path / "indexed.parquet")
    reader = datasets.ParquetReader(path=str(tmp_path / "indexed.parquet"), batch_size=3)

    assert reader.schema().names == ["visits", "y", "id", "shop"]
    read = reader.read()
    assert list(read.columns) == ["visits", "y", "id", "shop"]
    pd.testing.assert_frame_equal(read, frame[["visits", "y", "id", "shop"]])
    assert str(read["visits"].dtype) == "Int64"  # the rest of pandas' metadata still applies
    batches = list(reader.model_copy(update={"columns": ["id", "y"]}).frames())
    assert [list(b.columns) for b in batches] == [["id", "y"], ["id", "y"]]
    assert pd.concat(batches)["id"].tolist() == ["c0", "c1", "c2", "c3"]
    # The unnamed index of a filtered frame is row numbers, no column of the data.
    frame.iloc[[0, 2, 3]].to_parquet(tmp_path / "filtered.parquet")
    filtered = datasets.ParquetReader(path=str(tmp_path / "filtered.parquet")).read()
    assert list(filtered.columns) == ["id", "shop", "visits", "y"]
    assert filtered["id"].tolist() == ["c0", "c2", "c3"]
    # An index that repeats a column (`drop=False`) is that column, once.
    frame.set_index("id", drop=False).to_parquet(tmp_path / "kept.parquet")
    kept = datasets.ParquetReader(path=str(tmp_path / "kept.parquet")).read()
    assert list(kept.columns) == ["id", "shop", "visits", "y"]


def test_a_csv_with_decimal_commas_reads_numbers_with_its_decimal_point(tmp_path):
    path = tmp_path / "spreadsheet.csv"
    path.write_text("price;shop\n1,5;a\n-0,25;b\n;a\n", encoding="utf-8")

    read = datasets.CSVReader(path=str(path), delimiter=";", decimal_point=",").read()

    assert read["price"].tolist()[:2] == [1.5, -0.25] and math.isnan(read["price"].iloc[2])
    assert datasets.CSVReader(path=str(path), delimiter=";").read()["price"].iloc[0] == "1,5"
    with pytest.raises(ValueError, match="decimal_point and delimiter are both ','"):
        datasets.CSVReader(path=str(path), decimal_point=",")


def hive_folder(root: pathlib.Path, suffix: str = ".parquet") -> pathlib.Path:
    """Rows written as Spark and `to_parquet(partition_cols=...)` write them: year=/country=."""
    for year, country, rows in [(2025, "FR", 3), (2025, "DE", 2), (2026, "FR", 4)]:
        folder = root / f"year={year}" / f"country={country}"
        folder.mkdir(parents=True)
        part = pd.DataFrame({"sales": [float(i) for i in range(rows)]})
        if suffix == ".csv":
            part.to_csv(folder / "part-0.csv", index=False)
        else:
            part.to_parquet(folder / "part-0.parquet", index=False)
    return root


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_hive_partition_folders_are_read_as_columns(tmp_path, suffix):
    # The partition values live in the folder names only: a pass-through `country` was
    # "missing" though pandas reads it back as a column.
    root = hive_folder(tmp_path / "lake", suffix)
    kind = datasets.CSVReader if suffix == ".csv" else datasets.ParquetReader
    reader = kind(path=str(root), batch_size=2)

    schema = reader.schema()
    assert schema.names == ["sales", "year", "country"]
    assert schema.field("year").type == pa.int64() and schema.field("country").type == pa.string()
    read = reader.read().sort_values(["year", "country", "sales"]).reset_index(drop=True)
    assert read["year"].tolist() == [2025] * 5 + [2026] * 4
    assert read["country"].tolist() == ["DE"] * 2 + ["FR"] * 3 + ["FR"] * 4
    # Narrowed to some columns, and read piece by piece as a shard reads them.
    narrowed = reader.model_copy(update={"columns": ["country", "sales"]})
    assert {tuple(f.columns) for f in narrowed.frames()} == {("country", "sales")}
    pieces = reader.list_pieces()
    shard = pd.concat(reader.model_copy(update={"pieces": [p]}).read() for p in pieces)
    assert sorted(shard["country"]) == sorted(read["country"])


def test_files_under_different_partition_folders_are_refused(tmp_path):
    root = hive_folder(tmp_path / "lake")
    (root / "loose").mkdir()
    pd.DataFrame({"sales": [1.0]}).to_parquet(root / "loose" / "part-0.parquet")

    with pytest.raises(datasets.DatasetError, match="the files lie under different partition"):
        datasets.ParquetReader(path=str(root)).schema()
