"""A faster check behind kfp's task setters, the same error when it fails.

kfp 2.17's `PipelineTask` asks `inspect.stack()` for its caller's name on every resource,
environment and accelerator setter, only to put that name in an error it rarely raises.
`inspect.stack()` reads the source of every frame on the stack and, for frames without a module
file, walks all of `sys.modules`: about 2 ms a call in a fresh process, 0.17 s inside a notebook
or a test session with thousands of modules loaded, and a pipeline makes about 30 such calls.
Building every pipeline for a pre-run check took 5 s there; this takes the caller's name from
its frame alone, and only when the check fails.
"""

from __future__ import annotations

import sys

from kfp.dsl import pipeline_task


def _ensure_container_spec_exists(self: pipeline_task.PipelineTask) -> None:
    """Refuse a container setting on a task that has no container (a sub-pipeline, an importer)."""
    if self.container_spec is None:
        caller = sys._getframe(1).f_code.co_name
        raise ValueError(
            f"{caller} can only be used on single-step components, not pipelines used as "
            "components, or special components like importers."
        )


def install() -> None:
    """Replace kfp's check, where this kfp has it (a later kfp may change or drop it)."""
    if hasattr(pipeline_task.PipelineTask, "_ensure_container_spec_exists"):
        pipeline_task.PipelineTask._ensure_container_spec_exists = _ensure_container_spec_exists
