"""The project's pipelines by name: built with their cluster settings; where their YAML lives."""

from __future__ import annotations

import pathlib
import typing as T

# `make compile` writes here; the package, the image, the manifests and GitOps read it.
COMPILED = pathlib.Path(__file__).parents[1] / "compiled"
NAMES = ("training", "inference", "lifecycle", "monitoring")


def build(name: str, gpu: bool = True, retries: bool = True) -> T.Any:
    """Build one pipeline by name with the default cluster settings (GPU, retries on or off).

    Args:
        name: one of NAMES.
        gpu: put predict and explain on GPU nodes.
        retries: retry failed steps (off for local runs, where a retry only repeats an error).

    Returns:
        The pipeline (a kfp GraphComponent), ready to compile or to run with kfp.local.

    Raises:
        SystemExit: no pipeline has this name.
    """
    # Imported here: the components read the image setting when they are first imported.
    from pipelines.dags import inference, lifecycle, monitoring, training
    from pipelines.dags.settings import Settings

    builders = {
        "training": training.build,
        "inference": inference.build,
        "lifecycle": lifecycle.build,
        "monitoring": monitoring.build,
    }
    if name not in builders:
        raise SystemExit(f"unknown pipeline '{name}'; pipelines: {', '.join(NAMES)}")
    settings = Settings(gpu=gpu, pipeline=name)
    if not retries:
        settings = settings.model_copy(update={"retries": {}})
    return builders[name](settings)


def compiled_pipelines(pipelines_dir: pathlib.Path = COMPILED) -> list[str]:
    """List the names of the compiled pipelines in a folder, sorted."""
    folder = pathlib.Path(pipelines_dir)
    return sorted(path.stem for path in folder.glob("*.yaml")) if folder.is_dir() else []
