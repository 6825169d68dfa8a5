"""Pipeline parameter descriptions: written once, kinds from their registries, one default each.

Compile-time only: the pipelines are built in memory, as `make compile` builds them.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml
from google.protobuf import json_format

from components.core import drift, models
from components.io import datasets, registries
from pipelines.dags import catalog
from pipelines.dags.descriptions import PIECES, described


def inputs(pipeline: str) -> dict:
    """The root parameters of a pipeline as KFP compiled them (type, default, description)."""
    spec = json_format.MessageToDict(catalog.build(pipeline, gpu=False).pipeline_spec)
    return spec["root"]["inputDefinitions"]["parameters"]


@pytest.fixture(scope="module")
def built() -> dict[str, dict]:
    return {name: inputs(name) for name in catalog.NAMES}


def one_line(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("pipeline", catalog.NAMES)
def test_every_description_is_a_piece(built, pipeline):
    pieces = {one_line(text) for text in PIECES.values()}
    for name, parameter in built[pipeline].items():
        assert one_line(parameter["description"]) in pieces, f"{pipeline}.{name}"


def test_the_kinds_listed_are_the_registries(built):
    training, inference = built["training"], built["inference"]
    listed = {
        "model_kind": (one_line(training["model_kind"]["description"]), models.MODELS),
        "reader": (one_line(training["reader"]["description"]), datasets.READERS),
        "writer": (one_line(inference["writer"]["description"]), datasets.WRITERS),
        "finder": (one_line(inference["finder"]["description"]), registries.FINDERS),
    }
    for name, (text, registry) in listed.items():
        assert registry.listing() in text, name
        for kind in registry.names:
            assert f"'{kind}'" in text, f"{name} does not list {kind}"


def test_the_drift_defaults_described_are_the_thresholds(built):
    text = one_line(built["inference"]["drift_thresholds"]["description"])
    described_defaults = json.loads(re.search(r"defaults (\{.*?\})", text).group(1))
    assert described_defaults == drift.Thresholds().model_dump()
    assert text == one_line(built["lifecycle"]["drift_thresholds"]["description"])


def test_a_parameter_shared_by_pipelines_has_one_default_and_one_description(built):
    """Where two pipelines give a parameter the same meaning, they give it the same default."""
    by_name: dict[str, set[str]] = {}
    for pipeline, parameters in built.items():
        for name in parameters:
            by_name.setdefault(name, set()).add(pipeline)
    shared = {name: names for name, names in by_name.items() if len(names) > 1}
    assert {"model_name", "reader", "experiment", "drift_thresholds", "batch_size"} <= set(shared)
    for name, pipelines in shared.items():
        seen = {
            (one_line(built[p][name]["description"]), str(built[p][name].get("defaultValue")))
            for p in pipelines
        }
        meanings = {description for description, _ in seen}
        # A name with several meanings (monitoring's `target` is the truth's column) has one
        # default per meaning.
        assert len(seen) == len(meanings), f"{name}: {sorted(seen)}"
    assert len(built["lifecycle"]) > 20 and "defaultValue" in built["lifecycle"]["batch_size"]


def test_described_writes_the_args_of_every_parameter():
    @described(rows="data")
    def pipeline(rows: str, target: str) -> None:
        """Do a thing."""

    doc = pipeline.__doc__
    assert doc.startswith("Do a thing.\n\nArgs:\n")
    assert f"    rows: {PIECES['data']}" in doc
    assert f"    target: {PIECES['target']}" in doc


def test_described_names_a_parameter_without_a_description():
    with pytest.raises(KeyError, match=r"pipeline: no description for nowhere \(pieces: .*data"):

        @described()
        def pipeline(data: str, nowhere: str) -> None:
            """Do a thing."""


def test_described_refuses_a_piece_for_no_parameter():
    with pytest.raises(KeyError, match="pieces given for no parameter: typo"):

        @described(typo="data")
        def pipeline(data: str) -> None:
            """Do a thing."""


def test_the_lifecycle_runs_the_training_and_inference_steps_wired_as_they_are(tmp_path):
    """The lifecycle is training's steps, then inference's one-pod steps on the served version."""
    from kfp import compiler

    def dag(name: str) -> dict:
        path = tmp_path / f"{name}.yaml"
        compiler.Compiler().compile(catalog.build(name, gpu=False), str(path))
        spec = next(yaml.safe_load_all(path.read_text()))
        return spec["components"]

    training, inference, lifecycle = dag("training"), dag("inference"), dag("lifecycle")

    def tasks(components: dict) -> dict[str, dict]:
        found = {}
        for component in components.values():
            for task, body in component.get("dag", {}).get("tasks", {}).items():
                found[task] = body
        return found

    life, train, infer = tasks(lifecycle), tasks(training), tasks(inference)
    for task in ("train", "evaluate", "promote"):
        assert life[task]["inputs"] == train[task]["inputs"], task
    # Inference takes `inference_data` for its data and the served version for its alias.
    for task in ("predict", "explain"):
        expected = json.loads(
            json.dumps(infer[task]["inputs"]).replace(
                '"pipelinechannel--data"', '"pipelinechannel--inference_data"'
            )
        )
        got = life[task]["inputs"]["parameters"]
        for name, value in expected["parameters"].items():
            if name in ("alias_or_version", "challenger", "challenger_tolerance"):
                continue  # the served version; no shadow scoring in the lifecycle
            assert got[name] == value, f"{task}.{name}"
    assert "predict-2" in life and "explain-2" in life  # served after passed, and after not
