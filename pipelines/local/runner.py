"""Local runs: the same pipelines on one machine with kfp.local and a local MLflow store.

Outputs and the MLflow store live under `components.io.services.lifecycle_home()` (by default
`~/.local/share/kfp-model-lifecycle`), so a run does not depend on the working directory.
"""

from __future__ import annotations

import builtins
import json
import os
import pathlib
import shutil
import typing as T

from pipelines.local.console import Console, Step, failure_of

# Read by the steps (components.io.parents), which record them on the run's MLflow parent run.
PARAMETERS_VARIABLE = "LIFECYCLE_PIPELINE_PARAMETERS"


def default_root() -> pathlib.Path:
    """Where `run --local` writes its outputs by default: `lifecycle_home()/runs`."""
    from components.io import services

    return services.lifecycle_home() / "runs"


def run_local(
    name: str,
    params: dict[str, T.Any] | None = None,
    root: pathlib.Path | None = None,
    tracking_uri: str | None = None,
    console: Console | None = None,
) -> tuple[bool, pathlib.Path]:
    """Run a pipeline under kfp.local's SubprocessRunner in this Python environment.

    Each step's whole output goes to `<run>/<task>/output.log`; what is printed is the
    console's to say (default: one line per step as it ends, see `pipelines.local.console`).

    Args:
        name: one of `pipelines.dags.catalog.NAMES`.
        params: pipeline parameters overriding the defaults.
        root: folder for the pipeline outputs (artifacts of every step); default_root() if None.
        tracking_uri: MLflow store; MLFLOW_TRACKING_URI, else the sqlite store in lifecycle_home().
        console: runs the steps and prints their lines; a quiet one if None.

    Returns:
        Whether the pipeline succeeded, and the folder with this run's outputs.
    """
    from kfp import local

    from components.io import services
    from pipelines.dags import catalog

    # Every step runs in a subprocess that inherits this environment, so they share one store.
    os.environ["MLFLOW_TRACKING_URI"] = tracking_uri or services.default_tracking_uri()
    # As in the image: no MLflow telemetry from the steps (each is a fresh process that would
    # start its own sender); the data and the machine are the team's own.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # kfp.local keeps no logs: each step writes its own beside its outputs, where the exit step
    # reads why a step died before it could record its outcome in MLflow.
    os.environ.setdefault(services.STEP_LOG_VARIABLE, services.STEP_LOG)
    pipeline_root = ((root or default_root()) / "pipeline-root").absolute()
    before = set(pipeline_root.glob("*")) if pipeline_root.exists() else set()
    # latest/ is left as it is until this run's outputs replace it (`outputs`, also after a
    # failed run): a run may read its input there, e.g. the last run's predictions.
    console = console or Console()
    # No venv and no pip: the steps use this environment, as pods use the project image.
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(pipeline_root),
        raise_on_error=True,  # the exit step still runs first, then the failure is raised
    )
    # Retries are for a cluster's passing failures; here they would only repeat an error.
    # A run's `parallelism` (tuning) is its loop's limit, which KFP takes as the pipeline is built.
    pipeline = catalog.build(name, gpu=False, retries=False, shape=params)
    # The run's parameters, defaults included, for the steps' MLflow parent run.
    declared = {key: spec.default for key, spec in pipeline.component_spec.inputs.items()}
    os.environ[PARAMETERS_VARIABLE] = json.dumps({**declared, **(params or {})}, default=str)
    succeeded = True
    # kfp.local indents each task's prints by swapping `builtins.print` in and out; tasks of a
    # ParallelFor run in threads, and their swaps interleave so that the last one restores an
    # indenting print: everything this process printed afterwards was indented.
    original_print = builtins.print
    try:
        with console.attached():
            pipeline(**(params or {}))
    except RuntimeError as error:
        if "finished with status" not in str(error):
            raise  # not a pipeline failure, but a failure to run it at all
        succeeded = False
    finally:
        builtins.print = original_print
        os.environ.pop(PARAMETERS_VARIABLE, None)  # the next run of this process has its own
    runs = sorted(set(pipeline_root.glob("*")) - before, key=lambda p: p.stat().st_mtime)
    if not runs:
        raise RuntimeError(f"pipeline {name} produced no output under {pipeline_root}")
    if console.chatter.getvalue():  # kfp.local's own report of the tasks, kept when quiet
        (runs[-1] / ORCHESTRATOR_LOG).write_text(console.chatter.getvalue(), encoding="utf-8")
    return succeeded, runs[-1]


# Where a run's key outputs are gathered, beside pipeline-root/; kfp.local's own task report.
LATEST = "latest"
ORCHESTRATOR_LOG = "orchestrator.log"
# Outputs worth pointing a user at: `task/artifact` -> a file name that says what it is.
HIGHLIGHTS = {
    "predict/predictions": "predictions.parquet",
    # A sharded prediction publishes a folder: the manifest of its parts (see components.io.shards).
    "publish-predictions/predictions": "predictions",
    "explain/models_explanations": "models_explanations.parquet",
    "explain/samples_explanations": "samples_explanations.parquet",
    "explain/report": "explanations.html",
    "evaluate/report": "evaluation.html",
    "predict/drift_report": "drift.html",
    "publish-predictions/drift_report": "drift.html",
    "monitor/report": "performance.html",
    "monitor/performance_table": "performance.parquet",
    # The model card as the last step left it: explain and evaluate complete train's.
    "explain/card": "model_card.md",
    "evaluate/card": "model_card.md",
    "train/card": "model_card.md",
    "select-trial/card": "model_card.md",
    "select-trial/summary": "trials.md",
}


