"""Component interfaces: the docstrings become the descriptions users read in the Kubeflow UI."""

from __future__ import annotations

import importlib
import pathlib

import pytest
import yaml
from kfp import compiler

import components

SECTIONS = ("inputDefinitions", "outputDefinitions")
KINDS = ("parameters", "artifacts")


def compiled_spec(name: str, tmp_path: pathlib.Path) -> dict:
    """Compile one component alone and return its component spec from the IR YAML."""
    component = getattr(importlib.import_module(components.COMPONENTS[name]), name)
    path = tmp_path / f"{name}.yaml"
    compiler.Compiler().compile(component, str(path))
    return yaml.safe_load(path.read_text())["components"][f"comp-{name.replace('_', '-')}"]


def interface(spec: dict) -> dict[str, dict]:
    """Every input and output of a component spec, as `section/kind/name` -> definition."""
    return {
        f"{section}/{kind}/{name}": definition
        for section in SECTIONS
        for kind in KINDS
        for name, definition in spec.get(section, {}).get(kind, {}).items()
    }


def test_components_are_the_public_list():
    assert sorted(components.__all__) == sorted(
        ["train", "evaluate", "promote", "predict", "explain", "notify", "monitor"]
        + ["plan_shards", "predict_shard", "publish_predictions"]
        + ["plan_trials", "select_trial"]
    )


@pytest.mark.parametrize("name", list(components.COMPONENTS))
def test_every_input_and_output_has_a_description(name, tmp_path):
    spec = compiled_spec(name, tmp_path)
    found = interface(spec)
    assert any(key.startswith("inputDefinitions/") for key in found), name
    assert any(key.startswith("outputDefinitions/") for key in found), name
    undescribed = sorted(
        key for key, definition in found.items() if not str(definition.get("description", ""))
    )
    assert not undescribed, (
        f"component {name}: no description for {undescribed}; list inputs under Args: and "
        "outputs (Output[...] artifacts, return values as `Output:` or NamedTuple fields) under "
        "Returns: in its docstring"
    )


@pytest.mark.parametrize("name", list(components.COMPONENTS))
def test_descriptions_are_the_docstring_lines(name, tmp_path):
    """A description is the docstring's text for that name, not a stray line of another."""
    spec = compiled_spec(name, tmp_path)
    component = getattr(importlib.import_module(components.COMPONENTS[name]), name)
    docstring = " ".join(component.python_func.__doc__.split())
    for key, definition in interface(spec).items():
        parameter = key.rsplit("/", 1)[1]
        description = " ".join(definition["description"].split())
        assert f"{parameter}: {description}" in docstring, (name, key)


@pytest.mark.parametrize("name", list(components.COMPONENTS))
def test_experiment_defaults_to_the_shared_one(name, tmp_path):
    found = interface(compiled_spec(name, tmp_path))
    assert found["inputDefinitions/parameters/experiment"]["defaultValue"] == "model-lifecycle"


@pytest.mark.parametrize("name", ["train", "predict", "explain", "plan_shards"])
def test_input_is_a_location_or_a_dataset_artifact(name, tmp_path):
    """Either `data` (a path or URI) or a connected `dataset`: both are optional."""
    found = interface(compiled_spec(name, tmp_path))
    data = found["inputDefinitions/parameters/data"]
    assert data["parameterType"] == "STRING" and data["defaultValue"] == ""
    dataset = found["inputDefinitions/artifacts/dataset"]
    assert dataset["artifactType"]["schemaTitle"] == "system.Dataset"
    assert dataset["isOptional"] is True
