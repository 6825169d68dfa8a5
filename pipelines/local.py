"""Local runs: the same pipelines on one machine with kfp.local and a local MLflow store."""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import typing as T

LOCAL_ROOT = pathlib.Path(".local")


def run_local(
    name: str,
    params: dict[str, T.Any] | None = None,
    root: pathlib.Path = LOCAL_ROOT,
    tracking_uri: str | None = None,
) -> tuple[bool, pathlib.Path]:
    """Run a pipeline under kfp.local's SubprocessRunner in this Python environment.

    Args:
        name: training, inference or lifecycle.
        params: pipeline parameters overriding the defaults.
        root: folder for the pipeline outputs (artifacts of every step).
        tracking_uri: MLflow store; MLFLOW_TRACKING_URI, else the project-local sqlite store.

    Returns:
        Whether the pipeline succeeded, and the folder with this run's outputs.
    """
    from kfp import local

    from components.io import services
    from pipelines import compilation

    # Every step runs in a subprocess that inherits this environment, so they share one store.
    os.environ["MLFLOW_TRACKING_URI"] = tracking_uri or services.default_tracking_uri()
    pipeline_root = (root / "pipeline-root").absolute()
    before = set(pipeline_root.glob("*")) if pipeline_root.exists() else set()
    # No venv and no pip: the steps use this environment, as pods use the project image.
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(pipeline_root),
        raise_on_error=True,  # the exit step still runs first, then the failure is raised
    )
    # Retries are for a cluster's passing failures; here they would only repeat an error.
    pipeline = compilation.build(name, gpu=False, retries=False)
    succeeded = True
    try:
        pipeline(**(params or {}))
    except RuntimeError as error:
        if "finished with status" not in str(error):
            raise  # not a pipeline failure, but a failure to run it at all
        succeeded = False
    runs = sorted(set(pipeline_root.glob("*")) - before, key=lambda p: p.stat().st_mtime)
    if not runs:
        raise RuntimeError(f"pipeline {name} produced no output under {pipeline_root}")
    return succeeded, runs[-1]


# Outputs worth pointing a user at: `task/artifact` -> a file name that says what it is.
HIGHLIGHTS = {
    "predict/predictions": "predictions.parquet",
    "explain/models_explanations": "models_explanations.parquet",
    "explain/samples_explanations": "samples_explanations.parquet",
    "explain/report": "explanations.html",
    "evaluate/report": "evaluation.html",
}


def outputs(run_dir: pathlib.Path) -> dict[str, pathlib.Path]:
    """Link the run's key outputs under `<root>/latest/` with telling names; return the links.

    KFP names artifact files after the output (`report`, `predictions`), without an extension
    that a browser or a Parquet tool would recognise.
    """
    latest = run_dir.parent.parent / "latest"
    shutil.rmtree(latest, ignore_errors=True)
    latest.mkdir(parents=True)
    found = {}
    for key, name in HIGHLIGHTS.items():
        task, artifact = key.split("/")
        matches = sorted(run_dir.glob(f"{task}*/{artifact}"))
        if matches:
            (latest / name).symlink_to(matches[0])
            found[key] = latest / name
    return found


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`run NAME --local [--param K=V ...]`."""
    from pipelines.submit import _CollectParams, parse_param

    parser.add_argument("name", help="training, inference or lifecycle")
    parser.add_argument(
        "--local", action="store_true", required=True, help="run here with kfp.local"
    )
    parser.add_argument(
        "--param", dest="params", metavar="KEY=VALUE", type=parse_param,
        action=_CollectParams, default={},
        help="pipeline parameter; VALUE is parsed as JSON when it can be (repeatable)",
    )  # fmt: skip
    parser.add_argument("--root", type=pathlib.Path, default=LOCAL_ROOT, help="output folder")
    parser.set_defaults(handler=run_command)


def run_command(args: argparse.Namespace) -> int:
    ok, run_dir = run_local(args.name, args.params, args.root)
    print(f"\nPipeline {args.name} {'SUCCEEDED' if ok else 'FAILED'}; outputs in {run_dir}")
    for key, path in outputs(run_dir).items():
        print(f"  {key:30} {path}")
    print("  (open the .html files in a browser; read the .parquet files with pandas or duckdb)")
    uri = os.environ["MLFLOW_TRACKING_URI"]
    print(f"\nMLflow store: {uri}")
    print(f"Open the MLflow UI: .venv/bin/mlflow ui --backend-store-uri {uri}")
    print("  then browse http://127.0.0.1:5000 (Models > bike-sharing shows the Champion)")
    return 0 if ok else 1
