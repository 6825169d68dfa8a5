"""Datasets on s3:// URIs, against moto's S3 server on 127.0.0.1 (real HTTP, S3's own API).

An S3 bucket cannot be reached from here; moto's server answers the S3 REST API locally, so
pyarrow's own S3 filesystem is exercised end to end: streaming reads, atomic writes, cleanup.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request

import boto3
import pandas as pd
import pytest

from components.io import datasets
from tests.conftest import BIKE_PARQUET, free_port


@pytest.fixture(scope="module")
def s3():
    """Start moto's S3 server; yield (endpoint, boto3 client, bucket)."""
    port = free_port()
    server = shutil.which("moto_server", path=os.path.dirname(sys.executable)) or "moto_server"
    process = subprocess.Popen(
        [server, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://{endpoint}/", timeout=1).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("moto_server did not start") from None
            time.sleep(0.2)
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test")
    client = boto3.client("s3", endpoint_url=f"http://{endpoint}", region_name="us-east-1")
    client.create_bucket(Bucket="bike")
    yield endpoint, client, "bike"
    process.terminate()
    process.wait(timeout=10)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def uri(endpoint: str, key: str) -> str:
    return f"s3://bike/{key}?endpoint_override={endpoint}&scheme=http&region=us-east-1"


def keys(client) -> list[str]:
    return [item["Key"] for item in client.list_objects_v2(Bucket="bike").get("Contents", [])]


def test_write_then_stream_read_on_s3(s3):
    endpoint, client, _ = s3
    frame = pd.read_parquet(BIKE_PARQUET)
    datasets.ParquetWriter(path=uri(endpoint, "in/hour.parquet")).write(frame)
    assert "in/hour.parquet" in keys(client)
    assert not [key for key in keys(client) if ".tmp-" in key]
    reader = datasets.ParquetReader(path=uri(endpoint, "in/hour.parquet"), batch_size=5000)
    sizes = [batch.num_rows for batch in reader.batches()]
    assert max(sizes) == 5000 and sum(sizes) == len(frame)
    pd.testing.assert_frame_equal(reader.read(), frame)


def test_failed_write_leaves_nothing_on_s3(s3):
    endpoint, client, _ = s3
    with (
        pytest.raises(RuntimeError, match="stop"),
        datasets.CSVWriter(path=uri(endpoint, "out/partial.csv")).open() as sink,
    ):
        sink.write(pd.DataFrame({"a": [1, 2]}))
        raise RuntimeError("stop")
    assert not [key for key in keys(client) if key.startswith("out/") and key != "out/"]


def test_missing_s3_object_names_the_uri(s3):
    endpoint, _, _ = s3
    with pytest.raises(datasets.DatasetError, match="input not found: s3://bike/nope.parquet"):
        list(datasets.ParquetReader(path=uri(endpoint, "nope.parquet")).batches())


def test_csv_checks_on_s3_read_the_objects_through_pyarrow(s3):
    endpoint, client, bucket = s3
    client.put_object(
        Bucket=bucket, Key="csv/latin.csv", Body="id,city\n1,Zürich\n".encode("latin-1")
    )
    client.put_object(Bucket=bucket, Key="csv/dup.csv", Body=b"a,a\n1,2\n")
    with pytest.raises(
        datasets.DatasetError, match="column 'city' is not valid utf-8 text at data row 1"
    ):
        datasets.reader_for(uri(endpoint, "csv/latin.csv")).dataset()
    reader = datasets.reader_for(uri(endpoint, "csv/latin.csv"), encoding="latin-1")
    assert isinstance(reader, datasets.CSVReader)
    assert reader.read()["city"].tolist() == ["Zürich"]
    with pytest.raises(
        datasets.DatasetError, match=r"bike/csv/dup.csv: duplicated column name\(s\) 'a'"
    ):
        datasets.CSVReader(path=uri(endpoint, "csv/dup.csv")).dataset()


def test_a_sharded_input_on_s3_is_planned_and_read_shard_by_shard(s3):
    from components.io import shards

    endpoint, _, _ = s3
    frame = pd.read_parquet(BIKE_PARQUET)
    for number, start in enumerate(range(0, len(frame), 6000)):
        datasets.ParquetWriter(path=uri(endpoint, f"sharded/{number}.parquet")).write(
            frame.iloc[start : start + 6000]
        )
    reader = datasets.ParquetReader(path=uri(endpoint, "sharded"))
    pieces = reader.list_pieces()
    assert [piece.rows for piece in pieces] == [6000, 6000, 5379]
    runs = shards.split_balanced([piece.weight for piece in pieces], 2)
    parts = [
        reader.model_copy(update={"pieces": [pieces[index] for index in run]}).read()
        for run in runs
    ]
    pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True), frame)


def test_a_manifest_of_parts_in_kfp_minio_store_reads_as_one_table(s3, tmp_path, monkeypatch):
    """KFP's artifacts on a default install have minio:// URIs: MinIO answers as S3 does."""
    from components.io import shards

    endpoint, client, _ = s3
    monkeypatch.setenv("MINIO_ENDPOINT", endpoint)
    frame = pd.read_parquet(BIKE_PARQUET)
    halves = [frame.iloc[:9000], frame.iloc[9000:]]
    files = []
    for number, half in enumerate(halves):
        datasets.ParquetWriter(path=uri(endpoint, f"artifacts/part-{number}")).write(half)
        files.append(f"minio://bike/artifacts/part-{number}")
    manifest = shards.Manifest(
        format="parquet",
        files=files,
        parts=[
            shards.Part(shard=n, uri=f, rows=len(h))
            for n, (f, h) in enumerate(zip(files, halves, strict=True))
        ],
        rows=len(frame),
        model="bikes v1",
    )
    published = tmp_path / "published"
    shards.write_manifest(datasets.resolve(str(published))[0], str(published), manifest)
    pd.testing.assert_frame_equal(datasets.ParquetReader(path=str(published)).read(), frame)
