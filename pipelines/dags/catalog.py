"""The project's pipelines by name: built with their cluster settings; where their YAML lives."""

from __future__ import annotations

import pathlib
import typing as T

# `make compile` writes here; the package, the image, the manifests and GitOps read it.
COMPILED = pathlib.Path(__file__).parents[1] / "compiled"
NAMES = ("training", "inference", "lifecycle", "monitoring", "tuning")
# Parameters that also shape a pipeline as it is built: KFP takes a loop's limit at compile time.
# A run here builds its pipeline with the run's value; a compiled one keeps the built default.
SHAPING = {"tuning": {"parallelism": "trial_parallelism"}}


def build(
    name: str, gpu: bool = True, retries: bool = True, shape: T.Mapping[str, T.Any] | None = None
) -> T.Any:
    """Build one pipeline by name with the default cluster settings (GPU, retries on or off).

    Args:
        name: one of NAMES.
        gpu: put predict and explain on GPU nodes.
        retries: retry failed steps (off for local runs, where a retry only repeats an error).
        shape: values of the pipeline's SHAPING parameters to build it with (a run's), by
            parameter name; the others are ignored.

    Returns:
        The pipeline (a kfp GraphComponent), ready to compile or to run with kfp.local.

    Raises:
        SystemExit: no pipeline has this name.
    """
    # Imported here: the components read the image setting when they are first imported.
    from pipelines.dags import inference, lifecycle, monitoring, training, tuning
    from pipelines.dags.settings import Settings

    builders = {
        "training": training.build,
        "inference": inference.build,
        "lifecycle": lifecycle.build,
        "monitoring": monitoring.build,
        "tuning": tuning.build,
    }
    if name not in builders:
        raise SystemExit(f"unknown pipeline '{name}'; pipelines: {', '.join(NAMES)}")
    settings = Settings(gpu=gpu, pipeline=name)
    if not retries:
        settings = settings.model_copy(update={"retries": {}})
    shaping = SHAPING.get(name, {})
    given = {shaping[key]: int(value) for key, value in (shape or {}).items() if key in shaping}
    if given:  # validated as Settings are: a limit below 1 is refused, not compiled
        settings = Settings.model_validate({**settings.model_dump(), **given})
    return builders[name](settings)


def compiled_pipelines(pipelines_dir: pathlib.Path = COMPILED) -> list[str]:
    """List the names of the compiled pipelines in a folder, sorted."""
    folder = pathlib.Path(pipelines_dir)
    return sorted(path.stem for path in folder.glob("*.yaml")) if folder.is_dir() else []
