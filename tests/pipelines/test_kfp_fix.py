"""The faster check behind kfp's task setters: no stack walk while a pipeline is built, the same
refusal when a container setting is put on a task without a container.

Build-time only: the pipelines are built as `make compile` and the pre-run check builds them.
"""

import inspect

import pytest
from kfp import dsl

from pipelines.dags import catalog


def test_building_every_pipeline_walks_no_stack(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("inspect.stack() called while a pipeline is built")

    monkeypatch.setattr(inspect, "stack", refuse)
    for name in catalog.NAMES:
        for gpu in (True, False):
            assert catalog.build(name, gpu=gpu).pipeline_spec.root.dag.tasks, name


@dsl.component
def step() -> int:
    return 1


@dsl.pipeline
def inner() -> int:
    return step().output


def test_a_container_setting_on_a_sub_pipeline_is_refused_with_the_setters_name():
    with pytest.raises(ValueError, match=r"^set_cpu_request can only be used on single-step "):

        @dsl.pipeline
        def outer():
            inner().set_cpu_request("1")

    with pytest.raises(ValueError, match=r"^set_env_variable can only be used on single-step "):

        @dsl.pipeline
        def other():
            inner().set_env_variable("A", "1")
