"""Where a step reads its input: a location, a Dataset artifact, or a pointer artifact."""

from __future__ import annotations

import pytest
from kfp.dsl import Dataset

from components.io import artifacts, datasets


def dataset(tmp_path, metadata=None) -> Dataset:
    artifact = Dataset(uri=str(tmp_path / "table"), metadata=metadata or {})
    return artifact


def test_a_location_is_read_where_it_is():
    assert artifacts.input_location("s3://lake/t/", None) == "s3://lake/t/"


def test_a_dataset_is_read_from_its_local_copy(tmp_path):
    assert artifacts.input_location("", dataset(tmp_path)) == str(tmp_path / "table")


def test_a_pointer_dataset_is_streamed_from_its_external_uri(tmp_path, bike):
    """The launcher copies only the small pointer; the rows are read from where they are."""
    source = tmp_path / "big.parquet"
    bike.head(100).to_parquet(source, index=False)
    pointer = dataset(tmp_path, {artifacts.EXTERNAL_URI: f"file://{source}"})
    location = artifacts.input_location("", pointer)
    assert location == f"file://{source}"
    assert len(datasets.reader_for(location).read()) == 100


@pytest.mark.parametrize("data", ["", "x.parquet"])
def test_both_or_neither_is_refused(tmp_path, data):
    given = dataset(tmp_path) if data else None
    message = "not both" if data else "no input: set data"
    with pytest.raises(ValueError, match=message):
        artifacts.input_location(data, given)