def outputs(run_dir: pathlib.Path) -> dict[str, pathlib.Path]:
    """Gather the run's key outputs under `<root>/latest/` with telling names; return them.

    KFP names artifact files after the output (`report`, `predictions`), without an extension
    that a browser or a Parquet tool would recognise. HTML reports are copied (a browser shows a
    symlink to an extension-less file as plain text); the larger Parquet files are symlinked.

    Args:
        run_dir: the run's folder, `<root>/pipeline-root/<run>`.

    Returns:
        Absolute paths under `latest/`, by `task/artifact`.
    """
    run_dir = pathlib.Path(run_dir).absolute()
    latest = run_dir.parent.parent / LATEST
    shutil.rmtree(latest, ignore_errors=True)
    latest.mkdir(parents=True)
    found = {}
    for key, name in HIGHLIGHTS.items():
        task, artifact = key.split("/")
        matches = sorted(run_dir.glob(f"{task}*/{artifact}"))
        if matches and not (latest / name).exists():  # the first of the keys naming it wins
            if name.endswith((".html", ".md")) and matches[0].is_file():
                shutil.copyfile(matches[0], latest / name)
            else:
                name = as_written(matches[0], name)
                (latest / name).symlink_to(matches[0])
            found[key] = latest / name
    return found


# The first bytes of each format a writer may write a table in (CSV has none of its own).
_MAGIC = {
    b"PAR1": ".parquet",
    b"\x1f\x8b": ".csv.gz",
    b"BZh": ".csv.bz2",
    b"\x04\x22\x4d\x18": ".csv.lz4",
}


def as_written(path: pathlib.Path, name: str) -> str:
    """The name of a table file with the extension of the format it was written in.

    A run's `writer` may be CSV (`{KIND: CSVWriter}`): its predictions named `.parquet` would
    not open in pandas or DuckDB. A folder (a sharded prediction) keeps its name.
    """
    if not name.endswith(".parquet") or not path.is_file():
        return name
    with path.open("rb") as file:
        head = file.read(4)
    suffix = next((ext for magic, ext in _MAGIC.items() if head.startswith(magic)), ".csv")
    return name.removesuffix(".parquet") + suffix


def print_outputs(run_dir: pathlib.Path) -> dict[str, pathlib.Path]:
    """Gather the run's key outputs under `latest/` (see outputs) and print their paths.

    Returns:
        The printed paths, by `task/artifact`.
    """
    from pipelines.common import outcomes

    found = outputs(run_dir)
    # Outputs of one run may belong to two versions: a candidate refused, a Champion serving.
    versions = outcomes.versions(run_dir)
    for key, path in found.items():
        task = key.split("/")[0]
        version = next((v for t, v in versions.items() if t == task or t.startswith(task)), "")
        print(f"  {key:30} {path}" + (f"  ({version})" if version else ""))
    if found:
        print("  (open the .html files in a browser; read the .parquet files with pandas/duckdb)")
    return found


def closing(
    name: str,
    succeeded: bool,
    run_dir: pathlib.Path,
    steps: T.Sequence[Step],
    seconds: float,
    uri: str,
) -> list[str]:
    """The run's last lines: what it produced and for which version, or where and why it failed.

    Args:
        name: the pipeline.
        succeeded: whether it succeeded.
        run_dir: its folder of outputs.
        steps: its steps as they ended (see `Console`).
        seconds: its wall time.
        uri: the MLflow store (credentials masked), for the advice on MLflow's failures.
    """
    from pipelines.common import outcomes

    if succeeded:
        try:
            story = ": " + outcomes.from_local_run(name, run_dir).story()
        except (outcomes.OutcomeError, OSError, KeyError) as error:
            story = f" (its outcome cannot be read: {error})"
        return [f"Pipeline {name} SUCCEEDED in {seconds:.0f} s{story}"]
    failed = next((step for step in steps if not step.succeeded), None)
    if failed is None:
        return [f"Pipeline {name} FAILED after {seconds:.0f} s"]
    failure = failure_of(failed)
    return [
        f"Pipeline {name} FAILED at step {failed.task} after {seconds:.0f} s: {failure.cause}",
        f"  step log: {failed.log}",
        f"  what to do: {failure.advice(uri)}",
    ]


# Steps that register or load the pipeline's model: one that succeeded found it registered.
MODEL_STEPS = ("train", "evaluate", "promote", "predict", "explain")


def registered(model: str, steps: T.Sequence[Step] = ()) -> bool:
    """Whether the MLflow registry holds the model (False when it cannot be asked).

    A step that registered or loaded it and succeeded says so; otherwise the registry is
    asked (opening a local store costs this process most of a second).
    """
    if any(step.succeeded and step.task.startswith(MODEL_STEPS) for step in steps):
        return True
    from mlflow.tracking import MlflowClient

    uri = os.environ["MLFLOW_TRACKING_URI"]
    try:
        MlflowClient(uri, uri).get_registered_model(model)
    except Exception:  # not registered, or the store is unreachable: name no model
        return False
    return True
